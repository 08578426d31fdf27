//! How a run looks on the terminal: a progress bar on a TTY with a line
//! per finished target, or one JSON record per line with `--json`; the
//! summary after the run.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::custody;
use crate::events::{RunEvent, Status};
use crate::facade::RunSummary;
use crate::journal::JournalRecord;

/// Human or JSON output of a run.
pub(super) struct RunDisplay {
    json: bool,
    bar: Option<ProgressBar>,
    errors: Mutex<HashMap<String, String>>,
}

impl RunDisplay {
    pub(super) fn new(json: bool, targets: usize) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(targets as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} targets {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        RunDisplay {
            json,
            bar,
            errors: Mutex::default(),
        }
    }

    /// Show one journal record.
    pub(super) fn show(&self, record: &JournalRecord) {
        let (json, bar, errors) = (self.json, &self.bar, &self.errors);
        {
            if json {
                if let Ok(line) = serde_json::to_string(record) {
                    println!("{line}");
                }
                return;
            }
            let say = |line: String| match bar {
                Some(bar) => bar.println(line),
                None => println!("{line}"),
            };
            match &record.event {
                RunEvent::StepStarted {
                    target,
                    step,
                    attempt,
                    ..
                } => {
                    if let Some(bar) = bar {
                        bar.set_message(format!("{target}: {step} (attempt {attempt})"));
                    }
                }
                RunEvent::StepFinished {
                    target,
                    step,
                    status: Status::Failed,
                    error,
                    ..
                } => {
                    let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                    errors.entry(target.clone()).or_insert_with(|| {
                        format!("step `{step}`: {}", error.clone().unwrap_or_default())
                    });
                }
                RunEvent::EgressDenied {
                    target,
                    plugin,
                    url,
                    ..
                } => {
                    say(format!(
                        "  ! {target}: egress denied to plugin `{plugin}`: {url}"
                    ));
                }
                RunEvent::TargetFinished {
                    target,
                    status,
                    duration_ms,
                    failed_steps,
                } => {
                    if let Some(bar) = bar {
                        bar.inc(1);
                    }
                    match status {
                        Status::Succeeded => say(format!("ok     {target} ({duration_ms} ms)")),
                        _ => {
                            let errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                            let why = errors.get(target).cloned().unwrap_or_else(|| {
                                format!("steps not completed: {}", failed_steps.join(", "))
                            });
                            say(format!("FAILED {target} ({duration_ms} ms): {why}"));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The lines after a run: counts, the sealed phase, the seal.
pub(super) fn print_summary(summary: &RunSummary) {
    println!(
        "case {}: {} succeeded, {} failed; journal and artifacts in {}",
        summary.case_id,
        summary.succeeded(),
        summary.failed(),
        summary.case_dir.display()
    );
    if let Some(phase) = &summary.sealed_phase {
        let failed: Vec<String> = phase
            .steps
            .iter()
            .filter(|s| s.status != Status::Succeeded)
            .map(|s| {
                format!(
                    "{} {}{}",
                    s.id,
                    s.status.as_str(),
                    s.error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        if phase.status == Status::Succeeded && failed.is_empty() {
            println!("sealed phase: {} step(s) succeeded", phase.steps.len());
        } else if phase.status == Status::Succeeded {
            println!("sealed phase succeeded; {}", failed.join("; "));
        } else {
            println!("sealed phase FAILED: {}", failed.join("; "));
        }
    }
    if let Some(seal) = &summary.seal {
        match &seal.key_fingerprint {
            Some(fp) => println!(
                "sealed: {} ({} records, {} artifacts) signed by key {fp}",
                seal.manifest, seal.records, seal.artifacts
            ),
            None => println!(
                "sealed: {} ({} records, {} artifacts); {}",
                seal.manifest,
                seal.records,
                seal.artifacts,
                custody::UNSIGNED_NOTE
            ),
        }
    }
}
