//! capture-memory on Azure: the shipped full protocol against the fake ARM,
//! whose guest-agent model runs the plugin's Run Command scripts for real
//! (downloading the memory tool from a loopback server, checking its hash,
//! PUTting the image's blocks to the URLs the host minted), into Azurite's
//! Blob service. The block URLs carry the account-key service SAS (Azurite's
//! development account; `AZURE_STORAGE_KEY`).

use crate::common::azurite::{Azurite, KEY};
use crate::common::fake_arm::FakeArm;
use crate::common::memory_tool::{image_bytes, MemoryArtifact, MemoryTool};
use crate::common::*;
use crate::support::*;
use irhost::events::{RunEvent, Status};
use std::path::PathBuf;

/// Three blocks of 1 MiB (the last one short).
const IMAGE_BYTES: usize = (2 << 20) + 12345;

/// The shipped full protocol with the test tool, 1 MiB blocks, two URLs
/// per command, and Azurite's container as the evidence store.
fn full_protocol(
    ws: &Workspace,
    tool: &MemoryTool,
    sha256: &str,
    workdir: &std::path::Path,
    azurite: &Azurite,
) -> PathBuf {
    let path = shipped(ws, "azure-full-protocol.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = "memory_tool_url = \"https://github.com/microsoft/avml/releases/download/v0.14.0/avml\", memory_tool_sha256 = \"\"";
    assert!(text.contains(config), "{text}");
    let text = text
        .replace(
            config,
            &format!(
                "memory_tool_url = \"{}\", memory_tool_sha256 = \"{sha256}\", memory_workdir = \"{}\", memory_part_mb = 1, memory_urls_per_command = 2",
                tool.url(),
                workdir.display()
            ),
        )
        .replace(
            "evidence_uploads = \"https://irevidence.blob.core.windows.net/evidence/memory/\"",
            &format!("evidence_uploads = \"{}/evidence/memory/\"", azurite.service()),
        );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_with_store(
    arm: &FakeArm,
    ws: &Workspace,
    book: &std::path::Path,
    case: &str,
    vms: &[&str],
) -> std::process::Output {
    run_book_with(
        arm,
        ws,
        book,
        case,
        vms,
        &[("AZURE_STORAGE_KEY", KEY.to_string())],
    )
}

#[test]
fn the_vm_uploads_its_memory_through_run_command_before_it_is_isolated_and_stopped() {
    let azurite = Azurite::start();
    azurite.create_container("evidence");
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "mem-1");
    arm.set_os_type(&vm, "Linux");
    let tool = MemoryTool::serve(IMAGE_BYTES);
    let machine = tempfile::tempdir().unwrap();
    let ws = Workspace::new();
    let book = full_protocol(&ws, &tool, &tool.sha256, machine.path(), &azurite);
    let out = run_with_store(&arm, &ws, &book, "IR-AZ-MEM", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("IR-AZ-MEM");
    let target = format!("azure:{vm}");
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

    // The image: one blob in the granted container under the case, its
    // bytes what the tool wrote, their sha256 the one the VM reported and
    // the artifact records.
    let image = MemoryArtifact::of(&records);
    let (location, sha256, size) = (image.location.clone(), image.sha256.clone(), image.size);
    let prefix = format!("{}/evidence/", azurite.service());
    let key = location.strip_prefix(&prefix).expect(&location).to_string();
    assert!(
        key.starts_with("memory/IR-AZ-MEM/") && key.ends_with("/memory.lime"),
        "{key}"
    );
    assert_eq!(
        azurite.blob("evidence", &key).unwrap(),
        image_bytes(IMAGE_BYTES),
        "the blob is the image, block by block in order"
    );
    assert_eq!(sha256.as_deref(), Some(tool.image_sha256().as_str()));
    assert_eq!(size, Some(IMAGE_BYTES as u64));
    let meta = |k: &str| image.meta(k);
    assert_eq!(meta("parts").as_deref(), Some("3"));
    assert_eq!(meta("platform").as_deref(), Some("Linux"));
    assert_eq!(meta("command").as_deref(), Some("RunShellScript"));
    assert_eq!(meta("tool_sha256").as_deref(), Some(tool.sha256.as_str()));
    assert_eq!(
        meta("commands").unwrap().split(',').count(),
        3,
        "capture + two upload batches"
    );

    // What the agent ran: the capture (the hash checked before the tool
    // runs), then the uploads; every one ended 0; no script holds the
    // storage key or a bearer token.
    let commands = arm.run_commands();
    assert_eq!(commands.len(), 3, "{commands:#?}");
    for (command_id, script, exit) in &commands {
        assert_eq!(command_id, "RunShellScript");
        assert_eq!(*exit, Some(0), "{script:#?}");
        let text = script.join("\n");
        assert!(!text.contains(KEY) && !text.contains("Bearer"), "{text}");
    }
    let capture = &commands[0].1;
    let check = capture
        .iter()
        .position(|l| l.contains("sha256sum -c"))
        .unwrap();
    let run = capture
        .iter()
        .position(|l| l.starts_with("./tool"))
        .unwrap();
    assert!(check < run, "{capture:#?}");
    // The image left the VM's disk with the last upload.
    assert!(!machine.path().join("irhost-IR-AZ-MEM").exists());

    // Perishable data first: every Run Command before the isolation's
    // first NIC write and the power-off.
    let requests = arm.requests();
    let index =
        |pred: &dyn Fn(&crate::common::fake_arm::Logged) -> bool| requests.iter().position(pred);
    let last_run = requests
        .iter()
        .rposition(|r| r.method == "POST" && r.path.to_ascii_lowercase().ends_with("/runcommand"))
        .unwrap();
    let first_nic_write = index(&|r| {
        r.method == "PUT" && r.path.to_ascii_lowercase().contains("/networkinterfaces/")
    })
    .unwrap();
    let power_off = index(&|r| r.path.to_ascii_lowercase().ends_with("/poweroff")).unwrap();
    assert!(last_run < first_nic_write && last_run < power_off);
    // Each minted URL is journaled; none outlives its quarter hour.
    let minted: Vec<u32> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::EvidenceUpload {
                operation,
                expires_in_s,
                ..
            } if operation == "part-urls" => *expires_in_s,
            _ => None,
        })
        .collect();
    assert_eq!(minted.len(), 2, "two batches");
    assert!(minted.iter().all(|s| *s <= 900), "{minted:?}");
}

