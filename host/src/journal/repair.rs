//! Cutting a torn final line off a journal: a power cut or a full disk
//! while a record was appended leaves a last line without its newline,
//! which no verifier accepts and no run could append after. The torn bytes
//! are kept beside the journal (`torn/`), the file is cut back to its last
//! whole record, and the caller journals a `repair` record naming what was
//! removed, so the chain continues from that record. Sealed records are
//! never touched: a seal covers whole records, all before the torn line.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::chain;
use crate::digest::sha256_hex;

/// What a cut removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub removed_bytes: u64,
    pub removed_sha256: String,
    /// Whole records kept (the chain continues after the last of them).
    pub records_kept: u64,
    /// Where the removed bytes were kept.
    pub saved_as: PathBuf,
}

/// Cut a torn last line off the journal at `path`, if it has one and is
/// whole before it. `Ok(None)`: nothing torn. `Err`: the journal is broken
/// before its last line too (the caller refuses it, as any broken chain).
pub fn cut_torn_tail(path: &Path) -> Result<Option<TornTail>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(None);
    }
    let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let (whole, torn) = bytes.split_at(cut);
    let walk = chain::walk(whole)
        .map_err(|e| format!("the journal is broken before its torn last line: {e}"))?;
    let removed_sha256 = sha256_hex(torn);
    let dir = path
        .parent()
        .map(|p| p.join("torn"))
        .unwrap_or_else(|| PathBuf::from("torn"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let saved_as = dir.join(format!(
        "journal-after-{}-{}.torn",
        walk.len(),
        &removed_sha256[..16]
    ));
    let keep = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&saved_as)?;
        file.write_all(torn)?;
        file.sync_all()
    };
    keep().map_err(|e| format!("{}: {e}", saved_as.display()))?;
    let cut_file = || -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(cut as u64)?;
        file.sync_all()
    };
    cut_file().map_err(|e| format!("{}: cutting the torn line: {e}", path.display()))?;
    Ok(Some(TornTail {
        removed_bytes: torn.len() as u64,
        removed_sha256,
        records_kept: walk.len(),
        saved_as,
    }))
}
