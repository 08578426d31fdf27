//! The sealed phase at run time: once per run, after every target has
//! finished and the case is sealed, each sealed step in dependency order
//! against the synthetic target `case:<case-id>`, receiving the sealed case
//! with its bytes ([`custody::sealed_case`](crate::custody::sealed_case))
//! and the outputs of the sealed steps it depends on. A memory check
//! against the plugin's limit comes before each call; records and
//! artifacts are journaled like any step's, and the engine seals the case
//! again afterwards.

use std::time::Instant;

use super::scheduler::{dependency_blocks, finish_target, skip_step};
use super::{step, RunContext, StepData, StepOutcome, TargetOutcome};
use crate::custody::sealed_case::{read_sealed_case, SealedCase, CASE_PROVIDER};
use crate::custody::Sealed;
use crate::events::{RunEvent, Status};
use crate::plan::PlannedStep;
use crate::target::TargetSpec;

/// Memory a sealed-phase call needs beyond the case's bytes (the plugin's
/// code, its SDK, buffers).
pub const MEMORY_HEADROOM: u64 = 32 << 20;

/// Linear memory a plugin needs to receive `total` bytes of inputs whose
/// largest file is `largest`: the inputs once, plus two copies of the
/// largest (what a plugin holds while it sends one), plus headroom.
pub fn memory_needed(total: u64, largest: u64) -> u64 {
    total
        .saturating_add(largest.saturating_mul(2))
        .saturating_add(MEMORY_HEADROOM)
}

/// The synthetic target of the sealed phase.
pub fn case_target(case_id: &str, seal: &Sealed) -> TargetSpec {
    TargetSpec {
        provider: CASE_PROVIDER.into(),
        id: case_id.into(),
        region: None,
        account: None,
        attributes: vec![("manifest".into(), seal.manifest.clone())],
    }
}

fn failed(ctx: &RunContext, label: &str, step: &PlannedStep, error: String) -> StepOutcome {
    ctx.recorder.emit(RunEvent::StepFinished {
        target: label.to_string(),
        step: step.spec.id.clone(),
        action: step.spec.action.clone(),
        status: Status::Failed,
        attempts: 0,
        duration_ms: 0,
        error: Some(error.clone()),
        output: None,
    });
    StepOutcome {
        id: step.spec.id.clone(),
        status: Status::Failed,
        attempts: 0,
        error: Some(error),
        on_error: step.spec.on_error,
        data: None,
    }
}

/// Run the plan's sealed steps on the case `seal` sealed: one at a time in
/// dependency order, against the target `case:<case-id>`, each receiving
/// the sealed case and the outputs of the sealed steps it depends on.
pub(super) async fn run(ctx: &RunContext, seal: &Sealed) -> TargetOutcome {
    let target = case_target(ctx.options.case_id.as_str(), seal);
    let label = target.label();
    let started = Instant::now();
    ctx.recorder.emit(RunEvent::TargetStarted {
        target: label.clone(),
    });
    let case_dir = ctx.options.case_dir();
    let sealed = {
        let seal = seal.clone();
        tokio::task::spawn_blocking(move || read_sealed_case(&case_dir, &seal))
            .await
            .unwrap_or_else(|e| Err(format!("reading the sealed case: {e}")))
    };
    let steps = &ctx.plan.sealed;
    let mut outcomes: Vec<StepOutcome> = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(reason) = blocked_reason(ctx, step, &outcomes) {
            outcomes.push(skip_step(ctx, &label, step, reason));
            continue;
        }
        let case = match &sealed {
            Ok(case) => case,
            Err(e) => {
                let error = format!("the sealed case could not be read: {e}");
                outcomes.push(failed(ctx, &label, step, error));
                continue;
            }
        };
        let plugin = &ctx.plan.plugins[&step.spec.plugin];
        let needed = memory_needed(case.total, case.largest);
        if needed > plugin.limits.memory_bytes {
            let mib = |b: u64| b.div_ceil(1 << 20);
            let error = format!(
                "the sealed case is {} bytes ({} files, the largest {} bytes); passing it to plugin `{}` needs about {} MiB of memory, over its limit of {} MiB: raise `limits.memory_mb` of plugin `{}` to at least {} (at most 4096)",
                case.total,
                case.artifacts.len(),
                case.largest,
                step.spec.plugin,
                mib(needed),
                mib(plugin.limits.memory_bytes),
                step.spec.plugin,
                mib(needed)
            );
            outcomes.push(failed(ctx, &label, step, error));
            continue;
        }
        let mut inputs = vec![(CASE_PROVIDER.to_string(), case_input(case))];
        inputs.extend(step.ancestors.iter().filter_map(|&a| match &outcomes[a] {
            StepOutcome {
                status: Status::Succeeded,
                data: Some(data),
                ..
            } => Some((steps[a].spec.id.clone(), data.clone())),
            _ => None,
        }));
        outcomes.push(step::run_step(ctx, step, &target, inputs).await);
    }
    finish_target(ctx, label, started, outcomes)
}

/// Why a sealed step must not run: the run was cancelled, or a dependency
/// failed (without `on_error = "continue"`) or was skipped.
fn blocked_reason(ctx: &RunContext, step: &PlannedStep, done: &[StepOutcome]) -> Option<String> {
    if let Some(reason) = ctx.interrupts.stop_reason() {
        return Some(reason.into());
    }
    step.deps.iter().find_map(|&d| dependency_blocks(&done[d]))
}

/// The sealed case as the input of a sealed step.
fn case_input(case: &SealedCase) -> StepData {
    StepData {
        action: "seal".into(),
        artifacts: case.artifacts.clone(),
        values: case.values.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_need_counts_the_largest_file_twice_plus_headroom() {
        assert_eq!(memory_needed(0, 0), MEMORY_HEADROOM);
        assert_eq!(memory_needed(100, 60), 100 + 120 + MEMORY_HEADROOM);
        assert_eq!(memory_needed(u64::MAX, 1), u64::MAX);
    }
}
