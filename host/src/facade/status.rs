//! Where a run stands, target by target and step by step
//! ([`RunStatus`]), kept up to date from its journal records.

use serde::Serialize;

use crate::engine::RunOptions;
use crate::events::{RunEvent, Status};

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
    pub(super) fn new(
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

    pub(super) fn apply(&mut self, event: &RunEvent) {
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
