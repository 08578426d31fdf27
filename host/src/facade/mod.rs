//! The one entrance for embedders and front ends: load and plan a
//! playbook, resolve its targets, start a run, follow its events as a
//! [`Stream`](futures::Stream), cancel it, and await its summary; inspect a
//! plugin. Everything a front end needs from the layers below is here.
//!
//! The `irhost` command line, `irhost watch` and `irhost serve` are built
//! on this module; there is no second way of running a playbook.
//!
//! ```no_run
//! use futures::StreamExt;
//! use irhost::case_id::CaseId;
//! use irhost::facade::{Host, RunOptions, RuntimeConfig};
//! use irhost::target::TargetSpec;
//!
//! # async fn example() -> anyhow::Result<()> {
//! // One host per process: the plugin runtime (wasmtime engine, component
//! // cache) and the cloud environment (credentials, endpoints).
//! let host = Host::new(RuntimeConfig::default())?;
//!
//! // Load the playbook, its plugins, and check the plan (the DAG, the
//! // preservation rule): problems are located diagnostics.
//! let plan = host.load("playbooks/aws-instance-compromise.toml").await?;
//! println!("{}", plan.describe());
//!
//! // Start the run: it proceeds on its own tasks.
//! let given = vec![TargetSpec::parse("aws:i-0abc").map_err(anyhow::Error::msg)?];
//! let targets = plan.resolve_targets(given).map_err(|e| anyhow::anyhow!("{e:?}"))?;
//! let options = RunOptions::new(Some(CaseId::parse("IR-42").map_err(anyhow::Error::msg)?), "cases".into(), 16);
//! let run = host.start(plan, targets, options)?; // refused while another run holds the case
//!
//! // Every journal record, from the first, as a stream that ends with the run.
//! let mut events = run.events();
//! while let Some(record) = events.next().await {
//!     println!("{} {:?}", record.seq, record.event);
//!     # run.cancel(); // a caller may stop the run at any time
//! }
//! let summary = run.wait().await?;
//! println!("{} succeeded, {} failed", summary.succeeded(), summary.failed());
//! # Ok(())
//! # }
//! ```

mod run;
mod status;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::cloud::CloudEnv;
use crate::custody::sealed_case::CASE_PROVIDER;
use crate::diagnostics::Diagnostics;
use crate::engine;
use crate::runtime::{PluginRuntime, PluginSource};
use crate::target::TargetSpec;

pub use crate::cloud::doctor::{Check as DoctorCheck, Verdict as DoctorVerdict};
/// Sealing a journal that is not a run's (the watch journal) as a case, and
/// the key that signs it.
pub use crate::custody::{keys::SigningKey, seal_case, Sealed};
pub use crate::engine::resume::{read_progress, CaseProgress};
pub use crate::engine::{RunOptions, RunSummary, StepOutcome, TargetOutcome};
pub use crate::journal::CaseLockError;
pub use crate::plan::{PlannedStep, PlaybookPlan, TargetsError};
pub use crate::runtime::bindings::PluginInfo;
pub use crate::runtime::RuntimeConfig;
pub use run::{RunEvents, RunHandle};
pub use status::{ItemState, RunState, RunStatus, StepStatus, TargetStatus};

/// The plugin runtime and cloud environment runs share.
#[derive(Clone)]
pub struct Host {
    runtime: Arc<PluginRuntime>,
    cloud: Arc<CloudEnv>,
}

