//! `irhost watch`: events in, runs out. Each event (a JSON object: one line
//! of stdin or of a file, or the body of an HTTP POST) is matched against
//! [`Rules`]; the first matching rule names the targets and the playbook.
//! Runs start with bounded concurrency; a target is not handled twice while
//! a run on it is active, nor within the dedup window after a successful
//! run (a failed run releases the target, so the next event retries it).
//! Every decision is a record in the watch journal, a hash chain like a
//! case journal (`<cases-dir>/<journal-id>/journal.jsonl`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{Host, RunState};
use crate::diagnostics::Diagnostics;
use crate::engine::RunOptions;
use crate::events::{RunEvent, WatchDecisionKind};
use crate::journal::{CaseJournal, JournalRecord};
use crate::plan::PlaybookPlan;
use crate::rules::{Rule, Rules};

/// Largest event accepted (a line or a POST body).
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
}

/// The counts of a finished watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchReport {
    pub events: u64,
    pub runs: u64,
    pub failed_runs: u64,
}

enum Claim {
    Active { run_id: String },
    Done { run_id: String, at: Instant },
}

/// Matches events and starts runs.
pub struct Watcher {
    host: Host,
    rules: Arc<Rules>,
    plans: HashMap<PathBuf, Arc<PlaybookPlan>>,
    options: WatchOptions,
    journal: Arc<CaseJournal>,
    concurrency: usize,
    dedup_window: Duration,
    semaphore: Arc<Semaphore>,
    claims: Arc<Mutex<HashMap<String, Claim>>>,
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
        let journal = CaseJournal::open(
            &options.cases_dir.join(&options.journal_id),
            &options.journal_id,
        )
        .map_err(|e| WatchError::Runtime(format!("cannot open the watch journal: {e:#}")))?;
        let concurrency = options.concurrency.unwrap_or(rules.concurrency).max(1);
        let dedup_window = options.dedup_window.unwrap_or(rules.dedup_window);
        let watcher = Watcher {
            host,
            plans,
            journal: Arc::new(journal),
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
        Ok(watcher)
    }

    /// The watch journal's path.
    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    fn emit(&self, event: RunEvent) {
        emit(&self.journal, self.options.json, event);
    }

