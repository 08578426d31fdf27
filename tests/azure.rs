//! The Azure compute plugin against the fake ARM (tests/common/fake_arm/,
//! serving the official REST examples): the real `irhost` binary, the real
//! `azure-compute` component, bearer tokens obtained and attached by the
//! host at the egress boundary, and assertions on the fake's ARM state.
//! The verbs of contract 0.2 are in the submodules: takedown (`stop`),
//! remediation (`remediate` and its release), evidence (the snapshot's
//! screen and console, shared disks), memory (`capture-memory` through Run
//! Command into Azurite).

mod common;
#[path = "azure/evidence.rs"]
mod evidence;
#[path = "azure/memory.rs"]
mod memory;
#[path = "azure/remediation.rs"]
mod remediation;
#[path = "azure/support.rs"]
mod support;
#[path = "azure/takedown.rs"]
mod takedown;

use common::fake_arm::{id_of, FakeArm};
use common::moto::Moto;
use common::*;
use irhost::events::{RunEvent, Status};
use serde_json::Value;
use support::*;

#[test]
fn vm_with_two_nics_and_three_disks_is_preserved_isolated_and_sealed() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "web-1");
    let ws = Workspace::new();
    let out = run(&arm, &ws, "azure-vm-compromise.toml", "IR-AZ-1", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // Every disk has a snapshot of the case, tagged, copied from that disk.
    let snapshots = arm.resources_of(RG, "Microsoft.Compute/snapshots");
    assert_eq!(snapshots.len(), 3, "{snapshots:#?}");
    let mut sources: Vec<String> = snapshots
        .iter()
        .map(|s| {
            s["properties"]["creationData"]["sourceResourceId"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase()
        })
        .collect();
    sources.sort();
    let mut disks: Vec<String> = ["web-1-osdisk", "web-1-data0", "web-1-data1"]
        .iter()
        .map(|d| id_of(RG, "Microsoft.Compute/disks", d).to_ascii_lowercase())
        .collect();
    disks.sort();
    assert_eq!(sources, disks);
    for s in &snapshots {
        assert_eq!(tag(s, "irhost-case"), Some("IR-AZ-1"));
        assert_eq!(
            tag(s, "irhost-source-vm").map(str::to_ascii_lowercase),
            Some(vm.to_ascii_lowercase())
        );
        assert!(tag(s, "irhost-disk").is_some() && tag(s, "irhost-time").is_some());
        assert_eq!(s["properties"]["creationData"]["createOption"], "Copy");
        assert_eq!(s["properties"]["incremental"], true);
        assert_eq!(
            s["properties"]["provisioningState"], "Succeeded",
            "the plugin waited for the operation"
        );
        // Sealed and locked.
        assert_eq!(tag(s, "irhost-sealed"), Some("true"));
        assert_eq!(tag(s, "irhost-seal-digest").map(str::len), Some(64));
        let locks = arm.locks_on(s["id"].as_str().unwrap());
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!(locks[0]["properties"]["level"], "CanNotDelete");
    }

    // One deny-all NSG for the case, flushConnection on, on every NIC.
    let nsgs: Vec<Value> = arm
        .resources_of(RG, "Microsoft.Network/networkSecurityGroups")
        .into_iter()
        .filter(|n| tag(n, "irhost-case") == Some("IR-AZ-1"))
        .collect();
    assert_eq!(nsgs.len(), 1);
    let nsg = &nsgs[0];
    assert_eq!(nsg["properties"]["flushConnection"], true);
    let rules = nsg["properties"]["securityRules"].as_array().unwrap();
    assert_eq!(
        rules.len(),
        2,
        "deny-all inbound and outbound, no examiner: {rules:#?}"
    );
    for r in rules {
        assert_eq!(r["properties"]["access"], "Deny");
        assert_eq!(r["properties"]["sourceAddressPrefix"], "*");
        assert_eq!(r["properties"]["destinationPortRange"], "*");
    }
    let nsg_id = nsg["id"].as_str().unwrap().to_ascii_lowercase();
    for nic in ["web-1-nic0", "web-1-nic1"] {
        let n = arm
            .resource(&id_of(RG, "Microsoft.Network/networkInterfaces", nic))
            .unwrap();
        assert_eq!(nsg_of(&n), Some(nsg_id.clone()), "{nic}");
    }
    let nic0 = arm
        .resource(&id_of(
            RG,
            "Microsoft.Network/networkInterfaces",
            "web-1-nic0",
        ))
        .unwrap();
    assert!(tag(&nic0, "irhost-previous-nsg")
        .unwrap()
        .to_ascii_lowercase()
        .ends_with("/networksecuritygroups/web-nsg"));

    // Never restarted, stopped, deallocated or modified.
    let vm_changes: Vec<String> = changes(&arm)
        .into_iter()
        .filter(|c| c.to_ascii_lowercase().contains("/virtualmachines/"))
        .collect();
    assert!(vm_changes.is_empty(), "{vm_changes:?}");
    // The token came from the host's client-credentials flow, once.
    assert_eq!(arm.with_state(|s| s.tokens_issued), 1);
    // No request was refused for its token or api-version.
    let refused: Vec<_> = arm
        .requests()
        .into_iter()
        .filter(|r| r.status == 401 || r.status == 400)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");

    // The case: VM model and instance view as artifacts, inventory in the journal.
    let records = ws.journal("IR-AZ-1");
    let target = format!("azure:{vm}");
    let inventory = step_values(&records, &target, "interfaces");
    let interfaces = inventory["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), 2);
    assert_eq!(
        interfaces[0]["public_ips"],
        serde_json::json!(["203.0.113.10"])
    );
    assert_eq!(
        interfaces[0]["private_ips"],
        serde_json::json!(["10.0.1.4"])
    );
    assert!(interfaces[0]["subnet"]
        .as_str()
        .unwrap()
        .ends_with("/subnets/web"));
    let exposed = inventory["exposed"].as_array().unwrap();
    assert!(
        exposed.iter().any(|e| e["from_port"] == 80
            && e["peer"] == "*"
            && e["via"].as_str().unwrap().contains("web-nsg")),
        "port 80 from anywhere through web-nsg: {exposed:#?}"
    );
    let dumps: Vec<&RunEvent> = events(&records)
        .into_iter()
        .filter(|e| matches!(e, RunEvent::ArtifactRecorded { provider_id, .. } if provider_id.ends_with("#model") || provider_id.ends_with("#instanceView")))
        .collect();
    assert_eq!(dumps.len(), 2);
    let model = std::fs::read_dir(ws.cases().join("IR-AZ-1/artifacts"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .find(|t| t.contains("\"storageProfile\""))
        .expect("the VM model is stored in the case");
    assert!(model.contains(&vm));
    let verify = irhost_with(
        &ws,
        &[],
        &["verify", ws.cases().join("IR-AZ-1").to_str().unwrap()],
    );
    assert!(verify.status.success(), "{}", stdout(&verify));

    // A sealed snapshot cannot be deleted while its lock holds.
    let token = format!("arm-token-{}", std::process::id());
    let snap_id = snapshots[0]["id"].as_str().unwrap();
    let (status, text) = http(
        &arm,
        "DELETE",
        &format!("{snap_id}?api-version=2024-03-02"),
        &token,
    );
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("ScopeLocked"), "{text}");
    assert!(arm.resource(snap_id).is_some());
}

#[test]
fn second_run_changes_nothing_and_release_restores() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "app-1");
    let ws = Workspace::new();
    let first = run(&arm, &ws, "azure-vm-compromise.toml", "IR-AZ-2", &[&vm]);
    assert!(first.status.success(), "{}", stdout(&first));
    let before = changes(&arm).len();
    let snapshots_before = arm.resources_of(RG, "Microsoft.Compute/snapshots");

    let second = run(&arm, &ws, "azure-vm-compromise.toml", "IR-AZ-2", &[&vm]);
    assert!(second.status.success(), "{}", stdout(&second));
    let after = changes(&arm);
    assert_eq!(
        after.len(),
        before,
        "the second run changed ARM state: {:?}",
        &after[before..]
    );
    assert_eq!(
        arm.resources_of(RG, "Microsoft.Compute/snapshots"),
        snapshots_before
    );
    // Enumerated again while isolated: the deny-all NSG is on both NICs and
    // nothing is exposed any more (it was port 80 before).
    let records = ws.journal("IR-AZ-2");
    let target = format!("azure:{vm}");
    let inventories: Vec<&Value> = events(&records)
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::StepFinished {
                target: t,
                step,
                output: Some(o),
                ..
            } if *t == target && step == "interfaces" => Some(&o["values"]),
            _ => None,
        })
        .collect();
    assert_eq!(inventories.len(), 2);
    assert!(!inventories[0]["exposed"].as_array().unwrap().is_empty());
    assert_eq!(
        inventories[1]["exposed"],
        serde_json::json!([]),
        "{:#}",
        inventories[1]
    );
    for nic in inventories[1]["interfaces"].as_array().unwrap() {
        let groups = nic["security_groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert!(groups[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("irhost-isolation-IR-AZ-2"));
    }

    // Release: the NIC that had web-nsg gets it back, the other has none again.
    let release = run(&arm, &ws, "azure-release.toml", "IR-AZ-2", &[&vm]);
    assert!(release.status.success(), "{}", stdout(&release));
    let nic0 = arm
        .resource(&id_of(
            RG,
            "Microsoft.Network/networkInterfaces",
            "app-1-nic0",
        ))
        .unwrap();
    let nic1 = arm
        .resource(&id_of(
            RG,
            "Microsoft.Network/networkInterfaces",
            "app-1-nic1",
        ))
        .unwrap();
    assert_eq!(
        nsg_of(&nic0),
        Some(id_of(RG, "Microsoft.Network/networkSecurityGroups", "web-nsg").to_ascii_lowercase())
    );
    assert_eq!(nsg_of(&nic1), None);
    assert_eq!(tag(&nic0, "irhost-previous-nsg"), None);
    let records = ws.journal("IR-AZ-2");
    assert!(matches!(
        finished(&records, &format!("azure:{vm}"), "release"),
        RunEvent::StepFinished {
            status: Status::Succeeded,
            ..
        }
    ));
}

