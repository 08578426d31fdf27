//! The whole breach protocol on AWS with the shipped
//! `playbooks/aws-full-protocol.toml`: moto with the launcher's SSM agent
//! model, a "guest" that runs the plugin's Run Command scripts for real
//! (downloading the memory tool from a loopback server, checking its hash,
//! PUTting the image's parts to the URLs the host minted), and a recording
//! proxy in front of moto that proves the order of the calls.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::memory_tool::{MemoryArtifact, MemoryTool, Running};
use common::moto::{venv_python, Moto};
use common::net::ConnectProxy;
use common::*;
use irhost::events::{RunEvent, Status};

/// The size of the test tool's "memory image": three parts of 5 MiB.
const IMAGE_BYTES: usize = 12 << 20;

/// The SSM guest of `instance`, registered once it prints GUEST READY.
fn guest(moto: &Moto, instance: &str, workdir: &Path) -> Running {
    let mut child = Command::new(venv_python())
        .arg(repo_root().join("tests/moto/ssm_guest.py"))
        .args(["--endpoint", &moto.endpoint(), "--instance", instance])
        .arg("--workdir")
        .arg(workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "GUEST READY");
    Running(child)
}

/// The shipped playbook with this machine's plugin paths, the test tool
/// and small parts (5 MiB, two URLs per command) so the upload takes
/// several parts and commands.
fn full_protocol(tool_url: &str, tool_sha256: &str, workdir: &Path) -> String {
    std::fs::read_to_string(repo_root().join("playbooks/aws-full-protocol.toml"))
        .unwrap()
        .replace(
            "../plugins/dist",
            repo_root().join("plugins/dist").to_str().unwrap(),
        )
        .replace(
            "config = { memory_tool_url = \"https://github.com/microsoft/avml/releases/download/v0.14.0/avml\", memory_tool_sha256 = \"\" }",
            &format!(
                "config = {{ memory_tool_url = \"{tool_url}\", memory_tool_sha256 = \"{tool_sha256}\", memory_workdir = \"{}\", memory_part_mb = 5, memory_urls_per_command = 2, memory_poll_ms = 200, stop_wait_s = 30 }}",
                workdir.display()
            ),
        )
}

