//! Chain of custody of a case directory: sealing it with a (signed)
//! manifest at the end of every run, and checking, showing and exporting
//! it afterwards.
//!
//! Case layout (`cases/<case-id>/`), nothing of which is rewritten in place:
//!
//! - `journal.jsonl` — the hash-chained journal ([`crate::journal`]);
//! - `artifacts/<sha256>` — content-addressed artifact bytes;
//! - `manifests/<NNNNNNNN>.json` + `.sig` — one manifest per seal, named by
//!   the number of journal records it covers, written once (never
//!   replaced);
//! - `manifest.json` + `manifest.sig` — a copy of the latest seal, replaced
//!   atomically (write a temporary file, rename) at each seal. An unsigned
//!   seal removes a stale `manifest.sig`.
//!
//! Modules: [`artifacts`] (the artifact store), [`keys`] (Ed25519 key
//! files), [`manifest`] (the manifest format), [`sealed_case`] (what a
//! seal sealed, read back for the sealed phase), [`verify`] (`irhost
//! verify`), [`timeline`] (`irhost case show`), [`export`] (`irhost case
//! export`).

pub mod artifacts;
pub mod export;
pub mod keys;
pub mod manifest;
pub mod sealed_case;
pub mod timeline;
pub mod verify;

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::events::RunEvent;
use crate::journal::CaseJournal;
use keys::SigningKey;
use manifest::{JournalSeal, Manifest, SignatureInfo};

/// What a seal wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Sealed {
    /// The immutable manifest, relative to the case directory.
    pub manifest: String,
    pub records: u64,
    pub head: String,
    pub artifacts: usize,
    pub signed: bool,
    pub key_fingerprint: Option<String>,
}

/// The message of an unsigned seal.
pub const UNSIGNED_NOTE: &str =
    "the case is UNSIGNED: no signing key was given (--signing-key FILE or IRHOST_SIGNING_KEY)";

/// `user@host` of this process.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| uid().map_or_else(|| "unknown".into(), |u| format!("uid {u}")));
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

#[cfg(unix)]
fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn uid() -> Option<u32> {
    None
}

/// Seal a case at the end of a run: journal a `case_sealed` record (through
/// `emit`, so observers see it), then write a manifest covering the whole
/// journal up to and including that record, signed when `key` is given.
pub fn seal_case(
    case_dir: &Path,
    run_id: &str,
    journal: &CaseJournal,
    key: Option<&SigningKey>,
    emit: impl Fn(RunEvent),
) -> anyhow::Result<Sealed> {
    let records = journal.records() + 1;
    let manifest_path = manifest::history_path(records);
    let fingerprint = key.map(|k| k.public().fingerprint());
    let sealed_by = operator();
    emit(RunEvent::CaseSealed {
        run_id: run_id.to_string(),
        manifest: manifest_path.clone(),
        signed: key.is_some(),
        key_fingerprint: fingerprint.clone(),
        sealed_by: sealed_by.clone(),
        note: key.is_none().then(|| UNSIGNED_NOTE.to_string()),
    });
    journal.sync()?;
    // Never seal a chain that does not verify.
    let scan =
        crate::journal::chain::walk_file(journal.path()).map_err(|b| anyhow::anyhow!("{b}"))?;
    if scan.len() != records {
        anyhow::bail!(
            "the journal has {} records, {records} expected: was it written concurrently?",
            scan.len()
        );
    }
    let case = scan
        .records
        .last()
        .map(|r| r.case.clone())
        .unwrap_or_default();
    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        case,
        run_id: run_id.into(),
        sealed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        sealed_by,
        journal: JournalSeal {
            path: "journal.jsonl".into(),
            records,
            head: scan.head(),
        },
        artifacts: manifest::artifacts_of(&scan.records),
        signature: key.map(|k| SignatureInfo {
            algorithm: "ed25519".into(),
            key_fingerprint: k.public().fingerprint(),
            public_key: k.public().to_hex(),
            file: "manifest.sig".into(),
        }),
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest)?;
    bytes.push(b'\n');
    let signature = key.map(|k| manifest::encode_signature(&k.sign(&bytes)));

    let dir = case_dir.join("manifests");
    std::fs::create_dir_all(&dir)?;
    write_new(&case_dir.join(&manifest_path), &bytes)?;
    if let Some(sig) = &signature {
        write_new(
            &case_dir.join(manifest::sig_path_of(&manifest_path)),
            sig.as_bytes(),
        )?;
    }
    sync_dir(&dir);
    // The latest seal, replaced by rename.
    replace(&case_dir.join("manifest.json"), &bytes)?;
    match &signature {
        Some(sig) => replace(&case_dir.join("manifest.sig"), sig.as_bytes())?,
        None => match std::fs::remove_file(case_dir.join("manifest.sig")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        },
    }
    sync_dir(case_dir);
    Ok(Sealed {
        manifest: manifest_path,
        records,
        head: manifest.journal.head,
        artifacts: manifest.artifacts.len(),
        signed: key.is_some(),
        key_fingerprint: fingerprint,
    })
}

/// Create `path` with `bytes`, durably, failing if it exists.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

/// Replace `path` with `bytes` atomically (rename over it).
fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