#[test]
fn missing_vm_fails_alone_and_throttling_is_retried() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "db-1");
    let missing = id_of(RG, "Microsoft.Compute/virtualMachines", "no-such-vm");
    // Two throttled snapshot PUTs: the engine backs off for the Retry-After.
    arm.throttle("/providers/microsoft.compute/snapshots/", 2);
    let ws = Workspace::new();
    let out = run(
        &arm,
        &ws,
        "azure-vm-compromise.toml",
        "IR-AZ-3",
        &[&vm, &missing],
    );
    assert!(!out.status.success(), "a missing VM fails the run");
    let records = ws.journal("IR-AZ-3");

    let ok = format!("azure:{vm}");
    for step in ["snapshot", "interfaces", "isolate", "seal"] {
        assert!(
            matches!(
                finished(&records, &ok, step),
                RunEvent::StepFinished {
                    status: Status::Succeeded,
                    ..
                }
            ),
            "{step} on the existing VM"
        );
    }
    let bad = format!("azure:{missing}");
    let error = step_error(&records, &bad, "snapshot");
    assert!(
        error.contains("ResourceNotFound") && error.contains("no-such-vm"),
        "{error}"
    );
    assert!(events(&records).iter().any(|e| matches!(e, RunEvent::StepSkipped { target, step, .. } if *target == bad && step == "isolate")));

    let retries: Vec<u64> = events(&records)
        .iter()
        .filter_map(|e| match e {
            RunEvent::StepRetrying {
                target,
                delay_ms,
                reason,
                ..
            } if *target == ok && reason.contains("throttled") => Some(*delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries.iter().all(|d| *d >= 1000),
        "Retry-After: 1 is honoured: {retries:?}"
    );
    assert_eq!(arm.resources_of(RG, "Microsoft.Compute/snapshots").len(), 3);
}

#[test]
fn the_token_stays_with_the_host() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "cred-1");
    let ws = Workspace::new();
    let book = shipped(&ws, "azure-vm-compromise.toml");
    let target = format!("azure:{vm}");

    // No credential: nothing reaches ARM with a token, the error says what to set.
    let none = irhost_with(
        &ws,
        &[("AZURE_RESOURCE_MANAGER_URL", arm.url())],
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "IR-AZ-4",
            "--target",
            &target,
        ],
    );
    assert!(!none.status.success());
    let records = ws.journal("IR-AZ-4");
    let error = step_error(&records, &target, "snapshot");
    assert!(error.contains("AZURE_ACCESS_TOKEN"), "{error}");
    assert!(
        arm.requests()
            .iter()
            .all(|r| r.status == 401 || r.path.contains("oauth2")),
        "no authorized request"
    );
    assert!(arm
        .resources_of(RG, "Microsoft.Compute/snapshots")
        .is_empty());

    // A pre-obtained token (AZURE_ACCESS_TOKEN) is used as it is.
    let token = format!("arm-token-{}", std::process::id());
    let with_token = irhost_with(
        &ws,
        &[
            ("AZURE_RESOURCE_MANAGER_URL", arm.url()),
            ("AZURE_ACCESS_TOKEN", token),
        ],
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "IR-AZ-5",
            "--target",
            &target,
        ],
    );
    assert!(with_token.status.success(), "{}", stdout(&with_token));
    assert_eq!(arm.with_state(|s| s.tokens_issued), 0);
    // The journal says how the plugin was bound, and never holds the token.
    let journal = std::fs::read_to_string(ws.cases().join("IR-AZ-5/journal.jsonl")).unwrap();
    assert!(journal.contains("AZURE_RESOURCE_MANAGER_URL"));
    assert!(!journal.contains(&format!("arm-token-{}", std::process::id())));
}

