//! One target's steps in DAG order: a step starts when its dependencies
//! have finished, independent steps run in parallel; a step whose
//! dependency failed (without `on_error = "continue"`) or was skipped is
//! skipped, and a mutating step runs only after a snapshot step succeeded
//! (and `stop`, when the playbook captures memory, after a capture did)
//! on the same target (the preservation rule, at run time). Under
//! `irhost resume`, a step the journal shows done is not run again.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};

use super::{step, RunContext, StepData, StepOutcome, TargetOutcome};
use crate::events::{RunEvent, Status};
use crate::plan::PlannedStep;
use crate::playbook::OnError;
use crate::target::TargetSpec;

enum StepState {
    Pending,
    /// A provider step for another provider's targets: transparent to its
    /// dependents, not run, not reported.
    NotApplicable,
    Running,
    Done(StepOutcome),
}

pub(super) async fn run_target(ctx: Arc<RunContext>, target: TargetSpec) -> TargetOutcome {
    let label = target.label();
    let started = Instant::now();
    ctx.recorder.emit(RunEvent::TargetStarted {
        target: label.clone(),
    });
    let steps = &ctx.plan.steps;
    let mut states: Vec<StepState> = (0..steps.len())
        .map(|i| {
            if !ctx.plan.applies(i, &target.provider) {
                StepState::NotApplicable
            } else if let Some(done) = resumed(&ctx, &label, &steps[i]) {
                StepState::Done(done)
            } else {
                StepState::Pending
            }
        })
        .collect();
    let mut running = FuturesUnordered::new();
    loop {
        // Start every step whose dependencies have all finished.
        for i in 0..steps.len() {
            if !matches!(states[i], StepState::Pending) {
                continue;
            }
            let step = &steps[i];
            let deps_done = step
                .deps
                .iter()
                .all(|&d| matches!(states[d], StepState::Done(_) | StepState::NotApplicable));
            if !deps_done {
                continue;
            }
            if let Some(reason) = blocked_reason(&ctx, step, &states) {
                states[i] = StepState::Done(skip_step(&ctx, &label, step, reason));
                continue;
            }
            let inputs: Vec<(String, StepData)> = step
                .ancestors
                .iter()
                .filter_map(|&a| match &states[a] {
                    StepState::Done(StepOutcome {
                        status: Status::Succeeded,
                        data: Some(data),
                        ..
                    }) => Some((steps[a].spec.id.clone(), data.clone())),
                    _ => None,
                })
                .collect();
            states[i] = StepState::Running;
            let ctx = ctx.clone();
            let target = target.clone();
            running.push(async move {
                (
                    i,
                    step::run_step(&ctx, &ctx.plan.steps[i], &target, inputs).await,
                )
            });
        }
        match running.next().await {
            Some((i, outcome)) => states[i] = StepState::Done(outcome),
            None => break,
        }
    }
    let outcomes: Vec<StepOutcome> = states
        .into_iter()
        .filter_map(|s| match s {
            StepState::Done(o) => Some(o),
            StepState::NotApplicable => None,
            _ => unreachable!("every step finishes or is skipped"),
        })
        .collect();
    finish_target(&ctx, label, started, outcomes)
}

/// A step `irhost resume` does not run again: journaled as resumed, its
/// outcome the one the journal holds.
fn resumed(ctx: &RunContext, label: &str, step: &PlannedStep) -> Option<StepOutcome> {
    let done = ctx
        .options
        .resumed
        .as_ref()?
        .get(&(label.to_string(), step.spec.id.clone()))?;
    ctx.recorder.emit(RunEvent::StepResumed {
        target: label.to_string(),
        step: step.spec.id.clone(),
        seq: done.seq,
    });
    Some(StepOutcome {
        id: step.spec.id.clone(),
        status: Status::Succeeded,
        attempts: 0,
        error: None,
        on_error: step.spec.on_error,
        data: Some(done.data.clone()),
    })
}

