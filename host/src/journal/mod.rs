//! The case journal: `cases/<case-id>/journal.jsonl`, one JSON record per
//! line, appended one record at a time and synced by its [`Durability`]. Each record carries the
//! sha256 of the previous line (`prev`), so the file is a hash chain: any
//! edit, deletion, reordering or truncation breaks it at a known line.
//!
//! [`chain`] walks the chain (the one walker); [`recorder`] is how a run
//! writes: append and notify observers under one lock, so every observer
//! sees records in journal order; [`lock`] keeps a case to one writer;
//! [`repair`] cuts a torn last line off when a journal is opened again;
//! [`durability`] is when a record reaches the disk.

pub mod chain;
pub mod durability;
pub mod lock;
pub mod recorder;
pub mod repair;

pub use chain::{BreakKind, ChainBreak, ChainWalk};
pub use durability::Durability;
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
    syncer: durability::Syncer,
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
    /// an existing chain. A torn last line (a write cut short) is cut off and
    /// a `repair` record says so ([`repair`]); a journal whose chain is
    /// broken otherwise is refused, so a run never appends to evidence that
    /// no longer verifies. The caller holds the case lock.
    pub fn open(case_dir: &Path, case_id: &str) -> anyhow::Result<Self> {
        let durability = Durability::from_env().map_err(anyhow::Error::msg)?;
        Self::open_with(case_dir, case_id, durability)
    }

    /// [`CaseJournal::open`] with a durability policy of the caller's.
    pub fn open_with(
        case_dir: &Path,
        case_id: &str,
        durability: Durability,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(case_dir)?;
        let path = case_dir.join("journal.jsonl");
        let torn = if path.exists() {
            repair::cut_torn_tail(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{}: refusing to append to a broken journal: {e}",
                    path.display()
                )
            })?
        } else {
            None
        };
        let journal = Self::open_whole(path.clone(), case_id, durability)?;
        if let Some(torn) = torn {
            tracing::warn!(
                journal = %path.display(),
                removed_bytes = torn.removed_bytes,
                saved_as = %torn.saved_as.display(),
                "cut a torn last line off the journal"
            );
            journal.append(RunEvent::Repair {
                removed_bytes: torn.removed_bytes,
                removed_sha256: torn.removed_sha256,
                records_kept: torn.records_kept,
                saved_as: torn.saved_as.display().to_string(),
            })?;
        }
        Ok(journal)
    }

    fn open_whole(path: PathBuf, case_id: &str, durability: Durability) -> anyhow::Result<Self> {
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
        let syncer = durability::Syncer::new(durability, file.try_clone()?)?;
        Ok(CaseJournal {
            path,
            case_id: case_id.to_string(),
            head: Mutex::new(ChainHead {
                file,
                syncer,
                next_seq,
                prev,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event as a record, written to the file before this
    /// returns and synced by the journal's [`Durability`]. Returns the
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
        head.syncer.written(&head.file)?;
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
    fn a_torn_last_line_is_cut_off_kept_and_journaled_and_the_chain_goes_on() {
        let (dir, path) = journal_with(3);
        let text = std::fs::read_to_string(&path).unwrap();
        let cut_at = text.len() - 20;
        std::fs::write(&path, &text[..cut_at]).unwrap();
        let broken = walk(&path).unwrap_err();
        assert_eq!((broken.kind, broken.line), (BreakKind::Truncated, Some(3)));
        let torn = text[..cut_at].rsplit_once('\n').unwrap().1.to_string();

        let journal = CaseJournal::open(dir.path(), "case-1").unwrap();
        journal.append(event(7)).unwrap();
        let report = walk(&path).unwrap();
        assert_eq!(
            report.len(),
            4,
            "two whole records, the repair, the new one"
        );
        match &report.records[2].event {
            RunEvent::Repair {
                removed_bytes,
                removed_sha256,
                records_kept,
                saved_as,
            } => {
                assert_eq!(*removed_bytes, torn.len() as u64);
                assert_eq!(*removed_sha256, sha256_hex(torn.as_bytes()));
                assert_eq!(*records_kept, 2);
                assert_eq!(std::fs::read_to_string(saved_as).unwrap(), torn);
            }
            other => panic!("{other:?}"),
        }
        // The whole records before the cut are untouched.
        let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(&kept));
    }

    #[test]
    fn a_journal_broken_before_its_torn_line_is_still_refused() {
        let (dir, path) = journal_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let changed = text.replacen("test:t1", "test:tX", 1);
        std::fs::write(&path, &changed[..changed.len() - 20]).unwrap();
        let refused = CaseJournal::open(dir.path(), "case-1").err().unwrap();
        assert!(
            refused
                .to_string()
                .contains("broken before its torn last line"),
            "{refused}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            &changed[..changed.len() - 20]
        );
        assert!(!dir.path().join("torn").exists());
    }
}
