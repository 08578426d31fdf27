//! The journal's hash chain, walked in one place: [`walk`] checks every
//! record of a journal's bytes (its `prev` is the sha256 of the line
//! before, its `seq` its position) and classifies the first break, with
//! the wording `irhost verify` prints. Appending, sealing, the sealed-case
//! reader and `irhost verify` all use it.

use std::path::Path;

use super::{JournalRecord, GENESIS};
use crate::digest::sha256_hex;

/// A journal whose chain holds.
#[derive(Debug, Clone, Default)]
pub struct ChainWalk {
    pub records: Vec<JournalRecord>,
    /// sha256 of each record's line.
    pub hashes: Vec<String>,
}

impl ChainWalk {
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// The hash of the last record, GENESIS for an empty journal.
    pub fn head(&self) -> String {
        self.head_at(self.len())
    }
    /// The hash of record `count - 1` (GENESIS for 0).
    pub fn head_at(&self, count: u64) -> String {
        match count {
            0 => GENESIS.to_string(),
            n => self.hashes[n as usize - 1].clone(),
        }
    }
}

/// How a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The journal file does not exist.
    Missing,
    /// The journal file could not be read.
    Unreadable,
    /// A line is not a journal record.
    Malformed,
    /// The last line has no newline: a torn write.
    Truncated,
    /// A record's bytes changed after it was written.
    HashMismatch,
    /// Records are out of order.
    Reordered,
    /// Records are missing.
    Deleted,
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("record {l}: ")).unwrap_or_default())]
pub struct ChainBreak {
    pub kind: BreakKind,
    /// The 1-based line of the record blamed (none for a file problem).
    pub line: Option<u64>,
    pub message: String,
}

fn at(kind: BreakKind, line: usize, message: impl Into<String>) -> ChainBreak {
    ChainBreak {
        kind,
        line: Some(line as u64),
        message: message.into(),
    }
}

/// Read the journal at `path` and [`walk`] it.
pub fn walk_file(path: &Path) -> Result<ChainWalk, ChainBreak> {
    let bytes = std::fs::read(path).map_err(|e| ChainBreak {
        kind: if e.kind() == std::io::ErrorKind::NotFound {
            BreakKind::Missing
        } else {
            BreakKind::Unreadable
        },
        line: None,
        message: format!("{}: {e}", path.display()),
    })?;
    walk(&bytes)
}

/// Check a journal's chain record by record, classifying the first break.
pub fn walk(bytes: &[u8]) -> Result<ChainWalk, ChainBreak> {
    let torn = bytes.last().is_some_and(|&b| b != b'\n');
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if !torn {
        lines.pop(); // after the final newline
    }
    let n = lines.len();
    let parsed: Vec<Result<JournalRecord, String>> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
        .collect();
    let hashes: Vec<String> = lines.iter().map(sha256_hex).collect();
    for p in 0..n {
        let line = p + 1;
        if torn && p == n - 1 {
            return Err(at(
                BreakKind::Truncated,
                line,
                "the last line is incomplete (no newline): a torn write, the journal was cut while a record was appended",
            ));
        }
        let record = parsed[p].as_ref().map_err(|e| {
            at(
                BreakKind::Malformed,
                line,
                format!("not a valid journal record, it was changed or corrupted ({e})"),
            )
        })?;
        let expected_prev = if p == 0 { GENESIS } else { &hashes[p - 1] };
        let link_ok = record.prev == expected_prev;
        let seq_ok = record.seq == p as u64;
        if seq_ok && link_ok {
            continue;
        }
        return Err(if link_ok {
            // Its link from the previous record holds, so this record's own
            // bytes (its seq) were changed.
            at(
                BreakKind::HashMismatch,
                line,
                format!(
                    "record changed after it was written: its seq says {}, its position is {p}",
                    record.seq
                ),
            )
        } else if !seq_ok {
            out_of_sequence(&parsed, p, record.seq)
        } else {
            broken_link(&parsed, &hashes, p, &record.prev)
        });
    }
    Ok(ChainWalk {
        records: parsed.into_iter().filter_map(Result::ok).collect(),
        hashes,
    })
}

/// Record `p` (0-based) carries `seq` where `p` was expected and its link
/// is broken: reordered, or records before it deleted.
fn out_of_sequence(parsed: &[Result<JournalRecord, String>], p: usize, seq: u64) -> ChainBreak {
    let line = p + 1;
    let p64 = p as u64;
    let later = (p + 1..parsed.len()).find(|&j| parsed[j].as_ref().is_ok_and(|r| r.seq == p64));
    match later {
        Some(j) => at(
            BreakKind::Reordered,
            line,
            format!(
                "records out of order: seq {seq} where {p} was expected; seq {p} is at record {}",
                j + 1
            ),
        ),
        None if seq > p64 => at(
            BreakKind::Deleted,
            line,
            format!(
                "{} record(s) missing before it: seq {seq} where {p} was expected",
                seq - p64
            ),
        ),
        None => at(
            BreakKind::Reordered,
            line,
            format!("seq {seq} appears again or out of place; {p} was expected"),
        ),
    }
}

/// Record `p` (0-based) is in sequence but its `prev` does not match the
/// record before it: blame whichever of the two was changed.
fn broken_link(
    parsed: &[Result<JournalRecord, String>],
    hashes: &[String],
    p: usize,
    prev: &str,
) -> ChainBreak {
    let line = p + 1;
    if p == 0 {
        return at(
            BreakKind::HashMismatch,
            line,
            format!("the first record's prev must be {GENESIS}, it is {prev}"),
        );
    }
    let next_link_broken = parsed
        .get(p + 1)
        .and_then(|r| r.as_ref().ok())
        .is_some_and(|next| next.prev != hashes[p]);
    if next_link_broken {
        at(
            BreakKind::HashMismatch,
            line,
            format!(
                "record changed after it was written: its prev is {prev}, record {p} hashes to {}",
                hashes[p - 1]
            ),
        )
    } else {
        at(
            BreakKind::HashMismatch,
            p,
            format!(
                "record changed after it was written: it hashes to {}, record {line} chains to {prev}",
                hashes[p - 1]
            ),
        )
    }
}
