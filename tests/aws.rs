//! The AWS EC2 plugin against moto's EC2 server: the real `irhost` binary,
//! the real `aws-ec2` component, requests signed by the host at the egress
//! boundary, and assertions on moto's state read back through the EC2 API.

mod common;

use std::process::Output;

use common::moto::Moto;
use common::*;
use irhost::events::{RunEvent, Status};
use serde_json::Value;

fn playbook(name: &str) -> String {
    repo_root()
        .join("playbooks")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn run_compromise(moto: &Moto, ws: &Workspace, case: &str, targets: &[&str]) -> Output {
    let mut args = vec![
        "run".to_string(),
        playbook("aws-instance-compromise.toml"),
        "--case".into(),
        case.into(),
    ];
    for t in targets {
        args.push("--target".into());
        args.push(format!("aws:{t}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    moto.irhost(ws, &args)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn isolation_groups<'a>(state: &'a Value, case: &str) -> Vec<(&'a String, &'a Value)> {
    state["groups"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, g)| g["name"] == format!("irhost-isolation-{case}"))
        .collect()
}

fn enis_of<'a>(state: &'a Value, instance: &str) -> Vec<(&'a String, &'a Value)> {
    state["enis"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["instance"] == instance)
        .collect()
}

#[test]
fn a_multi_eni_instance_is_preserved_isolated_and_sealed() {
    let moto = Moto::start();
    let seeded = moto.seed("multi-eni");
    let iid = s(&seeded["instance"]);
    let ws = Workspace::new();
    let out = run_compromise(&moto, &ws, "ir-1", &[iid]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let state = moto.state();
    let instance = &state["instances"][iid];

    // Every EBS volume has a snapshot carrying the case tags, sealed.
    let volumes = instance["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 3);
    for v in volumes {
        let snap = state["snapshots"]
            .as_object()
            .unwrap()
            .values()
            .find(|snap| snap["volume"] == v["volume"])
            .unwrap_or_else(|| panic!("no snapshot of {}", v["volume"]));
        let tags = &snap["tags"];
        assert_eq!(tags["irhost:case"], "ir-1");
        assert_eq!(tags["irhost:source-instance"], iid);
        assert_eq!(tags["irhost:volume"], v["volume"]);
        assert_eq!(tags["irhost:device"], v["device"]);
        assert!(tags["irhost:time"].is_string());
        assert_eq!(tags["irhost:sealed"], "true", "{tags}");
        assert_eq!(
            v["delete_on_termination"], false,
            "DeleteOnTermination is off"
        );
    }

    // Every ENI carries only the case's isolation group, which has no rules.
    let isolation = isolation_groups(&state, "ir-1");
    assert_eq!(isolation.len(), 1);
    let (iso_id, iso) = isolation[0];
    assert_eq!(
        (iso["ingress"].as_u64(), iso["egress"].as_u64()),
        (Some(0), Some(0)),
        "{iso}"
    );
    let enis = enis_of(&state, iid);
    assert_eq!(enis.len(), 2);
    for (eni, e) in &enis {
        assert_eq!(e["groups"], serde_json::json!([iso_id]), "{eni}");
    }
    assert_eq!(instance["termination_protection"], true);
    assert_eq!(instance["shutdown_behavior"], "stop");

    // The case directory holds the config dump and console log, and the journal.
    let records = ws.journal("ir-1");
    let stored: Vec<(String, String)> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::ArtifactRecorded {
                kind,
                location,
                sha256: Some(_),
                ..
            } => Some((kind.clone(), location.clone())),
            _ => None,
        })
        .collect();
    for kind in ["config-dump", "console-log"] {
        let (_, location) = stored
            .iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {stored:?}"));
        assert!(
            ws.cases()
                .join("ir-1")
                .join(location)
                .metadata()
                .unwrap()
                .len()
                > 0
        );
    }
    let interfaces = step_values(&records, &format!("aws:{iid}"), "interfaces");
    assert_eq!(interfaces["interfaces"].as_array().unwrap().len(), 2);
    assert!(interfaces["exposed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["from_port"] == 22 && p["peer"] == "0.0.0.0/0"));
    // The host journaled that it honoured AWS_ENDPOINT_URL and signs requests.
    assert!(records
        .iter()
        .any(|r| matches!(&r.event, RunEvent::PluginLoaded { notes, .. }
        if notes.iter().any(|n| n.contains("AWS_ENDPOINT_URL") && n.contains(&moto.endpoint())))));
}

#[test]
fn two_instances_in_two_vpcs_get_one_isolation_group_per_vpc() {
    let moto = Moto::start();
    let seeded = moto.seed("two-vpcs");
    let ids: Vec<&str> = seeded["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    let ws = Workspace::new();
    let out = run_compromise(&moto, &ws, "ir-2", &ids);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let state = moto.state();
    let isolation = isolation_groups(&state, "ir-2");
    let mut vpcs: Vec<&str> = isolation.iter().map(|(_, g)| s(&g["vpc"])).collect();
    vpcs.sort_unstable();
    let mut expected: Vec<&str> = seeded["vpcs"].as_array().unwrap().iter().map(s).collect();
    expected.sort_unstable();
    assert_eq!(vpcs, expected, "exactly one isolation group per VPC");
    for iid in ids {
        let vpc = s(&state["instances"][iid]["vpc"]);
        let (group, _) = isolation.iter().find(|(_, g)| g["vpc"] == vpc).unwrap();
        for (_, e) in enis_of(&state, iid) {
            assert_eq!(e["groups"], serde_json::json!([group]));
        }
    }
}

#[test]
fn running_the_same_case_twice_changes_nothing_but_the_journal() {
    let moto = Moto::start();
    let iid = s(&moto.seed("multi-eni")["instance"]).to_string();
    let ws = Workspace::new();
    assert!(run_compromise(&moto, &ws, "ir-3", &[&iid]).status.success());
    let first = moto.state();
    let journal_len = ws.journal("ir-3").len();
    let out = run_compromise(&moto, &ws, "ir-3", &[&iid]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(moto.state(), first, "the second run changed EC2 state");
    assert!(
        ws.journal("ir-3").len() > journal_len,
        "the journal grew (and still verifies)"
    );
}

#[test]
fn release_restores_the_original_groups() {
    let moto = Moto::start();
    let iid = s(&moto.seed("multi-eni")["instance"]).to_string();
    let before = moto.state();
    let ws = Workspace::new();
    assert!(run_compromise(&moto, &ws, "ir-4", &[&iid]).status.success());
    let isolated = moto.state();
    assert_ne!(enis_of(&isolated, &iid), enis_of(&before, &iid));
    let out = moto.irhost(
        &ws,
        &[
            "run",
            &playbook("aws-release.toml"),
            "--target",
            &format!("aws:{iid}"),
            "--case",
            "ir-4",
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let after = moto.state();
    for (eni, e) in enis_of(&before, &iid) {
        assert_eq!(after["enis"][eni]["groups"], e["groups"], "{eni} restored");
    }
    assert_eq!(
        after["instances"][iid.as_str()]["groups"],
        before["instances"][iid.as_str()]["groups"]
    );
}

#[test]
fn a_missing_instance_fails_alone_and_a_stopped_one_is_still_handled() {
    let moto = Moto::start();
    let stopped = s(&moto.seed("stopped")["instance"]).to_string();
    let good = s(&moto.seed("multi-eni")["instance"]).to_string();
    let missing = "i-0123456789abcdef0";
    let ws = Workspace::new();
    let out = run_compromise(&moto, &ws, "ir-5", &[missing, &stopped, &good]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!("FAILED aws:{missing}")) && text.contains("not found"),
        "{text}"
    );
    let records = ws.journal("ir-5");
    let status = |target: &str| {
        records.iter().rev().find_map(|r| match &r.event {
            RunEvent::TargetFinished {
                target: t, status, ..
            } if t == target => Some(*status),
            _ => None,
        })
    };
    assert_eq!(status(&format!("aws:{missing}")), Some(Status::Failed));
    assert!(!records.iter().any(|r| matches!(&r.event,
        RunEvent::StepStarted { target, step, .. } if target == &format!("aws:{missing}") && step == "isolate")));
    // AWS snapshots and isolates stopped instances; so does the plugin.
    assert_eq!(status(&format!("aws:{stopped}")), Some(Status::Succeeded));
    assert_eq!(status(&format!("aws:{good}")), Some(Status::Succeeded));
    let state = moto.state();
    // One isolation group per VPC: the good instance's is the one in its VPC.
    let vpc = &state["instances"][good.as_str()]["vpc"];
    let (iso, _) = isolation_groups(&state, "ir-5")
        .into_iter()
        .find(|(_, g)| &g["vpc"] == vpc)
        .unwrap();
    for (_, e) in enis_of(&state, &good) {
        assert_eq!(e["groups"], serde_json::json!([iso]));
    }
}

#[test]
fn the_moto_launcher_fixes_only_the_eni_group_infidelity() {
    // Stock moto: a secondary ENI reports the instance's groups too, and
    // changing the primary ENI's groups leaves the instance's groups alone.
    let stock = Moto::stock().fixture(&["eni-groups"]);
    let web = s(&stock["web"]);
    assert!(
        stock["secondary"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == web),
        "stock moto unions: {stock}"
    );
    assert_eq!(stock["instance"], serde_json::json!([web]), "{stock}");
    // Fixed: as on AWS, each ENI has its own groups and the instance's are the primary ENI's.
    let fixed = Moto::start().fixture(&["eni-groups"]);
    assert_eq!(
        fixed["secondary"],
        serde_json::json!([s(&fixed["a"])]),
        "{fixed}"
    );
    assert_eq!(
        fixed["primary"],
        serde_json::json!([s(&fixed["b"])]),
        "{fixed}"
    );
    assert_eq!(
        fixed["instance"],
        serde_json::json!([s(&fixed["b"])]),
        "{fixed}"
    );
}

#[test]
fn throttling_is_reported_as_throttled_and_backed_off_by_the_engine() {
    // moto never throttles; the launcher injects RequestLimitExceeded on the
    // first two CreateSnapshots calls, as AWS does under load.
    let moto = Moto::launch_with(&["--throttle", "CreateSnapshots:2"]);
    let iid = s(&moto.seed("multi-eni")["instance"]).to_string();
    let ws = Workspace::new();
    let out = run_compromise(&moto, &ws, "ir-6", &[&iid]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("ir-6");
    let retries: Vec<(u64, String)> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepRetrying {
                step,
                delay_ms,
                reason,
                ..
            } if step == "snapshot" => Some((*delay_ms, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    for (delay, reason) in &retries {
        assert!(reason.contains("throttled"), "{reason}");
        assert!(
            *delay >= 2000,
            "the plugin's retry-after (2 s) is honoured: {delay}"
        );
    }
    assert!(matches!(
        finished(&records, &format!("aws:{iid}"), "snapshot"),
        RunEvent::StepFinished {
            attempts: 3,
            status: Status::Succeeded,
            ..
        }
    ));
}

/// The `shared_storage` records of `kind` in an interfaces step's output.
fn shared_of<'a>(interfaces: &'a Value, kind: &str) -> Vec<&'a Value> {
    interfaces["shared_storage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// A record's attribute (attributes are `[key, value]` pairs).
fn attribute<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv[0] == key)
        .map(|kv| s(&kv[1]))
}

#[test]
fn efs_mount_targets_and_fsx_file_systems_in_the_instance_s_subnets_are_shared_storage() {
    let moto = Moto::start();
    let seeded = moto.seed("shared-storage");
    let iid = s(&seeded["instance"]);
    let ws = Workspace::new();
    // The shipped playbook: its grant covers the verb's EFS and FSx reads.
    let out = run_compromise(&moto, &ws, "ir-7", &[iid]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("ir-7");
    let interfaces = step_values(&records, &format!("aws:{iid}"), "interfaces");
    assert!(shared_of(&interfaces, "unread").is_empty(), "{interfaces}");

    // EFS: the mount target in the instance's subnet, not the one of the
    // same file system in the other subnet, nor the file system only there.
    let efs = shared_of(&interfaces, "efs-mount-target");
    assert_eq!(efs.len(), 1, "{interfaces}");
    let mt = efs[0];
    let seeded_mt = &seeded["efs"]["shared_a"];
    assert_eq!(mt["id"], seeded["efs"]["shared"]);
    assert_eq!(
        mt["endpoints"],
        serde_json::json!([seeded_mt["id"], seeded_mt["ip"]])
    );
    assert_eq!(mt["attached_to"], serde_json::json!([iid]));
    assert_eq!(attribute(mt, "mount-target-id"), seeded_mt["id"].as_str());
    assert_eq!(attribute(mt, "subnet"), seeded["subnets"]["a"].as_str());
    assert_eq!(attribute(mt, "availability-zone"), Some("us-east-1a"));
    assert_eq!(attribute(mt, "lifecycle-state"), Some("available"));
    assert_eq!(attribute(mt, "file-system-name"), Some("shared"));
    assert_eq!(
        attribute(mt, "network-interface"),
        seeded_mt["eni"].as_str()
    );
    assert_eq!(
        attribute(mt, "security-groups"),
        seeded["groups"]["nfs"].as_str()
    );

    // FSx: the file system in the instance's subnet, at its DNS name and
    // its ENI's address.
    let fsx = shared_of(&interfaces, "fsx");
    assert_eq!(fsx.len(), 1, "{interfaces}");
    let fs = fsx[0];
    let scratch = &seeded["fsx"]["scratch"];
    assert_eq!(fs["id"], scratch["id"]);
    let mut endpoints = vec![scratch["dns"].clone()];
    endpoints.extend(scratch["ips"].as_array().unwrap().iter().cloned());
    assert_eq!(fs["endpoints"], Value::Array(endpoints));
    assert_eq!(fs["attached_to"], serde_json::json!([iid]));
    assert_eq!(attribute(fs, "file-system-type"), Some("LUSTRE"));
    assert_eq!(attribute(fs, "storage-capacity-gib"), Some("1200"));
    assert_eq!(attribute(fs, "lifecycle"), Some("AVAILABLE"));
    assert_eq!(attribute(fs, "deployment-type"), Some("SCRATCH_2"));
    assert_eq!(
        attribute(fs, "security-groups"),
        seeded["groups"]["nfs"].as_str()
    );
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLog { step, message, .. }
            if step == "interfaces" && message.contains("1 EFS mount target(s), 1 FSx file system(s)"))));
}

#[test]
fn a_responder_who_may_not_read_efs_or_fsx_still_gets_the_interfaces() {
    let moto = Moto::launch_with(&["--iam-auth"]);
    let seeded = moto.seed("shared-storage");
    let iid = s(&seeded["instance"]);
    let keys = moto.fixture(&["iam-user", "ir-ec2-only", "ec2:*"]);
    moto.enforce_iam();
    let ws = Workspace::new();
    let pb = ws.playbook(
        "interfaces.toml",
        &format!(
            r#"[playbook]
name = "interfaces"

[plugins.ec2]
path = "{}"
limits = {{ memory_mb = 256, cpu_ms = 20000, timeout = "2m" }}

[plugins.ec2.cloud]
aws = [
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVolumes",
    "elasticfilesystem:DescribeFileSystems",
    "elasticfilesystem:DescribeMountTargets",
    "fsx:DescribeFileSystems",
]

[[steps]]
id = "interfaces"
plugin = "ec2"
action = "enumerate-interfaces"
"#,
            repo_root().join("plugins/dist/aws-ec2.wasm").display()
        ),
    );
    let target = format!("aws:{iid}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args(["run", pb.to_str().unwrap(), "--target", &target])
        .args(["--case", "ir-8"])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", s(&keys["access_key_id"]))
        .env("AWS_SECRET_ACCESS_KEY", s(&keys["secret_access_key"]))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("ir-8");
    let interfaces = step_values(&records, &target, "interfaces");
    assert_eq!(interfaces["interfaces"].as_array().unwrap().len(), 1);
    assert!(shared_of(&interfaces, "efs-mount-target").is_empty());
    assert!(shared_of(&interfaces, "fsx").is_empty());
    // What could not be read is in the inventory and the journal.
    let unread = shared_of(&interfaces, "unread");
    let ids: Vec<&str> = unread.iter().map(|u| s(&u["id"])).collect();
    assert_eq!(ids, ["elasticfilesystem", "fsx"], "{interfaces}");
    for u in &unread {
        assert_eq!(attribute(u, "error-kind"), Some("denied"), "{u}");
    }
    for what in ["EFS mount targets not read", "FSx file systems not read"] {
        assert!(
            records.iter().any(|r| matches!(&r.event,
                RunEvent::PluginLog { level, message, .. } if level == "warn" && message.contains(what))),
            "no warning: {what}"
        );
    }
}
