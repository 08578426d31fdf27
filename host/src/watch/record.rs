//! The watch journal: every decision appended as a record (a hash chain
//! like a case journal) and printed, as a line of text or as JSON; sealed
//! like a case (a manifest, signed with the watch's key), when the watch
//! stops and at an interval, and only when something new was recorded
//! since the last seal. Records wait while a seal is written, so that the
//! seal covers a journal no one is appending to.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::events::RunEvent;
use crate::facade::{seal_case, Sealed, SigningKey};
use crate::journal::{CaseJournal, JournalRecord};

/// The watch journal of one watch session.
pub(super) struct WatchJournal {
    journal: CaseJournal,
    dir: PathBuf,
    /// Names the session's seals (the manifests' `run_id`).
    session: String,
    json: bool,
    key: Option<SigningKey>,
    /// Appends share it; a seal holds it alone.
    gate: RwLock<()>,
    /// The journal's record count after the last seal (or at open).
    sealed: AtomicU64,
}

impl WatchJournal {
    pub(super) fn new(
        journal: CaseJournal,
        dir: &Path,
        json: bool,
        key: Option<SigningKey>,
    ) -> Self {
        let sealed = AtomicU64::new(journal.records());
        WatchJournal {
            journal,
            dir: dir.to_path_buf(),
            session: format!("watch-{}", uuid::Uuid::new_v4()),
            json,
            key,
            gate: RwLock::new(()),
            sealed,
        }
    }

    pub(super) fn path(&self) -> &Path {
        self.journal.path()
    }

    /// Append `event` and print it.
    pub(super) fn emit(&self, event: RunEvent) {
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        emit(&self.journal, self.json, event);
    }

    /// Seal the journal if anything was recorded since the last seal.
    pub(super) fn seal_if_new(&self) -> anyhow::Result<Option<Sealed>> {
        let _alone = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if self.journal.records() == self.sealed.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let sealed = seal_case(
            &self.dir,
            &self.session,
            &self.journal,
            self.key.as_ref(),
            |e| emit(&self.journal, self.json, e),
        )?;
        self.sealed.store(self.journal.records(), Ordering::SeqCst);
        Ok(Some(sealed))
    }
}

impl WatchJournal {
    /// A task sealing the journal every `every` (when something new was
    /// recorded), until it is aborted.
    pub(super) fn seal_every(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let journal = self.clone();
                let sealed = tokio::task::spawn_blocking(move || journal.seal_if_new()).await;
                match sealed {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "sealing the watch journal failed"),
                    Err(e) => tracing::error!(error = %e, "sealing the watch journal failed"),
                }
            }
        })
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
