//! The case journal: `cases/<case-id>/journal.jsonl`, one JSON record per
//! line, appended and flushed one record at a time. Each record carries the
//! sha256 of the previous line (`prev`), so the file is a hash chain: any
//! edit, deletion, reordering or truncation breaks it at a known line.
//!
//! [`chain`] walks the chain (the one walker); [`recorder`] is how a run
//! writes: append and notify observers under one lock, so every observer
//! sees records in journal order; [`lock`] keeps a case to one writer.

pub mod chain;
pub mod lock;
pub mod recorder;

pub use chain::{BreakKind, ChainBreak, ChainWalk};
pub use lock::{CaseLock, CaseLockError};
pub use recorder::{CaseRecorder, RecordObserver};

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use crate::events::RunEvent;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalRecord {
    pub seq: u64,
    pub time: String,
    pub case: String,
    pub prev: String,
    pub event: RunEvent,
}

struct ChainHead {
    file: File,
    next_seq: u64,
    prev: String,
}

/// An open, append-only case journal.
pub struct CaseJournal {
    path: PathBuf,
    case_id: String,
    head: Mutex<ChainHead>,
}

impl CaseJournal {
    /// Open (or create) the journal of `case_id` under `case_dir`, continuing
    /// an existing chain. A journal whose chain is broken is refused, so a
    /// run never appends to evidence that no longer verifies.
    pub fn open(case_dir: &Path, case_id: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(case_dir)?;
        let path = case_dir.join("journal.jsonl");
        let (next_seq, prev) = if path.exists() {
            let walk = chain::walk_file(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{}: refusing to append to a broken journal: {e}",
                    path.display()
                )
            })?;
            (walk.len(), walk.head())
        } else {
            (0, GENESIS.to_string())
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(CaseJournal {
            path,
            case_id: case_id.to_string(),
            head: Mutex::new(ChainHead {
                file,
                next_seq,
                prev,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event as a record and flush it to the file. Returns the
    /// record as written.
    pub fn append(&self, event: RunEvent) -> anyhow::Result<JournalRecord> {
        self.append_with(event, |_| {})
    }

    /// Append one event and hand the record to `notify` before the next
    /// record can be written: whoever `notify` tells sees records in
    /// journal order. `notify` must not write to this journal.
    pub fn append_with(
        &self,
        event: RunEvent,
        notify: impl FnOnce(&JournalRecord),
    ) -> anyhow::Result<JournalRecord> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let record = JournalRecord {
            seq: head.next_seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            case: self.case_id.clone(),
            prev: head.prev.clone(),
            event,
        };
        let mut line = serde_json::to_vec(&record)?;
        let hash = sha256_hex(&line);
        line.push(b'\n');
        head.file.write_all(&line)?;
        head.file.flush()?;
        head.next_seq += 1;
        head.prev = hash;
        notify(&record);
        Ok(record)
    }

    /// Flush the journal to stable storage (before it is sealed).
    pub fn sync(&self) -> std::io::Result<()> {
        let head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        head.file.sync_all()
    }

    /// How many records the journal holds.
    pub fn records(&self) -> u64 {
        self.head.lock().unwrap_or_else(|p| p.into_inner()).next_seq
    }

    /// The hash of the last record written.
    pub fn head_hash(&self) -> String {
        self.head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prev
            .clone()
    }
}

/// Read every record of a journal (without verifying it).
pub fn read_records(path: &Path) -> anyhow::Result<Vec<JournalRecord>> {
    let reader = BufReader::new(File::open(path)?);
    let mut records = Vec::new();
    for line in reader.lines() {
        let line = line?;
        if !line.is_empty() {
            records.push(serde_json::from_str(&line)?);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> RunEvent {
        RunEvent::TargetStarted {
            target: format!("test:t{n}"),
        }
    }

    fn journal_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let journal = CaseJournal::open(dir.path(), "case-1").unwrap();
        for i in 0..n {
            journal.append(event(i)).unwrap();
        }
        let path = journal.path().to_path_buf();
        (dir, path)
    }

    fn walk(path: &Path) -> Result<ChainWalk, ChainBreak> {
        chain::walk_file(path)
    }

    #[test]
    fn a_fresh_chain_verifies_and_reopening_continues_it() {
        let (dir, path) = journal_with(3);
        assert_eq!(walk(&path).unwrap().len(), 3);
        let journal = CaseJournal::open(dir.path(), "case-1").unwrap();
        journal.append(event(9)).unwrap();
        let report = walk(&path).unwrap();
        assert_eq!(report.len(), 4);
        assert_eq!(report.head(), journal.head_hash());
    }

    #[test]
    fn a_changed_byte_breaks_the_chain_at_the_changed_record() {
        let (_dir, path) = journal_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("test:t1", "test:tX", 1)).unwrap();
        let broken = walk(&path).unwrap_err();
        assert_eq!(
            (broken.kind, broken.line),
            (BreakKind::HashMismatch, Some(2))
        );
    }

    #[test]
    fn deleted_and_reordered_records_are_detected() {
        let (_dir, path) = journal_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let deleted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        std::fs::write(&path, deleted).unwrap();
        let broken = walk(&path).unwrap_err();
        assert_eq!((broken.kind, broken.line), (BreakKind::Deleted, Some(2)));
        let swapped = format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3]);
        std::fs::write(&path, swapped).unwrap();
        assert_eq!(walk(&path).unwrap_err().kind, BreakKind::Reordered);
    }

    #[test]
    fn a_torn_last_line_is_truncated_and_refused_for_appending() {
        let (dir, path) = journal_with(3);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        let broken = walk(&path).unwrap_err();
        assert_eq!((broken.kind, broken.line), (BreakKind::Truncated, Some(3)));
        let refused = CaseJournal::open(dir.path(), "case-1").err().unwrap();
        assert!(refused.to_string().contains("torn write"), "{refused}");
    }
}
