//! `irhost watch`: events in, runs out. Each event (a JSON object: one line
//! of stdin or of a file, or the body of an HTTP POST) is matched against
//! [`Rules`]; the first matching rule names the targets and the playbook.
//! Runs start with bounded concurrency; a target is not handled twice while
//! a run on it is active, nor within the dedup window after a successful
//! run (a failed run releases the target, so the next event retries it).
//! Every decision is a record in the watch journal, a hash chain like a
//! case journal (`<cases-dir>/<journal-id>/journal.jsonl`).

mod claims;
pub mod conditions;
pub mod event_paths;
mod http;
mod ledger;
mod lines;
mod record;
pub mod rules;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::diagnostics::Diagnostics;
use crate::digest::sha256_hex;
use crate::events::{RunEvent, WatchDecisionKind};
use crate::facade::{Host, PlaybookPlan, RunOptions, RunState};
use crate::journal::{CaseJournal, CaseLock, CaseLockError};
use crate::target::TargetSpec;
use claims::Claims;
pub use http::http_router;
use lines::{escaped, Line, LineSplitter};
use record::WatchJournal;
use rules::{Rule, Rules};

/// Largest event accepted (a line, or a POST body that is one object).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// How a watch is set up.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub cases_dir: PathBuf,
    /// Id of the watch journal's directory under `cases_dir`.
    pub journal_id: String,
    /// Overrides the rules file's `[watch] concurrency`.
    pub concurrency: Option<usize>,
    /// Overrides the rules file's `[watch] dedup_window`.
    pub dedup_window: Option<Duration>,
    /// Targets processed at once within one run.
    pub run_concurrency: usize,
    /// Print each journal record as JSON instead of a line of text.
    pub json: bool,
    /// Signs the watch journal's seals and the cases of the runs it starts;
    /// `None` seals them unsigned.
    pub signing_key: Option<crate::facade::SigningKey>,
    /// Seal the watch journal this often (when something new was
    /// recorded), besides when the watch stops.
    pub seal_interval: Option<Duration>,
}

/// The counts of a finished watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchReport {
    pub events: u64,
    pub runs: u64,
    pub failed_runs: u64,
}

/// Matches events and starts runs.
pub struct Watcher {
    /// Held for the watcher's life: the watch journal has one writer.
    _lock: CaseLock,
    host: Host,
    rules: Arc<Rules>,
    plans: HashMap<PathBuf, Arc<PlaybookPlan>>,
    options: WatchOptions,
    journal: Arc<WatchJournal>,
    sealer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    concurrency: usize,
    dedup_window: Duration,
    semaphore: Arc<Semaphore>,
    claims: Arc<Claims>,
    runs: Mutex<JoinSet<bool>>,
    events: AtomicU64,
    started_runs: AtomicU64,
    failed_runs: Arc<AtomicU64>,
}

/// The answer to one event (also the JSON an HTTP source returns).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub decision: WatchDecisionKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Decision {
    fn new(decision: WatchDecisionKind, rule: Option<&Rule>, reason: Option<String>) -> Self {
        Decision {
            decision,
            rule: rule.map(|r| r.name.clone()),
            targets: Vec::new(),
            run_id: None,
            case: None,
            reason,
        }
    }
}

