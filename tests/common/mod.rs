//! Shared helpers of the integration tests: the real `irhost` binary, the
//! real plugin components from `plugins/dist/` (built by
//! `scripts/build-plugins`), scratch case directories and journal readers.
#![allow(dead_code)]

pub mod azurite;
pub mod fake_arm;
pub mod memory_tool;
pub mod moto;
pub mod net;
pub mod sink;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use irhost::events::RunEvent;
use irhost::journal::{self, JournalRecord};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A built plugin component; fails loudly when the plugins were not built.
pub fn plugin(name: &str) -> PathBuf {
    let path = repo_root()
        .join("plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins (the README's test command does)",
        path.display()
    );
    path
}

/// The test provider as built against `irhost:plugin@0.1.0` (committed:
/// the host must keep running components of the old contract).
pub fn fixture_v0_1() -> PathBuf {
    repo_root().join("tests/fixtures/test-provider-0.1.0.wasm")
}

/// A scratch directory with its own cases dir and component cache.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cases(&self) -> PathBuf {
        self.dir.path().join("cases")
    }

    /// Write a playbook; `{test}`, `{notify}`, `{hostile}` and `{vault}`
    /// become plugin paths, `{test_v0_1}` the committed 0.1.0 component.
    pub fn playbook(&self, name: &str, text: &str) -> PathBuf {
        let mut text = text
            .replace("{test_v0_1}", fixture_v0_1().to_str().unwrap())
            .replace("{test}", plugin("test-provider").to_str().unwrap())
            .replace("{notify}", plugin("example-step").to_str().unwrap())
            .replace("{hostile}", plugin("hostile").to_str().unwrap());
        if text.contains("{vault}") {
            text = text.replace("{vault}", plugin("s3-evidence-vault").to_str().unwrap());
        }
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Run the real binary with this workspace's cases and cache dirs.
    pub fn irhost(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_irhost"))
            .args(args)
            .current_dir(self.dir.path())
            .env("IRHOST_CASES_DIR", self.cases())
            .env("IRHOST_CACHE_DIR", shared_cache())
            .env_remove("RUST_LOG")
            .env_remove("IRHOST_SIGNING_KEY")
            .output()
            .unwrap()
    }

    pub fn journal(&self, case: &str) -> Vec<JournalRecord> {
        let path = self.cases().join(case).join("journal.jsonl");
        let report = journal::chain::walk_file(&path).expect("journal hash chain verifies");
        let records = journal::read_records(&path).unwrap();
        assert_eq!(report.len() as usize, records.len());
        records
    }
}

/// Component cache shared by the tests of one run (they compile the same plugins).
pub fn shared_cache() -> PathBuf {
    std::env::temp_dir().join(format!("irhost-test-cache-{}", std::process::id()))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn events(records: &[JournalRecord]) -> Vec<&RunEvent> {
    records.iter().map(|r| &r.event).collect()
}

/// The `step_finished` event of `step` on `target`.
pub fn finished<'a>(records: &'a [JournalRecord], target: &str, step: &str) -> &'a RunEvent {
    records
        .iter()
        .map(|r| &r.event)
        .find(|e| matches!(e, RunEvent::StepFinished { target: t, step: s, .. } if t == target && s == step))
        .unwrap_or_else(|| panic!("no step_finished for {target}/{step}"))
}

/// How `step` on `target` ended.
pub fn step_status(records: &[JournalRecord], target: &str, step: &str) -> irhost::events::Status {
    match finished(records, target, step) {
        RunEvent::StepFinished { status, .. } => *status,
        _ => unreachable!(),
    }
}

pub fn step_error(records: &[JournalRecord], target: &str, step: &str) -> String {
    match finished(records, target, step) {
        RunEvent::StepFinished { error, .. } => error.clone().unwrap_or_default(),
        _ => unreachable!(),
    }
}

pub fn step_values(records: &[JournalRecord], target: &str, step: &str) -> serde_json::Value {
    match finished(records, target, step) {
        RunEvent::StepFinished {
            output: Some(o), ..
        } => o["values"].clone(),
        other => panic!("{step} on {target} has no output: {other:?}"),
    }
}

/// Position of the first record matching `pred`.
pub fn position(records: &[JournalRecord], pred: impl Fn(&RunEvent) -> bool) -> usize {
    records
        .iter()
        .position(|r| pred(&r.event))
        .expect("event present")
}
