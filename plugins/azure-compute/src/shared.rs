//! The inventory's shared storage: the VM's Azure shared disks. Each
//! managed data disk is read (GET disk); one with `maxShares` above 1 is
//! reported as `azure-shared-disk`, attached to the VMs ARM lists in
//! `managedByExtended` (or `managedBy`), reached at its LUN.

use irhost_plugin_sdk::prelude::*;

use crate::arm::{compute, vm_id, Arm, ResourceRef};

pub async fn shared_disks(
    arm: &Arm,
    vm_ref: &ResourceRef,
    vm: &compute::models::VirtualMachine,
) -> Result<Vec<SharedStorage>, PluginError> {
    let data_disks = vm
        .properties
        .as_ref()
        .and_then(|p| p.storage_profile.as_ref())
        .map(|s| s.data_disks.clone())
        .unwrap_or_default();
    let me = vm_id(vm_ref);
    let mut out = Vec::new();
    for d in &data_disks {
        let Some(disk_id) = d
            .managed_disk
            .as_ref()
            .and_then(|m| m.sub_resource.id.clone())
        else {
            continue;
        };
        let r = ResourceRef::parse(&disk_id)?;
        let what = format!("get disk {}", r.name);
        let disk = match crate::arm_call!(
            arm,
            what,
            arm.compute
                .disks_client()
                .get(&r.subscription, &r.resource_group, &r.name)
        ) {
            Ok(disk) => disk,
            Err(PluginError::NotFound(m)) => {
                log::warn(&format!("{what}: {m}; not checked for sharing"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let max_shares = disk
            .properties
            .as_ref()
            .and_then(|p| p.max_shares)
            .unwrap_or(1);
        if max_shares <= 1 {
            continue;
        }
        let mut attached: Vec<String> = disk.managed_by_extended.clone();
        if attached.is_empty() {
            attached.extend(disk.managed_by.clone());
        }
        if !attached.iter().any(|a| a.eq_ignore_ascii_case(&me)) {
            attached.insert(0, me.clone());
        }
        let mut attributes = vec![("max-shares".to_string(), max_shares.to_string())];
        if let Some(size) = disk.properties.as_ref().and_then(|p| p.disk_size_gb) {
            attributes.push(("disk-size-gb".into(), size.to_string()));
        }
        if let Some(sku) = disk.sku.as_ref().and_then(|s| s.name.as_ref()) {
            let sku = crate::arm::json_of(sku);
            attributes.push(("sku".into(), sku.as_str().unwrap_or_default().to_string()));
        }
        log::info(&format!(
            "{}: disk {} is shared (maxShares {max_shares}) with {} other VM(s)",
            vm_ref.name,
            r.name,
            attached.len().saturating_sub(1)
        ));
        out.push(SharedStorage {
            id: disk.resource.id.clone().unwrap_or(disk_id),
            kind: "azure-shared-disk".into(),
            attached_to: attached,
            endpoints: vec![format!("lun-{}", d.lun)],
            attributes,
        });
    }
    Ok(out)
}
