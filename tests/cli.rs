//! End-to-end tests of `irhost run / validate / plan / plugin inspect` with
//! the real binary and real plugin components.

mod common;

use common::*;
use irhost::events::{RunEvent, Status};

const PLAYBOOK: &str = r#"
[playbook]
name = "cli-test"

[plugins.test]
path = "{test}"
config = { volumes = 3, interfaces = 2 }

[plugins.notify]
path = "{notify}"

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"
retries = 3

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

[[steps]]
id = "notify"
plugin = "notify"
action = "notify"
after = ["seal"]
"#;

#[test]
fn run_journals_every_step_in_dag_order_with_stored_artifacts() {
    let ws = Workspace::new();
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--target",
        "test:b",
        "--case",
        "c1",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("2 succeeded, 0 failed"),
        "{}",
        stdout(&out)
    );
    let records = ws.journal("c1");
    for target in ["test:a", "test:b"] {
        let snap = position(
            &records,
            |e| matches!(e, RunEvent::StepFinished { target: t, step, .. } if t == target && step == "snapshot"),
        );
        let iso = position(
            &records,
            |e| matches!(e, RunEvent::StepStarted { target: t, step, .. } if t == target && step == "isolate"),
        );
        let seal = position(
            &records,
            |e| matches!(e, RunEvent::StepStarted { target: t, step, .. } if t == target && step == "seal"),
        );
        assert!(
            snap < iso && iso < seal,
            "snapshot, then isolate, then seal on {target}"
        );
        // seal received the snapshot step's artifacts: 3 volumes + the config dump.
        let sealed = step_values(&records, target, "seal");
        assert_eq!(sealed["sealed"].as_array().unwrap().len(), 4, "{sealed}");
        // notify received all four earlier steps as inputs.
        assert_eq!(step_values(&records, target, "notify")["artifacts"], 4);
        let inventory = step_values(&records, target, "interfaces");
        assert_eq!(inventory["interfaces"].as_array().unwrap().len(), 2);
    }
    // Artifacts whose bytes passed through the host are stored by sha256.
    let stored: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::ArtifactRecorded {
                sha256: Some(sha),
                location,
                size,
                ..
            } => Some((sha.clone(), location.clone(), *size)),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 2, "one config dump per target");
    for (sha, location, size) in stored {
        let bytes = std::fs::read(ws.cases().join("c1").join(&location)).unwrap();
        assert_eq!(location, format!("artifacts/{sha}"));
        assert_eq!(Some(bytes.len() as u64), size);
        assert_eq!(hex_sha256(&bytes), sha);
    }
    // The plugin's log lines land in the journal.
    assert!(records.iter().any(|r| matches!(&r.event, RunEvent::PluginLog { message, .. } if message.contains("snapshotting 3 volumes"))));
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_failing_target_does_not_stop_the_others_and_no_mutation_runs_unpreserved() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        &PLAYBOOK.replace(
            "config = { volumes = 3, interfaces = 2 }",
            "config = { volumes = 1, fail_targets = [\"bad\"], fail_actions = [\"snapshot\"], fail_with = \"not-found\" }",
        ),
    );
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:good",
        "--target",
        "test:bad",
        "--case",
        "c2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 succeeded, 1 failed"), "{text}");
    assert!(
        text.contains("FAILED test:bad") && text.contains("not found"),
        "{text}"
    );
    let records = ws.journal("c2");
    assert!(step_error(&records, "test:bad", "snapshot").contains("not found"));
    // not-found is not retried even though the step allows 3 retries.
    assert!(matches!(
        finished(&records, "test:bad", "snapshot"),
        RunEvent::StepFinished { attempts: 1, .. }
    ));
    let skipped: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepSkipped { target, step, .. } if target == "test:bad" => {
                Some(step.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(skipped, vec!["isolate", "seal", "notify"]);
    assert!(!records.iter().any(|r| matches!(&r.event, RunEvent::StepStarted { target, step, .. } if target == "test:bad" && step == "isolate")));
    assert!(matches!(
        records.iter().rev().find_map(|r| match &r.event {
            RunEvent::TargetFinished { target, status, .. } if target == "test:good" =>
                Some(*status),
            _ => None,
        }),
        Some(Status::Succeeded)
    ));
}

#[test]
fn throttled_calls_are_retried_after_the_plugins_retry_after() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        &PLAYBOOK
            .replace(
                "config = { volumes = 3, interfaces = 2 }",
                "config = { volumes = 1 }\n[plugins.test.limits]\ntimeout = \"10s\"",
            )
            .replace(
                "retries = 3",
                "retries = 3\nwith = { throttle_attempts = 2, retry_after_ms = 150 }",
            ),
    );
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "c3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = ws.journal("c3");
    let retries: Vec<u64> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepRetrying {
                delay_ms, reason, ..
            } => {
                assert!(reason.contains("throttled"), "{reason}");
                Some(*delay_ms)
            }
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2);
    assert!(retries.iter().all(|&d| d >= 150), "{retries:?}");
    assert!(matches!(
        finished(&records, "test:a", "snapshot"),
        RunEvent::StepFinished {
            attempts: 3,
            status: Status::Succeeded,
            ..
        }
    ));
}