/// Journal a target's end (`target_finished`, naming the steps that count
/// as failures) and build its outcome. Shared by per-target runs and the
/// sealed phase.
pub(super) fn finish_target(
    ctx: &RunContext,
    label: String,
    started: Instant,
    outcomes: Vec<StepOutcome>,
) -> TargetOutcome {
    let failed_steps: Vec<String> = outcomes
        .iter()
        .filter(|o| dependency_blocks(o).is_some())
        .map(|o| o.id.clone())
        .collect();
    let status = if failed_steps.is_empty() {
        Status::Succeeded
    } else {
        Status::Failed
    };
    ctx.recorder.emit(RunEvent::TargetFinished {
        target: label.clone(),
        status,
        failed_steps,
        duration_ms: started.elapsed().as_millis() as u64,
    });
    TargetOutcome {
        target: label,
        status,
        steps: outcomes,
    }
}

/// Journal that `step` will not run on `label`, and why; its outcome.
/// Shared by per-target runs and the sealed phase.
pub(super) fn skip_step(
    ctx: &RunContext,
    label: &str,
    step: &PlannedStep,
    reason: String,
) -> StepOutcome {
    ctx.recorder.emit(RunEvent::StepSkipped {
        target: label.to_string(),
        step: step.spec.id.clone(),
        reason: reason.clone(),
    });
    StepOutcome {
        id: step.spec.id.clone(),
        status: Status::Skipped,
        attempts: 0,
        error: Some(reason),
        on_error: step.spec.on_error,
        data: None,
    }
}

/// Why a finished step stops its dependents (and counts as a failure of
/// its target): it was skipped, or it failed without `on_error = "continue"`.
pub(super) fn dependency_blocks(outcome: &StepOutcome) -> Option<String> {
    match outcome.status {
        Status::Succeeded => None,
        Status::Failed if outcome.on_error == OnError::Continue => None,
        Status::Failed => Some(format!("dependency `{}` failed", outcome.id)),
        Status::Skipped => Some(format!("dependency `{}` was skipped", outcome.id)),
    }
}

/// Why a step whose dependencies are done must not run, if it must not.
/// A mutating step does not run once a journal write has failed: a change
/// to the target the case cannot record is not made.
fn journal_blocks(mutating: bool, journal_failure: Option<String>) -> Option<String> {
    let failure = journal_failure.filter(|_| mutating)?;
    Some(format!(
        "the case journal could not be written ({failure}): no mutating step runs while its changes cannot be recorded"
    ))
}

fn blocked_reason(ctx: &RunContext, step: &PlannedStep, states: &[StepState]) -> Option<String> {
    if let Some(reason) = ctx.interrupts.stop_reason() {
        return Some(reason.into());
    }
    let steps = &ctx.plan.steps;
    for &d in &step.deps {
        if let StepState::Done(o) = &states[d] {
            if let Some(reason) = dependency_blocks(o) {
                return Some(reason);
            }
        }
    }
    if let Some(reason) = journal_blocks(step.mutating, ctx.recorder.failure()) {
        return Some(reason);
    }
    if step.mutating && !step.spec.allow_unpreserved {
        let preserved = step
            .preserved_by
            .iter()
            .any(|&p| matches!(&states[p], StepState::Done(o) if o.status == Status::Succeeded));
        if !preserved {
            let names: Vec<&str> = step
                .preserved_by
                .iter()
                .map(|&p| steps[p].spec.id.as_str())
                .collect();
            return Some(format!(
                "preservation rule: `{}` mutates the target and no snapshot step ({}) succeeded on it",
                step.spec.action,
                names.join(", ")
            ));
        }
    }
    if !step.memory_preserved_by.is_empty() && !step.spec.allow_unpreserved {
        let captured = step
            .memory_preserved_by
            .iter()
            .any(|&p| matches!(&states[p], StepState::Done(o) if o.status == Status::Succeeded));
        if !captured {
            let names: Vec<&str> = step
                .memory_preserved_by
                .iter()
                .map(|&p| steps[p].spec.id.as_str())
                .collect();
            return Some(format!(
                "preservation rule: `{}` takes the machine down and no capture-memory step ({}) succeeded on it: its memory would be lost",
                step.spec.action,
                names.join(", ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::journal_blocks;

    #[test]
    fn a_failed_journal_write_blocks_mutating_steps_only() {
        let failure = Some("journal.jsonl: No space left on device".to_string());
        let reason = journal_blocks(true, failure.clone()).unwrap();
        assert!(reason.contains("No space left on device"), "{reason}");
        assert_eq!(journal_blocks(false, failure), None);
        assert_eq!(journal_blocks(true, None), None);
    }
}
