//! `irhost case export`: bundle a case directory into one tar file for
//! hand-off. The bundle holds `<case-id>/` with the journal, the latest and
//! every earlier manifest and signature, and the stored artifacts (files
//! named by a sha256); anything else in the directory (temporary files) is
//! left out. Entries are sorted and carry the files' modes and mtimes.
//! `irhost verify` works on the unpacked bundle.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::digest::is_sha256;

#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub file: String,
    pub files: usize,
    pub bytes: u64,
    /// sha256 of the tar file, to record at hand-off.
    pub sha256: String,
}

/// The files of a case that belong in a bundle, relative, sorted.
pub fn case_files(case_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    for name in ["journal.jsonl", "manifest.json", "manifest.sig"] {
        if case_dir.join(name).is_file() {
            files.push(name.to_string());
        }
    }
    for (dir, keep) in [
        (
            "manifests",
            (|n: &str| n.ends_with(".json") || n.ends_with(".sig")) as fn(&str) -> bool,
        ),
        ("artifacts", is_sha256 as fn(&str) -> bool),
    ] {
        let Ok(entries) = std::fs::read_dir(case_dir.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = Vec::new();
        for e in entries {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if keep(&name) && e.file_type()?.is_file() {
                names.push(format!("{dir}/{name}"));
            }
        }
        names.sort();
        files.extend(names);
    }
    Ok(files)
}

/// Write the bundle of `case_dir` to `out` (atomically: a temporary file
/// renamed into place).
pub fn export(case_dir: &Path, out: &Path) -> anyhow::Result<Exported> {
    let case_dir = case_dir.canonicalize()?;
    let root = case_dir
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{}: not a case directory", case_dir.display()))?
        .to_string_lossy()
        .into_owned();
    let files = case_files(&case_dir)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(parent)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(tmp.reopen()?));
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let mut bytes = 0u64;
    for rel in &files {
        let path = case_dir.join(rel);
        bytes += std::fs::metadata(&path)?.len();
        builder.append_path_with_name(&path, format!("{root}/{rel}"))?;
    }
    let mut writer = builder.into_inner()?;
    writer.flush()?;
    writer.get_ref().sync_all()?;
    drop(writer);
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(tmp.path())?, &mut hasher)?;
    tmp.persist(out)
        .map_err(|e| anyhow::anyhow!("{}: {}", out.display(), e.error))?;
    Ok(Exported {
        file: out.display().to_string(),
        files: files.len(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}
