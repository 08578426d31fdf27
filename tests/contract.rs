//! Contract 0.2 end to end with the real binary and real components: the
//! breach protocol's seven steps in the order the plan enforces, the
//! verbs' inputs, the declared API actions, and a component built against
//! 0.1.0 (committed in tests/fixtures) running unchanged.

mod common;

use common::*;
use irhost::events::{RunEvent, Status};

/// capture-memory ∥ snapshot ∥ enumerate-interfaces → isolate → remediate
/// → stop → seal, on the test provider.
const FULL_PROTOCOL: &str = r#"
[playbook]
name = "full-protocol"

[plugins.test]
path = "{test}"
config = { volumes = 2, interfaces = 2 }

[[steps]]
id = "memory"
plugin = "test"
action = "capture-memory"

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
after = ["memory", "snapshot", "interfaces"]

[[steps]]
id = "remediate"
plugin = "test"
action = "remediate"
after = ["isolate"]

[[steps]]
id = "stop"
plugin = "test"
action = "stop"
after = ["remediate"]

[[steps]]
id = "seal"
plugin = "test"
action = "seal"
after = ["stop"]
"#;

fn started(records: &[irhost::journal::JournalRecord], target: &str, step: &str) -> usize {
    position(
        records,
        |e| matches!(e, RunEvent::StepStarted { target: t, step: s, .. } if t == target && s == step),
    )
}

fn ended(records: &[irhost::journal::JournalRecord], target: &str, step: &str) -> usize {
    position(
        records,
        |e| matches!(e, RunEvent::StepFinished { target: t, step: s, .. } if t == target && s == step),
    )
}

