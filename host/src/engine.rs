//! Runs a [`PlaybookPlan`] over targets: targets concurrently (bounded),
//! each target's steps in DAG order with independent steps in parallel,
//! retries with exponential backoff and jitter that honour a throttled
//! plugin's retry-after, the preservation rule at run time, and every event
//! recorded in the case journal. A failure on one target never stops the
//! others. At the end the case is sealed; a playbook's sealed-phase steps
//! then run once on the sealed case ([`crate::sealed_phase`]) and the case
//! is sealed again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::events::{RunEvent, Status};
use crate::journal::{CaseJournal, JournalRecord};
use crate::plan::{PlannedStep, PlaybookPlan};
use crate::playbook::OnError;
use crate::runtime::bindings::{Artifact, IsolationRecord, StepInput, Target};
use crate::runtime::sandbox::{CallContext, EventSink, LOG_BUDGET_BYTES};
use crate::runtime::{CallFailure, Invocation, PluginOutput, PluginRuntime};
use crate::target::TargetSpec;

/// First retry delay; doubles each attempt.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest delay between attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub case_id: String,
    pub cases_dir: PathBuf,
    pub concurrency: usize,
    pub run_id: String,
    /// Run-wide parameters: merged over each plugin's `config`, under each
    /// step's `with` (a step's own setting wins). Journaled in `run_started`.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Signs the case manifest at the end of the run; `None` seals unsigned.
    pub signing_key: Option<crate::custody::keys::SigningKey>,
}

impl RunOptions {
    pub fn new(case_id: Option<String>, cases_dir: PathBuf, concurrency: usize) -> Self {
        RunOptions {
            case_id: case_id.unwrap_or_else(new_case_id),
            cases_dir,
            concurrency: concurrency.max(1),
            run_id: uuid::Uuid::new_v4().to_string(),
            params: serde_json::Map::new(),
            signing_key: None,
        }
    }

    pub fn case_dir(&self) -> PathBuf {
        self.cases_dir.join(&self.case_id)
    }
}

/// A case id: date, time and a random suffix, sortable and unique.
pub fn new_case_id() -> String {
    let suffix: u32 = rand::rng().random();
    format!(
        "case-{}-{suffix:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    )
}

/// What one step produced, as dependents see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepData {
    pub action: String,
    pub artifacts: Vec<Artifact>,
    pub values: serde_json::Value,
    #[serde(skip)]
    pub isolation: Option<IsolationRecord>,
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
    /// sealed steps ([`crate::sealed_phase`]).
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

/// Receives every journal record as it is written.
pub type RecordObserver = Arc<dyn Fn(&JournalRecord) + Send + Sync>;

/// Writes events to the journal and hands the records to an observer. The
/// first journal write error is kept and fails the run.
pub struct CaseRecorder {
    journal: CaseJournal,
    observer: Option<RecordObserver>,
    failure: Mutex<Option<String>>,
}

impl CaseRecorder {
    pub fn open(
        case_dir: &Path,
        case_id: &str,
        observer: Option<RecordObserver>,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(CaseRecorder {
            journal: CaseJournal::open(case_dir, case_id)?,
            observer,
            failure: Mutex::new(None),
        }))
    }

    pub fn emit(&self, event: RunEvent) {
        match self.journal.append(event) {
            Ok(record) => {
                if let Some(observer) = &self.observer {
                    observer(&record);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "journal write failed");
                let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                failure.get_or_insert_with(|| format!("{}: {e}", self.journal.path().display()));
            }
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn journal(&self) -> &CaseJournal {
        &self.journal
    }

    fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |event| me.emit(event))
    }
}

pub(crate) struct RunContext {
    pub(crate) runtime: Arc<PluginRuntime>,
    pub(crate) plan: Arc<PlaybookPlan>,
    pub(crate) recorder: Arc<CaseRecorder>,
    pub(crate) options: RunOptions,
    pub(crate) artifacts_dir: PathBuf,
    pub(crate) cancel: CancellationToken,
}

