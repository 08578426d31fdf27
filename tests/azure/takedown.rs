//! `stop` against the fake ARM: power off without deallocation (the disks
//! kept if the VM is deleted later), deallocation when asked, idempotence,
//! and the plan's order check.

use crate::common::fake_arm::{id_of, FakeArm};
use crate::common::*;
use crate::support::*;

const SNAPSHOT_THEN_STOP: &str = r#"[[steps]]
id = "snapshot"
plugin = "azure"
action = "snapshot"

[[steps]]
id = "stop"
plugin = "azure"
action = "stop"
after = ["snapshot"]
"#;

fn deletes(disk: &serde_json::Value) -> &str {
    disk["deleteOption"].as_str().unwrap_or("")
}

#[test]
fn stop_powers_off_without_deallocating_keeps_the_disks_and_is_idempotent() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "stop-1");
    let ws = Workspace::new();
    let book = custom(&ws, "stop.toml", SNAPSHOT_THEN_STOP, |t| t);
    let out = run_book(&arm, &ws, &book, "IR-AZ-STOP", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // ARM's state: stopped, still allocated; nothing deleted.
    assert_eq!(arm.power(&vm), "stopped");
    let power_off = calls_to(&arm, "POST", "/powerOff");
    assert_eq!(power_off.len(), 1, "{power_off:?}");
    assert!(power_off[0].contains("skipShutdown=false"), "{power_off:?}");
    assert!(calls_to(&arm, "POST", "/deallocate").is_empty());
    assert!(calls_to(&arm, "DELETE", "/").is_empty());
    // The 202 was polled through its Location to the end.
    assert!(arm
        .requests()
        .iter()
        .any(|r| r.path.contains("/operations/")
            && r.query.contains("monitor=true")
            && r.status == 200));

    // The disks are kept if the VM is deleted later.
    let model = arm.resource(&vm).unwrap();
    let storage = &model["properties"]["storageProfile"];
    assert_eq!(deletes(&storage["osDisk"]), "Detach");
    let data = storage["dataDisks"].as_array().unwrap();
    assert_eq!(data.len(), 2, "no disk was detached by the update");
    assert!(data.iter().all(|d| deletes(d) == "Detach"), "{data:#?}");
    for name in ["stop-1-osdisk", "stop-1-data0", "stop-1-data1"] {
        let disk = arm
            .resource(&id_of(RG, "Microsoft.Compute/disks", name))
            .unwrap();
        assert!(
            disk["managedBy"].as_str().is_some(),
            "{name} still attached"
        );
    }

    // The record: the state before and after, each disk with what it replaced.
    let records = ws.journal("IR-AZ-STOP");
    let target = format!("azure:{vm}");
    let change = step_values(&records, &target, "stop");
    assert_eq!(change["previous_state"], "PowerState/running");
    assert_eq!(change["state"], "PowerState/stopped");
    let disk_changes = change["changes"].as_array().unwrap();
    let mut changed: Vec<String> = disk_changes
        .iter()
        .map(|c| {
            c["resource_id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        ["stop-1-data0", "stop-1-osdisk"],
        "data1 was Detach already"
    );
    for c in disk_changes {
        let previous: serde_json::Value =
            serde_json::from_str(c["previous"].as_str().unwrap()).unwrap();
        assert_eq!(previous["deleteOption"], "Delete");
    }
    assert!(change["details"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d[0] == "action" && d[1] == "powerOff"));

    // Again: recorded as stopped, nothing sent.
    let before = changes(&arm);
    let again = run_book(&arm, &ws, &book, "IR-AZ-STOP", &[&vm]);
    assert!(again.status.success(), "{}", stdout(&again));
    let after = changes(&arm);
    assert_eq!(after, before, "the second stop changed ARM state");
    let records = ws.journal("IR-AZ-STOP");
    let second = events(&records)
        .into_iter()
        .rev()
        .find_map(|e| match e {
            irhost::events::RunEvent::StepFinished {
                target: t,
                step,
                output: Some(o),
                ..
            } if *t == target && step == "stop" => Some(o["values"].clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(second["previous_state"], "PowerState/stopped");
    assert_eq!(second["state"], "PowerState/stopped");
    assert_eq!(second["changes"], serde_json::json!([]));
    assert!(second["details"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d[0] == "action" && d[1] == "none"));
}

#[test]
fn stop_deallocates_only_when_asked() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "stop-2");
    let ws = Workspace::new();
    let steps = SNAPSHOT_THEN_STOP.replace(
        "after = [\"snapshot\"]\n",
        "after = [\"snapshot\"]\nwith = { deallocate = true }\n",
    );
    let grant_deallocate = |t: String| {
        t.replace(
            "    \"Microsoft.Compute/virtualMachines/powerOff/action\",\n",
            "    \"Microsoft.Compute/virtualMachines/powerOff/action\",\n    \"Microsoft.Compute/virtualMachines/deallocate/action\",\n",
        )
    };
    let book = custom(&ws, "dealloc.toml", &steps, grant_deallocate);
    let out = run_book(&arm, &ws, &book, "IR-AZ-DEALLOC", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(arm.power(&vm), "deallocated");
    assert_eq!(calls_to(&arm, "POST", "/deallocate").len(), 1);
    assert!(calls_to(&arm, "POST", "/powerOff").is_empty());
    let records = ws.journal("IR-AZ-DEALLOC");
    let change = step_values(&records, &format!("azure:{vm}"), "stop");
    assert_eq!(change["previous_state"], "PowerState/running");
    assert_eq!(change["state"], "PowerState/deallocated");

    // Stopping a deallocated VM (no deallocate asked) records it and sends
    // nothing: ARM would refuse a powerOff now.
    let plain = custom(&ws, "stop.toml", SNAPSHOT_THEN_STOP, |t| t);
    let again = run_book(&arm, &ws, &plain, "IR-AZ-DEALLOC", &[&vm]);
    assert!(again.status.success(), "{}", stdout(&again));
    assert!(calls_to(&arm, "POST", "/powerOff").is_empty());
    assert_eq!(arm.power(&vm), "deallocated");

    // Without the grant for it, the plan refuses deallocation, naming it.
    let ungranted = custom(&ws, "dealloc-ungranted.toml", &steps, |t| t);
    let refused = run_book(&arm, &ws, &ungranted, "IR-AZ-DEALLOC-2", &[&vm]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let text = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        text.contains("Microsoft.Compute/virtualMachines/deallocate/action"),
        "{text}"
    );
}

#[test]
fn the_plan_refuses_stop_without_a_snapshot() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "stop-3");
    let ws = Workspace::new();
    let steps = "[[steps]]\nid = \"stop\"\nplugin = \"azure\"\naction = \"stop\"\n";
    let book = custom(&ws, "stop-only.toml", steps, |t| t);
    let plan = irhost_with(
        &ws,
        &arm.env(),
        &[
            "plan",
            book.to_str().unwrap(),
            "--target",
            &format!("azure:{vm}"),
        ],
    );
    assert_eq!(plan.status.code(), Some(2), "{}", stdout(&plan));
    let text = format!("{}{}", stdout(&plan), stderr(&plan));
    assert!(
        text.contains("step `stop` mutates the target")
            && text.contains("no `snapshot` step precedes it"),
        "{text}"
    );
    assert!(text.contains("stop-only.toml:"), "located: {text}");
    let out = run_book(&arm, &ws, &book, "IR-AZ-NOSNAP", &[&vm]);
    assert_eq!(out.status.code(), Some(2));
    assert!(calls_to(&arm, "POST", "/powerOff").is_empty());
    assert_eq!(arm.power(&vm), "running");
    assert!(!ws.cases().join("IR-AZ-NOSNAP").exists(), "nothing ran");
}