#[test]
fn one_run_takes_aws_and_azure_targets() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "mixed-1");
    let moto = Moto::start();
    let seeded = moto.seed("multi-eni");
    let iid = seeded["instance"].as_str().unwrap().to_string();
    let ws = Workspace::new();
    let book = shipped(&ws, "multi-cloud-compromise.toml");
    let mut env = arm.env();
    env.extend([
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]);
    let aws_target = format!("aws:{iid}");
    let azure_target = format!("azure:{vm}");
    let out = irhost_with(
        &ws,
        &env,
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "IR-MIX",
            "--target",
            &aws_target,
            "--target",
            &azure_target,
        ],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("IR-MIX");
    // Each target ran its own cloud's steps, and only those.
    let ran = |target: &str| -> Vec<String> {
        events(&records)
            .iter()
            .filter_map(|e| match e {
                RunEvent::StepFinished {
                    target: t,
                    step,
                    status: Status::Succeeded,
                    ..
                } if t == target => Some(step.clone()),
                _ => None,
            })
            .collect()
    };
    let mut aws_steps = ran(&aws_target);
    aws_steps.sort();
    assert_eq!(
        aws_steps,
        ["aws-interfaces", "aws-isolate", "aws-seal", "aws-snapshot"]
    );
    let mut azure_steps = ran(&azure_target);
    azure_steps.sort();
    assert_eq!(
        azure_steps,
        [
            "azure-interfaces",
            "azure-isolate",
            "azure-seal",
            "azure-snapshot"
        ]
    );
    // Both clouds changed: EC2 snapshots in moto, Azure NICs on the case NSG.
    let state = moto.state();
    assert!(
        state["snapshots"]
            .as_object()
            .unwrap()
            .values()
            .any(|s| s["tags"]["irhost:case"] == "IR-MIX"),
        "{state:#}"
    );
    let nic = arm
        .resource(&id_of(
            RG,
            "Microsoft.Network/networkInterfaces",
            "mixed-1-nic0",
        ))
        .unwrap();
    assert!(nsg_of(&nic).unwrap().contains("irhost-isolation-ir-mix"));

    // A target no step serves is refused before anything runs.
    let refused = irhost_with(
        &ws,
        &env,
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "IR-MIX-2",
            "--target",
            "gcp:instance-1",
        ],
    );
    assert!(!refused.status.success());
    let text = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        text.contains("gcp:instance-1") && text.contains("aws, azure"),
        "{text}"
    );
    assert!(!ws.cases().join("IR-MIX-2").exists(), "nothing was written");
}

