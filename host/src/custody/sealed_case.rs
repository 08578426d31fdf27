//! The sealed-case reader: what a seal sealed, read back with its bytes
//! (the manifest exactly as written, its `.sig` when signed, the journal as
//! of the seal, every stored artifact checked against its sha256), as the
//! inputs of the sealed phase.

use std::path::Path;

use super::manifest::{self, Manifest};
use super::Sealed;
use crate::digest::sha256_hex;
use crate::journal::chain;
use crate::runtime::bindings::{Artifact, ArtifactKind};

/// The provider of the synthetic target `case:<case-id>` the sealed phase
/// runs against, and of the sealed case's files.
pub const CASE_PROVIDER: &str = "case";

/// The sealed case with its bytes: what a sealed-phase step receives.
#[derive(Debug, Clone)]
pub struct SealedCase {
    /// Every file: the manifest (and its signature), the journal as
    /// sealed, every stored artifact.
    pub artifacts: Vec<Artifact>,
    /// A summary (case, manifest, records, head, signed, files, bytes).
    pub values: serde_json::Value,
    /// Bytes of all the files.
    pub total: u64,
    /// The largest file.
    pub largest: u64,
}

fn file_artifact(
    kind: ArtifactKind,
    provider_id: String,
    location: String,
    content: Vec<u8>,
    metadata: Vec<(String, String)>,
) -> Artifact {
    Artifact {
        kind,
        provider_id,
        location,
        size: Some(content.len() as u64),
        sha256: Some(sha256_hex(&content)),
        content: Some(content),
        metadata,
    }
}

/// Read what `seal` sealed in `case_dir`: the manifest file exactly as
/// written, its signature when signed, the journal's first `seal.records`
/// records, and every stored artifact the manifest lists (checked against
/// the sha256 it records).
pub fn read_sealed_case(case_dir: &Path, seal: &Sealed) -> Result<SealedCase, String> {
    let read = |relative: &str| {
        std::fs::read(case_dir.join(relative)).map_err(|e| format!("{relative}: {e}"))
    };
    let manifest_bytes = read(&seal.manifest)?;
    let parsed: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| format!("{}: not a manifest: {e}", seal.manifest))?;
    let case = parsed.case.clone();
    let records = parsed.journal.records;
    let common = |role: &str| {
        vec![
            ("role".to_string(), role.to_string()),
            ("case".to_string(), case.clone()),
            ("records".to_string(), records.to_string()),
        ]
    };
    let mut artifacts = Vec::new();
    let mut signed = false;
    if parsed.signature.is_some() {
        let sig = manifest::sig_path_of(&seal.manifest);
        let bytes = read(&sig)?;
        signed = true;
        artifacts.push(file_artifact(
            ArtifactKind::Other,
            format!("{CASE_PROVIDER}:{case}/{sig}"),
            sig,
            bytes,
            common("manifest-signature"),
        ));
    }
    artifacts.insert(
        0,
        file_artifact(
            ArtifactKind::Other,
            format!("{CASE_PROVIDER}:{case}/{}", seal.manifest),
            seal.manifest.clone(),
            manifest_bytes,
            common("manifest"),
        ),
    );

    // The journal as sealed: its first `records` lines, whose chain must
    // end at the head the manifest sealed.
    let journal = read("journal.jsonl")?;
    let end = journal_prefix(&journal, records)?;
    let head = chain::walk(&journal[..end])
        .map_err(|e| format!("journal.jsonl: {e}"))?
        .head();
    if head != parsed.journal.head {
        return Err(format!(
            "journal.jsonl: record {records} hashes to {head}, the manifest sealed {}",
            parsed.journal.head
        ));
    }
    artifacts.push(file_artifact(
        ArtifactKind::Other,
        format!("{CASE_PROVIDER}:{case}/journal.jsonl#{records}"),
        "journal.jsonl".into(),
        journal[..end].to_vec(),
        common("journal"),
    ));

    // Every stored artifact, once.
    let mut seen = std::collections::HashSet::new();
    for a in parsed.artifacts.iter().filter(|a| a.stored) {
        let Some(sha) = a.sha256.clone() else {
            continue;
        };
        if !seen.insert(sha.clone()) {
            continue;
        }
        let bytes = read(&a.location)?;
        let actual = sha256_hex(&bytes);
        if actual != sha {
            return Err(format!(
                "{}: hashes to {actual}, the manifest records {sha} (the case changed after it was sealed; run `irhost verify`)",
                a.location
            ));
        }
        let mut metadata = a.metadata.clone();
        metadata.extend([
            ("role".to_string(), "artifact".to_string()),
            ("step".to_string(), a.step.clone()),
            ("target".to_string(), a.target.clone()),
            ("seq".to_string(), a.seq.to_string()),
        ]);
        artifacts.push(file_artifact(
            ArtifactKind::parse(&a.kind),
            a.provider_id.clone(),
            a.location.clone(),
            bytes,
            metadata,
        ));
    }
    let sizes = artifacts.iter().map(|a| a.size.unwrap_or(0));
    let total = sizes.clone().sum();
    let largest = sizes.max().unwrap_or(0);
    Ok(SealedCase {
        values: serde_json::json!({
            "case": case,
            "manifest": seal.manifest,
            "records": records,
            "head": parsed.journal.head,
            "signed": signed,
            "key_fingerprint": seal.key_fingerprint,
            "files": artifacts.len(),
            "bytes": total,
        }),
        artifacts,
        total,
        largest,
    })
}

/// The length of the first `records` lines of a journal.
fn journal_prefix(journal: &[u8], records: u64) -> Result<usize, String> {
    let mut end = 0usize;
    for _ in 0..records {
        let next = journal[end..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("journal.jsonl has fewer than the {records} records sealed"))?;
        end += next + 1;
    }
    Ok(end)
}