    /// Decide about one event. `line` is its line number in its source.
    pub fn handle(&self, source: &str, line: Option<u64>, text: &str) -> Decision {
        self.events.fetch_add(1, Ordering::Relaxed);
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
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
                event,
            });
        };
        let decision = |kind, rule: Option<&Rule>, reason: Option<String>| Decision {
            decision: kind,
            rule: rule.map(|r| r.name.clone()),
            targets: Vec::new(),
            run_id: None,
            case: None,
            reason,
        };
        let event: Value = match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                let d = decision(
                    WatchDecisionKind::Malformed,
                    None,
                    Some("not a JSON object".into()),
                );
                record(&d, None, None, None);
                return d;
            }
            Err(e) => {
                let d = decision(
                    WatchDecisionKind::Malformed,
                    None,
                    Some(format!("not JSON: {e}")),
                );
                record(&d, None, None, None);
                return d;
            }
        };
        let event_id = event.get("id").and_then(Value::as_str).map(str::to_string);
        let Some(rule) = self.rules.first_match(&event) else {
            let d = decision(
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
            let d = decision(
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
        let mut fresh = Vec::new();
        let mut duplicates = Vec::new();
        {
            let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
            for target in targets {
                let label = target.label();
                let busy = match claims.get(&label) {
                    Some(Claim::Active { run_id }) => Some(format!("run {run_id} is active")),
                    Some(Claim::Done { run_id, at }) if at.elapsed() < self.dedup_window => {
                        Some(format!(
                            "run {run_id} handled it {}s ago (dedup window {}s)",
                            at.elapsed().as_secs(),
                            self.dedup_window.as_secs()
                        ))
                    }
                    _ => None,
                };
                match busy {
                    Some(reason) => duplicates.push((label, reason)),
                    None => {
                        claims.insert(
                            label,
                            Claim::Active {
                                run_id: run_id.clone(),
                            },
                        );
                        fresh.push(target);
                    }
                }
            }
        }
        for (label, reason) in &duplicates {
            let mut d = decision(
                WatchDecisionKind::Deduplicated,
                Some(rule),
                Some(format!("{label}: {reason}")),
            );
            d.targets = vec![label.clone()];
            record(&d, event_id.clone(), playbook.clone(), None);
        }
        if fresh.is_empty() {
            let mut d = decision(
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
        let labels: Vec<String> = fresh.iter().map(|t| t.label()).collect();
        let d = Decision {
            decision: WatchDecisionKind::Matched,
            rule: Some(rule.name.clone()),
            targets: labels.clone(),
            run_id: Some(run_id.clone()),
            case: Some(options.case_id.to_string()),
            reason: None,
        };
        record(&d, event_id, playbook.clone(), Some(event.clone()));
        self.started_runs.fetch_add(1, Ordering::Relaxed);

        let plan = self.plans[&rule.playbook].clone();
        let host = self.host.clone();
        let semaphore = self.semaphore.clone();
        let claims = self.claims.clone();
        let journal = self.journal.clone();
        let json = self.options.json;
        let failed_runs = self.failed_runs.clone();
        let source = source.to_string();
        let rule_name = rule.name.clone();
        let case = options.case_id.to_string();
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let run = host.start(plan, fresh, options);
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
                {
                    let mut claims = claims.lock().unwrap_or_else(|p| p.into_inner());
                    for label in &labels {
                        if ok {
                            claims.insert(
                                label.clone(),
                                Claim::Done {
                                    run_id: run_id.clone(),
                                    at: Instant::now(),
                                },
                            );
                        } else {
                            claims.remove(label);
                        }
                    }
                }
                if !ok {
                    failed_runs.fetch_add(1, Ordering::Relaxed);
                }
                emit(
                    &journal,
                    json,
                    RunEvent::WatchDecision {
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
                        event: None,
                    },
                );
                ok
            });
        d
    }

    /// Read events, one per line, until the reader ends.
    pub async fn consume<R: AsyncBufRead + Unpin>(
        &self,
        source: &str,
        reader: R,
    ) -> std::io::Result<()> {
        let mut lines = reader.lines();
        let mut number = 0u64;
        while let Some(line) = lines.next_line().await? {
            number += 1;
            self.handle_line(source, number, &line);
        }
        Ok(())
    }

    fn handle_line(&self, source: &str, number: u64, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if line.len() > MAX_EVENT_BYTES {
            self.oversized(source, number);
            return;
        }
        self.handle(source, Some(number), line);
    }

    fn oversized(&self, source: &str, number: u64) -> Decision {
        self.events.fetch_add(1, Ordering::Relaxed);
        let reason = format!("longer than {MAX_EVENT_BYTES} bytes");
        self.emit(RunEvent::WatchDecision {
            decision: WatchDecisionKind::Malformed,
            source: source.to_string(),
            line: Some(number),
            event_id: None,
            event_sha256: None,
            rule: None,
            targets: Vec::new(),
            playbook: None,
            run_id: None,
            case: None,
            reason: Some(reason.clone()),
            event: None,
        });
        Decision {
            decision: WatchDecisionKind::Malformed,
            rule: None,
            targets: Vec::new(),
            run_id: None,
            case: None,
            reason: Some(reason),
        }
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
        let mut pending: Vec<u8> = Vec::new();
        let mut number = 0u64;
        let mut skipping = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = file.read(&mut buf) => n?,
            };
            if n > 0 {
                position += n as u64;
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if skipping {
                        // The rest of a line already reported as oversized.
                        skipping = false;
                        continue;
                    }
                    number += 1;
                    self.handle_line(
                        &source,
                        number,
                        String::from_utf8_lossy(&line[..end]).as_ref(),
                    );
                }
                if pending.len() > MAX_EVENT_BYTES {
                    pending.clear();
                    if !skipping {
                        number += 1;
                        self.oversized(&source, number);
                        skipping = true;
                    }
                }
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
                pending.clear();
                skipping = false;
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
        self.emit(RunEvent::WatchStopped {
            events: report.events,
            runs: report.runs,
            failed_runs: report.failed_runs,
        });
        report
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

fn emit(journal: &CaseJournal, json: bool, event: RunEvent) {
    match journal.append(event) {
        Ok(record) => print_record(&record, json),
        Err(e) => tracing::error!(error = %e, "watch journal write failed"),
    }
}

fn print_record(record: &JournalRecord, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(record) {
            println!("{line}");
        }
        return;
    }
    match &record.event {
        RunEvent::WatchStarted { rules, source, .. } => {
            println!("watching {source} with {rules}");
        }
        RunEvent::WatchDecision {
            decision,
            line,
            rule,
            targets,
            run_id,
            case,
            reason,
            ..
        } => {
            let kind = decision.as_str();
            let mut text = format!("{kind:<12}");
            if let Some(line) = line {
                text.push_str(&format!(" line {line}"));
            }
            if let Some(rule) = rule {
                text.push_str(&format!(" rule {rule}"));
            }
            if !targets.is_empty() {
                text.push_str(&format!(" {}", targets.join(",")));
            }
            if let Some(run_id) = run_id {
                text.push_str(&format!(" run {run_id}"));
            }
            if let Some(case) = case {
                text.push_str(&format!(" case {case}"));
            }
            if let Some(reason) = reason {
                text.push_str(&format!(": {reason}"));
            }
            println!("{text}");
        }
        RunEvent::WatchStopped {
            events,
            runs,
            failed_runs,
        } => println!("stopped: {events} events, {runs} runs, {failed_runs} failed"),
        _ => {}
    }
}

/// Why a watch could not start.
#[derive(Debug)]
pub enum WatchError {
    Invalid(Diagnostics),
    Runtime(String),
}

impl From<Diagnostics> for WatchError {
    fn from(d: Diagnostics) -> Self {
        WatchError::Invalid(d)
    }
}

/// The HTTP source: `POST /v1/events` with one JSON object, or several
/// one per line; the answer lists a decision per event. `GET /healthz`
/// answers without a token; with a token, every other route needs it.
pub fn http_router(
    watcher: Arc<Watcher>,
    token: Option<crate::http_auth::BearerToken>,
) -> axum::Router {
    use axum::routing::{get, post};
    let mut events = axum::Router::new().route("/v1/events", post(post_events));
    if let Some(token) = token {
        events = events.route_layer(axum::middleware::from_fn_with_state(
            token,
            crate::http_auth::require_token,
        ));
    }
    axum::Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(events)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_EVENT_BYTES))
        .with_state(watcher)
}

async fn post_events(
    axum::extract::State(watcher): axum::extract::State<Arc<Watcher>>,
    body: String,
) -> axum::Json<Vec<Decision>> {
    let whole = serde_json::from_str::<Value>(&body).is_ok_and(|v| v.is_object());
    let decisions = if whole {
        vec![watcher.handle("http", None, body.trim())]
    } else {
        body.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| watcher.handle("http", Some(i as u64 + 1), l))
            .collect()
    };
    axum::Json(decisions)
}