/// Run `plan` against `targets`. Returns once every target has finished;
/// per-target failures are in the summary, an `Err` means the run itself
/// could not proceed (the case journal could not be written).
pub async fn run_plan(
    runtime: Arc<PluginRuntime>,
    plan: Arc<PlaybookPlan>,
    targets: Vec<TargetSpec>,
    options: RunOptions,
    observer: Option<RecordObserver>,
    cancel: CancellationToken,
) -> anyhow::Result<RunSummary> {
    plan.check_targets(&targets).map_err(anyhow::Error::msg)?;
    let case_dir = options.case_dir();
    let recorder = CaseRecorder::open(&case_dir, &options.case_id, observer)?;
    let started = Instant::now();
    recorder.emit(RunEvent::RunStarted {
        run_id: options.run_id.clone(),
        playbook: plan.playbook.source.file().display().to_string(),
        playbook_sha256: plan.playbook.sha256.clone(),
        targets: targets.iter().map(TargetSpec::label).collect(),
        concurrency: options.concurrency,
        params: options.params.clone(),
    });
    for plugin in plan.plugins.values() {
        recorder.emit(RunEvent::PluginLoaded {
            plugin: plugin.name.clone(),
            path: plugin.path.display().to_string(),
            sha256: plugin.sha256.clone(),
            world: plugin.world.as_str().into(),
            name: plugin.info.name.clone(),
            version: plugin.info.version.clone(),
            allow_hosts: plugin
                .egress
                .patterns()
                .iter()
                .map(ToString::to_string)
                .collect(),
            notes: plugin.notes.clone(),
        });
    }
    for step in plan
        .steps
        .iter()
        .filter(|s| s.mutating && s.preserved_by.is_empty())
    {
        recorder.emit(RunEvent::UnpreservedMutationAllowed {
            step: step.spec.id.clone(),
            action: step.spec.action.clone(),
        });
    }
    let ctx = Arc::new(RunContext {
        runtime,
        plan,
        recorder: recorder.clone(),
        artifacts_dir: case_dir.join("artifacts"),
        options: options.clone(),
        cancel: cancel.clone(),
    });
    let outcomes: Vec<TargetOutcome> = futures::stream::iter(targets)
        .map(|target| {
            let ctx = ctx.clone();
            async move {
                // Each target runs on its own task: a panic in one is that
                // target's failure, not the run's.
                let label = target.label();
                match tokio::spawn(run_target(ctx.clone(), target)).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        ctx.recorder.emit(RunEvent::TargetFinished {
                            target: label.clone(),
                            status: Status::Failed,
                            failed_steps: vec![format!("internal error: {e}")],
                            duration_ms: 0,
                        });
                        TargetOutcome {
                            target: label,
                            status: Status::Failed,
                            steps: Vec::new(),
                        }
                    }
                }
            }
        })
        .buffered(options.concurrency)
        .collect()
        .await;
    let mut summary = RunSummary {
        run_id: options.run_id.clone(),
        case_id: options.case_id.clone(),
        case_dir: case_dir.clone(),
        cancelled: cancel.is_cancelled(),
        targets: outcomes,
        seal: None,
        sealed_phase: None,
    };
    recorder.emit(RunEvent::RunFinished {
        run_id: options.run_id.clone(),
        succeeded: summary.succeeded(),
        failed: summary.failed(),
        duration_ms: started.elapsed().as_millis() as u64,
    });
    if let Some(failure) = recorder.failure() {
        anyhow::bail!("the case journal could not be written: {failure}");
    }
    let seal = || {
        crate::custody::seal_case(
            &case_dir,
            &options.run_id,
            recorder.journal(),
            options.signing_key.as_ref(),
            |event| recorder.emit(event),
        )
        .map_err(|e| anyhow::anyhow!("the case could not be sealed: {e:#}"))
    };
    let sealed = seal()?;
    if let Some(failure) = recorder.failure() {
        anyhow::bail!("the case journal could not be written: {failure}");
    }
    if !ctx.plan.sealed.is_empty() {
        // The sealed phase works on the case as just sealed; what it records
        // is sealed again below.
        summary.sealed_phase = Some(crate::sealed_phase::run(&ctx, &sealed).await);
        if let Some(failure) = recorder.failure() {
            anyhow::bail!("the case journal could not be written: {failure}");
        }
        summary.seal = Some(seal()?);
    } else {
        summary.seal = Some(sealed);
    }
    if let Some(failure) = recorder.failure() {
        anyhow::bail!("the case journal could not be written: {failure}");
    }
    Ok(summary)
}

enum StepState {
    Pending,
    /// A provider step for another provider's targets: transparent to its
    /// dependents, not run, not reported.
    NotApplicable,
    Running,
    Done(StepOutcome),
}