#[test]
fn the_full_protocol_captures_memory_first_then_isolates_remediates_and_stops() {
    let moto = Moto::launch_with(&["--ssm-agent"]);
    let seeded = moto.seed("protocol");
    let iid = seeded["instance"].as_str().unwrap().to_string();
    let (web, shared) = (
        seeded["groups"]["web"].as_str().unwrap(),
        seeded["groups"]["shared"].as_str().unwrap(),
    );
    for bucket in ["ir-evidence", "ir-evidence-vault"] {
        moto.s3(&["create-bucket", bucket]);
    }
    // The memory tool: writes the image to the path it is given.
    let tool = MemoryTool::serve(IMAGE_BYTES);
    let tool_sha256 = tool.sha256.clone();
    let guest_dir = tempfile::tempdir().unwrap();
    let _guest = guest(&moto, &iid, guest_dir.path());
    let instance_dir = tempfile::tempdir().unwrap();

    let ws = Workspace::new();
    let pb = ws.playbook(
        "full.toml",
        &full_protocol(&tool.url(), &tool_sha256, instance_dir.path()),
    );
    let proxy = ConnectProxy::start();
    let target = format!("aws:{iid}");
    let out = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
        command
            .args([
                "run",
                pb.to_str().unwrap(),
                "--target",
                &target,
                "--case",
                "proto",
            ])
            .current_dir(ws.path())
            .env("IRHOST_CASES_DIR", ws.cases())
            .env("IRHOST_CACHE_DIR", shared_cache())
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("HTTP_PROXY", proxy.url())
            .env_remove("AWS_PROFILE")
            .env_remove("NO_PROXY");
        command.output().unwrap()
    };
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("proto");
    for step in [
        "memory",
        "snapshot",
        "interfaces",
        "isolate",
        "remediate",
        "stop",
        "seal",
    ] {
        assert_eq!(
            step_status(&records, &target, step),
            Status::Succeeded,
            "{step}"
        );
    }

    // The memory image: in the granted bucket under the case and target,
    // its bytes what the tool wrote, their sha256 the one the instance
    // reported and the artifact records.
    let expected = tool.image_sha256();
    let image = MemoryArtifact::of(&records);
    let (location, sha256, size) = (image.location.clone(), image.sha256.clone(), image.size);
    let key = format!("memory/proto/{iid}/memory.lime");
    assert_eq!(location, format!("s3://ir-evidence/{key}"));
    assert_eq!(sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(size, Some(IMAGE_BYTES as u64));
    let meta = |k: &str| image.meta(k);
    assert_eq!(meta("parts").as_deref(), Some("3"));
    assert_eq!(meta("tool_sha256").as_deref(), Some(tool_sha256.as_str()));
    assert_eq!(
        meta("commands").unwrap().split(',').count(),
        3,
        "capture + two upload batches"
    );
    let objects = moto.s3(&["objects", "ir-evidence", "memory/"]);
    assert_eq!(objects[&key][0]["sha256"], expected, "{objects}");
    // The image left the instance's disk with the last upload.
    assert!(!instance_dir.path().join("irhost-proto").exists());
    // Each minted URL is journaled; none outlives its quarter hour.
    let minted: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::EvidenceUpload {
                operation,
                expires_in_s,
                ..
            } if operation == "part-urls" => Some(*expires_in_s),
            _ => None,
        })
        .collect();
    assert_eq!(minted, vec![Some(900), Some(900)]);

    // Remediation: the suspect's own world-open group revoked (and tagged),
    // the group it shares with a neighbour left alone, its Elastic IP
    // dissociated; the instance stopped, never terminated, volumes kept.
    let state = moto.state();
    assert_eq!(state["groups"][web]["world_ingress"], serde_json::json!([]));
    assert_eq!(
        state["groups"][shared]["world_ingress"],
        serde_json::json!(["tcp:80-80"])
    );
    let allocation = seeded["allocation"].as_str().unwrap();
    assert_eq!(state["addresses"][allocation]["associated"], false);
    let remediation = step_values(&records, &target, "remediate");
    assert!(remediation["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["resource_id"] == shared
            && s["reason"]
                .as_str()
                .unwrap()
                .contains(seeded["neighbour"].as_str().unwrap())));
    assert_eq!(state["instances"][&iid]["state"], "stopped");
    assert!(state["instances"][&iid]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["delete_on_termination"] == false));
    let stop = step_values(&records, &target, "stop");
    assert_eq!(stop["previous_state"], "running");

    // The order on the wire, as the proxy in front of moto saw it: the
    // memory upload completed before the isolation's first change, which
    // came before the remediation, then the stop.
    let actions = proxy.actions();
    let first = |name: &str| {
        actions
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("{name} not in {actions:?}"))
    };
    let last = |name: &str| actions.iter().rposition(|a| a == name).unwrap();
    let completed = last("S3 POST uploadId");
    assert!(
        completed < first("ModifyNetworkInterfaceAttribute"),
        "{actions:?}"
    );
    assert!(
        last("ModifyNetworkInterfaceAttribute") < first("RevokeSecurityGroupIngress"),
        "{actions:?}"
    );
    assert!(
        first("DisassociateAddress") < first("StopInstances"),
        "{actions:?}"
    );
    assert!(!actions.iter().any(|a| a == "TerminateInstances"));
    assert_eq!(actions.iter().filter(|a| *a == "SendCommand").count(), 3);

    // A false positive: the shipped release playbook, in a run of its own
    // (no records of the first), undoes the remediation from its tags.
    let release = std::fs::read_to_string(repo_root().join("playbooks/aws-release.toml"))
        .unwrap()
        .replace(
            "../plugins/dist",
            repo_root().join("plugins/dist").to_str().unwrap(),
        );
    let release = ws.playbook("release.toml", &release);
    let out = moto.irhost(
        &ws,
        &[
            "run",
            release.to_str().unwrap(),
            "--target",
            &target,
            "--case",
            "proto",
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let state = moto.state();
    assert_eq!(
        state["groups"][web]["world_ingress"],
        serde_json::json!(["tcp:22-22", "tcp:443-443"])
    );
    assert!(state["groups"][web]["tags"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with("irhost:remediated:")));
    assert_eq!(state["addresses"][allocation]["associated"], true);
    // (moto reports the InstanceId of an address associated by its ENI as
    // empty: the ENI says whose it is.)
    let eni = state["addresses"][allocation]["eni"].as_str().unwrap();
    assert_eq!(state["enis"][eni]["instance"], iid.as_str(), "{state}");
    assert_eq!(
        state["groups"][shared]["world_ingress"],
        serde_json::json!(["tcp:80-80"])
    );
}

#[test]
fn an_instance_without_an_agent_is_not_captured_isolated_yes_stopped_no() {
    let moto = Moto::launch_with(&["--ssm-agent"]);
    let seeded = moto.seed("protocol");
    let iid = seeded["instance"].as_str().unwrap().to_string();
    for bucket in ["ir-evidence", "ir-evidence-vault"] {
        moto.s3(&["create-bucket", bucket]);
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new();
    let pb = ws.playbook(
        "full.toml",
        &full_protocol("http://127.0.0.1:9/avml", &"ab".repeat(32), dir.path()),
    );
    let target = format!("aws:{iid}");
    let out = moto.irhost(
        &ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            &target,
            "--case",
            "noagent",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let records = ws.journal("noagent");
    assert_eq!(step_status(&records, &target, "memory"), Status::Failed);
    let error = step_error(&records, &target, "memory");
    assert!(
        error.contains("unsupported") && error.contains("no SSM agent online"),
        "{error}"
    );
    assert_eq!(step_status(&records, &target, "isolate"), Status::Succeeded);
    assert_eq!(
        step_status(&records, &target, "remediate"),
        Status::Succeeded
    );
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::StepSkipped { step, reason, .. } if step == "stop" && reason.contains("no capture-memory step (memory) succeeded"))));
    assert_eq!(moto.state()["instances"][&iid]["state"], "running");
    // No upload was begun for it.
    assert!(!records
        .iter()
        .any(|r| matches!(&r.event, RunEvent::EvidenceUpload { .. })));
}

