//! The sealed phase: steps that run once per run, after every target has
//! finished and the case has been sealed, on the sealed case itself (an
//! evidence vault, a hand-off, a ticket with the manifest's hash).
//!
//! This module owns everything about them:
//!
//! - [`StepPhase`] and the playbook checks that need only the file
//!   ([`check_phases`]): a sealed step depends only on sealed steps, and no
//!   per-target step depends on a sealed one;
//! - the plan checks that need the plugins ([`split`]): a sealed step uses
//!   a `step`-world plugin; the plan keeps sealed steps apart from the
//!   per-target DAG (they are not subject to the preservation rule);
//! - the run ([`run`]): the synthetic target `case:<case-id>`; the inputs,
//!   which are the sealed case *with its bytes* (the manifest exactly as
//!   written, its `.sig` when signed, the journal as of the seal, every
//!   stored artifact with its kind and metadata from the manifest); a
//!   memory check against the plugin's limit before the call; then each
//!   sealed step in dependency order through the engine's ordinary step
//!   runner, so its records and artifacts are journaled like any step's.
//!
//! The engine seals the case again after this phase, so the final manifest
//! covers what the sealed steps recorded; the manifest they received is the
//! one before it.

use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::custody::manifest::{self, Manifest};
use crate::custody::Sealed;
use crate::engine::{
    dependency_blocks, finish_target, run_step, RunContext, StepData, StepOutcome, TargetOutcome,
};
use crate::events::{RunEvent, Status};
use crate::plan::PlannedStep;
use crate::playbook::{Diagnostic, SourceMap, StepSpec};
use crate::runtime::bindings::{Artifact, ArtifactKind};
use crate::runtime::{LoadedPlugin, PluginWorld};
use crate::target::TargetSpec;

/// When a step runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// For each target, in the per-target DAG (the default).
    #[default]
    Target,
    /// Once per run, after the case is sealed, on the sealed case.
    Sealed,
}

impl StepPhase {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "target" => Ok(StepPhase::Target),
            "sealed" => Ok(StepPhase::Sealed),
            other => Err(format!("unknown phase `{other}`")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StepPhase::Target => "target",
            StepPhase::Sealed => "sealed",
        }
    }
}

/// The hint of a bad `phase`.
pub const PHASE_HINT: &str = "`phase` is \"target\" (the default: the step runs for each target) or \"sealed\" (once per run, after the case is sealed, with the sealed case as its inputs)";

/// The provider of the synthetic target sealed steps run against.
pub const CASE_PROVIDER: &str = "case";

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

/// File-level checks of phases: a sealed step's `after` names only sealed
/// steps, and a per-target step's only per-target steps. Unknown step ids
/// are reported elsewhere.
pub fn check_phases(source: &SourceMap, steps: &[StepSpec]) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for step in steps {
        for (dep, span) in step.after.iter().zip(&step.after_spans) {
            let Some(other) = steps.iter().find(|s| &s.id == dep) else {
                continue;
            };
            match (step.phase, other.phase) {
                (StepPhase::Sealed, StepPhase::Target) => problems.push(source.diagnostic(
                    span.clone(),
                    &format!("steps.{}.after", step.id),
                    format!(
                        "step `{}` runs in the sealed phase (once, after every target has finished and the case is sealed) and cannot depend on `{dep}`, a per-target step",
                        step.id
                    ),
                    Some("remove it from `after`: a sealed step already receives the whole sealed case (every step's artifacts, the journal and the manifest); or give `{dep}` `phase = \"sealed\"` too"),
                )),
                (StepPhase::Target, StepPhase::Sealed) => problems.push(source.diagnostic(
                    span.clone(),
                    &format!("steps.{}.after", step.id),
                    format!(
                        "per-target step `{}` cannot depend on `{dep}`, which runs in the sealed phase, after every target has finished",
                        step.id
                    ),
                    Some(PHASE_HINT),
                )),
                _ => {}
            }
        }
    }
    problems
}

