//! snapshot: a snapshot of the OS disk and of every data disk of the VM
//! (incremental unless the `incremental` parameter says no), tagged with
//! the case, source VM, disk and time; the VM model and instance view as
//! config-dump artifacts; the boot-diagnostics screenshot and serial log
//! when they can be read ([`crate::bootdiag`]). Unmanaged (VHD blob) disks
//! cannot be snapshotted through ARM and are reported, never skipped
//! silently.
//!
//! Idempotent: a snapshot named for the case and disk that already exists
//! with the case's tag is reused, not taken again.

use irhost_plugin_sdk::prelude::*;

use crate::arm::{
    complete, compute, model, now_rfc3339, param_or, resource_name, tag, vm_id, vm_of, Arm,
    ResourceRef, TAG_CASE, TAG_DISK, TAG_ROLE, TAG_SOURCE_VM, TAG_TIME,
};

/// A disk of the VM: its managed disk id (if managed) and where it sits.
#[derive(Debug, Clone)]
pub struct VmDisk {
    pub name: String,
    pub managed_id: Option<String>,
    /// `os` or `lun-N`.
    pub slot: String,
}

pub fn disks(vm: &compute::models::VirtualMachine) -> Vec<VmDisk> {
    let Some(storage) = vm
        .properties
        .as_ref()
        .and_then(|p| p.storage_profile.as_ref())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(os) = &storage.os_disk {
        out.push(VmDisk {
            name: os.name.clone().unwrap_or_else(|| "os-disk".into()),
            managed_id: os
                .managed_disk
                .as_ref()
                .and_then(|m| m.sub_resource.id.clone()),
            slot: "os".into(),
        });
    }
    for d in &storage.data_disks {
        out.push(VmDisk {
            name: d.name.clone().unwrap_or_else(|| format!("lun-{}", d.lun)),
            managed_id: d
                .managed_disk
                .as_ref()
                .and_then(|m| m.sub_resource.id.clone()),
            slot: format!("lun-{}", d.lun),
        });
    }
    out
}

/// The snapshot name for a disk of a case (ARM allows 80 characters).
pub fn snapshot_name(case: &str, disk: &str) -> String {
    resource_name(&["irhost", case, disk], 80)
}

pub async fn snapshot(arm: &Arm, target: &Target) -> Result<Vec<Artifact>, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let vm_ref = vm_of(target)?;
    let source_vm = vm_id(&vm_ref);
    let incremental: bool = param_or("incremental", true)?;

    // The VM model, kept byte for byte as ARM returned it.
    let what = format!("get VM {}", vm_ref.name);
    let model_bytes = raw_body(
        arm,
        &what,
        arm.compute
            .virtual_machines_client()
            .get(&vm_ref.resource_group, &vm_ref.name, &vm_ref.subscription)
            .send()
            .await
            .map_err(|e| arm.error(&what, e))?
            .into_raw_response(),
    )
    .await?;
    let vm: compute::models::VirtualMachine =
        serde_json::from_slice(&model_bytes).map_err(|e| {
            PluginError::Provider(ProviderFailure {
                code: "BadResponse".into(),
                message: format!("{what}: {e}"),
            })
        })?;
    let what = format!("get instance view of {}", vm_ref.name);
    let view_bytes = raw_body(
        arm,
        &what,
        arm.compute
            .virtual_machines_client()
            .instance_view(&vm_ref.resource_group, &vm_ref.name, &vm_ref.subscription)
            .send()
            .await
            .map_err(|e| arm.error(&what, e))?
            .into_raw_response(),
    )
    .await?;

    let mut artifacts = vec![
        Artifact::with_content(
            ArtifactKind::ConfigDump,
            &format!("{source_vm}#model"),
            model_bytes,
        )
        .meta("what", "virtual machine model (GET virtualMachines)")
        .meta("vm", &source_vm),
        Artifact::with_content(
            ArtifactKind::ConfigDump,
            &format!("{source_vm}#instanceView"),
            view_bytes,
        )
        .meta("what", "instance view (GET virtualMachines/instanceView)")
        .meta("vm", &source_vm),
    ];
    artifacts.extend(crate::bootdiag::capture(arm, &vm_ref, &vm, &source_vm).await?);

    let all = disks(&vm);
    let unmanaged: Vec<&VmDisk> = all.iter().filter(|d| d.managed_id.is_none()).collect();
    if !unmanaged.is_empty() {
        let names: Vec<&str> = unmanaged.iter().map(|d| d.name.as_str()).collect();
        log::warn(&format!(
            "{} has unmanaged (VHD) disk(s) {}; ARM snapshots cannot preserve them",
            vm_ref.name,
            names.join(", ")
        ));
        let note = serde_json::json!({
            "vm": source_vm,
            "not_preserved": unmanaged.iter().map(|d| serde_json::json!({"disk": d.name, "slot": d.slot})).collect::<Vec<_>>(),
            "reason": "unmanaged VHD disks live in a storage account; copy the blob to preserve them",
        });
        artifacts.push(
            Artifact::with_content(
                ArtifactKind::Other,
                &format!("{source_vm}#unmanaged-disks"),
                serde_json::to_vec_pretty(&note).unwrap_or_default(),
            )
            .meta("not-preservable", "true"),
        );
    }

    let managed: Vec<&VmDisk> = all.iter().filter(|d| d.managed_id.is_some()).collect();
    let total = managed.len() as u64;
    for (i, disk) in managed.iter().enumerate() {
        let disk_id = disk.managed_id.clone().unwrap_or_default();
        let name = snapshot_name(&case, &ResourceRef::name_of(&disk_id));
        let snap = ensure_snapshot(
            arm,
            &vm_ref,
            &vm,
            &case,
            &source_vm,
            disk,
            &name,
            incremental,
        )
        .await?;
        irhost_plugin_sdk::progress(i as u64 + 1, total, &format!("snapshot {name}"));
        let props = snap.properties.as_ref();
        let mut artifact = Artifact::reference(
            ArtifactKind::DiskSnapshot,
            snap.resource.id.as_deref().unwrap_or_default(),
            &snap.resource.location,
        )
        .meta("disk", &disk_id)
        .meta("slot", &disk.slot)
        .meta("vm", &source_vm)
        .meta(
            "incremental",
            &props
                .and_then(|p| p.incremental)
                .unwrap_or(false)
                .to_string(),
        );
        if let Some(size) = props.and_then(|p| p.disk_size_gb) {
            artifact.size = Some(size as u64 * (1 << 30));
        }
        artifacts.push(artifact);
    }
    log::info(&format!(
        "{}: {} disk snapshot(s), {} unmanaged disk(s) reported",
        vm_ref.name,
        managed.len(),
        unmanaged.len()
    ));
    Ok(artifacts)
}