#[test]
fn an_isolation_that_keeps_the_agent_reachable_opens_only_https_to_its_endpoints() {
    let moto = Moto::launch_with(&["--ssm-agent"]);
    let seeded = moto.seed("protocol");
    let iid = seeded["instance"].as_str().unwrap().to_string();
    let (vpc, subnet) = (
        seeded["vpc"].as_str().unwrap(),
        seeded["subnet"].as_str().unwrap(),
    );
    for bucket in ["ir-evidence", "ir-evidence-vault"] {
        moto.s3(&["create-bucket", bucket]);
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new();
    // Isolate before the capture: a plan error, unless the grant keeps the
    // agent's services reachable through the isolation.
    let before = full_protocol("http://127.0.0.1:9/avml", &"ab".repeat(32), dir.path())
        .replace(
            "after = [\"memory\", \"snapshot\", \"interfaces\"]",
            "after = [\"snapshot\", \"interfaces\"]",
        )
        .replace(
            "after = [\"remediate\"]",
            "after = [\"remediate\", \"memory\"]",
        );
    let pb = ws.playbook("before.toml", &before);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("isolation_keeps = [\"ssm\", \"s3\"]"),
        "{}",
        stderr(&out)
    );
    let keeping = before.replace(
        "evidence_uploads = \"s3://ir-evidence/memory/\"",
        "evidence_uploads = \"s3://ir-evidence/memory/\"\nisolation_keeps = [\"ssm\", \"s3\"]",
    );
    // Its declared reads for that (DescribeVpcEndpoints, DescribePrefixLists)
    // must be granted too.
    let pb = ws.playbook("keeping-ungranted.toml", &keeping);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ec2:DescribeVpcEndpoints, ec2:DescribePrefixLists"),
        "{}",
        stderr(&out)
    );
    let keeping = keeping.replace(
        "    \"ec2:DescribeAddresses\",\n",
        "    \"ec2:DescribeAddresses\",\n    \"ec2:DescribeVpcEndpoints\",\n    \"ec2:DescribePrefixLists\",\n",
    );
    let pb = ws.playbook("keeping.toml", &keeping);
    let target = format!("aws:{iid}");
    let run = |case: &str| {
        let out = moto.irhost(
            &ws,
            &[
                "run",
                pb.to_str().unwrap(),
                "--target",
                &target,
                "--case",
                case,
            ],
        );
        let journal = ws.cases().join(case).join("journal.jsonl");
        assert!(journal.exists(), "{}\n{}", stdout(&out), stderr(&out));
        (out, ws.journal(case))
    };
    // No interface endpoints in the VPC: the isolation refuses to widen.
    let (out, records) = run("keep1");
    assert!(!records.is_empty(), "{}\n{}", stdout(&out), stderr(&out));
    let error = step_error(&records, &target, "isolate");
    assert!(
        error.contains("has no interface endpoint for com.amazonaws.us-east-1.ssm"),
        "{error}"
    );
    // With them: HTTPS to their addresses and to S3's prefix list, nothing else.
    let endpoints = moto.fixture(&[
        "vpc-endpoints",
        vpc,
        subnet,
        "ssm",
        "ssmmessages",
        "ec2messages",
    ]);
    let (_, records) = run("keep2");
    assert_eq!(step_status(&records, &target, "isolate"), Status::Succeeded);
    let state = moto.state();
    let (_, group) = state["groups"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, g)| g["name"] == "irhost-isolation-keep2")
        .unwrap();
    let mut expected: Vec<String> = endpoints["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("tcp:443:{}/32", a.as_str().unwrap()))
        .collect();
    expected.push(format!(
        "tcp:443:{}",
        endpoints["s3_prefix_list"].as_str().unwrap()
    ));
    expected.sort();
    assert_eq!(
        group["egress_rules"],
        serde_json::json!(expected),
        "{group}"
    );
    assert_eq!(group["ingress"], 0);
}

