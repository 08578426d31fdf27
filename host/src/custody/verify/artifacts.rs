//! The stored artifacts of a case: each one's size and sha256 against the
//! manifest, hashed on all cores.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{problem, Problem, ProblemKind, Report};
use crate::custody::manifest::ManifestArtifact;
use crate::digest::is_sha256;

/// Check size and sha256 of every stored artifact, hashing on all cores;
/// the first failure in journal order is reported.
pub(super) fn check_artifacts(
    case_dir: &Path,
    artifacts: &[ManifestArtifact],
    report: &mut Report,
) -> Result<(), Problem> {
    let mut seen = std::collections::HashSet::new();
    let mut stored: Vec<&ManifestArtifact> = Vec::new();
    for a in artifacts.iter().filter(|a| a.stored) {
        let sha = a.sha256.as_deref().unwrap_or_default();
        let subject = format!("artifact {}", a.provider_id);
        if !is_sha256(sha) {
            return Err(problem(
                ProblemKind::Malformed,
                subject,
                format!("recorded at record {} without a valid sha256", a.seq + 1),
            ));
        }
        if a.location != format!("artifacts/{sha}") {
            return Err(problem(
                ProblemKind::ManifestMismatch,
                subject,
                format!("location {} is not artifacts/{sha}", a.location),
            ));
        }
        if seen.insert(sha) {
            stored.push(a);
        }
    }
    let results: Vec<Mutex<Option<Result<u64, Problem>>>> =
        stored.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(stored.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(a) = stored.get(i) else { break };
                let r = check_artifact(case_dir, a);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    for r in results {
        let r = r.into_inner().unwrap_or_else(|p| p.into_inner());
        let size = r.expect("every artifact was checked")?;
        report.artifacts_checked += 1;
        report.artifact_bytes += size;
    }
    Ok(())
}

fn check_artifact(case_dir: &Path, a: &ManifestArtifact) -> Result<u64, Problem> {
    let sha = a.sha256.as_deref().unwrap_or_default();
    let fail = |kind: ProblemKind, message: String| Problem {
        artifact: Some(sha.to_string()),
        record: Some(a.seq + 1),
        ..problem(
            kind,
            format!("artifact {sha}"),
            format!(
                "{message} ({} {} from step {} on {}, record {})",
                a.kind,
                a.provider_id,
                a.step,
                a.target,
                a.seq + 1
            ),
        )
    };
    let path = case_dir.join("artifacts").join(sha);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                ProblemKind::MissingFile,
                format!("artifacts/{sha} is missing"),
            ))
        }
        Err(e) => return Err(fail(ProblemKind::Io, format!("artifacts/{sha}: {e}"))),
    };
    if !meta.is_file() {
        return Err(fail(
            ProblemKind::MissingFile,
            format!("artifacts/{sha} is not a regular file"),
        ));
    }
    if let Some(size) = a.size {
        if meta.len() != size {
            return Err(fail(
                ProblemKind::SizeMismatch,
                format!(
                    "artifacts/{sha} is {} bytes, {size} were recorded",
                    meta.len()
                ),
            ));
        }
    }
    let mut file = std::fs::File::open(&path)
        .map_err(|e| fail(ProblemKind::Io, format!("artifacts/{sha}: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| fail(ProblemKind::Io, format!("artifacts/{sha}: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let got = hex::encode(hasher.finalize());
    if got != sha {
        return Err(fail(
            ProblemKind::HashMismatch,
            format!("the content hashes to {got}, it was changed"),
        ));
    }
    Ok(total)
}
