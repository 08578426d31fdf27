//! isolate and release.
//!
//! isolate: one deny-all NSG per case, region and resource group (created
//! once, found again by name and tag), with `flushConnection` on so that
//! flows already open are re-evaluated and cut without a reboot, and an
//! optional examiner allowance (`examiner_cidr`, `examiner_ports`). It is
//! attached to every NIC of the VM; each NIC's previous NSG is recorded in
//! the isolation record and in a tag on the NIC. Then every NIC and the NSG
//! are read again, and the step fails unless only the case NSG is on every
//! NIC (verified isolation). The VM itself is never restarted, stopped or
//! deallocated.
//!
//! release: put back the NSG each NIC had before (from the isolation record
//! when the engine passes it, else from the tag isolate left), and remove
//! the tag.

use irhost_plugin_sdk::prelude::*;

use crate::arm::{
    complete, model, network, param_or, resource_name, tag, vm_of, with_tags, Arm, ResourceRef,
    TAG_CASE, TAG_PREVIOUS_NSG, TAG_ROLE,
};
use crate::inventory::{get_nic, get_nsg, get_vm, nic_ids, rules_of};

/// Priority of the deny-all rules: the last custom priority, so that only
/// the examiner allowance (from 100) comes before them.
const DENY_PRIORITY: i32 = 4096;
/// The tag value for "this NIC had no NSG".
const NO_NSG: &str = "none";

/// The case NSG's name for a region.
pub fn isolation_nsg_name(case: &str, location: &str) -> String {
    // `West US` and `westus` are the same region.
    let region = location.to_ascii_lowercase().replace(' ', "");
    resource_name(&["irhost-isolation", case, &region], 80)
}

/// The rules the case NSG must have, as ARM JSON.
fn desired_rules(examiner: Option<&str>, ports: &[u16]) -> Vec<serde_json::Value> {
    let rule = |name: &str,
                direction: &str,
                access: &str,
                priority: i32,
                source: &str,
                port: &str,
                description: &str| {
        serde_json::json!({
            "name": name,
            "properties": {
                "description": description,
                "protocol": if port == "*" { "*" } else { "Tcp" },
                "sourcePortRange": "*",
                "destinationPortRange": port,
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": "*",
                "access": access,
                "priority": priority,
                "direction": direction,
            }
        })
    };
    let mut rules = Vec::new();
    if let Some(cidr) = examiner {
        for (i, port) in ports.iter().enumerate() {
            rules.push(rule(
                &format!("irhost-examiner-{port}"),
                "Inbound",
                "Allow",
                100 + i as i32,
                cidr,
                &port.to_string(),
                "irhost: examiner access during the investigation",
            ));
        }
    }
    rules.push(rule(
        "irhost-deny-all-inbound",
        "Inbound",
        "Deny",
        DENY_PRIORITY,
        "*",
        "*",
        "irhost: isolation, deny all inbound",
    ));
    rules.push(rule(
        "irhost-deny-all-outbound",
        "Outbound",
        "Deny",
        DENY_PRIORITY,
        "*",
        "*",
        "irhost: isolation, deny all outbound",
    ));
    rules
}

