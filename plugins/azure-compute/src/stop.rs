//! stop: take the VM down after preservation, never deleting anything.
//!
//! 1. The power state before is read from the instance view
//!    (`PowerState/running`, …) and recorded.
//! 2. The disks are kept if the VM is deleted later: every OS or data disk
//!    whose `deleteOption` is `Delete` is set to `Detach` (one PATCH of
//!    the VM), each recorded with the option it replaced.
//! 3. The VM is powered off (POST powerOff with `skipShutdown=false`: the
//!    guest shuts down cleanly, the VM stays allocated, its IPs and
//!    ephemeral state kept), or, when the `deallocate` parameter is true,
//!    deallocated (POST deallocate: compute released, billing stops). The
//!    202 is polled through its Location to the end.
//! 4. The instance view is read again and must show the state asked for.
//!
//! Idempotent: a VM already stopped (or deallocated) is recorded as such
//! and no power action is sent; disks already on `Detach` are not patched.

use irhost_plugin_sdk::prelude::*;

use crate::arm::{complete, compute, json_of, model, param_or, vm_of, Arm, ResourceRef};
use crate::inventory::get_vm;

/// The VM's instance view.
pub async fn instance_view(
    arm: &Arm,
    vm: &ResourceRef,
) -> Result<compute::models::VirtualMachineInstanceView, PluginError> {
    let what = format!("get instance view of {}", vm.name);
    crate::arm_call!(
        arm,
        what,
        arm.compute.virtual_machines_client().instance_view(
            &vm.resource_group,
            &vm.name,
            &vm.subscription
        )
    )
}

/// The VM's `PowerState/…` code from its instance view.
pub async fn power_state(arm: &Arm, vm: &ResourceRef) -> Result<String, PluginError> {
    let view = instance_view(arm, vm).await?;
    Ok(view
        .statuses
        .iter()
        .filter_map(|s| s.code.clone())
        .find(|c| c.starts_with("PowerState/"))
        .unwrap_or_else(|| "PowerState/unknown".into()))
}

pub async fn stop(arm: &Arm, target: &Target) -> Result<StateChange, PluginError> {
    let vm_ref = vm_of(target)?;
    let deallocate: bool = param_or("deallocate", false)?;
    let before = power_state(arm, &vm_ref).await?;
    let vm = get_vm(arm, &vm_ref).await?;
    let changes = keep_disks(arm, &vm_ref, &vm).await?;

    let wanted = if deallocate {
        "PowerState/deallocated"
    } else {
        "PowerState/stopped"
    };
    // A deallocated VM is stopped too: powering it off changes nothing.
    let done = before == wanted || (!deallocate && before == "PowerState/deallocated");
    let action = if done {
        log::info(&format!(
            "{}: already {before}; no power action sent",
            vm_ref.name
        ));
        "none"
    } else if deallocate {
        let what = format!("deallocate {}", vm_ref.name);
        let response = arm
            .compute
            .virtual_machines_client()
            .deallocate(&vm_ref.resource_group, &vm_ref.name, &vm_ref.subscription)
            .send()
            .await
            .map_err(|e| arm.error(&what, e))?;
        complete(arm, &what, response.into_raw_response()).await?;
        "deallocate"
    } else {
        let what = format!("power off {}", vm_ref.name);
        let response = arm
            .compute
            .virtual_machines_client()
            .power_off(&vm_ref.resource_group, &vm_ref.name, &vm_ref.subscription)
            .skip_shutdown(false)
            .send()
            .await
            .map_err(|e| arm.error(&what, e))?;
        complete(arm, &what, response.into_raw_response()).await?;
        "powerOff"
    };

    let after = power_state(arm, &vm_ref).await?;
    let reached = after == wanted || (!deallocate && after == "PowerState/deallocated");
    if !reached {
        return Err(PluginError::Provider(ProviderFailure {
            code: "StopNotVerified".into(),
            message: format!(
                "{}: {after} after {action} (wanted {wanted}; it was {before})",
                vm_ref.name
            ),
        }));
    }
    log::info(&format!(
        "{}: {before} -> {after} ({action}); {} disk(s) set to be kept on deletion",
        vm_ref.name,
        changes.len()
    ));
    Ok(StateChange {
        target_id: target.id.clone(),
        previous_state: before,
        state: after,
        changes,
        details: vec![
            ("action".into(), action.into()),
            ("skip-shutdown".into(), "false".into()),
            ("deallocate".into(), deallocate.to_string()),
        ],
    })
}

