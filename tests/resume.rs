//! Crash safety: `irhost resume` after `kill -9`, with and without a torn
//! last line. A run is killed at a point chosen by the journal's record
//! count; `resume` must not run again a step whose success is journaled,
//! must run the rest, and the case must verify. Against moto, the
//! launcher's per-Action counts prove no cloud change was repeated. The
//! number of fault trials is `IRHOST_FAULT_TRIALS` (default 3 here;
//! scripts/bench-faults runs 20).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::*;
use irhost::events::{RunEvent, Status};
use irhost::journal::JournalRecord;

fn irhost(ws: &Workspace, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
    command
        .args(args)
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env_remove("IRHOST_SIGNING_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

fn lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Start `command`, and kill -9 it once its case's journal holds `records`
/// whole records: the records it had when killed (`None`: it ended first).
fn kill_at(mut command: Command, journal: &Path, records: usize) -> Option<usize> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        let n = lines(journal);
        if n >= records {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(lines(journal));
        }
        assert!(
            Instant::now() < deadline,
            "the run never reached {records} records"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Half of a record, as a power cut leaves it.
fn tear(journal: &Path) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(journal)
        .unwrap();
    file.write_all(br#"{"seq":999,"time":"2026-12-02T00:00:00Z","case":"x","prev":"00"#)
        .unwrap();
}

/// (target, step) of every step_finished Succeeded in `records`.
fn succeeded(records: &[JournalRecord]) -> HashSet<(String, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepFinished {
                target,
                step,
                status: Status::Succeeded,
                ..
            } => Some((target.clone(), step.clone())),
            _ => None,
        })
        .collect()
}

fn started(records: &[JournalRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepStarted { target, step, .. } => Some((target.clone(), step.clone())),
            _ => None,
        })
        .collect()
}