#[test]
fn a_hostile_plugin_gets_only_short_urls_for_parts_of_its_own_object() {
    let moto = Moto::start();
    moto.s3(&["create-bucket", "ir-evidence"]);
    let run = |grant: &str| {
        let ws = Workspace::new();
        let pb = ws.playbook(
            "uploads.toml",
            &format!(
                "[playbook]\nname = \"uploads\"\n\n[plugins.hostile]\npath = \"{{hostile}}\"\nconfig = {{ mode = \"uploads\" }}\n{grant}\n[[steps]]\nid = \"misuse\"\nplugin = \"hostile\"\naction = \"misbehave\"\n"
            ),
        );
        let out = moto.irhost(
            &ws,
            &[
                "run",
                pb.to_str().unwrap(),
                "--target",
                "test:t1",
                "--case",
                "up",
            ],
        );
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let records = ws.journal("up");
        (step_values(&records, "test:t1", "misuse"), records)
    };
    // No evidence_uploads in the grant (or no grant): every call is denied.
    let (values, records) = run("");
    for key in ["escape", "begin"] {
        assert!(
            values[key].as_str().unwrap().contains("::Denied("),
            "{values}"
        );
    }
    assert!(!records
        .iter()
        .any(|r| matches!(&r.event, RunEvent::EvidenceUpload { .. })));

    let (values, records) = run(
        "[plugins.hostile.cloud]\naws = [\"s3:PutObject\"]\nevidence_uploads = \"s3://ir-evidence/memory/\"\n",
    );
    // The host chooses the key; a name cannot climb out of it.
    assert!(
        values["escape"]
            .as_str()
            .unwrap()
            .contains("::InvalidInput("),
        "{values}"
    );
    assert_eq!(
        values["begin"], "ok s3://ir-evidence/memory/up/t1/memory.lime",
        "{values}"
    );
    // URLs only for an upload this call began, at most 100 at a time.
    assert!(
        values["unbegun"]
            .as_str()
            .unwrap()
            .contains("no open upload"),
        "{values}"
    );
    assert!(
        values["flood"].as_str().unwrap().contains("1 to 100"),
        "{values}"
    );
    let minted = values["minted"]
        .as_str()
        .unwrap()
        .strip_prefix("ok ")
        .unwrap();
    let urls: Vec<&str> = minted.split(' ').collect();
    assert_eq!(urls.len(), 2);
    for (i, url) in urls.iter().enumerate() {
        assert!(
            url.contains("/ir-evidence/memory/up/t1/memory.lime?"),
            "{url}"
        );
        assert!(url.contains(&format!("partNumber={}", i + 1)), "{url}");
        assert!(url.contains("X-Amz-Expires=900"), "{url}");
        assert!(
            !url.contains("testing&") && url.contains("X-Amz-Signature="),
            "{url}"
        );
    }
    // The upload it left unfinished was aborted when the call ended; every
    // operation is journaled.
    let operations: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::EvidenceUpload {
                operation, error, ..
            } => {
                assert!(error.is_none(), "{error:?}");
                Some(operation.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(operations, ["begin", "part-urls", "abort"]);
}
