//! The case journal: `cases/<case-id>/journal.jsonl`, one JSON record per
//! line, appended and flushed one record at a time. Each record carries the
//! sha256 of the previous line (`prev`), so the file is a hash chain: any
//! edit, deletion, reordering or truncation breaks it at a known line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
            let report = verify_chain(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{}: refusing to append to a broken journal: {e}",
                    path.display()
                )
            })?;
            (report.records, report.head)
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
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let record = JournalRecord {
            seq: head.next_seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            case: self.case_id.clone(),
            prev: head.prev.clone(),
            event,
        };
        let mut line = serde_json::to_vec(&record)?;
        let hash = hex::encode(Sha256::digest(&line));
        line.push(b'\n');
        head.file.write_all(&line)?;
        head.file.flush()?;
        head.next_seq += 1;
        head.prev = hash;
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

/// A journal that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records: u64,
    /// sha256 of the last record (GENESIS for an empty journal).
    pub head: String,
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("record {line}: not valid JSON or not a journal record ({detail})")]
    Malformed { line: u64, detail: String },
    #[error("record {line}: truncated (the last line has no newline: a torn write)")]
    Truncated { line: u64 },
    #[error("record {line}: hash mismatch: prev is {found}, but the previous record hashes to {expected}")]
    HashMismatch {
        line: u64,
        expected: String,
        found: String,
    },
    #[error("record {line}: out of order: seq {found}, expected {expected}")]
    Reordered {
        line: u64,
        expected: u64,
        found: u64,
    },
    #[error("{0}")]
    Io(String),
}

/// Check the chain record by record.
pub fn verify_chain(path: &Path) -> Result<ChainReport, ChainError> {
    let mut file =
        File::open(path).map_err(|e| ChainError::Io(format!("{}: {e}", path.display())))?;
    // A journal is only ever appended whole lines; a last byte that is not a
    // newline is a torn write.
    let len = file
        .metadata()
        .map_err(|e| ChainError::Io(e.to_string()))?
        .len();
    let mut torn = false;
    if len > 0 {
        file.seek(SeekFrom::Start(len - 1))
            .map_err(|e| ChainError::Io(e.to_string()))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)
            .map_err(|e| ChainError::Io(e.to_string()))?;
        torn = last[0] != b'\n';
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ChainError::Io(e.to_string()))?;
    }
    let reader = BufReader::new(file);
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    let mut lines = reader.split(b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.map_err(|e| ChainError::Io(e.to_string()))?;
        let number = count + 1;
        if torn && lines.peek().is_none() {
            return Err(ChainError::Truncated { line: number });
        }
        let record: JournalRecord =
            serde_json::from_slice(&line).map_err(|e| ChainError::Malformed {
                line: number,
                detail: e.to_string(),
            })?;
        if record.prev != prev {
            return Err(ChainError::HashMismatch {
                line: number,
                expected: prev,
                found: record.prev,
            });
        }
        if record.seq != count {
            return Err(ChainError::Reordered {
                line: number,
                expected: count,
                found: record.seq,
            });
        }
        prev = hex::encode(Sha256::digest(&line));
        count += 1;
    }
    Ok(ChainReport {
        records: count,
        head: prev,
    })
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

    #[test]
    fn a_fresh_chain_verifies_and_reopening_continues_it() {
        let (dir, path) = journal_with(3);
        assert_eq!(verify_chain(&path).unwrap().records, 3);
        let journal = CaseJournal::open(dir.path(), "case-1").unwrap();
        journal.append(event(9)).unwrap();
        let report = verify_chain(&path).unwrap();
        assert_eq!(report.records, 4);
        assert_eq!(report.head, journal.head_hash());
    }

    #[test]
    fn a_changed_byte_breaks_the_next_link() {
        let (_dir, path) = journal_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("test:t1", "test:tX", 1)).unwrap();
        assert!(matches!(
            verify_chain(&path),
            Err(ChainError::HashMismatch { line: 3, .. })
        ));
    }

    #[test]
    fn deleted_and_reordered_records_are_detected() {
        let (_dir, path) = journal_with(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let deleted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        std::fs::write(&path, deleted).unwrap();
        assert!(matches!(
            verify_chain(&path),
            Err(ChainError::HashMismatch { line: 2, .. })
        ));
        let swapped = format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3]);
        std::fs::write(&path, swapped).unwrap();
        assert!(verify_chain(&path).is_err());
    }

    #[test]
    fn a_torn_last_line_is_truncated_and_refused_for_appending() {
        let (dir, path) = journal_with(3);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        assert_eq!(verify_chain(&path), Err(ChainError::Truncated { line: 3 }));
        assert!(CaseJournal::open(dir.path(), "case-1").is_err());
    }
}
