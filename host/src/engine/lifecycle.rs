//! A run from start to end: journal what runs (the playbook, its plugins
//! and their bindings, unpreserved mutations), run every target (bounded
//! concurrency, each on its own task), seal the case, run the sealed phase
//! on the sealed case and seal again.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::StreamExt;

use super::{scheduler, sealed, Interrupts, RunContext, RunOptions, RunSummary, TargetOutcome};
use crate::custody::{self, Sealed};
use crate::events::{RunEvent, Status};
use crate::journal::{CaseLock, CaseLockError, CaseRecorder, RecordObserver};
use crate::plan::PlaybookPlan;
use crate::runtime::PluginRuntime;
use crate::target::TargetSpec;

/// Lock the run's case directory for it: one run writes a case at a time.
pub fn lock_case(options: &RunOptions) -> Result<CaseLock, CaseLockError> {
    CaseLock::acquire(&options.case_dir(), &format!("run {}", options.run_id))
}

/// Run `plan` against `targets`, holding `lock` (from [`lock_case`]) until
/// the case is sealed. Returns once every target has finished; per-target
/// failures are in the summary, an `Err` means the run itself could not
/// proceed (the case journal could not be written).
pub async fn run_plan(
    runtime: Arc<PluginRuntime>,
    plan: Arc<PlaybookPlan>,
    targets: Vec<TargetSpec>,
    options: RunOptions,
    observer: Option<RecordObserver>,
    interrupts: Interrupts,
    lock: CaseLock,
) -> anyhow::Result<RunSummary> {
    let cancel = interrupts.cancel.clone();
    anyhow::ensure!(
        lock.path().parent() == Some(options.case_dir().as_path()),
        "the case lock {} is not the lock of {}",
        lock.path().display(),
        options.case_dir().display()
    );
    plan.check_targets(&targets).map_err(anyhow::Error::msg)?;
    let case_dir = options.case_dir();
    let recorder = CaseRecorder::open(&case_dir, options.case_id.as_str(), observer)?;
    let started = Instant::now();
    journal_start(&recorder, &plan, &targets, &options);
    // As many connections per plugin and host as requests the run can make
    // at once: targets at once × steps of one target at once.
    let connections = options.concurrency.saturating_mul(plan.width());
    for plugin in plan.plugins.values() {
        plugin.limit_connections(connections);
    }
    let ctx = Arc::new(RunContext {
        runtime,
        plan,
        recorder: recorder.clone(),
        artifacts_dir: case_dir.join("artifacts"),
        options: options.clone(),
        cancel: cancel.clone(),
        interrupts: interrupts.clone(),
    });
    let outcomes = run_targets(&ctx, targets).await;
    let mut summary = RunSummary {
        run_id: options.run_id.clone(),
        case_id: options.case_id.to_string(),
        case_dir,
        cancelled: interrupts.drain.is_cancelled(),
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
    recorder.ensure_written()?;
    let sealed = seal(&ctx)?;
    recorder.ensure_written()?;
    if ctx.plan.sealed.is_empty() {
        summary.seal = Some(sealed);
    } else {
        // The sealed phase works on the case as just sealed; what it records
        // is sealed again.
        summary.sealed_phase = Some(sealed::run(&ctx, &sealed).await);
        recorder.ensure_written()?;
        summary.seal = Some(seal(&ctx)?);
    }
    recorder.ensure_written()?;
    drop(lock);
    Ok(summary)
}

/// Journal what runs: `run_started`, a `plugin_loaded` per plugin (with
/// what the host bound for its cloud), and each mutation the playbook
/// allowed without preservation.
fn journal_start(
    recorder: &CaseRecorder,
    plan: &PlaybookPlan,
    targets: &[TargetSpec],
    options: &RunOptions,
) {
    recorder.emit(RunEvent::RunStarted {
        run_id: options.run_id.clone(),
        playbook: plan.playbook.source.file().display().to_string(),
        playbook_sha256: plan.playbook.sha256.clone(),
        targets: targets.iter().map(TargetSpec::label).collect(),
        target_specs: targets
            .iter()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect(),
        concurrency: options.concurrency,
        params: options.params.clone(),
    });
    for plugin in plan.plugins.values() {
        recorder.emit(RunEvent::PluginLoaded {
            plugin: plugin.name.clone(),
            path: plugin.path.display().to_string(),
            sha256: plugin.sha256.clone(),
            world: plugin.world.as_str().into(),
            contract: plugin.contract.as_str().into(),
            name: plugin.info.name.clone(),
            version: plugin.info.version.clone(),
            allow_hosts: plugin
                .egress()
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
}

/// Every target, at most `concurrency` at once, each on its own task: a
/// panic in one is that target's failure, not the run's.
async fn run_targets(ctx: &Arc<RunContext>, targets: Vec<TargetSpec>) -> Vec<TargetOutcome> {
    futures::stream::iter(targets)
        .map(|target| {
            let ctx = ctx.clone();
            async move {
                let label = target.label();
                match tokio::spawn(scheduler::run_target(ctx.clone(), target)).await {
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
        .buffered(ctx.options.concurrency)
        .collect()
        .await
}

/// Seal the case as the journal stands now.
fn seal(ctx: &RunContext) -> anyhow::Result<Sealed> {
    let recorder = &ctx.recorder;
    custody::seal_case(
        &ctx.options.case_dir(),
        &ctx.options.run_id,
        recorder.journal(),
        ctx.options.signing_key.as_ref(),
        |event| recorder.emit(event),
    )
    .map_err(|e| anyhow::anyhow!("the case could not be sealed: {e:#}"))
}