#[allow(clippy::too_many_arguments)]
async fn ensure_snapshot(
    arm: &Arm,
    vm_ref: &ResourceRef,
    vm: &compute::models::VirtualMachine,
    case: &str,
    source_vm: &str,
    disk: &VmDisk,
    name: &str,
    incremental: bool,
) -> Result<compute::models::Snapshot, PluginError> {
    let snapshots = arm.compute.snapshots_client();
    let (sub, rg) = (&vm_ref.subscription, &vm_ref.resource_group);
    let disk_id = disk.managed_id.clone().unwrap_or_default();
    match get_snapshot(arm, sub, rg, name).await {
        Ok(existing) if tag(&existing.resource.tags, TAG_CASE) == Some(case) => {
            let state = existing
                .properties
                .as_ref()
                .and_then(|p| p.provisioning_state.clone());
            if state.as_deref() == Some("Succeeded") {
                log::info(&format!("{name} already taken for case {case}; reusing it"));
                return Ok(existing);
            }
        }
        Ok(_) => {
            return Err(PluginError::Conflict(format!(
                "snapshot {name} exists in {rg} but is not tagged with case {case}"
            )))
        }
        Err(PluginError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let body: compute::models::Snapshot = model(
        "snapshot body",
        serde_json::json!({
            "location": vm.resource.location,
            "tags": {
                TAG_CASE: case,
                TAG_SOURCE_VM: source_vm,
                TAG_DISK: disk_id,
                TAG_TIME: now_rfc3339(),
                TAG_ROLE: "evidence",
            },
            "properties": {
                "creationData": { "createOption": "Copy", "sourceResourceId": disk_id },
                "incremental": incremental,
            }
        }),
    )?;
    let what = format!("create snapshot {name} of {}", disk.name);
    let response = snapshots
        .create_or_update(sub, rg, name, body)
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    let snap = get_snapshot(arm, sub, rg, name).await?;
    match snap
        .properties
        .as_ref()
        .and_then(|p| p.provisioning_state.as_deref())
    {
        Some("Succeeded") => Ok(snap),
        other => Err(PluginError::Provider(ProviderFailure {
            code: "SnapshotNotReady".into(),
            message: format!("{what}: provisioning state {other:?} after the operation ended"),
        })),
    }
}

pub async fn get_snapshot(
    arm: &Arm,
    sub: &str,
    rg: &str,
    name: &str,
) -> Result<compute::models::Snapshot, PluginError> {
    let what = format!("get snapshot {name}");
    crate::arm_call!(arm, what, arm.compute.snapshots_client().get(sub, rg, name))
}

/// Every snapshot in the VM's resource group tagged with `case` and taken
/// from `source_vm`.
pub async fn case_snapshots(
    arm: &Arm,
    vm_ref: &ResourceRef,
    case: &str,
    source_vm: &str,
) -> Result<Vec<compute::models::Snapshot>, PluginError> {
    use futures::StreamExt;
    let what = format!("list snapshots in {}", vm_ref.resource_group);
    let mut pages = arm
        .compute
        .snapshots_client()
        .list_by_resource_group(&vm_ref.subscription, &vm_ref.resource_group)
        .into_stream();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| arm.error(&what, e))?;
        for s in page.value {
            let ours = tag(&s.resource.tags, TAG_CASE) == Some(case)
                && tag(&s.resource.tags, TAG_SOURCE_VM)
                    .is_some_and(|v| v.eq_ignore_ascii_case(source_vm));
            if ours {
                out.push(s);
            }
        }
    }
    out.sort_by(|a, b| a.resource.name.cmp(&b.resource.name));
    Ok(out)
}

async fn raw_body(
    arm: &Arm,
    what: &str,
    response: azure_core::Response,
) -> Result<Vec<u8>, PluginError> {
    response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| arm.error(what, e))
}