impl Watcher {
    /// Load every rule's playbook (and its plugins) up front: a rules file
    /// naming an invalid playbook is refused before any event is read.
    pub async fn new(
        host: Host,
        rules: Rules,
        options: WatchOptions,
        source: &str,
    ) -> Result<Watcher, WatchError> {
        let mut plans = HashMap::new();
        for rule in &rules.rules {
            if !plans.contains_key(&rule.playbook) {
                let plan = host.load(&rule.playbook).await?;
                plans.insert(rule.playbook.clone(), plan);
            }
        }
        rules::undeclared_params(&rules, &plans)?;
        let journal_dir = options.cases_dir.join(&options.journal_id);
        // One watch writes a watch journal at a time.
        let lock =
            CaseLock::acquire(&journal_dir, &format!("irhost watch ({source})")).map_err(|e| {
                match e {
                    CaseLockError::Held { .. } => WatchError::InUse(e.to_string()),
                    CaseLockError::Io(m) => WatchError::Runtime(m),
                }
            })?;
        let journal = CaseJournal::open(&journal_dir, &options.journal_id)
            .map_err(|e| WatchError::Runtime(format!("cannot open the watch journal: {e:#}")))?;
        let journal = WatchJournal::new(
            journal,
            &journal_dir,
            options.json,
            options.signing_key.clone(),
        );
        let concurrency = options.concurrency.unwrap_or(rules.concurrency).max(1);
        let dedup_window = options.dedup_window.unwrap_or(rules.dedup_window);
        let watcher = Watcher {
            _lock: lock,
            host,
            plans,
            journal: Arc::new(journal),
            sealer: Mutex::new(None),
            concurrency,
            dedup_window,
            semaphore: Arc::new(Semaphore::new(concurrency)),
            claims: Arc::default(),
            runs: Mutex::new(JoinSet::new()),
            events: AtomicU64::new(0),
            started_runs: AtomicU64::new(0),
            failed_runs: Arc::new(AtomicU64::new(0)),
            rules: Arc::new(rules),
            options,
        };
        watcher.emit(RunEvent::WatchStarted {
            rules: watcher.rules.file.display().to_string(),
            rules_sha256: watcher.rules.sha256.clone(),
            source: source.to_string(),
            concurrency,
            dedup_window_s: dedup_window.as_secs(),
        });
        // What an earlier watch on this journal left: its dedup ledger and
        // its runs in flight.
        let records = crate::journal::read_records(watcher.journal.path()).unwrap_or_default();
        let in_flight = ledger::replay(&records, &watcher.claims, watcher.dedup_window);
        watcher.resume_in_flight(in_flight);
        Ok(watcher)
    }

    /// The watch journal's path.
    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    fn emit(&self, event: RunEvent) {
        self.journal.emit(event);
    }

    /// Seal the watch journal every `seal_interval` (when something new was
    /// recorded) until the watch finishes.
    pub fn start_sealing(&self) {
        if let Some(every) = self.options.seal_interval {
            let task = self.journal.clone().seal_every(every);
            *self.sealer.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        }
    }

