//! `irhost case show`: a case's journal as a readable timeline — runs
//! (playbook and its sha256), plugins (name, version, sha256), seals (who,
//! which key), and per target what happened when: steps started and
//! finished with durations, attempts and errors, artifacts, egress denials,
//! plugin warnings and errors. It reads the journal as it is, without
//! verifying it (that is `irhost verify`); unreadable lines are listed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::events::{RunEvent, Status};
use crate::journal::JournalRecord;

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub case: Option<String>,
    pub records: usize,
    pub runs: Vec<RunInfo>,
    pub plugins: Vec<PluginInfo>,
    pub seals: Vec<SealInfo>,
    pub targets: Vec<TargetTimeline>,
    /// Lines that could not be read as journal records.
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub started: String,
    pub playbook: String,
    pub playbook_sha256: String,
    pub targets: Vec<String>,
    pub finished: Option<String>,
    pub duration_ms: Option<u64>,
    pub succeeded: Option<usize>,
    pub failed: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub run_id: String,
    pub plugin: String,
    pub name: String,
    pub version: String,
    pub world: String,
    pub sha256: String,
    pub allow_hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SealInfo {
    pub time: String,
    pub run_id: String,
    pub manifest: String,
    pub signed: bool,
    pub key_fingerprint: Option<String>,
    pub sealed_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetTimeline {
    pub target: String,
    pub status: Option<Status>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    pub run_id: Option<String>,
    /// The event type (`step_started`, `artifact_recorded`, ...).
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub text: String,
}

/// Build the timeline of the case in `case_dir`.
pub fn load(case_dir: &Path) -> anyhow::Result<Timeline> {
    let path = case_dir.join("journal.jsonl");
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<JournalRecord>(line) {
            Ok(r) => records.push(r),
            Err(e) => unreadable.push(format!("line {}: {e}", i + 1)),
        }
    }
    let mut t = build(&records);
    t.unreadable = unreadable;
    Ok(t)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Build a timeline from records.
pub fn build(records: &[JournalRecord]) -> Timeline {
    let mut builder = Builder::default();
    for r in records {
        builder.record(r);
    }
    Timeline {
        case: records.first().map(|r| r.case.clone()),
        records: records.len(),
        runs: builder.runs,
        plugins: builder.plugins,
        seals: builder.seals,
        targets: builder.targets.into_values().collect(),
        unreadable: Vec::new(),
    }
}

/// A timeline as records are read.
#[derive(Default)]
struct Builder {
    runs: Vec<RunInfo>,
    plugins: Vec<PluginInfo>,
    seals: Vec<SealInfo>,
    targets: BTreeMap<String, TargetTimeline>,
    run_id: Option<String>,
    /// plugin name -> (package name, sha256) of the current run
    loaded: BTreeMap<String, (String, String)>,
}

impl Builder {
    fn record(&mut self, r: &JournalRecord) {
        if self.run_record(r) {
            return;
        }
        let Some((target, step, text)) = target_line(&r.event, &self.loaded) else {
            return;
        };
        let timeline = self
            .targets
            .entry(target.to_string())
            .or_insert_with(|| TargetTimeline {
                target: target.to_string(),
                status: None,
                entries: Vec::new(),
            });
        timeline.entries.push(Entry {
            seq: r.seq,
            time: r.time.clone(),
            run_id: self.run_id.clone(),
            event: r.event.kind().to_string(),
            step: step.map(String::from),
            text,
        });
        if let RunEvent::TargetFinished { status, .. } = &r.event {
            timeline.status = Some(*status);
        }
    }

    /// Take a record about the run as a whole; false for any other.
    fn run_record(&mut self, r: &JournalRecord) -> bool {
        match &r.event {
            RunEvent::RunStarted {
                run_id: id,
                playbook,
                playbook_sha256,
                targets: list,
                ..
            } => {
                self.run_id = Some(id.clone());
                self.loaded.clear();
                self.runs.push(RunInfo {
                    run_id: id.clone(),
                    started: r.time.clone(),
                    playbook: playbook.clone(),
                    playbook_sha256: playbook_sha256.clone(),
                    targets: list.clone(),
                    finished: None,
                    duration_ms: None,
                    succeeded: None,
                    failed: None,
                });
            }
            RunEvent::PluginLoaded {
                plugin,
                sha256,
                world,
                name,
                version,
                allow_hosts,
                ..
            } => {
                self.loaded.insert(
                    plugin.clone(),
                    (format!("{name} {version}"), sha256.clone()),
                );
                self.plugins.push(PluginInfo {
                    run_id: self.run_id.clone().unwrap_or_default(),
                    plugin: plugin.clone(),
                    name: name.clone(),
                    version: version.clone(),
                    world: world.clone(),
                    sha256: sha256.clone(),
                    allow_hosts: allow_hosts.clone(),
                });
            }
            RunEvent::RunFinished {
                run_id: id,
                succeeded,
                failed,
                duration_ms,
            } => {
                if let Some(run) = self.runs.iter_mut().rev().find(|run| &run.run_id == id) {
                    run.finished = Some(r.time.clone());
                    run.duration_ms = Some(*duration_ms);
                    run.succeeded = Some(*succeeded);
                    run.failed = Some(*failed);
                }
            }
            RunEvent::CaseSealed {
                run_id: id,
                manifest,
                signed,
                key_fingerprint,
                sealed_by,
                ..
            } => self.seals.push(SealInfo {
                time: r.time.clone(),
                run_id: id.clone(),
                manifest: manifest.clone(),
                signed: *signed,
                key_fingerprint: key_fingerprint.clone(),
                sealed_by: sealed_by.clone(),
            }),
            _ => return false,
        }
        true
    }
}

/// The line a record adds to its target's timeline: (target, step, text).
/// None for records that are not about a target (and for plugin logs below
/// `warn`, progress, and watch records).
fn target_line<'a>(
    event: &'a RunEvent,
    loaded: &BTreeMap<String, (String, String)>,
) -> Option<(&'a str, Option<&'a str>, String)> {
    Some(match event {
        RunEvent::TargetStarted { target } => (target, None, "target started".into()),
        RunEvent::StepStarted { .. }
        | RunEvent::StepRetrying { .. }
        | RunEvent::StepFinished { .. }
        | RunEvent::StepSkipped { .. } => return step_line(event, loaded),
        RunEvent::PluginLog {
            target,
            step,
            plugin,
            level,
            message,
        } if level == "warn" || level == "error" => (
            target,
            Some(step),
            format!("{step}: {plugin} {level}: {message}"),
        ),
        RunEvent::EgressDenied {
            target,
            step,
            plugin,
            method,
            url,
            reason,
        } => (
            target,
            Some(step),
            format!("{step}: egress DENIED to {plugin}: {method} {url} ({reason})"),
        ),
        RunEvent::CloudCall {
            target,
            step,
            plugin,
            action,
            resource,
            status,
            duration_ms,
            request_id,
            error,
            ..
        } => {
            let mut text = format!("{step}: {plugin} called {action}");
            if let Some(resource) = resource {
                text.push_str(&format!(" on {resource}"));
            }
            match (status, error) {
                (Some(status), _) => text.push_str(&format!(": {status}")),
                (None, Some(error)) => text.push_str(&format!(": failed ({error})")),
                (None, None) => {}
            }
            text.push_str(&format!(", {duration_ms} ms"));
            if let Some(id) = request_id {
                text.push_str(&format!(", request id {id}"));
            }
            (target, Some(step), text)
        }
        RunEvent::ArtifactRecorded {
            target,
            step,
            kind,
            provider_id,
            location,
            size,
            sha256,
            stored,
            ..
        } => {
            let mut text = format!("{step}: artifact {kind} {provider_id} at {location}");
            if let Some(size) = size {
                text.push_str(&format!(", {size} bytes"));
            }
            if let Some(sha) = sha256 {
                text.push_str(&format!(", sha256 {sha}"));
            }
            if *stored {
                text.push_str(" (stored in the case)");
            }
            (target, Some(step), text)
        }
        RunEvent::TargetFinished {
            target,
            status,
            failed_steps,
            duration_ms,
        } => {
            let words = match status {
                Status::Succeeded => "succeeded".to_string(),
                _ => format!("FAILED (not completed: {})", failed_steps.join(", ")),
            };
            (target, None, format!("target {words} in {duration_ms} ms"))
        }
        _ => return None,
    })
}