/// Whether an NSG already is the case NSG as wanted: flushConnection on and
/// exactly the desired custom rules.
fn nsg_is_desired(
    nsg: &network::models::NetworkSecurityGroup,
    desired: &[serde_json::Value],
) -> bool {
    let Some(p) = nsg.properties.as_ref() else {
        return false;
    };
    if p.flush_connection != Some(true) || p.security_rules.len() != desired.len() {
        return false;
    }
    let mut have: Vec<(String, i32, String, String, String, String)> = rules_of(nsg)
        .into_iter()
        .filter(|r| r.priority < 65000)
        .map(|r| {
            (
                r.name,
                r.priority,
                r.direction,
                r.access,
                r.source,
                format!("{:?}", r.ports),
            )
        })
        .collect();
    let mut want: Vec<(String, i32, String, String, String, String)> = desired
        .iter()
        .map(|d| {
            let p = &d["properties"];
            let port =
                crate::inventory::port_range(p["destinationPortRange"].as_str().unwrap_or("*"));
            (
                d["name"].as_str().unwrap_or_default().to_string(),
                p["priority"].as_i64().unwrap_or_default() as i32,
                p["direction"].as_str().unwrap_or_default().to_string(),
                p["access"].as_str().unwrap_or_default().to_string(),
                p["sourceAddressPrefix"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                format!("{:?}", vec![port]),
            )
        })
        .collect();
    have.sort();
    want.sort();
    have == want
}

async fn ensure_isolation_nsg(
    arm: &Arm,
    vm_ref: &ResourceRef,
    location: &str,
    case: &str,
    desired: &[serde_json::Value],
) -> Result<(network::models::NetworkSecurityGroup, bool), PluginError> {
    let name = isolation_nsg_name(case, location);
    let id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{name}",
        vm_ref.subscription, vm_ref.resource_group
    );
    match get_nsg(arm, &id).await {
        Ok(existing) => {
            if tag(&existing.resource.tags, TAG_CASE) != Some(case) {
                return Err(PluginError::Conflict(format!(
                    "NSG {name} exists in {} but is not tagged with case {case}",
                    vm_ref.resource_group
                )));
            }
            if nsg_is_desired(&existing, desired) {
                log::info(&format!(
                    "isolation NSG {name} already in place; reusing it"
                ));
                return Ok((existing, false));
            }
            log::warn(&format!(
                "isolation NSG {name} differs from what the case needs; updating it"
            ));
        }
        Err(PluginError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let body: network::models::NetworkSecurityGroup = model(
        "isolation NSG",
        serde_json::json!({
            "location": location,
            "tags": { TAG_CASE: case, TAG_ROLE: "isolation" },
            "properties": { "flushConnection": true, "securityRules": desired },
        }),
    )?;
    let what = format!("create isolation NSG {name}");
    let response = arm
        .network
        .network_security_groups_client()
        .create_or_update(&vm_ref.resource_group, &name, body, &vm_ref.subscription)
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    Ok((get_nsg(arm, &id).await?, true))
}

/// Put `nsg_id` (or none) on a NIC, with `tags`; wait for ARM to finish.
async fn set_nic_nsg(
    arm: &Arm,
    mut nic: network::models::NetworkInterface,
    nsg_id: Option<&str>,
    tags: serde_json::Value,
) -> Result<(), PluginError> {
    let props = nic.properties.get_or_insert_with(Default::default);
    props.network_security_group = match nsg_id {
        Some(nsg) => Some(model("NSG reference", serde_json::json!({ "id": nsg }))?),
        None => None,
    };
    nic.resource.tags = Some(tags);
    crate::writes::put_nic(arm, nic).await
}

fn nsg_of(nic: &network::models::NetworkInterface) -> Option<String> {
    nic.properties
        .as_ref()?
        .network_security_group
        .as_ref()?
        .resource
        .id
        .clone()
}

pub async fn isolate(arm: &Arm, target: &Target) -> Result<IsolationRecord, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let vm_ref = vm_of(target)?;
    let examiner: Option<String> = irhost_plugin_sdk::param("examiner_cidr")?;
    let ports: Vec<u16> = param_or("examiner_ports", vec![22u16])?;
    let vm = get_vm(arm, &vm_ref).await?;
    let location = vm.resource.location.clone();
    let desired = desired_rules(examiner.as_deref(), &ports);
    let (nsg, created) = ensure_isolation_nsg(arm, &vm_ref, &location, &case, &desired).await?;
    let nsg_id = nsg.resource.id.clone().unwrap_or_default();

    let mut changes = vec![IsolationChange {
        resource_id: nsg_id.clone(),
        description: if created {
            format!(
                "created deny-all NSG (flushConnection on){}",
                examiner
                    .as_ref()
                    .map(|c| format!(", examiner {c} on {ports:?}"))
                    .unwrap_or_default()
            )
        } else {
            "deny-all NSG already in place".into()
        },
        previous: serde_json::json!({ "created": created }).to_string(),
    }];
    let nics = nic_ids(&vm);
    if nics.is_empty() {
        return Err(PluginError::Provider(ProviderFailure {
            code: "NoInterfaces".into(),
            message: format!("{} has no network interface to isolate", vm_ref.name),
        }));
    }
    for (i, nic_id) in nics.iter().enumerate() {
        let nic = get_nic(arm, nic_id).await?;
        let current = nsg_of(&nic);
        let on_case_nsg = current
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&nsg_id));
        let previous = if on_case_nsg {
            tag(&nic.resource.tags, TAG_PREVIOUS_NSG)
                .unwrap_or(NO_NSG)
                .to_string()
        } else {
            current.clone().unwrap_or_else(|| NO_NSG.to_string())
        };
        if !on_case_nsg {
            let tags = with_tags(
                &nic.resource.tags,
                &[
                    (TAG_PREVIOUS_NSG, previous.clone()),
                    (TAG_CASE, case.clone()),
                ],
            );
            set_nic_nsg(arm, nic, Some(&nsg_id), tags).await?;
        }
        irhost_plugin_sdk::progress(
            i as u64 + 1,
            nics.len() as u64,
            &format!("isolated {}", ResourceRef::name_of(nic_id)),
        );
        changes.push(IsolationChange {
            resource_id: nic_id.clone(),
            description: if on_case_nsg {
                "already on the case NSG".into()
            } else {
                format!("NSG {} -> {}", ResourceRef::name_of(&previous), ResourceRef::name_of(&nsg_id))
            },
            previous: serde_json::json!({ "network_security_group": if previous == NO_NSG { serde_json::Value::Null } else { previous.clone().into() } }).to_string(),
        });
    }

    // Verified isolation: read everything again.
    let mut problems = Vec::new();
    for nic_id in &nics {
        let nic = get_nic(arm, nic_id).await?;
        match nsg_of(&nic) {
            Some(n) if n.eq_ignore_ascii_case(&nsg_id) => {}
            other => problems.push(format!(
                "{} has NSG {other:?}",
                ResourceRef::name_of(nic_id)
            )),
        }
    }
    let reread = get_nsg(arm, &nsg_id).await?;
    if !nsg_is_desired(&reread, &desired) {
        problems.push(format!(
            "{} does not hold only the isolation rules with flushConnection on",
            ResourceRef::name_of(&nsg_id)
        ));
    }
    if !problems.is_empty() {
        return Err(PluginError::Provider(ProviderFailure {
            code: "IsolationNotVerified".into(),
            message: format!(
                "{}: isolation not verified: {}",
                vm_ref.name,
                problems.join("; ")
            ),
        }));
    }
    log::info(&format!(
        "{}: {} NIC(s) on {} (verified)",
        vm_ref.name,
        nics.len(),
        ResourceRef::name_of(&nsg_id)
    ));
    Ok(IsolationRecord {
        target_id: target.id.clone(),
        changes,
        verified: true,
    })
}