impl Host {
    /// A host with a new plugin runtime and the cloud environment read from
    /// this process's environment (AWS credential chain, endpoints).
    /// Refused when the network settings are unusable (an unreadable
    /// `AWS_CA_BUNDLE`): no request could be made as the responder meant.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Host> {
        crate::egress::NetworkSettings::shared().map_err(anyhow::Error::msg)?;
        Ok(Host::with_runtime(
            Arc::new(PluginRuntime::new(config)?),
            CloudEnv::from_env(),
        ))
    }

    /// A host from parts.
    pub fn with_runtime(runtime: Arc<PluginRuntime>, cloud: CloudEnv) -> Host {
        Host {
            runtime,
            cloud: Arc::new(cloud),
        }
    }

    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    /// Read a playbook, load its plugins and plan it: everything `irhost
    /// validate` checks. Nothing runs.
    pub async fn load(&self, path: impl AsRef<Path>) -> Result<Arc<PlaybookPlan>, Diagnostics> {
        PlaybookPlan::load(&self.runtime, path.as_ref(), &self.cloud)
            .await
            .map(Arc::new)
    }

    /// `irhost doctor`: for each target, the checks of every plugin granted
    /// that target's cloud (who signs, whether it works, each action).
    pub async fn doctor(&self, plan: &PlaybookPlan, targets: &[TargetSpec]) -> Vec<DoctorCheck> {
        let mut checks = Vec::new();
        for target in targets {
            for spec in plan.playbook.plugins.values() {
                let Some(grant) = &spec.grant else { continue };
                if grant.cloud() == target.provider {
                    checks.extend(self.cloud.doctor(&spec.name, grant, target).await);
                }
            }
        }
        checks
    }

    /// Start running `plan` against `targets` on the current tokio runtime.
    /// The run goes on whether or not anyone follows its events or awaits it.
    /// Refused, with nothing written, when a run parameter is not one of the
    /// playbook's `[inputs]` (or not a valid value of it), and while another
    /// run (of this process or another) holds the case.
    pub fn start(
        &self,
        plan: Arc<PlaybookPlan>,
        targets: Vec<TargetSpec>,
        mut options: RunOptions,
    ) -> Result<RunHandle, StartError> {
        options.params = plan
            .playbook
            .inputs
            .check(&options.params)
            .map_err(StartError::Params)?;
        let lock = engine::lock_case(&options)?;
        let labels: Vec<String> = targets.iter().map(TargetSpec::label).collect();
        let steps: Vec<String> = plan.steps.iter().map(|s| s.spec.id.clone()).collect();
        let mut status = RunStatus::new(
            &options,
            plan.playbook.name.clone(),
            &labels,
            &steps,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        if !plan.sealed.is_empty() {
            // The sealed phase runs once, as the target `case:<case-id>`.
            let sealed: Vec<String> = plan.sealed.iter().map(|s| s.spec.id.clone()).collect();
            let case = format!("{CASE_PROVIDER}:{}", options.case_id);
            let extra = RunStatus::new(&options, String::new(), &[case], &sealed, String::new());
            status.targets.extend(extra.targets);
        }
        let (handle, observer, finish) = RunHandle::begin(&options, status);
        let interrupts = handle.interrupts();
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            let result = engine::run_plan(
                runtime,
                plan,
                targets,
                options,
                Some(observer),
                interrupts,
                lock,
            )
            .await;
            finish(result);
        });
        Ok(handle)
    }

    /// Load one plugin file as the runtime would (world, `describe`,
    /// imports), with no egress and default limits: `irhost plugin inspect`.
    pub async fn inspect(&self, file: &Path) -> anyhow::Result<PluginInspection> {
        let plugin = self
            .runtime
            .load(PluginSource {
                name: file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: file.to_path_buf(),
                sha256: None,
                limits: Default::default(),
                egress: Default::default(),
                authorizer: None,
                uploads: None,
                config: serde_json::json!({}),
            })
            .await?;
        Ok(PluginInspection {
            sha256: plugin.sha256.clone(),
            world: plugin.world.as_str(),
            contract: plugin.contract.as_str(),
            info: plugin.info.clone(),
            imports: plugin.imports.clone(),
        })
    }
}

/// Why a run did not start (nothing was written).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// A run parameter is not a declared input, or not a valid value of it.
    #[error("{0}")]
    Params(String),
    /// Another run holds the case, or its lock could not be taken.
    #[error(transparent)]
    Case(#[from] CaseLockError),
}

/// What `irhost plugin inspect` shows of a component.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInspection {
    pub sha256: String,
    /// `provider` or `step`.
    pub world: &'static str,
    /// The `irhost:plugin` version it was built against.
    pub contract: &'static str,
    /// What its `describe` returned.
    pub info: PluginInfo,
    /// The interfaces it imports.
    pub imports: Vec<String>,
}
