//! What a case's journal says is already done, for `irhost resume`: the
//! last run's playbook (path and sha256), targets, parameters and
//! concurrency, and every step whose success on a target is journaled for
//! that playbook, with its output (values and artifacts), so that the
//! scheduler does not run it again and its dependents get what it produced.
//! A step that started and has no outcome is not done: it runs again
//! (plugins are idempotent). Sealed-phase steps are never carried over:
//! they run again on the new seal.

use std::collections::HashMap;
use std::path::Path;

use super::StepData;
use crate::events::{RunEvent, Status};
use crate::journal::JournalRecord;
use crate::runtime::bindings::{Artifact, ArtifactKind};
use crate::target::TargetSpec;

/// A step the journal shows succeeded: where, and what it produced.
#[derive(Debug, Clone)]
pub struct DoneStep {
    /// The `step_finished` record.
    pub seq: u64,
    pub data: StepData,
}

/// Steps already done, by (target label, step id).
pub type DoneSteps = HashMap<(String, String), DoneStep>;

/// What the journal of a case says about its last run.
#[derive(Debug, Clone)]
pub struct CaseProgress {
    pub playbook: String,
    pub playbook_sha256: String,
    pub targets: Vec<TargetSpec>,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub concurrency: usize,
    pub done: DoneSteps,
}

/// Read the case's journal (whole records; a torn last line is ignored
/// here and cut off when the run opens the journal).
pub fn read_progress(case_dir: &Path) -> Result<CaseProgress, String> {
    let path = case_dir.join("journal.jsonl");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if !line.ends_with(b"\n") {
            break;
        }
        let record: JournalRecord = serde_json::from_slice(line)
            .map_err(|e| format!("{}: record {}: {e}", path.display(), n + 1))?;
        records.push(record);
    }
    progress(&records).ok_or_else(|| {
        format!(
            "{}: no run was started in this case (no run_started record)",
            path.display()
        )
    })
}

/// The progress of the last run in `records`, `None` when none started.
pub fn progress(records: &[JournalRecord]) -> Option<CaseProgress> {
    let (playbook, playbook_sha256, labels, specs, params, concurrency) =
        records.iter().rev().find_map(|r| match &r.event {
            RunEvent::RunStarted {
                playbook,
                playbook_sha256,
                targets,
                target_specs,
                params,
                concurrency,
                ..
            } => Some((
                playbook.clone(),
                playbook_sha256.clone(),
                targets.clone(),
                target_specs.clone(),
                params.clone(),
                *concurrency,
            )),
            _ => None,
        })?;
    let specs: Vec<TargetSpec> = specs
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let targets = if specs.len() == labels.len() {
        specs
    } else {
        labels
            .iter()
            .filter_map(|l| TargetSpec::parse(l).ok())
            .collect()
    };
    // Records belong to the playbook of the run_started before them.
    let mut same_playbook = false;
    let mut artifacts: HashMap<(String, String), Vec<Artifact>> = HashMap::new();
    let mut done = DoneSteps::new();
    for record in records {
        match &record.event {
            RunEvent::RunStarted {
                playbook_sha256: sha,
                ..
            } => same_playbook = *sha == playbook_sha256,
            _ if !same_playbook => {}
            RunEvent::StepStarted { target, step, .. } => {
                // Run again from here on: not done unless it finishes.
                let key = (target.clone(), step.clone());
                artifacts.remove(&key);
                done.remove(&key);
            }
            RunEvent::ArtifactRecorded {
                target,
                step,
                kind,
                provider_id,
                location,
                size,
                sha256,
                metadata,
                ..
            } => artifacts
                .entry((target.clone(), step.clone()))
                .or_default()
                .push(Artifact {
                    kind: ArtifactKind::parse(kind),
                    provider_id: provider_id.clone(),
                    location: location.clone(),
                    size: *size,
                    sha256: sha256.clone(),
                    content: None,
                    metadata: metadata.clone(),
                }),
            RunEvent::StepFinished {
                target,
                step,
                action,
                status: Status::Succeeded,
                output,
                ..
            } => {
                let key = (target.clone(), step.clone());
                let values = output
                    .as_ref()
                    .map(|o| o["values"].clone())
                    .unwrap_or_default();
                let data = StepData {
                    action: action.clone(),
                    artifacts: artifacts.remove(&key).unwrap_or_default(),
                    values,
                };
                done.insert(
                    key,
                    DoneStep {
                        seq: record.seq,
                        data,
                    },
                );
            }
            RunEvent::StepFinished { target, step, .. } => {
                done.remove(&(target.clone(), step.clone()));
            }
            _ => {}
        }
    }
    Some(CaseProgress {
        playbook,
        playbook_sha256,
        targets,
        params,
        concurrency,
        done,
    })
}