#[test]
fn no_agent_is_unsupported_and_a_wrong_tool_hash_commits_nothing() {
    let azurite = Azurite::start();
    azurite.create_container("evidence");
    let arm = FakeArm::start();
    let bare = two_nic_vm(&arm, "bare-1");
    arm.set_os_type(&bare, "Linux");
    arm.remove_agent(&bare);
    let tool = MemoryTool::serve(IMAGE_BYTES);
    let machine = tempfile::tempdir().unwrap();

    // No guest agent: the capture is unsupported, isolation and
    // remediation go on, the VM is not stopped.
    let ws = Workspace::new();
    let book = full_protocol(&ws, &tool, &tool.sha256, machine.path(), &azurite);
    let out = run_with_store(&arm, &ws, &book, "IR-AZ-NOAGENT", &[&bare]);
    assert!(!out.status.success());
    let records = ws.journal("IR-AZ-NOAGENT");
    let target = format!("azure:{bare}");
    assert_eq!(step_status(&records, &target, "memory"), Status::Failed);
    let error = step_error(&records, &target, "memory");
    assert!(error.contains("guest agent"), "{error}");
    for step in ["isolate", "remediate"] {
        assert_eq!(
            step_status(&records, &target, step),
            Status::Succeeded,
            "{step}"
        );
    }
    assert!(events(&records).iter().any(|e| matches!(e, RunEvent::StepSkipped { target: t, step, .. } if *t == target && step == "stop")));
    assert_eq!(arm.power(&bare), "running");
    assert!(arm.run_commands().is_empty());

    // A tool whose bytes are not the pinned ones is never run: the capture
    // fails with the script's reason and the upload commits no blob.
    let vm = two_nic_vm(&arm, "hash-1");
    arm.set_os_type(&vm, "Linux");
    let ws = Workspace::new();
    let book = full_protocol(&ws, &tool, &"0".repeat(64), machine.path(), &azurite);
    let out = run_with_store(&arm, &ws, &book, "IR-AZ-HASH", &[&vm]);
    assert!(!out.status.success());
    let records = ws.journal("IR-AZ-HASH");
    let target = format!("azure:{vm}");
    let error = step_error(&records, &target, "memory");
    assert!(
        error.contains("exit status=97") && error.contains("tool hash mismatch"),
        "{error}"
    );
    let commands = arm.run_commands();
    assert_eq!(commands.len(), 1, "only the capture: {commands:#?}");
    assert_eq!(commands[0].2, Some(97));
    let aborted = records
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::EvidenceUpload {
                operation,
                location,
                ..
            } if operation == "abort" => Some(location.clone()),
            _ => None,
        })
        .expect("the upload is aborted");
    let key = aborted
        .strip_prefix(&format!("{}/evidence/", azurite.service()))
        .expect(&aborted);
    assert!(azurite.blob("evidence", key).is_err(), "no blob at {key}");
    assert_eq!(arm.power(&vm), "running");
}
