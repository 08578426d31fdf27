//! How a run writes its case journal: a [`CaseRecorder`] appends each
//! event and hands the record to an observer under the journal's lock (so
//! observers see records in journal order), and keeps the first write
//! error, which fails the run.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{CaseJournal, JournalRecord};
use crate::events::{EventSink, RunEvent};

/// Receives every journal record as it is written, in journal order. It
/// must not write to the same journal.
pub type RecordObserver = Arc<dyn Fn(&JournalRecord) + Send + Sync>;

/// Writes events to the journal and hands the records to an observer.
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

    /// Journal `event` and notify the observer. A write error is kept
    /// (see [`CaseRecorder::ensure_written`]).
    pub fn emit(&self, event: RunEvent) {
        let observer = self.observer.as_deref();
        let written = self.journal.append_with(event, |record| {
            if let Some(observer) = observer {
                observer(record);
            }
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "journal write failed");
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| format!("{}: {e}", self.journal.path().display()));
        }
    }

    /// The first journal write error, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fail if any record could not be written.
    pub fn ensure_written(&self) -> anyhow::Result<()> {
        match self.failure() {
            Some(failure) => anyhow::bail!("the case journal could not be written: {failure}"),
            None => Ok(()),
        }
    }

    pub fn journal(&self) -> &CaseJournal {
        &self.journal
    }

    /// An [`EventSink`] that emits into this recorder.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |event| me.emit(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_see_concurrent_records_in_journal_order() {
        let dir = tempfile::tempdir().unwrap();
        let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
        let observer: RecordObserver = {
            let seen = seen.clone();
            Arc::new(move |r: &JournalRecord| seen.lock().unwrap().push(r.seq))
        };
        let recorder = CaseRecorder::open(dir.path(), "c", Some(observer)).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let recorder = recorder.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        recorder.emit(RunEvent::TargetStarted {
                            target: format!("test:{t}-{i}"),
                        });
                    }
                });
            }
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, (0..400).collect::<Vec<u64>>());
        assert!(recorder.ensure_written().is_ok());
    }
}