#[test]
fn a_playbook_cannot_send_the_token_elsewhere() {
    // The playbook points the plugin at a host of its choosing; the
    // environment names no ARM endpoint (so public ARM is the trusted one).
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "exfil-1");
    let ws = Workspace::new();
    let book = shipped(&ws, "azure-vm-compromise.toml");
    let text = std::fs::read_to_string(&book).unwrap().replace(
        "config = { poll_ms = 20 }",
        &format!(
            "config = {{ poll_ms = 20, endpoint_url = \"{}\" }}",
            arm.url()
        ),
    );
    std::fs::write(&book, text).unwrap();
    let token = format!("arm-token-{}", std::process::id());
    let target = format!("azure:{vm}");
    let out = irhost_with(
        &ws,
        &[("AZURE_ACCESS_TOKEN", token.clone())],
        &[
            "run",
            book.to_str().unwrap(),
            "--case",
            "IR-AZ-6",
            "--target",
            &target,
        ],
    );
    assert!(!out.status.success());
    // Requests reached the playbook's host, none of them with the token.
    let requests = arm.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.status == 401), "{requests:?}");
    assert!(arm
        .resources_of(RG, "Microsoft.Compute/snapshots")
        .is_empty());
    let journal = std::fs::read_to_string(ws.cases().join("IR-AZ-6/journal.jsonl")).unwrap();
    assert!(
        journal.contains("requests to it carry no token"),
        "the binding is journaled"
    );
    assert!(!journal.contains(&token));
}
