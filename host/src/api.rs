//! The library API: load and plan a playbook, start a run against targets,
//! follow its events as a [`Stream`], cancel it, and await its summary.
//!
//! The `irhost` command line (`run`, `watch`, `serve`) is built on this
//! module; there is no second way of running a playbook.
//!
//! ```no_run
//! use futures::StreamExt;
//! use irhost::api::Host;
//! use irhost::case_id::CaseId;
//! use irhost::engine::RunOptions;
//! use irhost::runtime::RuntimeConfig;
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
//! let targets = vec![TargetSpec::parse("aws:i-0abc").map_err(anyhow::Error::msg)?];
//! let options = RunOptions::new(Some(CaseId::parse("IR-42").map_err(anyhow::Error::msg)?), "cases".into(), 16);
//! let run = host.start(plan, targets, options);
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

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cloud::CloudEnv;
use crate::diagnostics::Diagnostics;
use crate::engine::{self, RunOptions, RunSummary};
use crate::events::{RunEvent, Status};
use crate::journal::{JournalRecord, RecordObserver};
use crate::plan::PlaybookPlan;
use crate::runtime::{PluginRuntime, RuntimeConfig};
use crate::target::TargetSpec;

/// The plugin runtime and cloud environment runs share.
#[derive(Clone)]
pub struct Host {
    runtime: Arc<PluginRuntime>,
    cloud: Arc<CloudEnv>,
}

impl Host {
    /// A host with a new plugin runtime and the cloud environment read from
    /// this process's environment (AWS credential chain, endpoints).
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Host> {
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

    /// Start running `plan` against `targets` on the current tokio runtime.
    /// The run goes on whether or not anyone follows its events or awaits it.
    pub fn start(
        &self,
        plan: Arc<PlaybookPlan>,
        targets: Vec<TargetSpec>,
        options: RunOptions,
    ) -> RunHandle {
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
            let case = format!(
                "{}:{}",
                crate::custody::sealed_case::CASE_PROVIDER,
                options.case_id
            );
            let extra = RunStatus::new(&options, String::new(), &[case], &sealed, String::new());
            status.targets.extend(extra.targets);
        }
        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub::default()),
            status: Mutex::new(status),
        });
        let (done_tx, done_rx) = watch::channel(None);
        let cancel = CancellationToken::new();
        let observer: RecordObserver = {
            let shared = shared.clone();
            Arc::new(move |record: &JournalRecord| shared.record(record))
        };
        let handle = RunHandle {
            inner: Arc::new(HandleInner {
                run_id: options.run_id.clone(),
                case_id: options.case_id.to_string(),
                case_dir: options.case_dir(),
                shared: shared.clone(),
                cancel: cancel.clone(),
                done: done_rx,
            }),
        };
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            let result =
                engine::run_plan(runtime, plan, targets, options, Some(observer), cancel).await;
            let outcome = match result {
                Ok(summary) => Ok(Arc::new(summary)),
                Err(e) => Err(format!("{e:#}")),
            };
            shared.finish(&outcome);
            let _ = done_tx.send(Some(outcome));
        });
        handle
    }
}

type Outcome = Result<Arc<RunSummary>, String>;

/// A run in progress or finished. Cheap to clone; dropping every handle
/// does not stop the run.
#[derive(Clone)]
pub struct RunHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    run_id: String,
    case_id: String,
    case_dir: std::path::PathBuf,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    done: watch::Receiver<Option<Outcome>>,
}

impl RunHandle {
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    pub fn case_id(&self) -> &str {
        &self.inner.case_id
    }

    /// `cases/<case-id>`: the journal and artifacts.
    pub fn case_dir(&self) -> &Path {
        &self.inner.case_dir
    }

    /// Every journal record of this run, from the first one, then live as
    /// they are written; the stream ends when the run has finished. Any
    /// number of streams may be open at once.
    pub fn events(&self) -> RunEvents {
        self.inner.shared.subscribe()
    }

