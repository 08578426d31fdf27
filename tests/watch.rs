//! `irhost watch` end to end: the shipped GuardDuty rules and sample events
//! against moto's EC2 server, with the real binary and the real `aws-ec2`
//! component; and the rules checks and the HTTP source with the test
//! provider.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::moto::Moto;
use common::*;
use irhost::events::{RunEvent, WatchDecisionKind};
use irhost::journal::JournalRecord;
use irhost::watch::MAX_EVENT_BYTES;
use serde_json::Value;

fn decisions(records: &[JournalRecord]) -> Vec<&RunEvent> {
    records
        .iter()
        .map(|r| &r.event)
        .filter(|e| matches!(e, RunEvent::WatchDecision { .. }))
        .collect()
}

fn kind(e: &RunEvent) -> WatchDecisionKind {
    match e {
        RunEvent::WatchDecision { decision, .. } => *decision,
        _ => unreachable!(),
    }
}

#[test]
fn guardduty_events_quarantine_one_instance_once() {
    let moto = Moto::start();
    let seeded = moto.seed("multi-eni");
    let iid = seeded["instance"].as_str().unwrap().to_string();
    let ws = Workspace::new();
    // The shipped sample: a matching finding, a low-severity one, a second
    // finding on the same instance, and a torn line.
    let sample =
        std::fs::read_to_string(repo_root().join("playbooks/rules/sample-guardduty-events.jsonl"))
            .unwrap()
            .replace("i-0123456789abcdef0", &iid);
    let events = ws.path().join("events.jsonl");
    std::fs::write(&events, sample).unwrap();
    let rules = repo_root().join("playbooks/rules/guardduty.toml");
    let out = moto.irhost(
        &ws,
        &[
            "watch",
            "--rules",
            rules.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // The watch journal verifies and shows every decision; it is sealed
    // when the watch stops, so `irhost verify` passes on it.
    let records = ws.journal("watch");
    assert!(matches!(records[0].event, RunEvent::WatchStarted { .. }));
    let n = records.len();
    assert!(matches!(
        records[n - 2].event,
        RunEvent::WatchStopped {
            events: 4,
            runs: 1,
            failed_runs: 0
        }
    ));
    assert!(matches!(
        records[n - 1].event,
        RunEvent::CaseSealed { signed: false, .. }
    ));
    let verify = moto.irhost(&ws, &["verify", ws.cases().join("watch").to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    let ds = decisions(&records);
    let by_line = |n: u64| {
        ds.iter()
            .find(|e| matches!(e, RunEvent::WatchDecision { line: Some(l), .. } if *l == n))
            .unwrap_or_else(|| panic!("no decision for line {n}: {ds:?}"))
    };
    assert_eq!(kind(by_line(1)), WatchDecisionKind::Matched);
    assert_eq!(kind(by_line(2)), WatchDecisionKind::Ignored);
    assert_eq!(kind(by_line(3)), WatchDecisionKind::Deduplicated);
    assert_eq!(kind(by_line(4)), WatchDecisionKind::Malformed);
    let matched: Vec<_> = ds
        .iter()
        .filter(|e| kind(e) == WatchDecisionKind::Matched)
        .collect();
    assert_eq!(matched.len(), 1, "exactly one run: {ds:?}");
    let RunEvent::WatchDecision {
        run_id: Some(run_id),
        case: Some(case),
        targets,
        rule,
        event,
        ..
    } = matched[0]
    else {
        panic!("matched without run id and case: {:?}", matched[0]);
    };
    assert_eq!(targets, &vec![format!("aws:{iid}")]);
    assert_eq!(rule.as_deref(), Some("guardduty-ec2-compromise"));
    assert_eq!(case, "gd-a1b2c3d4e5f60718293a4b5c6d7e8f90");
    assert!(event.is_some(), "the matched event is journaled");
    match by_line(3) {
        RunEvent::WatchDecision { reason, .. } => {
            assert!(
                reason.as_deref().unwrap().contains(run_id.as_str()),
                "{reason:?}"
            )
        }
        _ => unreachable!(),
    }
    let finished: Vec<_> = ds
        .iter()
        .filter(|e| kind(e) == WatchDecisionKind::RunFinished)
        .collect();
    assert_eq!(finished.len(), 1);
    assert!(
        matches!(finished[0], RunEvent::WatchDecision { run_id: Some(r), reason: Some(why), .. } if r == run_id && why.starts_with("succeeded")),
        "{:?}",
        finished[0]
    );

    // The run's own case journal verifies and ran under the announced id.
    let run = ws.journal(case);
    assert!(run
        .iter()
        .any(|r| matches!(&r.event, RunEvent::RunStarted { run_id: r, .. } if r == run_id)));

    // In moto: the instance's ENIs carry only the case's isolation group.
    let state = moto.state();
    let isolation: Vec<(&String, &Value)> = state["groups"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, g)| g["name"].as_str().unwrap().starts_with("irhost-isolation-"))
        .collect();
    assert_eq!(isolation.len(), 1, "one quarantine only: {isolation:?}");
    assert_eq!(isolation[0].1["name"], format!("irhost-isolation-{case}"));
    let enis: Vec<&Value> = state["enis"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["instance"] == iid.as_str())
        .collect();
    assert_eq!(enis.len(), 2);
    for e in enis {
        assert_eq!(e["groups"], serde_json::json!([isolation[0].0]), "{e}");
    }
}

const PLAYBOOK: &str = r#"
[playbook]
name = "watch-test"

[plugins.test]
path = "{test}"

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"

[[steps]]
id = "isolate"
plugin = "test"
action = "isolate"
after = ["snapshot"]

[inputs.note]
type = "string"
"#;

const RULES: &str = r#"
[watch]
concurrency = 2
dedup_window = "1h"

[[rules]]
name = "edr"
playbook = "pb.toml"
case = "edr-{alert.id}"
params = { note = "host {alert.host}" }
targets = [{ provider = "test", id = "alert.hosts" }]

[rules.match]
"alert.kind" = { glob = "malware.*" }
"alert.score" = { gt = 50 }
"#;

#[test]
fn a_rule_may_set_only_its_playbooks_inputs() {
    // A rule that would rewrite a security setting of the playbook.
    let ws = Workspace::new();
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    let text = RULES.replace(
        "params = { note = \"host {alert.host}\" }",
        "params = { note = \"x\", forensic_account = \"{alert.account}\" }",
    );
    std::fs::write(&rules, &text).unwrap();
    let out = ws.irhost(&[
        "watch",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let line = text
        .lines()
        .position(|l| l.starts_with("params ="))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("rules.toml:{line}:")), "{err}");
    assert!(err.contains("`rules.edr.params.forensic_account`"), "{err}");
    assert!(!ws.cases().join("watch").exists(), "nothing ran");
}

#[test]
fn an_invalid_rules_file_is_located_and_nothing_runs() {
    let ws = Workspace::new();
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    std::fs::write(
        &rules,
        RULES.replace("concurrency = 2", "concurrency = 2\nwindow = 3"),
    )
    .unwrap();
    let out = ws.irhost(&[
        "watch",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("rules.toml:4:1"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown field `window`"),
        "{}",
        stderr(&out)
    );
    assert!(!ws.cases().join("watch").exists());
}

#[test]
fn stdin_events_fan_out_to_targets_and_dedup_within_the_window() {
    let ws = Workspace::new();
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let input = [
        r#"{"alert": {"id": "A1", "kind": "malware.trojan", "score": 90, "host": "web", "hosts": ["web-1", "web-2"]}}"#,
        r#"{"alert": {"id": "A2", "kind": "policy.violation", "score": 90, "hosts": ["web-3"]}}"#,
        "",
        "[1, 2]",
        r#"{"alert": {"id": "A3", "kind": "malware.worm", "score": 99, "hosts": ["web-2", "web-4"]}}"#,
    ]
    .join("\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args(["watch", "--rules", rules.to_str().unwrap(), "--json"])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // --json prints the journal records.
    let printed: Vec<JournalRecord> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = ws.journal("watch");
    assert_eq!(printed.len(), records.len());
    let ds = decisions(&records);
    let kinds: Vec<WatchDecisionKind> = ds
        .iter()
        .filter(|e| kind(e) != WatchDecisionKind::RunFinished)
        .map(|e| kind(e))
        .collect();
    use WatchDecisionKind::*;
    // web-2 of A3 is deduplicated (active or just done), web-4 runs.
    assert_eq!(
        kinds,
        vec![Matched, Ignored, Malformed, Deduplicated, Matched],
        "{ds:?}"
    );
    let first = ws.journal("edr-A1");
    let started = first
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::RunStarted {
                targets, params, ..
            } => Some((targets.clone(), params.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.0, vec!["test:web-1", "test:web-2"]);
    assert_eq!(started.1["note"], "host web");
    let third = ws.journal("edr-A3");
    assert!(third.iter().any(
        |r| matches!(&r.event, RunEvent::RunStarted { targets, .. } if targets == &vec!["test:web-4".to_string()])
    ));
}

/// `irhost watch --listen ADDR` on the test playbook; its child (the caller
/// kills and waits for it) and the address it listens on.
#[allow(clippy::zombie_processes)]
fn listen(ws: &Workspace, addr: &str, token: Option<&str>) -> (std::process::Child, String) {
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
    command
        .args([
            "watch",
            "--rules",
            rules.to_str().unwrap(),
            "--listen",
            addr,
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env_remove("IRHOST_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(token) = token {
        command.env("IRHOST_API_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watch exited before listening");
        }
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            let addr = a.to_string();
            // Keep draining stdout so the watch never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            return (child, addr);
        }
    }
}

/// POST `body` to `/v1/events` with extra header lines; (status, body).
fn post(addr: &str, headers: &str, body: impl AsRef<[u8]>) -> (u16, String) {
    let body = body.as_ref();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

const JSON: &str = "Content-Type: application/json\r\n";

#[test]
fn http_events_are_answered_with_decisions() {
    let ws = Workspace::new();
    let (mut child, addr) = listen(&ws, "127.0.0.1:0", None);
    let body = r#"{"alert": {"id": "H1", "kind": "malware.x", "score": 70, "hosts": ["h-1"]}}"#;
    let (status, answer) = post(&addr, JSON, body);
    // Lines: a duplicate, one not JSON, one not UTF-8, one too long.
    let mut lines = format!("{body}\nnot json\n").into_bytes();
    lines.extend_from_slice(b"{\"x\": \"\xff\"}\n");
    lines.extend_from_slice(format!("\"{}\"\n", "y".repeat(MAX_EVENT_BYTES)).as_bytes());
    let (lines_status, lines_answer) = post(
        &addr,
        "Content-Type: application/json; charset=utf-8\r\n",
        &lines,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{answer}");
    let decisions: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(decisions[0]["decision"], "matched", "{decisions}");
    assert_eq!(decisions[0]["case"], "edr-H1");
    assert_eq!(lines_status, 200, "{lines_answer}");
    let decisions: Value = serde_json::from_str(&lines_answer).unwrap();
    assert_eq!(decisions[0]["decision"], "deduplicated", "{decisions}");
    assert_eq!(decisions[1]["decision"], "malformed", "{decisions}");
    let reason = |i: usize| decisions[i]["reason"].as_str().unwrap().to_string();
    assert_eq!(decisions[2]["decision"], "malformed", "{decisions}");
    assert!(reason(2).starts_with("not UTF-8"), "{decisions}");
    assert!(reason(3).starts_with("longer than"), "{decisions}");
    assert_eq!(decisions.as_array().unwrap().len(), 4);
}

#[test]
fn without_a_token_only_loopback_json_not_from_a_page_is_accepted() {
    // Beyond loopback, no token: refused before listening.
    let ws = Workspace::new();
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args([
            "watch",
            "--rules",
            rules.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env_remove("IRHOST_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("beyond loopback a token is required"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("listening on"));

    // On loopback without a token: what a browser could send is refused.
    let (mut child, addr) = listen(&ws, "127.0.0.1:0", None);
    let body = r#"{"alert": {"id": "C1", "kind": "malware.x", "score": 70, "hosts": ["c-1"]}}"#;
    let plain = post(&addr, "Content-Type: text/plain\r\n", body);
    let form = post(
        &addr,
        "Content-Type: application/x-www-form-urlencoded\r\n",
        body,
    );
    let none = post(&addr, "", body);
    let page = post(
        &addr,
        &format!("{JSON}Origin: http://evil.example\r\n"),
        body,
    );
    let page_plain = post(
        &addr,
        "Content-Type: text/plain\r\nOrigin: http://evil.example\r\n",
        body,
    );
    let ok = post(&addr, JSON, body);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(plain.0, 415, "{plain:?}");
    assert_eq!(form.0, 415, "{form:?}");
    assert_eq!(none.0, 415, "{none:?}");
    assert_eq!(page.0, 403, "{page:?}");
    assert_eq!(page_plain.0, 403, "{page_plain:?}");
    assert_eq!(ok.0, 200, "{ok:?}");
    // Only the accepted request reached the watch.
    let records = ws.journal("watch");
    let ds = decisions(&records);
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(kind(ds[0]), WatchDecisionKind::Matched);

    // With a token, beyond loopback too; every request needs it.
    let ws = Workspace::new();
    let token = "a-token-of-thirty-two-characters";
    let (mut child, addr) = listen(&ws, "0.0.0.0:0", Some(token));
    let port = addr.rsplit(':').next().unwrap();
    let local = format!("127.0.0.1:{port}");
    let without = post(&local, JSON, body);
    let with = post(
        &local,
        &format!("{JSON}Authorization: Bearer {token}\r\n"),
        body,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(without.0, 401, "{without:?}");
    assert_eq!(with.0, 200, "{with:?}");
}

#[test]
fn a_line_not_utf8_or_too_long_is_journaled_and_skipped() {
    let ws = Workspace::new();
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let good = |id: &str, host: &str| {
        format!(
            r#"{{"alert": {{"id": "{id}", "kind": "malware.x", "score": 70, "hosts": ["{host}"]}}}}"#
        )
    };
    let mut text = Vec::new();
    text.extend_from_slice(good("G1", "g-1").as_bytes());
    text.extend_from_slice(b"\n{\"alert\": \"caf\xe9\"}\n");
    let huge = format!(
        r#"{{"alert": {{"id": "G9", "pad": "{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    text.extend_from_slice(huge.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(good("G2", "g-2").as_bytes());
    text.push(b'\n');
    let events = ws.path().join("events.jsonl");
    std::fs::write(&events, &text).unwrap();
    let out = ws.irhost(&[
        "watch",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    // The same through stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args([
            "watch",
            "--rules",
            rules.to_str().unwrap(),
            "--journal-id",
            "watch-stdin",
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = text.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let stdin_out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(stdin_out.status.success(), "{}", stderr(&stdin_out));

    for journal in ["watch", "watch-stdin"] {
        let records = ws.journal(journal);
        let ds = decisions(&records);
        let at = |n: u64| {
            ds.iter()
                .find(|e| matches!(e, RunEvent::WatchDecision { line: Some(l), .. } if *l == n))
                .unwrap_or_else(|| panic!("{journal}: no decision for line {n}: {ds:?}"))
        };
        assert_eq!(kind(at(1)), WatchDecisionKind::Matched, "{journal}");
        assert_eq!(kind(at(4)), WatchDecisionKind::Matched, "{journal}");
        let reason = |e: &RunEvent| match e {
            RunEvent::WatchDecision {
                decision,
                reason,
                source,
                ..
            } => {
                assert_eq!(*decision, WatchDecisionKind::Malformed);
                assert!(source == "stdin" || source.starts_with("file:"), "{source}");
                reason.clone().unwrap()
            }
            _ => unreachable!(),
        };
        let not_utf8 = reason(at(2));
        assert!(
            not_utf8.starts_with("not UTF-8 (invalid at byte 14)"),
            "{not_utf8}"
        );
        assert!(not_utf8.contains("caf\\xe9"), "{not_utf8}");
        let long = reason(at(3));
        assert!(long.starts_with("longer than 1048576 bytes"), "{long}");
        assert!(
            long.len() < 200,
            "no more than a prefix of the line: {long}"
        );
        assert_eq!(
            ds.iter()
                .filter(|e| kind(e) == WatchDecisionKind::Malformed)
                .count(),
            2,
            "{journal}: {ds:?}"
        );
        assert!(
            matches!(
                records[records.len() - 2].event,
                RunEvent::WatchStopped {
                    events: 4,
                    runs: 2,
                    failed_runs: 0
                }
            ),
            "{journal}: {:?}",
            records.last()
        );
    }
}

#[test]
fn a_followed_file_is_read_as_it_grows_and_sealed_at_an_interval() {
    let ws = Workspace::new();
    let keygen = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args(["keygen", "-o"])
        .arg(ws.path().join("watch-key"))
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let key = ws.path().join("watch-key.key");
    let public = ws.path().join("watch-key.pub");
    ws.playbook("pb.toml", PLAYBOOK);
    let rules = ws.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let events = ws.path().join("events.jsonl");
    std::fs::write(&events, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args([
            "watch",
            "--rules",
            rules.to_str().unwrap(),
            "--follow",
            events.to_str().unwrap(),
            "--seal-interval",
            "1s",
            "--signing-key",
            key.to_str().unwrap(),
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = ws.cases().join("watch/journal.jsonl");
    let wait_for = |what: &str, pred: &dyn Fn(&[JournalRecord]) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let records = irhost::journal::read_records(&journal).unwrap_or_default();
            if pred(&records) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {records:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("the watch to start", &|r| !r.is_empty());
    // A second watch on the same watch journal is refused: one writer.
    let second = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args(["watch", "--rules", rules.to_str().unwrap(), "--events"])
        .arg(&events)
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{said}");
    assert!(said.contains("in use by irhost watch (follow:"), "{said}");
    // A line written in two pieces is one event.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .unwrap();
    file.write_all(br#"{"alert": {"id": "F1", "kind": "malware.a", "#)
        .unwrap();
    file.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    file.write_all(b"\"score\": 80, \"hosts\": [\"f-1\"]}}\nnot json\n")
        .unwrap();
    file.flush().unwrap();
    wait_for("the run to finish", &|r| {
        decisions(r)
            .iter()
            .any(|e| kind(e) == WatchDecisionKind::RunFinished)
    });
    // Within the interval the new decisions are sealed, signed with the
    // watch's key, and the watch journal verifies right after the seal.
    wait_for("a seal after the run", &|r| {
        let finished = r.iter().rposition(|x| {
            matches!(
                &x.event,
                RunEvent::WatchDecision {
                    decision: WatchDecisionKind::RunFinished,
                    ..
                }
            )
        });
        matches!(r.last(), Some(x) if matches!(x.event, RunEvent::CaseSealed { signed: true, .. }))
            && finished.is_some()
    });
    let verify = Command::new(env!("CARGO_BIN_EXE_irhost"))
        .arg("verify")
        .arg(ws.cases().join("watch"))
        .arg("--key")
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Nothing new: no seal at the next ticks.
    let seals = || {
        std::fs::read_dir(ws.cases().join("watch/manifests"))
            .unwrap()
            .count()
    };
    let before = seals();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(seals(), before, "no seal when nothing new was recorded");
    let _ = child.kill();
    let _ = child.wait();
    let records = ws.journal("watch");
    let kinds: Vec<WatchDecisionKind> = decisions(&records).into_iter().map(kind).collect();
    assert_eq!(
        kinds,
        vec![
            WatchDecisionKind::Matched,
            WatchDecisionKind::Malformed,
            WatchDecisionKind::RunFinished
        ]
    );
}

#[test]
fn a_restarted_watch_keeps_its_dedup_ledger_and_resumes_a_run_in_flight() {
    let ws = Workspace::new();
    ws.playbook(
        "pb.toml",
        &PLAYBOOK.replace(
            "path = \"{test}\"",
            "path = \"{test}\"\nconfig = { sleep_ms = 400 }",
        ),
    );
    let rules = ws.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let watch = |source: &str, file: &std::path::Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
        command
            .args(["watch", "--rules", rules.to_str().unwrap(), source])
            .arg(file)
            .current_dir(ws.path())
            .env("IRHOST_CASES_DIR", ws.cases())
            .env("IRHOST_CACHE_DIR", shared_cache())
            .env_remove("IRHOST_SIGNING_KEY");
        command
    };
    let event = |id: &str, host: &str| {
        format!(
            "{{\"alert\": {{\"id\": \"{id}\", \"kind\": \"malware.a\", \"score\": 80, \"hosts\": [\"{host}\"]}}}}\n"
        )
    };

    // A successful run in one watch: a second watch (a restart) still
    // deduplicates the target within the window.
    let first = ws.path().join("first.jsonl");
    std::fs::write(&first, event("F1", "f-1")).unwrap();
    let out = watch("--events", &first).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = watch("--events", &first).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records = ws.journal("watch");
    let last_start = records
        .iter()
        .rposition(|r| matches!(r.event, RunEvent::WatchStarted { .. }))
        .unwrap();
    let after: Vec<&RunEvent> = decisions(&records[last_start..]);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(kind(after[0]), WatchDecisionKind::Deduplicated);
    assert!(
        matches!(after[0], RunEvent::WatchDecision { reason: Some(r), .. } if r.contains("handled it")),
        "{after:?}"
    );

    // A watch killed while its run is in flight: the next watch on the
    // journal continues the run, without running its done steps again.
    let follow = ws.path().join("follow.jsonl");
    std::fs::write(&follow, "").unwrap();
    let mut child = watch("--follow", &follow)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&follow)
        .unwrap()
        .write_all(event("F2", "g-1").as_bytes())
        .unwrap();
    let case_journal = ws.cases().join("edr-F2/journal.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let records = irhost::journal::read_records(&case_journal).unwrap_or_default();
        let snapshot_done = records
            .iter()
            .any(|r| matches!(&r.event, RunEvent::StepFinished { step, .. } if step == "snapshot"));
        if snapshot_done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never took its snapshot"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let empty = ws.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = watch("--events", &empty).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("watch");
    let last_start = records
        .iter()
        .rposition(|r| matches!(r.event, RunEvent::WatchStarted { .. }))
        .unwrap();
    let after: Vec<&RunEvent> = decisions(&records[last_start..]);
    let kinds: Vec<WatchDecisionKind> = after.iter().map(|e| kind(e)).collect();
    assert_eq!(
        kinds,
        [WatchDecisionKind::Resumed, WatchDecisionKind::RunFinished],
        "{after:?}"
    );
    assert!(matches!(
        after[1],
        RunEvent::WatchDecision {
            succeeded: Some(true),
            ..
        }
    ));
    let case = ws.journal("edr-F2");
    assert!(case.iter().any(|r| matches!(&r.event,
        RunEvent::StepResumed { step, .. } if step == "snapshot")));
    let snapshots = case
        .iter()
        .filter(|r| matches!(&r.event, RunEvent::StepStarted { step, .. } if step == "snapshot"))
        .count();
    assert_eq!(snapshots, 1, "the snapshot ran once");
    assert!(case.iter().any(|r| matches!(&r.event,
        RunEvent::StepFinished { step, status: irhost::events::Status::Succeeded, .. } if step == "isolate")));
    let verify = ws.irhost(&["verify", ws.cases().join("edr-F2").to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}
