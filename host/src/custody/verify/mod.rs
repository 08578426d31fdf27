//! `irhost verify`: checks a case directory offline and names the first
//! thing that does not hold — the journal's hash chain record by record
//! (modified, deleted, reordered, truncated or torn records), the latest
//! manifest's signature (against a pinned key, or the key it embeds), that
//! the manifest matches the journal (record count, head hash, the seal
//! record, the artifact list), every stored artifact's size and sha256, and
//! every earlier manifest under `manifests/` against the journal prefix it
//! sealed.

mod artifacts;
mod signature;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::keys::PublicKey;
use super::manifest::{self, Manifest};
use crate::events::RunEvent;
use crate::journal::chain::{self, BreakKind, ChainBreak, ChainWalk};
use artifacts::check_artifacts;
use signature::check_signed;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    HashMismatch,
    Malformed,
    Truncated,
    Reordered,
    Deleted,
    MissingFile,
    SizeMismatch,
    BadSignature,
    WrongKey,
    ManifestMismatch,
    NotSealed,
    Io,
}

impl ProblemKind {
    pub fn words(self) -> &'static str {
        match self {
            ProblemKind::HashMismatch => "hash mismatch",
            ProblemKind::Malformed => "malformed",
            ProblemKind::Truncated => "truncated",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Deleted => "deleted",
            ProblemKind::MissingFile => "missing file",
            ProblemKind::SizeMismatch => "size mismatch",
            ProblemKind::BadSignature => "bad signature",
            ProblemKind::WrongKey => "wrong key",
            ProblemKind::ManifestMismatch => "manifest does not match the journal",
            ProblemKind::NotSealed => "not sealed",
            ProblemKind::Io => "unreadable",
        }
    }
}

/// The first thing found broken.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// `record N` (1-based line), `artifact <sha256>`, or a file name.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.subject,
            self.kind.words(),
            self.message
        )
    }
}

impl std::error::Error for Problem {}

fn problem(kind: ProblemKind, subject: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        kind,
        subject: subject.into(),
        record: None,
        artifact: None,
        message: message.into(),
    }
}

fn record_problem(kind: ProblemKind, line: u64, message: impl Into<String>) -> Problem {
    Problem {
        record: Some(line),
        ..problem(kind, format!("record {line}"), message)
    }
}

/// The first break of a journal's chain as a problem of the case.
fn chain_problem(broken: ChainBreak) -> Problem {
    let kind = match broken.kind {
        BreakKind::Missing => ProblemKind::MissingFile,
        BreakKind::Unreadable => ProblemKind::Io,
        BreakKind::Malformed => ProblemKind::Malformed,
        BreakKind::Truncated => ProblemKind::Truncated,
        BreakKind::HashMismatch => ProblemKind::HashMismatch,
        BreakKind::Reordered => ProblemKind::Reordered,
        BreakKind::Deleted => ProblemKind::Deleted,
    };
    match broken.line {
        Some(line) => record_problem(kind, line, broken.message),
        None => problem(kind, "journal.jsonl", broken.message),
    }
}

/// The outcome of `irhost verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub case_dir: PathBuf,
    pub ok: bool,
    pub case: Option<String>,
    pub records: u64,
    pub head: Option<String>,
    /// Stored artifacts whose bytes were checked.
    pub artifacts_checked: usize,
    pub artifact_bytes: u64,
    /// Artifacts in the manifest, references included.
    pub artifacts_listed: usize,
    pub signed: bool,
    pub key_fingerprint: Option<String>,
    /// The signature was checked against a key given with `--key`.
    pub key_pinned: bool,
    pub manifests: usize,
    pub problem: Option<Problem>,
    pub notes: Vec<String>,
}

/// Verify a case directory. `pinned`: the public key that must have
/// signed the latest manifest.
pub fn verify_case(case_dir: &Path, pinned: Option<&PublicKey>) -> Report {
    let mut report = Report {
        case_dir: case_dir.to_path_buf(),
        ok: false,
        case: None,
        records: 0,
        head: None,
        artifacts_checked: 0,
        artifact_bytes: 0,
        artifacts_listed: 0,
        signed: false,
        key_fingerprint: None,
        key_pinned: pinned.is_some(),
        manifests: 0,
        problem: None,
        notes: Vec::new(),
    };
    match check(case_dir, pinned, &mut report) {
        Ok(()) => report.ok = true,
        Err(p) => report.problem = Some(p),
    }
    report
}