    /// Ask the run to stop: no new step starts, running plugin calls are
    /// abandoned, and the remaining steps are journaled as skipped.
    pub fn cancel(&self) {
        self.inner.cancel.cancel();
    }

    pub fn is_finished(&self) -> bool {
        self.inner.done.borrow().is_some()
    }

    /// Where every target and step stands now.
    pub fn status(&self) -> RunStatus {
        self.inner
            .shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait for the run to finish. An `Err` means the run itself could not
    /// proceed (its journal could not be written); failed targets are in
    /// the summary.
    pub async fn wait(&self) -> anyhow::Result<RunSummary> {
        let mut done = self.inner.done.clone();
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| anyhow::anyhow!("the run task ended without a result"))?
            .clone();
        match outcome {
            Some(Ok(summary)) => Ok((*summary).clone()),
            Some(Err(e)) => Err(anyhow::anyhow!(e)),
            None => unreachable!("wait_for returned None"),
        }
    }
}

struct Shared {
    hub: Mutex<Hub>,
    status: Mutex<RunStatus>,
}

/// Records in journal order (the recorder notifies under the journal's
/// lock), and the subscribers to hand them to.
#[derive(Default)]
struct Hub {
    history: Vec<JournalRecord>,
    subscribers: Vec<mpsc::UnboundedSender<JournalRecord>>,
    closed: bool,
}

impl Hub {
    fn deliver(&mut self, record: JournalRecord) {
        self.subscribers
            .retain(|tx| tx.send(record.clone()).is_ok());
        self.history.push(record);
    }
}

impl Shared {
    fn record(&self, record: &JournalRecord) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(&record.event);
        self.hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deliver(record.clone());
    }

    fn finish(&self, outcome: &Outcome) {
        // Status first: a stream that ends sees the final status.
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.finished_at =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            match outcome {
                Ok(summary) => {
                    status.state = if summary.cancelled {
                        RunState::Cancelled
                    } else if summary.all_succeeded() {
                        RunState::Succeeded
                    } else {
                        RunState::Failed
                    };
                    status.succeeded = summary.succeeded();
                    status.failed = summary.failed();
                }
                Err(e) => {
                    status.state = RunState::Error;
                    status.error = Some(e.clone());
                }
            }
        }
        let mut hub = self.hub.lock().unwrap_or_else(|p| p.into_inner());
        hub.closed = true;
        hub.subscribers.clear();
    }

    fn subscribe(&self) -> RunEvents {
        let mut hub = self.hub.lock().unwrap_or_else(|p| p.into_inner());
        let backlog = hub.history.clone().into();
        let live = if hub.closed {
            None
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            hub.subscribers.push(tx);
            Some(rx)
        };
        RunEvents { backlog, live }
    }
}

/// The journal records of one run, as a [`Stream`] (see [`RunHandle::events`]).
pub struct RunEvents {
    backlog: std::collections::VecDeque<JournalRecord>,
    live: Option<mpsc::UnboundedReceiver<JournalRecord>>,
}