/// Whether a disk of the VM model (ARM JSON) is deleted with the VM.
fn deleted_with_vm(disk: &serde_json::Value) -> bool {
    disk["deleteOption"]
        .as_str()
        .is_some_and(|o| o.eq_ignore_ascii_case("Delete"))
}

/// The storage profile of a VM PATCH that sets every disk deleted with
/// the VM to `Detach`, and one change per disk; none when there is none.
fn keep_disks_patch(
    storage: &serde_json::Value,
) -> Option<(serde_json::Value, Vec<IsolationChange>)> {
    let disk_id = |d: &serde_json::Value| {
        d["managedDisk"]["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| d["name"].as_str().unwrap_or_default().to_string())
    };
    let mut changes = Vec::new();
    let mut patch = serde_json::json!({});
    let os = &storage["osDisk"];
    if deleted_with_vm(os) {
        patch["osDisk"] = serde_json::json!({
            "name": os["name"],
            "createOption": os["createOption"],
            "managedDisk": { "id": os["managedDisk"]["id"] },
            "deleteOption": "Detach",
        });
        changes.push(disk_change(&disk_id(os), "OS disk"));
    }
    let data: Vec<serde_json::Value> = storage["dataDisks"].as_array().cloned().unwrap_or_default();
    if data.iter().any(deleted_with_vm) {
        // dataDisks is the whole list (a LUN left out would be detached).
        let disks: Vec<serde_json::Value> = data
            .iter()
            .map(|d| {
                let mut entry = serde_json::json!({
                    "lun": d["lun"],
                    "name": d["name"],
                    "createOption": d["createOption"],
                });
                if let Some(id) = d["managedDisk"]["id"].as_str() {
                    entry["managedDisk"] = serde_json::json!({ "id": id });
                }
                if deleted_with_vm(d) {
                    entry["deleteOption"] = "Detach".into();
                    changes.push(disk_change(
                        &disk_id(d),
                        &format!("data disk at LUN {}", d["lun"]),
                    ));
                } else if !d["deleteOption"].is_null() {
                    entry["deleteOption"] = d["deleteOption"].clone();
                }
                entry
            })
            .collect();
        patch["dataDisks"] = serde_json::json!(disks);
    }
    (!changes.is_empty()).then_some((patch, changes))
}

/// Set every disk that would be deleted with the VM to be detached
/// instead (one PATCH), then read the VM back; the changes made.
async fn keep_disks(
    arm: &Arm,
    vm_ref: &ResourceRef,
    vm: &compute::models::VirtualMachine,
) -> Result<Vec<IsolationChange>, PluginError> {
    let Some((storage_patch, changes)) =
        keep_disks_patch(&json_of(vm)["properties"]["storageProfile"])
    else {
        return Ok(Vec::new());
    };
    let update: compute::models::VirtualMachineUpdate = model(
        "VM update",
        serde_json::json!({ "properties": { "storageProfile": storage_patch } }),
    )?;
    let what = format!("keep the disks of {} on deletion", vm_ref.name);
    let response = arm
        .compute
        .virtual_machines_client()
        .update(
            &vm_ref.resource_group,
            &vm_ref.name,
            update,
            &vm_ref.subscription,
        )
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    // Read back: nothing may still be deleted with the VM.
    let reread = json_of(&get_vm(arm, vm_ref).await?);
    let s = &reread["properties"]["storageProfile"];
    let left: Vec<String> = std::iter::once(&s["osDisk"])
        .chain(s["dataDisks"].as_array().into_iter().flatten())
        .filter(|d| deleted_with_vm(d))
        .map(|d| d["name"].as_str().unwrap_or_default().to_string())
        .collect();
    if !left.is_empty() {
        return Err(PluginError::Provider(ProviderFailure {
            code: "DisksNotKept".into(),
            message: format!(
                "{}: still deleted with the VM after the update: {}",
                vm_ref.name,
                left.join(", ")
            ),
        }));
    }
    Ok(changes)
}

fn disk_change(disk: &str, slot: &str) -> IsolationChange {
    IsolationChange {
        resource_id: disk.to_string(),
        description: format!(
            "{slot} {}: deleteOption Delete -> Detach (kept if the VM is deleted)",
            ResourceRef::name_of(disk)
        ),
        previous: serde_json::json!({ "deleteOption": "Delete" }).to_string(),
    }
}