    /// Decide about one event. `line` is its line number in its source.
    pub fn handle(&self, source: &str, line: Option<u64>, text: &str) -> Decision {
        self.events.fetch_add(1, Ordering::Relaxed);
        let sha = sha256_hex(text.as_bytes());
        let record = |d: &Decision,
                      event_id: Option<String>,
                      playbook: Option<String>,
                      event: Option<Value>| {
            self.emit(RunEvent::WatchDecision {
                decision: d.decision,
                source: source.to_string(),
                line,
                event_id,
                event_sha256: Some(sha.clone()),
                rule: d.rule.clone(),
                targets: d.targets.clone(),
                playbook,
                run_id: d.run_id.clone(),
                case: d.case.clone(),
                reason: d.reason.clone(),
                succeeded: None,
                event,
            });
        };
        let event: Value = match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            Ok(_) => return self.refuse(&record, "not a JSON object".into()),
            Err(e) => return self.refuse(&record, format!("not JSON: {e}")),
        };
        let event_id = event.get("id").and_then(Value::as_str).map(str::to_string);
        let Some(rule) = self.rules.first_match(&event) else {
            let d = Decision::new(
                WatchDecisionKind::Ignored,
                None,
                Some("no rule matched".into()),
            );
            record(&d, event_id, None, None);
            return d;
        };
        let playbook = Some(rule.playbook.display().to_string());
        let targets = rule.targets(&event);
        if targets.is_empty() {
            let paths: Vec<&str> = rule.targets.iter().map(|t| t.id.as_str()).collect();
            let d = Decision::new(
                WatchDecisionKind::Ignored,
                Some(rule),
                Some(format!(
                    "rule `{}` matched but the event has no target at {}",
                    rule.name,
                    paths.join(", ")
                )),
            );
            record(&d, event_id, playbook, None);
            return d;
        }
        // Claim the targets that are free; report the others.
        let run_id = uuid::Uuid::new_v4().to_string();
        let (fresh, duplicates) = self.claims.claim(targets, &run_id, self.dedup_window);
        for (label, reason) in &duplicates {
            let mut d = Decision::new(
                WatchDecisionKind::Deduplicated,
                Some(rule),
                Some(format!("{label}: {reason}")),
            );
            d.targets = vec![label.clone()];
            record(&d, event_id.clone(), playbook.clone(), None);
        }
        if fresh.is_empty() {
            let mut d = Decision::new(
                WatchDecisionKind::Deduplicated,
                Some(rule),
                Some(
                    duplicates
                        .iter()
                        .map(|(l, r)| format!("{l}: {r}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            );
            d.targets = duplicates.into_iter().map(|(l, _)| l).collect();
            return d;
        }
        let mut options = RunOptions::new(
            rule.case_id(&event, fresh.first()),
            self.options.cases_dir.clone(),
            self.options.run_concurrency,
        );
        options.run_id = run_id.clone();
        options.params = rule.params(&event, fresh.first());
        options.signing_key = self.options.signing_key.clone();
        let d = Decision {
            decision: WatchDecisionKind::Matched,
            rule: Some(rule.name.clone()),
            targets: fresh.iter().map(|t| t.label()).collect(),
            run_id: Some(run_id),
            case: Some(options.case_id.to_string()),
            reason: None,
        };
        record(&d, event_id, playbook.clone(), Some(event.clone()));
        self.start_run(source, rule, playbook, fresh, options);
        d
    }

    /// Journal a malformed event.
    fn refuse(
        &self,
        record: &impl Fn(&Decision, Option<String>, Option<String>, Option<Value>),
        reason: String,
    ) -> Decision {
        let d = Decision::new(WatchDecisionKind::Malformed, None, Some(reason));
        record(&d, None, None, None);
        d
    }

    /// Start the run a match decided (when a permit is free), and journal
    /// how it finished.
    fn start_run(
        &self,
        source: &str,
        rule: &Rule,
        playbook: Option<String>,
        targets: Vec<TargetSpec>,
        options: RunOptions,
    ) {
        self.started_runs.fetch_add(1, Ordering::Relaxed);
        let plan = self.plans[&rule.playbook].clone();
        let host = self.host.clone();
        let semaphore = self.semaphore.clone();
        let claims = self.claims.clone();
        let journal = self.journal.clone();
        let failed_runs = self.failed_runs.clone();
        let source = source.to_string();
        let rule_name = rule.name.clone();
        let labels: Vec<String> = targets.iter().map(|t| t.label()).collect();
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let run_id = options.run_id.clone();
                let case = options.case_id.to_string();
                let (ok, reason) = match host.start(plan, targets, options) {
                    Ok(run) => {
                        let result = run.wait().await;
                        let state = run.status().state;
                        let ok = result.is_ok() && state == RunState::Succeeded;
                        let reason = match &result {
                            Ok(summary) => format!(
                                "{}: {} succeeded, {} failed",
                                state.as_str(),
                                summary.succeeded(),
                                summary.failed()
                            ),
                            Err(e) => format!("error: {e:#}"),
                        };
                        (ok, reason)
                    }
                    // Another run holds the case: nothing ran.
                    Err(e) => (false, format!("error: {e}")),
                };
                claims.finish(&labels, &run_id, ok);
                if !ok {
                    failed_runs.fetch_add(1, Ordering::Relaxed);
                }
                journal.emit(RunEvent::WatchDecision {
                    decision: WatchDecisionKind::RunFinished,
                    source,
                    line: None,
                    event_id: None,
                    event_sha256: None,
                    rule: Some(rule_name),
                    targets: labels,
                    playbook,
                    run_id: Some(run_id),
                    case: Some(case),
                    reason: Some(reason),
                    succeeded: Some(ok),
                    event: None,
                });
                ok
            });
    }

    /// Read events, one per line, until the reader ends.
    pub async fn consume<R: AsyncBufRead + Unpin>(
        &self,
        source: &str,
        mut reader: R,
    ) -> std::io::Result<()> {
        let mut lines = LineSplitter::default();
        let mut each = |number, line: Line<'_>| {
            self.handle_line(source, number, line);
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                lines.finish(&mut each);
                return Ok(());
            }
            lines.push(&buf[..n], &mut each);
        }
    }

    /// Decide about one line of a source (`None`: a blank line). A line
    /// that is not UTF-8 or is too long is journaled and skipped.
    fn handle_line(&self, source: &str, number: u64, line: Line<'_>) -> Option<Decision> {
        match line {
            Line::Text(text) if text.trim().is_empty() => None,
            Line::Text(text) => Some(self.handle(source, Some(number), text)),
            Line::NotUtf8 {
                prefix,
                valid_up_to,
                sha256,
            } => Some(self.skipped(
                source,
                number,
                Some(sha256),
                format!(
                    "not UTF-8 (invalid at byte {valid_up_to}); starts {}",
                    escaped(prefix)
                ),
            )),
            Line::Oversized { prefix, len } => Some(self.skipped(
                source,
                number,
                None,
                format!(
                    "longer than {MAX_EVENT_BYTES} bytes ({len} bytes); starts {}",
                    escaped(&prefix)
                ),
            )),
        }
    }

    /// Journal a line that is not read as an event (its reason says why,
    /// with no more of it than a short prefix).
    fn skipped(
        &self,
        source: &str,
        number: u64,
        sha256: Option<String>,
        reason: String,
    ) -> Decision {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.emit(RunEvent::WatchDecision {
            decision: WatchDecisionKind::Malformed,
            source: source.to_string(),
            line: Some(number),
            event_id: None,
            event_sha256: sha256,
            rule: None,
            targets: Vec::new(),
            playbook: None,
            run_id: None,
            case: None,
            reason: Some(reason.clone()),
            succeeded: None,
            event: None,
        });
        Decision::new(WatchDecisionKind::Malformed, None, Some(reason))
    }

    /// Tail a file as it grows (like `tail -F`: a truncated or replaced
    /// file is read again from its start) until `stop` is cancelled.
    pub async fn follow(
        &self,
        path: &Path,
        stop: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<()> {
        let source = format!("follow:{}", path.display());
        let mut file = tokio::fs::File::open(path).await?;
        let mut position = 0u64;
        let mut lines = LineSplitter::default();
        let mut each = |number, line: Line<'_>| {
            self.handle_line(&source, number, line);
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = file.read(&mut buf) => n?,
            };
            if n > 0 {
                position += n as u64;
                lines.push(&buf[..n], &mut each);
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            // Truncated or replaced: start over.
            let len = tokio::fs::metadata(path).await.map(|m| m.len()).ok();
            if len.is_some_and(|len| len < position) {
                file = tokio::fs::File::open(path).await?;
                file.seek(std::io::SeekFrom::Start(0)).await?;
                position = 0;
                lines.reset();
            }
        }
    }

    /// Wait for every run started so far.
    pub async fn drain(&self) {
        loop {
            let mut runs =
                std::mem::take(&mut *self.runs.lock().unwrap_or_else(|p| p.into_inner()));
            if runs.is_empty() {
                return;
            }
            while let Some(result) = runs.join_next().await {
                if result.is_err() {
                    self.failed_runs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Wait for the runs, journal the end of the watch, and report.
    pub async fn finish(&self) -> WatchReport {
        self.drain().await;
        let report = WatchReport {
            events: self.events.load(Ordering::Relaxed),
            runs: self.started_runs.load(Ordering::Relaxed),
            failed_runs: self.failed_runs.load(Ordering::Relaxed),
        };
        if let Some(sealer) = self.sealer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            sealer.abort();
        }
        self.emit(RunEvent::WatchStopped {
            events: report.events,
            runs: report.runs,
            failed_runs: report.failed_runs,
        });
        if let Err(e) = self.journal.seal_if_new() {
            tracing::error!(error = %e, "sealing the watch journal failed");
        }
        report
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// Why a watch could not start.
#[derive(Debug)]
pub enum WatchError {
    Invalid(Diagnostics),
    /// Another watch writes this watch journal.
    InUse(String),
    Runtime(String),
}

impl From<Diagnostics> for WatchError {
    fn from(d: Diagnostics) -> Self {
        WatchError::Invalid(d)
    }
}