/// After a crash at `killed_at` records and a resume: nothing that had
/// succeeded ran again, everything else ran to success, the torn line (if
/// any) was repaired, and the case verifies.
fn check_resumed(ws: &Workspace, case: &str, killed_at: usize, torn: bool, all_steps: usize) {
    let records = ws.journal(case);
    let before = &records[..killed_at];
    let after = &records[killed_at..];
    let done_before = succeeded(before);
    for again in started(after) {
        assert!(
            !done_before.contains(&again),
            "{again:?} succeeded before the crash and ran again"
        );
    }
    let resumed: HashSet<(String, String)> = after
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepResumed { target, step, .. } => Some((target.clone(), step.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        resumed, done_before,
        "every done step is journaled as resumed"
    );
    assert_eq!(
        succeeded(&records).len(),
        all_steps,
        "every step on every target succeeded in the end"
    );
    let repairs = after
        .iter()
        .filter(|r| matches!(r.event, RunEvent::Repair { .. }))
        .count();
    assert_eq!(repairs, usize::from(torn), "case {case}");
    if torn {
        assert!(matches!(after[0].event, RunEvent::Repair { .. }));
    }
    let verify = irhost(
        ws,
        &[],
        &["verify", ws.cases().join(case).to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(verify.status.success(), "{}", stdout(&verify));
}

const TEST_BOOK: &str = r#"
[playbook]
name = "slow"

[plugins.test]
path = "{test}"
config = { sleep_ms = 150 }

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"

[[steps]]
id = "interfaces"
plugin = "test"
action = "enumerate-interfaces"

[[steps]]
id = "isolate"
plugin = "test"
action = "isolate"
after = ["snapshot", "interfaces"]

[[steps]]
id = "seal"
plugin = "test"
action = "seal"
after = ["isolate"]
"#;

#[test]
fn a_killed_run_resumes_without_running_done_steps_again_and_cuts_a_torn_line() {
    let ws = Workspace::new();
    let book = ws.playbook("slow.toml", TEST_BOOK);
    let mut run = irhost(
        &ws,
        &[],
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "crash-1",
            "--target",
            "test:a",
            "--target",
            "test:b",
            "--concurrency",
            "1",
        ],
    );
    let journal = ws.cases().join("crash-1/journal.jsonl");
    // Past the first target's snapshot and interfaces, before the end.
    let wait_for = |records: &[JournalRecord]| succeeded(records).len() >= 2;
    let mut child = run
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = irhost::journal::read_records(&journal).unwrap_or_default();
        if wait_for(&records) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = lines(&journal);
    tear(&journal);
    // The torn line breaks the chain until a run opens the case again.
    let broken = irhost(
        &ws,
        &[],
        &["verify", ws.cases().join("crash-1").to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(!broken.status.success());

    let resume = irhost(&ws, &[], &["resume", "crash-1"]).output().unwrap();
    assert!(
        resume.status.success(),
        "{}\n{}",
        stdout(&resume),
        stderr(&resume)
    );
    assert!(
        stdout(&resume).contains("resuming case crash-1 on 2 target(s)"),
        "{}",
        stdout(&resume)
    );
    check_resumed(&ws, "crash-1", killed_at, true, 8);
    // The torn bytes are kept beside the journal.
    let torn_dir = ws.cases().join("crash-1/torn");
    assert_eq!(std::fs::read_dir(torn_dir).unwrap().count(), 1);

    // A second resume of a finished case runs no step again.
    let again = irhost(&ws, &[], &["resume", "crash-1"]).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    let records = ws.journal("crash-1");
    let last_start = records
        .iter()
        .rposition(|r| matches!(r.event, RunEvent::RunStarted { .. }))
        .unwrap();
    assert!(started(&records[last_start..]).is_empty());

    // A journal edited to claim a step done (the chain broken) is refused:
    // resume never trusts records the chain does not vouch for.
    let intact = std::fs::read(&journal).unwrap();
    let forged = String::from_utf8(intact.clone()).unwrap().replacen(
        "\"status\":\"succeeded\"",
        "\"status\":\"skipped\"",
        1,
    );
    std::fs::write(&journal, &forged).unwrap();
    let refused = irhost(&ws, &[], &["resume", "crash-1"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refusing to append to a broken journal"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), forged);
    std::fs::write(&journal, &intact).unwrap();

    // Another playbook is refused, and nothing is written.
    std::fs::write(
        &book,
        TEST_BOOK
            .replace("sleep_ms = 150", "sleep_ms = 1")
            .replace("{test}", plugin("test-provider").to_str().unwrap()),
    )
    .unwrap();
    let before = std::fs::read(&journal).unwrap();
    let refused = irhost(&ws, &[], &["resume", "crash-1"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("not the one case crash-1 ran"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&journal).unwrap(), before);
}

/// The mutating EC2 actions of a run, with their counts.
fn mutations(moto: &Moto) -> BTreeMap<String, u64> {
    let url = format!("{}/irhost/action-counts", moto.endpoint());
    let out = Command::new("curl").args(["-sf", &url]).output().unwrap();
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    counts["actions"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(a, _)| {
            [
                "Create",
                "Modify",
                "Authorize",
                "Revoke",
                "Delete",
                "Associate",
                "Disassociate",
                "Stop",
            ]
            .iter()
            .any(|p| a.starts_with(p))
        })
        .map(|(a, n)| (a.clone(), n.as_u64().unwrap()))
        .collect()
}

fn reset_counts(moto: &Moto) {
    let url = format!("{}/irhost/action-counts/reset", moto.endpoint());
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn kill_minus_nine_anywhere_in_an_aws_run_then_resume_repeats_no_cloud_change() {
    let trials: usize = std::env::var("IRHOST_FAULT_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3);
    let moto = Moto::launch_with(&["--count-actions"]);
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let ws = Workspace::new();
    let book = std::fs::read_to_string(repo_root().join("playbooks/aws-instance-compromise.toml"))
        .unwrap()
        .replace(
            "../plugins/dist",
            repo_root().join("plugins/dist").to_str().unwrap(),
        );
    let book = ws.playbook("aws.toml", &book);
    let run_args = |case: &str, ids: &[String]| -> Vec<String> {
        // One target at a time: two targets setting up one VPC's
        // isolation group at once race (either may create and tighten
        // it), which would make the counts differ between two clean runs.
        let mut args = vec![
            "run".to_string(),
            book.to_str().unwrap().into(),
            "--case".into(),
            case.into(),
            "--concurrency".into(),
            "1".into(),
        ];
        for id in ids {
            args.push("--target".into());
            args.push(format!("aws:{id}"));
        }
        args
    };
    let fleet = |moto: &Moto| -> Vec<String> {
        let seeded = moto.seed("fleet:2");
        let ids = seeded["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        reset_counts(moto);
        ids
    };

    // The reference: the same run, uninterrupted.
    let ids = fleet(&moto);
    let args = run_args("ref", &ids);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = irhost(&ws, &env, &args).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let reference = mutations(&moto);
    let total = ws.journal("ref").len();
    let all_steps = succeeded(&ws.journal("ref")).len();
    assert!(
        reference.get("CreateSnapshots") == Some(&2),
        "{reference:?}"
    );

    for trial in 0..trials {
        let case = format!("fault-{trial}");
        let point = 2 + (trial * (total - 4)) / trials.max(1);
        let ids = fleet(&moto);
        let args = run_args(&case, &ids);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let journal = ws.cases().join(&case).join("journal.jsonl");
        let Some(killed_at) = kill_at(irhost(&ws, &env, &args), &journal, point) else {
            panic!("trial {trial}: the run ended before record {point}");
        };
        let torn = trial % 2 == 1;
        if torn {
            tear(&journal);
        }
        eprintln!("trial {trial}: killed at {killed_at} of {total} records (asked {point}), torn line: {torn}");
        let resume = irhost(&ws, &env, &["resume", &case]).output().unwrap();
        assert!(
            resume.status.success(),
            "trial {trial}: {}\n{}",
            stdout(&resume),
            stderr(&resume)
        );
        check_resumed(&ws, &case, killed_at, torn, all_steps);
        assert_eq!(
            mutations(&moto),
            reference,
            "trial {trial} (killed at {killed_at}): the cloud changes of one uninterrupted run, none repeated"
        );
    }
}

#[test]
fn ctrl_c_drains_the_run_seals_the_case_and_says_how_to_resume() {
    let ws = Workspace::new();
    let book = ws.playbook("slow.toml", TEST_BOOK);
    let child = irhost(
        &ws,
        &[],
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "int-1",
            "--target",
            "test:a",
            "--target",
            "test:b",
            "--concurrency",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let journal = ws.cases().join("int-1/journal.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while succeeded(&irhost::journal::read_records(&journal).unwrap_or_default()).is_empty() {
        assert!(Instant::now() < deadline, "no step finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("continue it with `irhost resume int-1`"),
        "{}",
        stderr(&out)
    );
    // Drained, not killed: the steps not started are skipped as
    // interrupted, and the case is sealed and verifies.
    let records = ws.journal("int-1");
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::StepSkipped { reason, .. } if reason.contains("interrupted"))));
    assert!(matches!(
        records.last().unwrap().event,
        RunEvent::CaseSealed { .. }
    ));
    let done = succeeded(&records);
    assert!(done.len() < 8, "{done:?}");
    let verify = irhost(
        &ws,
        &[],
        &["verify", ws.cases().join("int-1").to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(verify.status.success(), "{}", stdout(&verify));
    // And resume finishes it.
    let resume = irhost(&ws, &[], &["resume", "int-1"]).output().unwrap();
    assert!(resume.status.success(), "{}", stderr(&resume));
    assert_eq!(succeeded(&ws.journal("int-1")).len(), 8);
}