/// The NSG a NIC had before isolation, from an isolation record.
fn recorded_previous(record: Option<&IsolationRecord>, nic_id: &str) -> Option<String> {
    let change = record?
        .changes
        .iter()
        .find(|c| c.resource_id.eq_ignore_ascii_case(nic_id))?;
    let previous: serde_json::Value = serde_json::from_str(&change.previous).ok()?;
    let nsg = previous.get("network_security_group")?;
    Some(nsg.as_str().unwrap_or(NO_NSG).to_string())
}

pub async fn release(
    arm: &Arm,
    target: &Target,
    record: Option<IsolationRecord>,
) -> Result<IsolationRecord, PluginError> {
    let vm_ref = vm_of(target)?;
    let vm = get_vm(arm, &vm_ref).await?;
    let nics = nic_ids(&vm);
    let mut changes = Vec::new();
    for nic_id in &nics {
        let nic = get_nic(arm, nic_id).await?;
        let previous = recorded_previous(record.as_ref(), nic_id)
            .or_else(|| tag(&nic.resource.tags, TAG_PREVIOUS_NSG).map(str::to_string));
        let Some(previous) = previous else {
            log::info(&format!(
                "{}: no isolation recorded (no record, no {TAG_PREVIOUS_NSG} tag); left as it is",
                ResourceRef::name_of(nic_id)
            ));
            continue;
        };
        let current = nsg_of(&nic);
        let restore = if previous == NO_NSG {
            None
        } else {
            Some(previous.clone())
        };
        let mut tags = nic
            .resource
            .tags
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        if let Some(map) = tags.as_object_mut() {
            map.remove(TAG_PREVIOUS_NSG);
            map.remove(TAG_CASE);
        }
        set_nic_nsg(arm, nic, restore.as_deref(), tags).await?;
        let after = nsg_of(&get_nic(arm, nic_id).await?);
        let restored = match (&after, &restore) {
            (Some(a), Some(r)) => a.eq_ignore_ascii_case(r),
            (None, None) => true,
            _ => false,
        };
        if !restored {
            return Err(PluginError::Provider(ProviderFailure {
                code: "ReleaseNotVerified".into(),
                message: format!(
                    "{}: NSG is {after:?} after restoring {restore:?}",
                    ResourceRef::name_of(nic_id)
                ),
            }));
        }
        changes.push(IsolationChange {
            resource_id: nic_id.clone(),
            description: format!("NSG restored to {}", ResourceRef::name_of(&previous)),
            previous: serde_json::json!({ "network_security_group": current }).to_string(),
        });
    }
    log::info(&format!(
        "{}: restored {} NIC(s)",
        vm_ref.name,
        changes.len()
    ));
    Ok(IsolationRecord {
        target_id: target.id.clone(),
        verified: true,
        changes,
    })
}