/// Split planned steps (in topological order, indices into `steps`) into
/// the per-target DAG and the sealed steps, re-indexing each part, and
/// check that sealed steps use `step`-world plugins.
pub fn split(
    steps: Vec<PlannedStep>,
    plugins: &std::collections::BTreeMap<String, std::sync::Arc<LoadedPlugin>>,
    source: &SourceMap,
) -> Result<(Vec<PlannedStep>, Vec<PlannedStep>), Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut new_index = vec![0usize; steps.len()];
    let (mut targets, mut sealed) = (0usize, 0usize);
    for (i, s) in steps.iter().enumerate() {
        match s.spec.phase {
            StepPhase::Target => {
                new_index[i] = targets;
                targets += 1;
            }
            StepPhase::Sealed => {
                new_index[i] = sealed;
                sealed += 1;
                let plugin = &plugins[&s.spec.plugin];
                if plugin.world != PluginWorld::Step {
                    problems.push(source.diagnostic(
                        s.spec.phase_span.clone(),
                        &format!("steps.{}.phase", s.spec.id),
                        format!(
                            "step `{}` runs in the sealed phase, which needs a `step`-world plugin; plugin `{}` is a {} plugin",
                            s.spec.id,
                            s.spec.plugin,
                            plugin.world.as_str()
                        ),
                        Some("sealed steps receive the sealed case through the step world's `run`; use a custom step plugin, or drop `phase`"),
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let phase_of: Vec<StepPhase> = steps.iter().map(|s| s.spec.phase).collect();
    let remap = |list: &[usize], phase: StepPhase| -> Vec<usize> {
        list.iter()
            .filter(|&&d| phase_of[d] == phase)
            .map(|&d| new_index[d])
            .collect()
    };
    let mut per_target = Vec::with_capacity(targets);
    let mut once = Vec::with_capacity(sealed);
    for mut s in steps {
        let phase = s.spec.phase;
        s.deps = remap(&s.deps, phase);
        s.ancestors = remap(&s.ancestors, phase);
        s.preserved_by = remap(&s.preserved_by, phase);
        match phase {
            StepPhase::Target => per_target.push(s),
            StepPhase::Sealed => {
                // Not subject to the preservation rule: there is no target
                // to preserve, only the sealed case.
                s.preserved_by.clear();
                once.push(s);
            }
        }
    }
    Ok((per_target, once))
}

/// The sealed case as a step input: every file with its bytes.
#[derive(Debug, Clone)]
pub struct SealedCase {
    pub data: StepData,
    /// Bytes of all the files.
    pub total: u64,
    /// The largest file.
    pub largest: u64,
}

fn kind_of(name: &str) -> ArtifactKind {
    [
        ArtifactKind::DiskSnapshot,
        ArtifactKind::ConfigDump,
        ArtifactKind::ConsoleLog,
        ArtifactKind::MemoryImage,
        ArtifactKind::NetworkCapture,
        ArtifactKind::ObjectVersion,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
    .unwrap_or(ArtifactKind::Other)
}

fn file_artifact(
    kind: ArtifactKind,
    provider_id: String,
    location: String,
    content: Vec<u8>,
    metadata: Vec<(String, String)>,
) -> Artifact {
    Artifact {
        kind,
        provider_id,
        location,
        size: Some(content.len() as u64),
        sha256: Some(hex::encode(Sha256::digest(&content))),
        content: Some(content),
        metadata,
    }
}

/// Read what `seal` sealed in `case_dir`: the manifest file exactly as
/// written, its signature when signed, the journal's first `seal.records`
/// records, and every stored artifact the manifest lists (checked against
/// the sha256 it records).
pub fn read_sealed_case(case_dir: &Path, seal: &Sealed) -> Result<SealedCase, String> {
    let read = |relative: &str| {
        std::fs::read(case_dir.join(relative)).map_err(|e| format!("{relative}: {e}"))
    };
    let manifest_bytes = read(&seal.manifest)?;
    let parsed: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| format!("{}: not a manifest: {e}", seal.manifest))?;
    let case = parsed.case.clone();
    let records = parsed.journal.records;
    let common = |role: &str| {
        vec![
            ("role".to_string(), role.to_string()),
            ("case".to_string(), case.clone()),
            ("records".to_string(), records.to_string()),
        ]
    };
    let mut artifacts = Vec::new();
    let mut signed = false;
    if parsed.signature.is_some() {
        let sig = manifest::sig_path_of(&seal.manifest);
        let bytes = read(&sig)?;
        signed = true;
        artifacts.push(file_artifact(
            ArtifactKind::Other,
            format!("{CASE_PROVIDER}:{case}/{sig}"),
            sig,
            bytes,
            common("manifest-signature"),
        ));
    }
    artifacts.insert(
        0,
        file_artifact(
            ArtifactKind::Other,
            format!("{CASE_PROVIDER}:{case}/{}", seal.manifest),
            seal.manifest.clone(),
            manifest_bytes,
            common("manifest"),
        ),
    );

    // The journal as sealed: its first `records` lines.
    let journal = read("journal.jsonl")?;
    let mut end = 0usize;
    for _ in 0..records {
        let next = journal[end..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("journal.jsonl has fewer than the {records} records sealed"))?;
        end += next + 1;
    }
    let last_line_start = journal[..end.saturating_sub(1)]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let head = hex::encode(Sha256::digest(&journal[last_line_start..end - 1]));
    if head != parsed.journal.head {
        return Err(format!(
            "journal.jsonl: record {records} hashes to {head}, the manifest sealed {}",
            parsed.journal.head
        ));
    }
    artifacts.push(file_artifact(
        ArtifactKind::Other,
        format!("{CASE_PROVIDER}:{case}/journal.jsonl#{records}"),
        "journal.jsonl".into(),
        journal[..end].to_vec(),
        common("journal"),
    ));

    // Every stored artifact, once.
    let mut seen = std::collections::HashSet::new();
    for a in parsed.artifacts.iter().filter(|a| a.stored) {
        let Some(sha) = a.sha256.clone() else {
            continue;
        };
        if !seen.insert(sha.clone()) {
            continue;
        }
        let bytes = read(&a.location)?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha {
            return Err(format!(
                "{}: hashes to {actual}, the manifest records {sha} (the case changed after it was sealed; run `irhost verify`)",
                a.location
            ));
        }
        let mut metadata = a.metadata.clone();
        metadata.extend([
            ("role".to_string(), "artifact".to_string()),
            ("step".to_string(), a.step.clone()),
            ("target".to_string(), a.target.clone()),
            ("seq".to_string(), a.seq.to_string()),
        ]);
        artifacts.push(file_artifact(
            kind_of(&a.kind),
            a.provider_id.clone(),
            a.location.clone(),
            bytes,
            metadata,
        ));
    }
    let sizes = artifacts.iter().map(|a| a.size.unwrap_or(0));
    let total = sizes.clone().sum();
    let largest = sizes.max().unwrap_or(0);
    Ok(SealedCase {
        data: StepData {
            action: "seal".into(),
            values: serde_json::json!({
                "case": case,
                "manifest": seal.manifest,
                "records": records,
                "head": parsed.journal.head,
                "signed": signed,
                "key_fingerprint": seal.key_fingerprint,
                "files": artifacts.len(),
                "bytes": total,
            }),
            artifacts,
            isolation: None,
        },
        total,
        largest,
    })
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
pub(crate) async fn run(ctx: &RunContext, seal: &Sealed) -> TargetOutcome {
    let target = case_target(&ctx.options.case_id, seal);
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
            ctx.recorder.emit(RunEvent::StepSkipped {
                target: label.clone(),
                step: step.spec.id.clone(),
                reason: reason.clone(),
            });
            outcomes.push(StepOutcome {
                id: step.spec.id.clone(),
                status: Status::Skipped,
                attempts: 0,
                error: Some(reason),
                on_error: step.spec.on_error,
                data: None,
            });
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
                case.data.artifacts.len(),
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
        let mut inputs = vec![(CASE_PROVIDER.to_string(), case.data.clone())];
        inputs.extend(step.ancestors.iter().filter_map(|&a| match &outcomes[a] {
            StepOutcome {
                status: Status::Succeeded,
                data: Some(data),
                ..
            } => Some((steps[a].spec.id.clone(), data.clone())),
            _ => None,
        }));
        outcomes.push(run_step(ctx, step, &target, inputs).await);
    }
    finish_target(ctx, label, started, outcomes)
}

/// Why a sealed step must not run: the run was cancelled, or a dependency
/// failed (without `on_error = "continue"`) or was skipped.
fn blocked_reason(ctx: &RunContext, step: &PlannedStep, done: &[StepOutcome]) -> Option<String> {
    if ctx.cancel.is_cancelled() {
        return Some("the run was cancelled".into());
    }
    step.deps.iter().find_map(|&d| dependency_blocks(&done[d]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_name_themselves() {
        assert_eq!(StepPhase::parse("sealed"), Ok(StepPhase::Sealed));
        assert_eq!(StepPhase::parse("target"), Ok(StepPhase::Target));
        assert!(StepPhase::parse("after").unwrap_err().contains("`after`"));
        assert_eq!(StepPhase::Sealed.as_str(), "sealed");
    }

    #[test]
    fn memory_need_counts_the_largest_file_twice_plus_headroom() {
        assert_eq!(memory_needed(0, 0), MEMORY_HEADROOM);
        assert_eq!(memory_needed(100, 60), 100 + 120 + MEMORY_HEADROOM);
        assert_eq!(memory_needed(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn kinds_round_trip_and_unknown_is_other() {
        assert_eq!(kind_of("config-dump"), ArtifactKind::ConfigDump);
        assert_eq!(kind_of("console-log"), ArtifactKind::ConsoleLog);
        assert_eq!(kind_of("whatever"), ArtifactKind::Other);
    }
}