/// The line of a step's start, retry, end or skip.
fn step_line<'a>(
    event: &'a RunEvent,
    loaded: &BTreeMap<String, (String, String)>,
) -> Option<(&'a str, Option<&'a str>, String)> {
    Some(match event {
        RunEvent::StepStarted {
            target,
            step,
            plugin,
            action,
            attempt,
            mutating,
        } => {
            let who = match loaded.get(plugin) {
                Some((name, sha)) => format!("{name}, sha256 {}", short(sha)),
                None => "plugin not in this run's journal".into(),
            };
            let mutates = if *mutating {
                ", MUTATES the target"
            } else {
                ""
            };
            (
                target,
                Some(step),
                format!("{step}: started {plugin}.{action} ({who}), attempt {attempt}{mutates}"),
            )
        }
        RunEvent::StepRetrying {
            target,
            step,
            attempt,
            delay_ms,
            reason,
        } => (
            target,
            Some(step),
            format!("{step}: attempt {attempt} failed ({reason}); retrying in {delay_ms} ms"),
        ),
        RunEvent::StepFinished {
            target,
            step,
            status,
            attempts,
            duration_ms,
            error,
            ..
        } => {
            let status = match status {
                Status::Succeeded => "succeeded",
                Status::Failed => "FAILED",
                Status::Skipped => "skipped",
            };
            let error = error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
            (
                target,
                Some(step),
                format!("{step}: {status} in {duration_ms} ms after {attempts} attempt(s){error}"),
            )
        }
        RunEvent::StepSkipped {
            target,
            step,
            reason,
        } => (target, Some(step), format!("{step}: skipped: {reason}")),
        _ => return None,
    })
}