fn assert_invalid(ws: &Workspace, text: &str, expect_line: usize, expect: &[&str]) {
    let pb = ws.playbook("bad.toml", text);
    for command in ["validate", "run"] {
        let out = ws.irhost(
            &[command, pb.to_str().unwrap(), "--target", "test:a"]
                [..if command == "run" { 4 } else { 2 }],
        );
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        let location = format!("{}:{expect_line}:", pb.display());
        assert!(
            err.contains(&location),
            "{command}: expected {location} in:\n{err}"
        );
        for e in expect {
            assert!(err.contains(e), "{command}: expected {e:?} in:\n{err}");
        }
        assert!(!ws.cases().exists(), "nothing runs for an invalid playbook");
    }
}

#[test]
fn invalid_playbooks_name_file_line_and_field_and_exit_2() {
    let ws = Workspace::new();
    assert_invalid(
        &ws,
        &PLAYBOOK.replace("[[steps]]\nid = \"seal\"", "[[steps]\nid = \"seal\""),
        29,
        &["`syntax`", "unclosed array table"],
    );
    assert_invalid(
        &ws,
        &PLAYBOOK.replace("retries = 3", "retries = 3\nretry_count = 1"),
        17,
        &["unknown field `retry_count`", "hint:"],
    );
    assert_invalid(
        &ws,
        &PLAYBOOK.replace(
            "action = \"enumerate-interfaces\"",
            "action = \"enumerate-interfaces\"\nafter = [\"seal\"]",
        ),
        22,
        &["dependency cycle", "steps.interfaces.after"],
    );
    assert_invalid(
        &ws,
        &PLAYBOOK.replace(
            "plugin = \"notify\"\naction",
            "plugin = \"notifier\"\naction",
        ),
        37,
        &[
            "unknown plugin `notifier`",
            "declared plugins: notify, test",
        ],
    );
    assert_invalid(
        &ws,
        &PLAYBOOK.replace(
            "after = [\"snapshot\", \"interfaces\"]",
            "after = [\"interfaces\"]",
        ),
        26,
        &[
            "steps.isolate.action",
            "no `snapshot` step precedes it",
            "allow_unpreserved",
        ],
    );
    assert_invalid(
        &ws,
        &PLAYBOOK.replace("action = \"notify\"", "action = \"page\""),
        38,
        &["does not support action `page`", "notify"],
    );
}

