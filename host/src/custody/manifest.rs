//! The case manifest: what a seal covers (the journal's record count and
//! head hash, every artifact the journal records) and who sealed it, as
//! JSON, plus its detached Ed25519 signature (`.sig`: the 64-byte signature
//! of the manifest file's exact bytes, in hex, one line).

use serde::{Deserialize, Serialize};

use crate::events::RunEvent;
use crate::journal::JournalRecord;

/// The `format` of manifests this host writes.
pub const FORMAT: &str = "irhost-case-manifest/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub case: String,
    pub run_id: String,
    /// When the manifest was written (RFC 3339, UTC).
    pub sealed_at: String,
    /// `user@host` of the sealing process.
    pub sealed_by: String,
    pub journal: JournalSeal,
    pub artifacts: Vec<ManifestArtifact>,
    /// `None`: the case is unsigned (no signing key was given).
    pub signature: Option<SignatureInfo>,
}

/// The part of the journal a manifest covers: records `0..records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSeal {
    pub path: String,
    pub records: u64,
    /// sha256 of the last covered record's line.
    pub head: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureInfo {
    pub algorithm: String,
    /// sha256 of the raw 32-byte public key, hex.
    pub key_fingerprint: String,
    /// The raw public key, hex (so the signature can be checked without the
    /// key file; pin the key with `verify --key` to check *who* signed).
    pub public_key: String,
    /// The signature file, relative to the manifest's directory.
    pub file: String,
}

/// One artifact as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestArtifact {
    /// The journal record (`seq`) that recorded it.
    pub seq: u64,
    pub time: String,
    pub target: String,
    pub step: String,
    pub kind: String,
    pub provider_id: String,
    pub location: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// The bytes are in the case, at `artifacts/<sha256>`.
    pub stored: bool,
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
}

/// Every artifact recorded in `records`, in journal order.
pub fn artifacts_of(records: &[JournalRecord]) -> Vec<ManifestArtifact> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::ArtifactRecorded {
                target,
                step,
                kind,
                provider_id,
                location,
                size,
                sha256,
                stored,
                metadata,
            } => Some(ManifestArtifact {
                seq: r.seq,
                time: r.time.clone(),
                target: target.clone(),
                step: step.clone(),
                kind: kind.clone(),
                provider_id: provider_id.clone(),
                location: location.clone(),
                size: *size,
                sha256: sha256.clone(),
                stored: *stored,
                metadata: metadata.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The manifest file (relative to the case directory) of a seal covering
/// `records` journal records.
pub fn history_path(records: u64) -> String {
    format!("manifests/{records:08}.json")
}

/// `x.json` -> `x.sig`.
pub fn sig_path_of(json: &str) -> String {
    format!("{}.sig", json.strip_suffix(".json").unwrap_or(json))
}

/// Encode a signature file.
pub fn encode_signature(signature: &[u8; 64]) -> String {
    format!("{}\n", hex::encode(signature))
}

/// Decode a signature file.
pub fn decode_signature(text: &[u8]) -> Result<[u8; 64], String> {
    let text = std::str::from_utf8(text).map_err(|_| "not text".to_string())?;
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex ({e})"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, an Ed25519 signature is 64", b.len()))
}