/// The human form.
pub fn render(t: &Timeline) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "case {} ({} journal records)",
        t.case.as_deref().unwrap_or("?"),
        t.records
    );
    for run in &t.runs {
        let _ = writeln!(
            out,
            "\nrun {} started {}\n  playbook {} (sha256 {})\n  targets {}",
            run.run_id,
            run.started,
            run.playbook,
            short(&run.playbook_sha256),
            run.targets.join(", ")
        );
        for p in t.plugins.iter().filter(|p| p.run_id == run.run_id) {
            let egress = if p.allow_hosts.is_empty() {
                "no egress".to_string()
            } else {
                format!("egress to {}", p.allow_hosts.join(", "))
            };
            let _ = writeln!(
                out,
                "  plugin {}: {} {} ({} world), sha256 {}, {egress}",
                p.plugin, p.name, p.version, p.world, p.sha256
            );
        }
        match (&run.finished, run.duration_ms) {
            (Some(at), Some(ms)) => {
                let _ = writeln!(
                    out,
                    "  finished {at} after {ms} ms: {} succeeded, {} failed",
                    run.succeeded.unwrap_or(0),
                    run.failed.unwrap_or(0)
                );
            }
            _ => {
                let _ = writeln!(out, "  never finished (interrupted?)");
            }
        }
        for s in t.seals.iter().filter(|s| s.run_id == run.run_id) {
            let how = match &s.key_fingerprint {
                Some(fp) => format!("signed by key {fp}"),
                None => "UNSIGNED".into(),
            };
            let _ = writeln!(
                out,
                "  sealed {} by {}: {}, {how}",
                s.time, s.sealed_by, s.manifest
            );
        }
    }
    for target in &t.targets {
        let status = match target.status {
            Some(Status::Succeeded) => "succeeded",
            Some(Status::Failed) => "FAILED",
            Some(Status::Skipped) => "skipped",
            None => "unfinished",
        };
        let _ = writeln!(out, "\ntarget {} ({status})", target.target);
        for e in &target.entries {
            let _ = writeln!(out, "  {}  {}", e.time, e.text);
        }
    }
    if !t.unreadable.is_empty() {
        let _ = writeln!(out, "\nunreadable journal lines (run `irhost verify`):");
        for u in &t.unreadable {
            let _ = writeln!(out, "  {u}");
        }
    }
    out
}