async fn run_target(ctx: Arc<RunContext>, target: TargetSpec) -> TargetOutcome {
    let label = target.label();
    let started = Instant::now();
    ctx.recorder.emit(RunEvent::TargetStarted {
        target: label.clone(),
    });
    let steps = &ctx.plan.steps;
    let mut states: Vec<StepState> = (0..steps.len())
        .map(|i| {
            if ctx.plan.applies(i, &target.provider) {
                StepState::Pending
            } else {
                StepState::NotApplicable
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
                ctx.recorder.emit(RunEvent::StepSkipped {
                    target: label.clone(),
                    step: step.spec.id.clone(),
                    reason: reason.clone(),
                });
                states[i] = StepState::Done(StepOutcome {
                    id: step.spec.id.clone(),
                    status: Status::Skipped,
                    attempts: 0,
                    error: Some(reason),
                    on_error: step.spec.on_error,
                    data: None,
                });
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
            running.push(
                async move { (i, run_step(&ctx, &ctx.plan.steps[i], &target, inputs).await) },
            );
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

/// Journal a target's end (`target_finished`, naming the steps that count
/// as failures) and build its outcome. Shared by per-target runs and the
/// sealed phase.
pub(crate) fn finish_target(
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

/// Why a finished step stops its dependents (and counts as a failure of
/// its target): it was skipped, or it failed without `on_error = "continue"`.
pub(crate) fn dependency_blocks(outcome: &StepOutcome) -> Option<String> {
    match outcome.status {
        Status::Succeeded => None,
        Status::Failed if outcome.on_error == OnError::Continue => None,
        Status::Failed => Some(format!("dependency `{}` failed", outcome.id)),
        Status::Skipped => Some(format!("dependency `{}` was skipped", outcome.id)),
    }
}

/// Why a step whose dependencies are done must not run, if it must not.
fn blocked_reason(ctx: &RunContext, step: &PlannedStep, states: &[StepState]) -> Option<String> {
    if ctx.cancel.is_cancelled() {
        return Some("the run was cancelled".into());
    }
    let steps = &ctx.plan.steps;
    for &d in &step.deps {
        if let StepState::Done(o) = &states[d] {
            if let Some(reason) = dependency_blocks(o) {
                return Some(reason);
            }
        }
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
    None
}

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
pub(crate) async fn run_step(
    ctx: &RunContext,
    step: &PlannedStep,
    target: &TargetSpec,
    inputs: Vec<(String, StepData)>,
) -> StepOutcome {
    let spec = &step.spec;
    let plugin = ctx.plan.plugins[&spec.plugin].clone();
    let label = target.label();
    let params = merged_params(&plugin.config, &ctx.options.params, &spec.with);
    let previous_isolation = inputs.iter().rev().find_map(|(_, d)| d.isolation.clone());
    let step_inputs: Vec<StepInput> = inputs
        .iter()
        .map(|(id, d)| StepInput {
            step: id.clone(),
            action: d.action.clone(),
            artifacts: d.artifacts.clone(),
            values: d.values.to_string(),
        })
        .collect();
    let started = Instant::now();
    let max_attempts = spec.retries.saturating_add(1);
    let mut attempt = 1;
    let result = loop {
        ctx.recorder.emit(RunEvent::StepStarted {
            target: label.clone(),
            step: spec.id.clone(),
            plugin: spec.plugin.clone(),
            action: spec.action.clone(),
            attempt,
            mutating: step.mutating,
        });
        let invocation = Invocation {
            action: spec.action.clone(),
            target: wit_target(target),
            inputs: step_inputs.clone(),
            previous_isolation: previous_isolation.clone(),
            call: CallContext {
                plugin: spec.plugin.clone(),
                step: spec.id.clone(),
                target: label.clone(),
                case_id: ctx.options.case_id.clone(),
                attempt,
                params: params.clone(),
                events: ctx.recorder.sink(),
                log_budget: LOG_BUDGET_BYTES,
            },
            timeout: spec.timeout,
        };
        let outcome = tokio::select! {
            r = plugin.invoke(&ctx.runtime, invocation) => r,
            _ = ctx.cancel.cancelled() => Err(CallFailure::Unsupported("the run was cancelled".into())),
        };
        match outcome {
            Ok(output) => break Ok(output),
            Err(failure)
                if failure.retryable() && attempt < max_attempts && !ctx.cancel.is_cancelled() =>
            {
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
                    _ = ctx.cancel.cancelled() => break Err(failure),
                }
                attempt += 1;
            }
            Err(failure) => break Err(failure),
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(output) => {
            let data = step_data(ctx, &label, &spec.id, &spec.action, output);
            ctx.recorder.emit(RunEvent::StepFinished {
                target: label,
                step: spec.id.clone(),
                action: spec.action.clone(),
                status: Status::Succeeded,
                attempts: attempt,
                duration_ms,
                error: None,
                output: Some(
                    serde_json::json!({ "values": data.values, "artifacts": data.artifacts.len() }),
                ),
            });
            StepOutcome {
                id: spec.id.clone(),
                status: Status::Succeeded,
                attempts: attempt,
                error: None,
                on_error: spec.on_error,
                data: Some(data),
            }
        }
        Err(failure) => {
            let error = failure.to_string();
            ctx.recorder.emit(RunEvent::StepFinished {
                target: label,
                step: spec.id.clone(),
                action: spec.action.clone(),
                status: Status::Failed,
                attempts: attempt,
                duration_ms,
                error: Some(error.clone()),
                output: None,
            });
            StepOutcome {
                id: spec.id.clone(),
                status: Status::Failed,
                attempts: attempt,
                error: Some(error),
                on_error: spec.on_error,
                data: None,
            }
        }
    }
}

/// Exponential backoff with full jitter; a throttled plugin's retry-after
/// is a floor.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
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
    let (artifacts, values, isolation) = match output {
        PluginOutput::Artifacts(a) => (a, serde_json::Value::Null, None),
        PluginOutput::Interfaces(i) => (
            Vec::new(),
            serde_json::to_value(&i).unwrap_or_default(),
            None,
        ),
        PluginOutput::Isolation(r) => (
            Vec::new(),
            serde_json::to_value(&r).unwrap_or_default(),
            Some(r),
        ),
        PluginOutput::Seal(s) => (
            Vec::new(),
            serde_json::to_value(&s).unwrap_or_default(),
            None,
        ),
        PluginOutput::Step(s) => (
            s.artifacts,
            serde_json::from_str(&s.values).unwrap_or(serde_json::Value::String(s.values)),
            None,
        ),
        PluginOutput::Info(i) => (
            Vec::new(),
            serde_json::to_value(&i).unwrap_or_default(),
            None,
        ),
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
        isolation,
    }
}

/// Write an artifact's bytes under `artifacts/<sha256>` (content-addressed,
/// atomically, never rewriting an existing file) and replace the bytes by
/// their location, size and hash. A failed write is returned beside the
/// artifact (whose hash is still known) so it can be journaled.
fn store_artifact(dir: &Path, mut artifact: Artifact) -> (Artifact, Option<String>) {
    let Some(content) = artifact.content.take() else {
        return (artifact, None);
    };
    let sha256 = hex::encode(Sha256::digest(&content));
    let path = dir.join(&sha256);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if path.exists() {
            return Ok(());
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &content)?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(&path).map(|_| ()).or_else(|e| {
            if path.exists() {
                Ok(())
            } else {
                Err(e.error)
            }
        })
    };
    artifact.size = Some(content.len() as u64);
    artifact.sha256 = Some(sha256.clone());
    artifact.location = format!("artifacts/{sha256}");
    let error = write().err().map(|e| e.to_string());
    (artifact, error)
}

/// Index outcomes by step id.
pub fn outcomes_by_step(outcome: &TargetOutcome) -> HashMap<&str, &StepOutcome> {
    outcome.steps.iter().map(|s| (s.id.as_str(), s)).collect()
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

    #[test]
    fn artifacts_are_content_addressed_and_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = Artifact {
            kind: crate::runtime::bindings::ArtifactKind::ConfigDump,
            provider_id: "x".into(),
            location: String::new(),
            size: None,
            sha256: None,
            content: Some(b"hello".to_vec()),
            metadata: vec![],
        };
        let (stored, error) = store_artifact(dir.path(), artifact.clone());
        assert_eq!(error, None);
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(stored.sha256.as_deref(), Some(sha));
        assert_eq!(stored.location, format!("artifacts/{sha}"));
        assert!(stored.content.is_none());
        assert_eq!(std::fs::read(dir.path().join(sha)).unwrap(), b"hello");
        assert_eq!(store_artifact(dir.path(), artifact).1, None);
    }
}
