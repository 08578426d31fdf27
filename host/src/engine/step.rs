//! One step on one target: the plugin call with its parameters (the step's
//! `with` over the run's parameters over the plugin's `config`) and the
//! outputs of its ancestors; retries with exponential backoff and full
//! jitter that honour a throttled plugin's retry-after; cancellation; the
//! output turned into what dependents see, artifacts stored in the case.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{RunContext, StepData, StepOutcome};
use crate::custody::artifacts::store_artifact;
use crate::events::{RunEvent, Status};
use crate::plan::PlannedStep;
use crate::runtime::bindings::{StepInput, Target};
use crate::runtime::sandbox::{CallContext, LOG_BUDGET_BYTES};
use crate::runtime::{CallFailure, Invocation, PluginOutput};
use crate::target::TargetSpec;

/// First retry delay; doubles each attempt.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest delay between attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

fn wit_target(target: &TargetSpec) -> Target {
    Target {
        provider: target.provider.clone(),
        id: target.id.clone(),
        region: target.region.clone(),
        account: target.account.clone(),
        attributes: target.attributes.clone(),
    }
}

/// Merge a step's `with` over the run's parameters over its plugin's
/// `config`.
fn merged_params(
    config: &serde_json::Value,
    run: &serde_json::Map<String, serde_json::Value>,
    with: &serde_json::Value,
) -> serde_json::Value {
    let mut merged = match config {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in run {
        merged.insert(k.clone(), v.clone());
    }
    if let serde_json::Value::Object(w) = with {
        for (k, v) in w {
            merged.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(merged)
}

/// Run one step on one target (with retries), journaling it.
pub(super) async fn run_step(
    ctx: &RunContext,
    step: &PlannedStep,
    target: &TargetSpec,
    inputs: Vec<(String, StepData)>,
) -> StepOutcome {
    let started = Instant::now();
    let (result, attempts) = call_with_retries(ctx, step, target, &inputs).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let spec = &step.spec;
    let (data, error) = match result {
        Ok(output) => (
            Some(step_data(
                ctx,
                &target.label(),
                &spec.id,
                &spec.action,
                output,
            )),
            None,
        ),
        Err(failure) => (None, Some(failure.to_string())),
    };
    let status = if data.is_some() {
        Status::Succeeded
    } else {
        Status::Failed
    };
    ctx.recorder.emit(RunEvent::StepFinished {
        target: target.label(),
        step: spec.id.clone(),
        action: spec.action.clone(),
        status,
        attempts,
        duration_ms,
        error: error.clone(),
        output: data.as_ref().map(
            |data| serde_json::json!({ "values": data.values, "artifacts": data.artifacts.len() }),
        ),
    });
    StepOutcome {
        id: spec.id.clone(),
        status,
        attempts,
        error,
        on_error: spec.on_error,
        data,
    }
}

/// Call the step's plugin until it succeeds, fails for good, runs out of
/// attempts or the run is cancelled. Returns the last result and the
/// number of attempts made.
async fn call_with_retries(
    ctx: &RunContext,
    step: &PlannedStep,
    target: &TargetSpec,
    inputs: &[(String, StepData)],
) -> (Result<PluginOutput, CallFailure>, u32) {
    let spec = &step.spec;
    let plugin = ctx.plan.plugins[&spec.plugin].clone();
    let label = target.label();
    let params = merged_params(&plugin.config, &ctx.options.params, &spec.with);
    let step_inputs: Vec<StepInput> = inputs
        .iter()
        .map(|(id, d)| StepInput {
            step: id.clone(),
            action: d.action.clone(),
            artifacts: d.artifacts.clone(),
            values: d.values.to_string(),
        })
        .collect();
    let max_attempts = spec.retries.saturating_add(1);
    let mut attempt = 1;
    loop {
        ctx.recorder.emit(RunEvent::StepStarted {
            target: label.clone(),
            step: spec.id.clone(),
            plugin: spec.plugin.clone(),
            action: spec.action.clone(),
            attempt,
            mutating: step.mutating,
        });
        let invocation = Invocation {
            action: step.action.clone(),
            target: wit_target(target),
            inputs: step_inputs.clone(),
            call: CallContext {
                plugin: spec.plugin.clone(),
                step: spec.id.clone(),
                target: label.clone(),
                case_id: ctx.options.case_id.to_string(),
                attempt,
                params: params.clone(),
                events: ctx.recorder.sink(),
                log_budget: LOG_BUDGET_BYTES,
                records: Default::default(),
            },
            timeout: spec.timeout,
        };
        let failure = tokio::select! {
            r = plugin.invoke(&ctx.runtime, invocation) => match r {
                Ok(output) => return (Ok(output), attempt),
                Err(failure) => failure,
            },
            _ = ctx.cancel.cancelled() => CallFailure::Cancelled,
        };
        if !failure.retryable() || attempt >= max_attempts || ctx.interrupts.drain.is_cancelled() {
            return (Err(failure), attempt);
        }
        let delay = retry_delay(attempt, failure.retry_after());
        ctx.recorder.emit(RunEvent::StepRetrying {
            target: label.clone(),
            step: spec.id.clone(),
            attempt,
            delay_ms: delay.as_millis() as u64,
            reason: failure.to_string(),
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.cancel.cancelled() => return (Err(failure), attempt),
        }
        attempt += 1;
    }
}

/// The longest a retry waits, whatever a server or plugin asks.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Exponential backoff with full jitter; a throttled plugin's retry-after
/// is a floor, capped at [`MAX_RETRY_AFTER`].
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let retry_after = retry_after.map(|after| after.min(MAX_RETRY_AFTER));
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(BACKOFF_CAP);
    let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
    match retry_after {
        Some(after) => after.max(jittered.min(after + after / 10 + Duration::from_millis(1))),
        None => jittered,
    }
}

/// Turn a plugin's output into what dependents see, storing artifact bytes
/// in the case and journaling each artifact.
fn step_data(
    ctx: &RunContext,
    target: &str,
    step: &str,
    action: &str,
    output: PluginOutput,
) -> StepData {
    let json = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or_default();
    let (artifacts, values) = match output {
        PluginOutput::Artifacts(a) => (a, serde_json::Value::Null),
        PluginOutput::Interfaces(i) => (Vec::new(), json(serde_json::to_value(&i))),
        PluginOutput::Isolation(r) => (Vec::new(), json(serde_json::to_value(&r))),
        PluginOutput::Remediation(r) => (Vec::new(), json(serde_json::to_value(&r))),
        PluginOutput::State(c) => (Vec::new(), json(serde_json::to_value(&c))),
        PluginOutput::Seal(s) => (Vec::new(), json(serde_json::to_value(&s))),
        PluginOutput::Step(s) => (
            s.artifacts,
            serde_json::from_str(&s.values).unwrap_or(serde_json::Value::String(s.values)),
        ),
        PluginOutput::Info(i) => (Vec::new(), json(serde_json::to_value(&i))),
    };
    let artifacts = artifacts
        .into_iter()
        .map(|a| {
            let stored = a.content.is_some();
            let (artifact, write_error) = store_artifact(&ctx.artifacts_dir, a);
            let stored = stored && write_error.is_none();
            if let Some(e) = write_error {
                ctx.recorder.emit(RunEvent::PluginLog {
                    target: target.into(),
                    step: step.into(),
                    plugin: "irhost".into(),
                    level: "error".into(),
                    message: format!("could not store artifact {}: {e}", artifact.provider_id),
                });
            }
            ctx.recorder.emit(RunEvent::ArtifactRecorded {
                target: target.into(),
                step: step.into(),
                kind: artifact.kind.as_str().into(),
                provider_id: artifact.provider_id.clone(),
                location: artifact.location.clone(),
                size: artifact.size,
                sha256: artifact.sha256.clone(),
                stored,
                metadata: artifact.metadata.clone(),
            });
            artifact
        })
        .collect();
    StepData {
        action: action.to_string(),
        artifacts,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        for attempt in 1..6 {
            let d = retry_delay(attempt, None);
            let exp = BACKOFF_BASE * (1 << (attempt - 1));
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
        assert!(retry_delay(10, None) <= BACKOFF_CAP);
        let after = Duration::from_secs(3);
        let d = retry_delay(1, Some(after));
        assert!(
            d >= after && d <= after + after / 10 + Duration::from_millis(1),
            "{d:?}"
        );
        // A hostile retry-after (a day, u64::MAX seconds) waits at most the cap.
        for huge in [Duration::from_secs(86_400), Duration::MAX] {
            let d = retry_delay(1, Some(huge));
            assert!(
                d <= MAX_RETRY_AFTER + MAX_RETRY_AFTER / 10 + Duration::from_millis(1),
                "{d:?}"
            );
        }
    }

    #[test]
    fn params_merge_step_over_config() {
        let merged = merged_params(
            &serde_json::json!({"a": 1, "b": 2}),
            &serde_json::Map::new(),
            &serde_json::json!({"b": 3, "c": 4}),
        );
        assert_eq!(merged, serde_json::json!({"a": 1, "b": 3, "c": 4}));
        let run = serde_json::json!({"b": 5, "d": 6});
        let merged = merged_params(
            &serde_json::json!({"a": 1, "b": 2}),
            run.as_object().unwrap(),
            &serde_json::json!({"d": 7}),
        );
        assert_eq!(merged, serde_json::json!({"a": 1, "b": 5, "d": 7}));
    }
}