fn read_optional(path: &Path, subject: &str) -> Result<Option<Vec<u8>>, Problem> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(problem(ProblemKind::Io, subject, e.to_string())),
    }
}

/// Check a manifest against the journal prefix it claims to seal.
fn check_against_journal(
    subject: &str,
    m: &Manifest,
    scan: &ChainWalk,
    latest: bool,
) -> Result<(), Problem> {
    let mismatch = |msg: String| problem(ProblemKind::ManifestMismatch, subject, msg);
    if m.format != manifest::FORMAT {
        return Err(problem(
            ProblemKind::Malformed,
            subject,
            format!("unknown format {:?}", m.format),
        ));
    }
    let sealed = m.journal.records;
    let have = scan.len();
    if sealed > have {
        return Err(problem(
            ProblemKind::Truncated,
            "journal.jsonl",
            format!(
                "{subject} seals {sealed} records, the journal has {have}: records {}..{sealed} are missing",
                have + 1
            ),
        ));
    }
    if sealed == 0 {
        return Err(mismatch("it seals no records".into()));
    }
    if scan.head_at(sealed) != m.journal.head {
        return Err(record_problem(
            ProblemKind::HashMismatch,
            sealed,
            format!(
                "record changed after it was sealed: it hashes to {}, {subject} sealed {}",
                scan.head_at(sealed),
                m.journal.head
            ),
        ));
    }
    if latest && sealed < have {
        return Err(problem(
            ProblemKind::NotSealed,
            "journal.jsonl",
            format!(
                "records {}..{have} were written after the last seal ({subject} seals {sealed}): an interrupted run, or records appended later",
                sealed + 1
            ),
        ));
    }
    let covered = &scan.records[..sealed as usize];
    let last = &covered[covered.len() - 1];
    if last.case != m.case {
        return Err(mismatch(format!(
            "case {:?}, the journal's is {:?}",
            m.case, last.case
        )));
    }
    match &last.event {
        RunEvent::CaseSealed {
            manifest: path,
            signed,
            key_fingerprint,
            run_id,
            ..
        } => {
            if *path != manifest::history_path(sealed) {
                return Err(mismatch(format!(
                    "the seal record names {path}, expected {}",
                    manifest::history_path(sealed)
                )));
            }
            let m_fp = m.signature.as_ref().map(|s| &s.key_fingerprint);
            if *signed != m.signature.is_some() || key_fingerprint.as_ref() != m_fp {
                return Err(mismatch(format!(
                    "the journal's seal record says {}, the manifest says {}",
                    signer_words(key_fingerprint.as_deref()),
                    signer_words(m_fp.map(String::as_str))
                )));
            }
            if *run_id != m.run_id {
                return Err(mismatch(format!(
                    "run {}, the seal record's is {run_id}",
                    m.run_id
                )));
            }
        }
        _ => {
            return Err(mismatch(format!(
                "record {sealed}, the last it seals, is not a case_sealed record"
            )))
        }
    }
    let expected = manifest::artifacts_of(covered);
    for (i, (want, got)) in expected.iter().zip(&m.artifacts).enumerate() {
        if want != got {
            return Err(mismatch(format!(
                "artifact #{} differs: the journal (record {}) has {} {} sha256 {:?}, the manifest has {} {} sha256 {:?}",
                i + 1,
                want.seq + 1,
                want.kind,
                want.provider_id,
                want.sha256,
                got.kind,
                got.provider_id,
                got.sha256
            )));
        }
    }
    if expected.len() != m.artifacts.len() {
        return Err(mismatch(format!(
            "the journal records {} artifacts, the manifest lists {}",
            expected.len(),
            m.artifacts.len()
        )));
    }
    Ok(())
}

fn signer_words(fp: Option<&str>) -> String {
    match fp {
        Some(fp) => format!("signed by {fp}"),
        None => "unsigned".into(),
    }
}

