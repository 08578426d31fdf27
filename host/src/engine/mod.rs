//! The engine: runs a [`PlaybookPlan`] over targets and records it.
//!
//! - [`lifecycle`]: a run from start to end: journal the start, run the
//!   targets concurrently (bounded), seal the case, run the sealed phase
//!   ([`sealed`]) and seal again;
//! - [`scheduler`]: one target's steps in DAG order, independent steps in
//!   parallel, the preservation rule at run time; a failure on one target
//!   never stops the others;
//! - [`step`]: one step on one target, with retries (exponential backoff
//!   and jitter that honour a throttled plugin's retry-after), its
//!   artifacts stored in the case;
//! - [`sealed`]: the sealed-phase steps, once, on the sealed case;
//! - [`resume`]: what a case's journal says is already done, which
//!   `irhost resume` does not run again.
//!
//! Every event goes to the case journal through a
//! [`CaseRecorder`](crate::journal::CaseRecorder).

pub mod lifecycle;
pub mod resume;
pub mod scheduler;
pub mod sealed;
pub mod step;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::case_id::CaseId;
use crate::events::Status;
use crate::journal::CaseRecorder;
use crate::plan::PlaybookPlan;
use crate::playbook::OnError;
use crate::runtime::bindings::Artifact;
use crate::runtime::PluginRuntime;

pub use lifecycle::{lock_case, run_plan};
pub use step::{retry_delay, BACKOFF_BASE, BACKOFF_CAP};

/// How a run is stopped from outside: `drain` starts no new step (the
/// plugin calls in flight finish), `cancel` also abandons the calls in
/// flight. Cancelling drains too (`drain` is `cancel`'s child).
#[derive(Debug, Clone)]
pub struct Interrupts {
    pub cancel: CancellationToken,
    pub drain: CancellationToken,
}

impl Default for Interrupts {
    fn default() -> Self {
        let cancel = CancellationToken::new();
        let drain = cancel.child_token();
        Interrupts { cancel, drain }
    }
}

impl Interrupts {
    /// Why no new step starts, once the run was drained or cancelled.
    pub fn stop_reason(&self) -> Option<&'static str> {
        if self.cancel.is_cancelled() {
            Some("the run was cancelled")
        } else if self.drain.is_cancelled() {
            Some("the run was interrupted: no new step starts")
        } else {
            None
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub case_id: CaseId,
    pub cases_dir: PathBuf,
    pub concurrency: usize,
    pub run_id: String,
    /// Run-wide parameters: merged over each plugin's `config`, under each
    /// step's `with` (a step's own setting wins). Journaled in `run_started`.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Signs the case manifest at the end of the run; `None` seals unsigned.
    pub signing_key: Option<crate::custody::keys::SigningKey>,
    /// `irhost resume`: the steps already done on each target, not run
    /// again (`None`: every step runs, as `irhost run` does).
    pub resumed: Option<Arc<resume::DoneSteps>>,
}

impl RunOptions {
    pub fn new(case_id: Option<CaseId>, cases_dir: PathBuf, concurrency: usize) -> Self {
        RunOptions {
            case_id: case_id.unwrap_or_else(CaseId::new),
            cases_dir,
            concurrency: concurrency.max(1),
            run_id: uuid::Uuid::new_v4().to_string(),
            params: serde_json::Map::new(),
            signing_key: None,
            resumed: None,
        }
    }

    pub fn case_dir(&self) -> PathBuf {
        self.cases_dir.join(&self.case_id)
    }
}

/// What one step produced, as dependents see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepData {
    pub action: String,
    pub artifacts: Vec<Artifact>,
    pub values: serde_json::Value,
}

/// How a step ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepOutcome {
    pub id: String,
    pub status: Status,
    pub attempts: u32,
    pub error: Option<String>,
    pub on_error: OnError,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<StepData>,
}

/// How a target ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetOutcome {
    pub target: String,
    pub status: Status,
    pub steps: Vec<StepOutcome>,
}

/// The result of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub case_id: String,
    pub case_dir: PathBuf,
    pub targets: Vec<TargetOutcome>,
    pub cancelled: bool,
    /// The manifest written at the end of the run (after the sealed phase,
    /// when the playbook has one).
    pub seal: Option<crate::custody::Sealed>,
    /// The sealed phase (target `case:<case-id>`), when the playbook has
    /// sealed steps ([`sealed`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed_phase: Option<TargetOutcome>,
}

impl RunSummary {
    pub fn failed(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.status != Status::Succeeded)
            .count()
    }
    pub fn succeeded(&self) -> usize {
        self.targets.len() - self.failed()
    }
    /// Every target and the sealed phase (if any) succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.failed() == 0
            && self
                .sealed_phase
                .as_ref()
                .is_none_or(|p| p.status == Status::Succeeded)
    }
}

pub(crate) struct RunContext {
    pub(crate) runtime: Arc<PluginRuntime>,
    pub(crate) plan: Arc<PlaybookPlan>,
    pub(crate) recorder: Arc<CaseRecorder>,
    pub(crate) options: RunOptions,
    pub(crate) artifacts_dir: PathBuf,
    pub(crate) cancel: CancellationToken,
    pub(crate) interrupts: Interrupts,
}

/// Index outcomes by step id.
pub fn outcomes_by_step(outcome: &TargetOutcome) -> HashMap<&str, &StepOutcome> {
    outcome.steps.iter().map(|s| (s.id.as_str(), s)).collect()
}