#[test]
fn the_seven_steps_run_in_the_protocols_order_with_their_inputs() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "full.toml",
        &FULL_PROTOCOL.replace(
            "config = { volumes = 2, interfaces = 2 }",
            "config = { volumes = 2, interfaces = 2, shared_groups = [\"sg-web\"] }",
        ),
    );
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "full",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let records = ws.journal("full");
    let t = "test:a";
    // Perishable data first, beside the snapshot; then the changes, in order.
    for preserve in ["memory", "snapshot", "interfaces"] {
        assert!(ended(&records, t, preserve) < started(&records, t, "isolate"));
    }
    assert!(ended(&records, t, "isolate") < started(&records, t, "remediate"));
    assert!(ended(&records, t, "remediate") < started(&records, t, "stop"));
    assert!(ended(&records, t, "stop") < started(&records, t, "seal"));

    // The memory image passed through the host: stored and hashed.
    let memory = records
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::ArtifactRecorded {
                kind,
                step,
                location,
                sha256,
                ..
            } if kind == "memory-image" && step == "memory" => {
                Some((location.clone(), sha256.clone()))
            }
            _ => None,
        })
        .expect("a memory-image artifact");
    let bytes = std::fs::read(ws.cases().join("full").join(&memory.0)).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("MEMORY IMAGE of a"));
    assert!(memory.1.is_some());

    // remediate worked from the inventory among its inputs: the public IP
    // of the first NIC dissociated, the world-open ssh rule of the shared
    // group reported and left alone.
    let remediation = step_values(&records, t, "remediate");
    let changes = remediation["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{remediation}");
    assert!(changes[0]["description"]
        .as_str()
        .unwrap()
        .contains("203.0.113.10"));
    let skipped = remediation["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "one per NIC's exposure: {remediation}");
    assert_eq!(skipped[0]["resource_id"], "sg-web");

    let stop = step_values(&records, t, "stop");
    assert_eq!(stop["previous_state"], "running");
    assert_eq!(stop["state"], "stopped");

    // The inventory reports the storage the target shares.
    let inventory = step_values(&records, t, "interfaces");
    assert_eq!(inventory["shared_storage"][0]["kind"], "efs-mount-target");

    // seal received every artifact: 2 volumes, the config dump, the memory image.
    let sealed = step_values(&records, t, "seal");
    assert_eq!(sealed["sealed"].as_array().unwrap().len(), 4, "{sealed}");
    let case_dir = ws.cases().join("full");
    let verify = ws.irhost(&["verify", case_dir.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn plan_refuses_a_protocol_out_of_order_naming_line_and_field() {
    let ws = Workspace::new();
    let check = |name: &str, text: &str, expect: &[&str]| {
        let pb = ws.playbook(name, text);
        let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        for e in expect {
            assert!(err.contains(e), "{name}: `{e}` not in\n{err}");
        }
    };
    // stop not after the capture, in a playbook that captures memory.
    check(
        "stop.toml",
        &FULL_PROTOCOL.replace(
            "after = [\"remediate\"]",
            "after = [\"snapshot\", \"interfaces\"]",
        ),
        &[
            "stop.toml:",
            "steps.stop.action",
            "no `capture-memory` step precedes it",
        ],
    );
    // isolate before the capture: the agent's services would be cut.
    check(
        "isolate.toml",
        &FULL_PROTOCOL.replace(
            "after = [\"memory\", \"snapshot\", \"interfaces\"]",
            "after = [\"snapshot\", \"interfaces\"]",
        ),
        &[
            "steps.isolate.action",
            "isolates the machine before its memory is captured",
            "isolation_keeps",
        ],
    );
    // remediate without the inventory it works from.
    check(
        "remediate.toml",
        &FULL_PROTOCOL
            .replace(
                "after = [\"memory\", \"snapshot\", \"interfaces\"]",
                "after = [\"memory\", \"snapshot\"]",
            )
            .replace(
                "[[steps]]\nid = \"interfaces\"\nplugin = \"test\"\naction = \"enumerate-interfaces\"\n",
                "",
            ),
        &[
            "steps.remediate.action",
            "no `enumerate-interfaces` step precedes it",
        ],
    );
    // The shipped order passes, and `plan` shows it level by level.
    let pb = ws.playbook("ok.toml", FULL_PROTOCOL);
    let out = ws.irhost(&["plan", pb.to_str().unwrap(), "--target", "test:a", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let level = |id: &str| {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["level"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        [
            "memory",
            "snapshot",
            "interfaces",
            "isolate",
            "remediate",
            "stop",
            "seal"
        ]
        .map(level),
        [0, 0, 0, 1, 2, 3, 4]
    );
}

#[test]
fn stop_waits_for_a_successful_capture_and_a_machine_without_an_agent_is_not_skipped_silently() {
    let ws = Workspace::new();
    // The capture answers `unsupported` (no agent) and the playbook goes on.
    let text = FULL_PROTOCOL
        .replace(
            "config = { volumes = 2, interfaces = 2 }",
            "config = { volumes = 2, interfaces = 2, no_agent = true }",
        )
        .replace(
            "action = \"capture-memory\"\n",
            "action = \"capture-memory\"\non_error = \"continue\"\n",
        );
    let pb = ws.playbook("noagent.toml", &text);
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "noagent",
    ]);
    let records = ws.journal("noagent");
    assert_eq!(step_status(&records, "test:a", "memory"), Status::Failed);
    assert!(step_error(&records, "test:a", "memory").contains("has no agent"));
    // Isolation and remediation go on; the machine is not taken down.
    assert_eq!(
        step_status(&records, "test:a", "isolate"),
        Status::Succeeded
    );
    assert_eq!(
        step_status(&records, "test:a", "remediate"),
        Status::Succeeded
    );
    let skipped = records.iter().find_map(|r| match &r.event {
        RunEvent::StepSkipped { step, reason, .. } if step == "stop" => Some(reason.clone()),
        _ => None,
    });
    let reason = skipped.expect("stop skipped");
    assert!(
        reason.contains("no capture-memory step (memory) succeeded"),
        "{reason}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // With allow_unpreserved on stop the loss is accepted (and journaled).
    let pb = ws.playbook(
        "accept.toml",
        &text.replace(
            "action = \"stop\"\n",
            "action = \"stop\"\nallow_unpreserved = true\n",
        ),
    );
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "accept",
    ]);
    let records = ws.journal("accept");
    assert_eq!(
        step_status(&records, "test:a", "stop"),
        Status::Succeeded,
        "{}",
        stdout(&out)
    );
}

/// The 0.1.0 contract's playbook: its five verbs.
const V0_1_PLAYBOOK: &str = r#"
[playbook]
name = "old-contract"

[plugins.old]
path = "{test_v0_1}"
config = { volumes = 3 }

[[steps]]
id = "snapshot"
plugin = "old"
action = "snapshot"

[[steps]]
id = "interfaces"
plugin = "old"
action = "enumerate-interfaces"

[[steps]]
id = "isolate"
plugin = "old"
action = "isolate"
after = ["snapshot", "interfaces"]

[[steps]]
id = "seal"
plugin = "old"
action = "seal"
after = ["isolate"]

[[steps]]
id = "release"
plugin = "old"
action = "release"
after = ["seal"]
"#;

#[test]
fn a_component_built_against_0_1_0_runs_unchanged() {
    let ws = Workspace::new();
    let out = ws.irhost(&[
        "plugin",
        "inspect",
        fixture_v0_1().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["contract"], "0.1.0");
    assert_eq!(v["world"], "provider");
    let out = ws.irhost(&[
        "plugin",
        "inspect",
        plugin("test-provider").to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["contract"], "0.2.0");

    let pb = ws.playbook("old.toml", V0_1_PLAYBOOK);
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--target",
        "test:b",
        "--case",
        "old",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let records = ws.journal("old");
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLoaded { contract, .. } if contract == "0.1.0")));
    for t in ["test:a", "test:b"] {
        // seal got the snapshot's artifacts (3 volumes + the config dump),
        // release the isolation record of this run.
        let sealed = step_values(&records, t, "seal");
        assert_eq!(sealed["sealed"].as_array().unwrap().len(), 4, "{sealed}");
        let isolation = step_values(&records, t, "isolate");
        let released = step_values(&records, t, "release");
        assert_eq!(released["changes"], isolation["changes"]);
        assert_eq!(
            step_values(&records, t, "interfaces")["shared_storage"],
            serde_json::json!([])
        );
    }
    // A 0.2.0 verb is not one a 0.1.0 component has.
    let pb = ws.playbook(
        "old-memory.toml",
        &format!("{V0_1_PLAYBOOK}\n[[steps]]\nid = \"memory\"\nplugin = \"old\"\naction = \"capture-memory\"\n"),
    );
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does not support action `capture-memory`"),
        "{}",
        stderr(&out)
    );
}