fn check(case_dir: &Path, pinned: Option<&PublicKey>, report: &mut Report) -> Result<(), Problem> {
    if !case_dir.is_dir() {
        return Err(problem(
            ProblemKind::MissingFile,
            case_dir.display().to_string(),
            "not a case directory",
        ));
    }
    // 1. The journal's chain, record by record.
    let scan = chain::walk_file(&case_dir.join("journal.jsonl")).map_err(chain_problem)?;
    report.records = scan.len();
    report.head = Some(scan.head());
    report.case = scan.records.first().map(|r| r.case.clone());

    // 2. The latest manifest's signature.
    let bytes =
        read_optional(&case_dir.join("manifest.json"), "manifest.json")?.ok_or_else(|| {
            problem(
                ProblemKind::MissingFile,
                "manifest.json",
                "the case has no manifest: it was never sealed, or the manifest was deleted",
            )
        })?;
    let sig = read_optional(&case_dir.join("manifest.sig"), "manifest.sig")?;
    let latest = check_signed("manifest.json", &bytes, sig.as_deref(), pinned)?;
    report.signed = latest.signer.is_some();
    report.key_fingerprint = latest.signer.as_ref().map(PublicKey::fingerprint);
    match (&latest.signer, pinned) {
        (None, _) => report.notes.push(super::UNSIGNED_NOTE.replace(
            "no signing key was given",
            "it was sealed without a signing key",
        )),
        (Some(k), None) => report.notes.push(format!(
            "key not pinned: the signature verifies with the key the manifest embeds ({}); pass --key PUBKEY to check who signed",
            k.fingerprint()
        )),
        (Some(_), Some(_)) => {}
    }

    // 3. The manifest against the journal, and against its immutable copy.
    let m = &latest.manifest;
    report.artifacts_listed = m.artifacts.len();
    check_against_journal("manifest.json", m, &scan, true)?;
    let history = manifest::history_path(m.journal.records);
    let copy = read_optional(&case_dir.join(&history), &history)?.ok_or_else(|| {
        problem(
            ProblemKind::MissingFile,
            &history,
            "the immutable copy of manifest.json is missing",
        )
    })?;
    if copy != bytes {
        return Err(problem(
            ProblemKind::ManifestMismatch,
            "manifest.json",
            format!("differs from its immutable copy {history}"),
        ));
    }
    let history_sig = manifest::sig_path_of(&history);
    if read_optional(&case_dir.join(&history_sig), &history_sig)? != sig {
        return Err(problem(
            ProblemKind::ManifestMismatch,
            "manifest.sig",
            format!("differs from its immutable copy {history_sig}"),
        ));
    }

    // 4. Every stored artifact's bytes.
    check_artifacts(case_dir, &m.artifacts, report)?;

    // 5. Earlier seals, each against the journal prefix it covers.
    let mut names: Vec<String> = match std::fs::read_dir(case_dir.join("manifests")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect(),
        Err(e) => return Err(problem(ProblemKind::Io, "manifests", e.to_string())),
    };
    names.sort();
    report.manifests = names.len();
    for name in names {
        let subject = format!("manifests/{name}");
        if subject == history {
            continue;
        }
        let bytes = read_optional(&case_dir.join(&subject), &subject)?.unwrap_or_default();
        let sig_subject = manifest::sig_path_of(&subject);
        let sig = read_optional(&case_dir.join(&sig_subject), &sig_subject)?;
        let checked = check_signed(&subject, &bytes, sig.as_deref(), None)?;
        if manifest::history_path(checked.manifest.journal.records) != subject {
            return Err(problem(
                ProblemKind::ManifestMismatch,
                &subject,
                format!(
                    "it seals {} records; its name says otherwise",
                    checked.manifest.journal.records
                ),
            ));
        }
        check_against_journal(&subject, &checked.manifest, &scan, false)?;
    }

    // Files nobody recorded are reported, not fatal.
    if let Ok(dir) = std::fs::read_dir(case_dir.join("artifacts")) {
        let known: std::collections::HashSet<&str> = m
            .artifacts
            .iter()
            .filter_map(|a| a.sha256.as_deref())
            .collect();
        let mut stray: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !known.contains(n.as_str()))
            .collect();
        stray.sort();
        for name in stray {
            report.notes.push(format!(
                "artifacts/{name} is not recorded in the journal (ignored)"
            ));
        }
    }
    Ok(())
}
