//! One writer per case: a [`CaseLock`] is an exclusive lock on
//! `cases/<case-id>/run.lock` (`flock` through [`std::fs::File::try_lock`]),
//! held for a whole run and released when it is dropped, when the process
//! exits, and by the kernel after a kill -9. The file names the run that
//! holds it, so a second writer is told who to wait for.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file of a case directory.
pub const LOCK_FILE: &str = "run.lock";

/// An exclusive hold on a case directory; dropping it releases the case.
#[derive(Debug)]
pub struct CaseLock {
    _file: File,
    path: PathBuf,
}

/// Why a case could not be locked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseLockError {
    /// Another run holds the case.
    #[error("case {case} is in use by {holder}: wait for it to finish, or use another case id")]
    Held {
        case: String,
        /// What the lock file says (`run <id> (pid <pid>)`), or `another run`.
        holder: String,
    },
    /// The case directory or its lock file could not be opened.
    #[error("{0}")]
    Io(String),
}

impl CaseLock {
    /// Lock `case_dir` (creating it) for the run `holder` names (say,
    /// `run <id>`), or say who holds it.
    pub fn acquire(case_dir: &Path, holder: &str) -> Result<CaseLock, CaseLockError> {
        let io = |e: std::io::Error| CaseLockError::Io(format!("{}: {e}", case_dir.display()));
        std::fs::create_dir_all(case_dir).map_err(io)?;
        let path = case_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let text = text.trim();
                return Err(CaseLockError::Held {
                    case: case_dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    holder: if text.is_empty() {
                        "another run".into()
                    } else {
                        text.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{holder} (pid {})", std::process::id())?;
            file.flush()
        };
        write(&mut file).map_err(io)?;
        Ok(CaseLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_has_one_holder_at_a_time_and_is_free_again_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let case = dir.path().join("IR-1");
        let first = CaseLock::acquire(&case, "run r1").unwrap();
        match CaseLock::acquire(&case, "run r2") {
            Err(CaseLockError::Held { case, holder }) => {
                assert_eq!(case, "IR-1");
                assert!(holder.starts_with("run r1 (pid "), "{holder}");
            }
            other => panic!("{other:?}"),
        }
        let message = CaseLock::acquire(&case, "run r2").unwrap_err().to_string();
        assert!(message.contains("run r1"), "{message}");
        drop(first);
        let again = CaseLock::acquire(&case, "run r3").unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(text.starts_with("run r3 (pid "), "{text}");
    }
}
