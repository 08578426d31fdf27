//! When a journal record reaches stable storage: the journal's durability
//! policy. Every record is written to the file (the OS) before the next one;
//! what the policy decides is when it is synced to the disk:
//!
//! - `record`: `fdatasync` after every record, before the next can be
//!   written (a crash loses nothing that was journaled);
//! - `group` (the default, `group:64:10`): group commit by a flusher thread,
//!   which syncs at most 10 ms after a record was written, or at once when 64
//!   records wait; a crash (power loss) loses at most that window, and the
//!   steps whose outcomes are lost run again on `irhost resume` (plugins
//!   are idempotent). A failed sync fails the next append.
//!
//! `IRHOST_JOURNAL_SYNC=record|group|group:RECORDS:MILLIS` chooses; the
//! manifest and artifacts are synced when written, and the journal is
//! synced whole before it is sealed, whatever the policy.
//! BENCHMARKS.md has what each costs on this machine
//! (`cargo bench -p irhost --bench journal`).

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The journal's durability policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Sync after every record.
    EveryRecord,
    /// Group commit: sync within `max_delay` of a write, or when
    /// `max_records` wait.
    Grouped {
        max_records: u32,
        max_delay: Duration,
    },
}

impl Default for Durability {
    fn default() -> Self {
        Durability::Grouped {
            max_records: 64,
            max_delay: Duration::from_millis(10),
        }
    }
}

impl Durability {
    /// The policy `IRHOST_JOURNAL_SYNC` names (the default when unset).
    pub fn from_env() -> Result<Durability, String> {
        match std::env::var("IRHOST_JOURNAL_SYNC") {
            Err(_) => Ok(Durability::default()),
            Ok(text) => {
                Durability::parse(&text).map_err(|e| format!("IRHOST_JOURNAL_SYNC={text}: {e}"))
            }
        }
    }

    /// `record`, `group` or `group:RECORDS:MILLIS`.
    pub fn parse(text: &str) -> Result<Durability, String> {
        let bad = || {
            "write `record`, `group` or `group:RECORDS:MILLIS` (RECORDS 1-100000, MILLIS 1-1000)"
                .to_string()
        };
        match text.trim() {
            "record" => Ok(Durability::EveryRecord),
            "group" => Ok(Durability::default()),
            other => {
                let mut parts = other.split(':');
                let (Some("group"), Some(records), Some(millis), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                let records: u32 = records.parse().map_err(|_| bad())?;
                let millis: u64 = millis.parse().map_err(|_| bad())?;
                if !(1..=100_000).contains(&records) || !(1..=1000).contains(&millis) {
                    return Err(bad());
                }
                Ok(Durability::Grouped {
                    max_records: records,
                    max_delay: Duration::from_millis(millis),
                })
            }
        }
    }
}

#[derive(Default)]
struct Pending {
    records: u32,
    since: Option<Instant>,
    stop: bool,
    error: Option<String>,
}

/// Syncs one journal file by its policy.
pub(super) struct Syncer {
    policy: Durability,
    shared: Arc<(Mutex<Pending>, Condvar)>,
    flusher: Option<JoinHandle<()>>,
}

impl Syncer {
    /// `file` is a handle of the journal (syncing any handle syncs the file).
    pub(super) fn new(policy: Durability, file: File) -> std::io::Result<Syncer> {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let flusher = match policy {
            Durability::EveryRecord => None,
            Durability::Grouped {
                max_records,
                max_delay,
            } => {
                let shared = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name("irhost-journal-sync".into())
                        .spawn(move || flush(&shared, &file, max_records, max_delay))?,
                )
            }
        };
        Ok(Syncer {
            policy,
            shared,
            flusher,
        })
    }

    /// A record was just written to `file` (the journal's append handle).
    pub(super) fn written(&self, file: &File) -> std::io::Result<()> {
        if self.policy == Durability::EveryRecord {
            return file.sync_data();
        }
        let (lock, wake) = &*self.shared;
        let mut pending = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(error) = pending.error.take() {
            return Err(std::io::Error::other(format!(
                "an earlier sync of the journal failed: {error}"
            )));
        }
        pending.records += 1;
        pending.since.get_or_insert_with(Instant::now);
        wake.notify_one();
        Ok(())
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

/// The flusher: wait for a record, then for the group to fill or its time
/// to pass, sync, again; what waits when it is stopped is synced first.
fn flush(shared: &(Mutex<Pending>, Condvar), file: &File, max_records: u32, max_delay: Duration) {
    let (lock, wake) = shared;
    let mut pending = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        while pending.records == 0 && !pending.stop {
            pending = wake.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
        if pending.records == 0 {
            return;
        }
        let deadline = pending.since.unwrap_or_else(Instant::now) + max_delay;
        while pending.records < max_records && !pending.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            pending = wake
                .wait_timeout(pending, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        pending.records = 0;
        pending.since = None;
        drop(pending);
        let result = file.sync_data();
        pending = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = result {
            pending.error = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_named_and_bounded() {
        assert_eq!(Durability::parse("record"), Ok(Durability::EveryRecord));
        assert_eq!(Durability::parse("group"), Ok(Durability::default()));
        assert_eq!(
            Durability::parse("group:8:2"),
            Ok(Durability::Grouped {
                max_records: 8,
                max_delay: Duration::from_millis(2)
            })
        );
        for bad in [
            "",
            "always",
            "group:0:10",
            "group:64",
            "group:64:5000",
            "group:a:b",
        ] {
            assert!(Durability::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_group_is_synced_within_its_delay_and_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("j")).unwrap();
        let syncer = Syncer::new(
            Durability::Grouped {
                max_records: 1000,
                max_delay: Duration::from_millis(5),
            },
            file.try_clone().unwrap(),
        )
        .unwrap();
        syncer.written(&file).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(syncer.shared.0.lock().unwrap().records, 0, "synced by now");
        syncer.written(&file).unwrap();
        drop(syncer);
    }
}