#[test]
fn allow_unpreserved_runs_the_mutation_and_journals_it() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        &PLAYBOOK.replace(
            "after = [\"snapshot\", \"interfaces\"]",
            "after = [\"interfaces\"]\nallow_unpreserved = true",
        ),
    );
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "c4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = ws.journal("c4");
    assert!(records.iter().any(|r| matches!(&r.event, RunEvent::UnpreservedMutationAllowed { step, .. } if step == "isolate")));
}

#[test]
fn a_pinned_sha256_mismatch_refuses_to_run() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        &PLAYBOOK.replace(
            "path = \"{test}\"",
            &format!("path = \"{{test}}\"\nsha256 = \"{}\"", "ab".repeat(32)),
        ),
    );
    let out = ws.irhost(&["run", pb.to_str().unwrap(), "--target", "test:a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sha256 mismatch"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plugins.test.path"),
        "{}",
        stderr(&out)
    );
    assert!(!ws.cases().exists());

    let actual = hex_sha256(&std::fs::read(plugin("test-provider")).unwrap());
    let pb = ws.playbook(
        "pinned.toml",
        &PLAYBOOK.replace(
            "path = \"{test}\"",
            &format!("path = \"{{test}}\"\nsha256 = \"{actual}\""),
        ),
    );
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn plan_shows_the_dag_and_mutating_steps_without_running() {
    let ws = Workspace::new();
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    let out = ws.irhost(&[
        "plan",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--target",
        "test:b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("target test:a") && text.contains("target test:b"),
        "{text}"
    );
    let isolate_line = text.lines().find(|l| l.contains("test.isolate")).unwrap();
    assert!(
        isolate_line.contains("MUTATES") && isolate_line.contains("after snapshot, interfaces"),
        "{isolate_line}"
    );
    assert!(!text
        .lines()
        .find(|l| l.contains("test.snapshot"))
        .unwrap()
        .contains("MUTATES"));
    assert!(!ws.cases().exists(), "plan writes no case");

    let out = ws.irhost(&["plan", pb.to_str().unwrap(), "--target", "test:a", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let isolate = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "isolate")
        .unwrap();
    assert_eq!(isolate["mutating"], true);
    assert_eq!(isolate["preserved_by"], serde_json::json!(["snapshot"]));

    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--dry-run",
    ]);
    assert!(out.status.success());
    assert!(!ws.cases().exists(), "--dry-run writes no case");
}

#[test]
fn json_output_is_one_journal_record_per_line() {
    let ws = Workspace::new();
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "c5",
        "--json",
    ]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = ws.journal("c5");
    assert_eq!(lines.len(), records.len());
    assert_eq!(lines.first().unwrap()["event"]["type"], "run_started");
    // The run ends with its result, then the seal of the case.
    assert_eq!(lines[lines.len() - 2]["event"]["type"], "run_finished");
    assert_eq!(lines.last().unwrap()["event"]["type"], "case_sealed");
    assert_eq!(lines.last().unwrap()["event"]["signed"], false);
}

