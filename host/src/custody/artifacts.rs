//! The case's artifact store: `artifacts/<sha256>`, content-addressed,
//! written once (atomically, never rewritten). The sealed case and
//! `irhost verify` read it back by the sha256 the journal records.

use std::path::Path;

use crate::digest::sha256_hex;
use crate::runtime::bindings::Artifact;

/// Write an artifact's bytes under `artifacts/<sha256>` (content-addressed,
/// atomically, never rewriting an existing file) and replace the bytes by
/// their location, size and hash. A failed write is returned beside the
/// artifact (whose hash is still known) so it can be journaled.
pub fn store_artifact(dir: &Path, mut artifact: Artifact) -> (Artifact, Option<String>) {
    let Some(content) = artifact.content.take() else {
        return (artifact, None);
    };
    let sha256 = sha256_hex(&content);
    let path = dir.join(&sha256);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if path.exists() {
            return Ok(());
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &content)?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(&path).map(|_| ()).or_else(|e| {
            if path.exists() {
                Ok(())
            } else {
                Err(e.error)
            }
        })
    };
    artifact.size = Some(content.len() as u64);
    artifact.sha256 = Some(sha256.clone());
    artifact.location = format!("artifacts/{sha256}");
    let error = write().err().map(|e| e.to_string());
    (artifact, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::ArtifactKind;

    #[test]
    fn artifacts_are_content_addressed_and_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = Artifact {
            kind: ArtifactKind::ConfigDump,
            provider_id: "x".into(),
            location: String::new(),
            size: None,
            sha256: None,
            content: Some(b"hello".to_vec()),
            metadata: vec![],
        };
        let (stored, error) = store_artifact(dir.path(), artifact.clone());
        assert_eq!(error, None);
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(stored.sha256.as_deref(), Some(sha));
        assert_eq!(stored.location, format!("artifacts/{sha}"));
        assert!(stored.content.is_none());
        assert_eq!(std::fs::read(dir.path().join(sha)).unwrap(), b"hello");
        assert_eq!(store_artifact(dir.path(), artifact).1, None);
    }
}