impl Stream for RunEvents {
    type Item = JournalRecord;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<JournalRecord>> {
        if let Some(record) = self.backlog.pop_front() {
            return Poll::Ready(Some(record));
        }
        match self.live.as_mut() {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    /// Some target failed.
    Failed,
    Cancelled,
    /// The run could not proceed (its journal could not be written).
    Error,
}

impl RunState {
    /// The name used in answers and journals (`succeeded`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a target or a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl From<Status> for ItemState {
    fn from(s: Status) -> Self {
        match s {
            Status::Succeeded => ItemState::Succeeded,
            Status::Failed => ItemState::Failed,
            Status::Skipped => ItemState::Skipped,
        }
    }
}

/// A run's progress, target by target and step by step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunStatus {
    pub run_id: String,
    pub case_id: String,
    pub playbook: String,
    pub state: RunState,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub succeeded: usize,
    pub failed: usize,
    pub error: Option<String>,
    pub targets: Vec<TargetStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TargetStatus {
    pub target: String,
    pub state: ItemState,
    pub steps: Vec<StepStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepStatus {
    pub step: String,
    pub state: ItemState,
    pub attempts: u32,
    pub error: Option<String>,
}

impl RunStatus {
    fn new(
        options: &RunOptions,
        playbook: String,
        targets: &[String],
        steps: &[String],
        started_at: String,
    ) -> Self {
        RunStatus {
            run_id: options.run_id.clone(),
            case_id: options.case_id.to_string(),
            playbook,
            state: RunState::Running,
            started_at,
            finished_at: None,
            succeeded: 0,
            failed: 0,
            error: None,
            targets: targets
                .iter()
                .map(|t| TargetStatus {
                    target: t.clone(),
                    state: ItemState::Pending,
                    steps: steps
                        .iter()
                        .map(|s| StepStatus {
                            step: s.clone(),
                            state: ItemState::Pending,
                            attempts: 0,
                            error: None,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn step(&mut self, target: &str, step: &str) -> Option<&mut StepStatus> {
        self.targets
            .iter_mut()
            .find(|t| t.target == target)?
            .steps
            .iter_mut()
            .find(|s| s.step == step)
    }

    fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::TargetStarted { target } => {
                if let Some(t) = self.targets.iter_mut().find(|t| &t.target == target) {
                    t.state = ItemState::Running;
                }
            }
            RunEvent::TargetFinished { target, status, .. } => {
                if let Some(t) = self.targets.iter_mut().find(|t| &t.target == target) {
                    t.state = (*status).into();
                }
            }
            RunEvent::StepStarted {
                target,
                step,
                attempt,
                ..
            } => {
                if let Some(s) = self.step(target, step) {
                    s.state = ItemState::Running;
                    s.attempts = *attempt;
                }
            }
            RunEvent::StepFinished {
                target,
                step,
                status,
                attempts,
                error,
                ..
            } => {
                if let Some(s) = self.step(target, step) {
                    s.state = (*status).into();
                    s.attempts = *attempts;
                    s.error = error.clone();
                }
            }
            RunEvent::StepSkipped {
                target,
                step,
                reason,
            } => {
                if let Some(s) = self.step(target, step) {
                    s.state = ItemState::Skipped;
                    s.error = Some(reason.clone());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_id::CaseId;
    use futures::StreamExt;

    fn record(seq: u64) -> JournalRecord {
        JournalRecord {
            seq,
            time: String::new(),
            case: "c".into(),
            prev: String::new(),
            event: RunEvent::TargetStarted {
                target: format!("test:{seq}"),
            },
        }
    }

    fn shared() -> Shared {
        let options = RunOptions::new(CaseId::parse("c").ok(), "cases".into(), 1);
        Shared {
            hub: Mutex::new(Hub::default()),
            status: Mutex::new(RunStatus::new(
                &options,
                "p".into(),
                &[],
                &[],
                String::new(),
            )),
        }
    }

    #[tokio::test]
    async fn streams_see_every_record_once_in_journal_order() {
        let shared = shared();
        shared.record(&record(5));
        let early = shared.subscribe();
        shared.record(&record(6));
        shared.record(&record(7));
        let late = shared.subscribe();
        shared.record(&record(8));
        // (An outcome without a summary, so that this test does not depend on
        // RunSummary's fields.)
        shared.finish(&Err("journal unwritable".into()));
        let after = shared.subscribe();
        for stream in [early, late, after] {
            let seqs: Vec<u64> = stream.map(|r| r.seq).collect().await;
            assert_eq!(seqs, vec![5, 6, 7, 8]);
        }
        let status = shared.status.lock().unwrap().clone();
        assert_eq!(status.state, RunState::Error);
        assert_eq!(status.error.as_deref(), Some("journal unwritable"));
    }
}