#[test]
fn targets_come_from_a_file_or_the_playbook_and_bad_ones_exit_2() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        &format!("{PLAYBOOK}\n[targets]\nlist = [\"test:from-playbook\"]\n"),
    );
    let out = ws.irhost(&["run", pb.to_str().unwrap(), "--case", "c6"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("test:from-playbook"));

    let file = ws.path().join("targets.txt");
    std::fs::write(&file, "# two\ntest:x region=eu-west-1\ntest:y\n").unwrap();
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--targets",
        file.to_str().unwrap(),
        "--case",
        "c7",
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("2 succeeded"), "{}", stdout(&out));

    std::fs::write(&file, "test:x\nnot-a-target\n").unwrap();
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--targets",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:2:1", file.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_same_case_appends_to_one_verified_chain() {
    let ws = Workspace::new();
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    for _ in 0..2 {
        let out = ws.irhost(&[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:a",
            "--case",
            "same",
        ]);
        assert!(out.status.success());
    }
    let records = ws.journal("same");
    let starts = records
        .iter()
        .filter(|r| matches!(r.event, RunEvent::RunStarted { .. }))
        .count();
    assert_eq!(starts, 2);
    assert!(records.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn plugin_inspect_shows_world_describe_and_imports() {
    let ws = Workspace::new();
    let out = ws.irhost(&[
        "plugin",
        "inspect",
        plugin("test-provider").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["world"], "provider");
    assert_eq!(v["describe"]["name"], "test-provider");
    let isolate = v["describe"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "isolate")
        .unwrap();
    assert_eq!(isolate["effect"], "Mutates");
    let imports: Vec<&str> = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("irhost:plugin/host@0.2.0")),
        "{imports:?}"
    );
    let out = ws.irhost(&[
        "plugin",
        "inspect",
        plugin("example-step").to_str().unwrap(),
    ]);
    assert!(
        stdout(&out).contains("irhost:plugin/step@0.2.0"),
        "{}",
        stdout(&out)
    );

    let junk = ws.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let out = ws.irhost(&["plugin", "inspect", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a valid component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_invalid_case_id_exits_2_before_anything_is_written() {
    let ws = Workspace::new();
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    for case in ["../x", "a/b", ".hidden", "-x", ""] {
        let out = ws.irhost(&[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:a",
            &format!("--case={case}"),
        ]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--case {case:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("case id"), "{}", stderr(&out));
        assert!(
            !ws.cases().exists(),
            "--case {case:?} created {}",
            ws.cases().display()
        );
        assert!(!ws.path().join("x").exists());
    }
    // A valid one runs.
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "IR-42.a_b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ws.cases().join("IR-42.a_b").join("journal.jsonl").is_file());
}

#[test]
fn a_second_run_on_a_case_in_use_exits_2_and_the_case_still_verifies() {
    let ws = Workspace::new();
    let slow = ws.playbook(
        "slow.toml",
        &PLAYBOOK.replace(
            "config = { volumes = 3, interfaces = 2 }",
            "config = { volumes = 3, interfaces = 2, sleep_ms = 3000 }",
        ),
    );
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args([
            "run",
            slow.to_str().unwrap(),
            "--target",
            "test:a",
            "--case",
            "busy",
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env_remove("IRHOST_SIGNING_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = ws.cases().join("busy").join("journal.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !irhost::journal::read_records(&journal)
        .unwrap_or_default()
        .iter()
        .any(|r| matches!(r.event, RunEvent::StepStarted { .. }))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:b",
        "--case",
        "busy",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("case busy is in use by run "),
        "{}",
        stderr(&out)
    );
    assert!(first.wait().unwrap().success());
    let records = ws.journal("busy");
    assert!(
        !records.iter().any(|r| r.event.target() == Some("test:b")),
        "the refused run wrote nothing"
    );
    let verified = ws.irhost(&["verify", ws.cases().join("busy").to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    // Free again: the same case can be continued.
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:b",
        "--case",
        "busy",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn only_declared_inputs_may_be_set_with_param_and_nothing_else_runs() {
    let ws = Workspace::new();
    let text = format!(
        "{PLAYBOOK}\n[inputs.ticket]\ntype = \"string\"\npattern = \"INC-[0-9]+\"\n\n[inputs.volumes]\ntype = \"integer\"\nvalues = [1, 3]\ndefault = 3\n"
    );
    let pb = ws.playbook("inputs.toml", &text);
    for (param, says) in [
        (
            "forensic_account=999999999999",
            "`forensic_account` is not an input",
        ),
        ("ticket=INC-1;rm", "does not match the pattern"),
        ("volumes=2", "not one of 1, 3"),
        ("volumes=many", "is not of type integer"),
        ("ticket", "write NAME=VALUE"),
    ] {
        let out = ws.irhost(&[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:a",
            "--param",
            param,
        ]);
        assert_eq!(out.status.code(), Some(2), "{param}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{param}: {}", stderr(&out));
        assert!(!ws.cases().exists(), "{param}: nothing may be written");
    }
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "with-inputs",
        "--param",
        "ticket=INC-42",
        "--param",
        "volumes=1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = ws.journal("with-inputs");
    let params = records
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::RunStarted { params, .. } => Some(params.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(params["ticket"], "INC-42");
    assert_eq!(params["volumes"], 1, "typed as the input says");
    // The run parameter reached the plugin: one volume snapshotted.
    let snapshots = records
        .iter()
        .filter(|r| matches!(&r.event, RunEvent::ArtifactRecorded { kind, .. } if kind == "disk-snapshot"))
        .count();
    assert_eq!(snapshots, 1);
    // Bad declarations are located diagnostics.
    for (bad, field) in [
        ("type = \"text\"", "inputs.ticket.type"),
        (
            "type = \"string\"\npattern = \"(\"",
            "inputs.ticket.pattern",
        ),
        (
            "type = \"integer\"\ndefault = \"x\"",
            "inputs.ticket.default",
        ),
    ] {
        let text = format!("{PLAYBOOK}\n[inputs.ticket]\n{bad}\n");
        let pb = ws.playbook("bad-inputs.toml", &text);
        let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("`{field}`")),
            "{bad}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("bad-inputs.toml:"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn plan_policy_prints_the_least_privilege_of_the_shipped_playbooks() {
    let ws = Workspace::new();
    let pb = repo_root().join("playbooks/aws-instance-compromise-vault.toml");
    let out = ws.irhost(&["plan", pb.to_str().unwrap(), "--policy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let statements = doc["aws"]["Statement"].as_array().unwrap();
    let statement = |action: &str| {
        statements
            .iter()
            .find(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
            .cloned()
    };
    // Every action the playbook grants, and nothing else.
    let actions: Vec<&str> = statements
        .iter()
        .flat_map(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
        })
        .collect();
    assert!(actions.contains(&"ec2:CreateSnapshots"), "{actions:?}");
    assert!(
        !actions.contains(&"ec2:ModifySnapshotAttribute"),
        "not granted: {actions:?}"
    );
    assert!(!actions.iter().any(|a| a.contains('*')), "{actions:?}");
    assert_eq!(
        statement("ec2:DescribeInstances").unwrap()["Resource"],
        serde_json::json!(["*"])
    );
    assert_eq!(
        statement("s3:PutObject").unwrap()["Resource"],
        serde_json::json!(["arn:aws:s3:::ir-evidence-vault/*"])
    );
    // enumerate-interfaces' shared storage: EFS and FSx reads, on every
    // file system of the account (the plugin cannot name them beforehand).
    for action in [
        "elasticfilesystem:DescribeFileSystems",
        "elasticfilesystem:DescribeMountTargets",
        "fsx:DescribeFileSystems",
    ] {
        assert_eq!(
            statement(action).unwrap_or_else(|| panic!("{action}: {actions:?}"))["Resource"],
            serde_json::json!(["*"])
        );
    }
    assert!(doc["notes"].as_array().unwrap().iter().any(|n| n
        .as_str()
        .unwrap()
        .starts_with("fsx:DescribeFileSystems: `*`")));
    assert!(doc["azure"].is_null());
    assert!(doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("AWS requires it")));

    let pb = repo_root().join("playbooks/azure-vm-compromise.toml");
    let out = ws.irhost(&["plan", pb.to_str().unwrap(), "--policy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let role = &doc["azure"];
    assert_eq!(role["IsCustom"], true);
    let ops = role["Actions"].as_array().unwrap();
    assert!(
        ops.iter()
            .any(|a| a == "Microsoft.Network/networkSecurityGroups/write"),
        "{ops:?}"
    );
    assert!(!ops.iter().any(|a| a == "*"), "{ops:?}");
    assert!(doc["aws"].is_null());
}
