//! release, the remediation half: put back what `remediate` changed, from
//! its record when the run has it and otherwise from what it left on the
//! resources (see [`crate::remediate`] for the syntax):
//!
//! - every custom rule whose description carries the
//!   `[irhost:remediated …]` marker, on the NSGs of the VM's NICs and
//!   subnets (and any the record names), gets back its access and
//!   description (the record's, else the marker's, else the NSG's
//!   `irhost-description-<rule>` tag, which is then removed);
//! - every IP configuration of the VM's NICs (and any the record names)
//!   tagged `irhost-public-ip-<ip configuration>` gets its public IP back,
//!   and the tags are removed.
//!
//! A rule the record names that no longer carries a marker was changed by
//! someone since, and is left as it is (logged). Then everything restored
//! is read again.

use std::collections::BTreeMap;

use irhost_plugin_sdk::prelude::*;

use crate::arm::{json_of, model, tag, vm_of, Arm, ResourceRef};
use crate::inventory::{get_nic, get_nsg, get_vm, nic_ids};
use crate::remediate::{
    custom_rules, parse_marker, public_ip_from_tag, TAG_DESCRIPTION, TAG_PUBLIC_IP,
    TAG_REMEDIATED_CASE,
};
use crate::writes::{put_nic, put_rule, set_nsg_tags};

/// Undo a remediation of the VM; the changes made, and whether a re-read
/// found everything restored.
pub async fn release(
    arm: &Arm,
    target: &Target,
    record: Option<&RemediationRecord>,
) -> Result<(Vec<IsolationChange>, bool), PluginError> {
    let vm_ref = vm_of(target)?;
    let recorded = Recorded::of(record);
    let (nics, nsgs) = scope(arm, &vm_ref, &recorded).await?;
    let mut changes = Vec::new();
    let mut restored_rules = Vec::new();
    for nsg_id in &nsgs {
        let done = restore_rules(arm, nsg_id, &recorded).await?;
        restored_rules.extend(done.iter().map(|c| c.resource_id.clone()));
        changes.extend(done);
    }
    for (nsg, rule) in recorded.rules.keys() {
        let id = format!("{nsg}/securityrules/{rule}");
        if !restored_rules.iter().any(|r| r.eq_ignore_ascii_case(&id)) {
            log::warn(&format!(
                "rule {}/{rule} is in the remediation record but carries no marker any more (changed since?); left as it is",
                ResourceRef::name_of(nsg)
            ));
        }
    }
    let mut restored_nics = Vec::new();
    for nic_id in &nics {
        let done = restore_public_ips(arm, nic_id, &recorded).await?;
        if !done.is_empty() {
            restored_nics.push(nic_id.clone());
        }
        changes.extend(done);
    }
    let problems = still_marked(arm, &nsgs, &restored_nics).await?;
    if !problems.is_empty() {
        log::error(&format!(
            "{}: remediation release not verified: {}",
            vm_ref.name,
            problems.join("; ")
        ));
    }
    log::info(&format!(
        "{}: {} remediation change(s) undone",
        vm_ref.name,
        changes.len()
    ));
    Ok((changes, problems.is_empty()))
}

/// The NICs (the VM's, and any the record names) and the NSGs (on them
/// and their subnets, and any the record names) to look at, lower-cased.
async fn scope(
    arm: &Arm,
    vm_ref: &ResourceRef,
    recorded: &Recorded,
) -> Result<(Vec<String>, Vec<String>), PluginError> {
    let vm = get_vm(arm, vm_ref).await?;
    let mut nics: Vec<String> = nic_ids(&vm)
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    for (nic, _) in recorded.public_ips.keys() {
        if !nics.contains(nic) {
            nics.push(nic.clone());
        }
    }
    let mut nsgs: Vec<String> = Vec::new();
    for nic_id in &nics {
        for nsg in nsgs_of(arm, nic_id).await? {
            if !nsgs.contains(&nsg) {
                nsgs.push(nsg);
            }
        }
    }
    for (nsg, _) in recorded.rules.keys() {
        if !nsgs.contains(nsg) {
            nsgs.push(nsg.clone());
        }
    }
    Ok((nics, nsgs))
}

/// Read back: rules still marked, NICs still tagged.
async fn still_marked(
    arm: &Arm,
    nsgs: &[String],
    nics: &[String],
) -> Result<Vec<String>, PluginError> {
    let mut problems = Vec::new();
    for nsg_id in nsgs {
        let nsg = get_nsg(arm, nsg_id).await?;
        for (rule, props) in custom_rules(&nsg) {
            if props["description"]
                .as_str()
                .and_then(parse_marker)
                .is_some()
            {
                problems.push(format!(
                    "{}/{rule} still marked",
                    ResourceRef::name_of(nsg_id)
                ));
            }
        }
    }
    for nic_id in nics {
        let nic = get_nic(arm, nic_id).await?;
        if let Some(tags) = nic.resource.tags.as_ref().and_then(|t| t.as_object()) {
            if tags.keys().any(|k| k.starts_with(TAG_PUBLIC_IP)) {
                problems.push(format!("{} still tagged", ResourceRef::name_of(nic_id)));
            }
        }
    }
    Ok(problems)
}

/// The NSGs (lower-cased) on a NIC and on its subnets.
async fn nsgs_of(arm: &Arm, nic_id: &str) -> Result<Vec<String>, PluginError> {
    let nic = match get_nic(arm, nic_id).await {
        Ok(nic) => nic,
        Err(PluginError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let nic_json = json_of(&nic);
    let mut out = Vec::new();
    if let Some(nsg) = nic_json["properties"]["networkSecurityGroup"]["id"].as_str() {
        out.push(nsg.to_ascii_lowercase());
    }
    let mut subnets: Vec<String> = nic_json["properties"]["ipConfigurations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["properties"]["subnet"]["id"].as_str().map(str::to_string))
        .collect();
    subnets.dedup();
    for subnet_id in subnets {
        let r = ResourceRef::parse(&subnet_id)?;
        let (_, subnet_name) = r.child.clone().unwrap_or_default();
        let what = format!("get subnet {subnet_name} of {}", r.name);
        let subnet = crate::arm_call!(
            arm,
            what,
            arm.network.subnets_client().get(
                &r.resource_group,
                &r.name,
                &subnet_name,
                &r.subscription
            )
        )?;
        if let Some(nsg) = json_of(&subnet)["properties"]["networkSecurityGroup"]["id"].as_str() {
            let nsg = nsg.to_ascii_lowercase();
            if !out.contains(&nsg) {
                out.push(nsg);
            }
        }
    }
    Ok(out)
}

async fn restore_rules(
    arm: &Arm,
    nsg_id: &str,
    recorded: &Recorded,
) -> Result<Vec<IsolationChange>, PluginError> {
    let nsg = match get_nsg(arm, nsg_id).await {
        Ok(nsg) => nsg,
        Err(PluginError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let id = nsg
        .resource
        .id
        .clone()
        .unwrap_or_else(|| nsg_id.to_string());
    let name = nsg.resource.name.clone().unwrap_or_default();
    let mut tags_to_drop = Vec::new();
    let mut changes = Vec::new();
    for (rule, props) in custom_rules(&nsg) {
        let Some(description) = props["description"].as_str() else {
            continue;
        };
        let Some(marker) = parse_marker(description) else {
            continue;
        };
        let entry = recorded
            .rules
            .get(&(nsg_id.to_ascii_lowercase(), rule.to_ascii_lowercase()));
        let tag_key = format!("{TAG_DESCRIPTION}{rule}");
        let from_tag = tag(&nsg.resource.tags, &tag_key).map(str::to_string);
        let access = entry
            .and_then(|e| e["access"].as_str())
            .unwrap_or(&marker.access)
            .to_string();
        let record_has_text = entry.is_some_and(|e| e["description_in_tag"] != true);
        let original = if record_has_text {
            entry.and_then(|e| e["description"].as_str().map(str::to_string))
        } else if marker.in_tag {
            from_tag.clone()
        } else {
            marker.description.clone()
        };
        if marker.in_tag && from_tag.is_none() && !record_has_text {
            log::warn(&format!(
                "{name}/{rule}: the original description was in tag {tag_key}, which is gone; restoring the rule without it"
            ));
        }
        let mut restored = props.clone();
        restored["access"] = access.clone().into();
        match &original {
            Some(text) => restored["description"] = text.clone().into(),
            None => {
                restored.as_object_mut().map(|m| m.remove("description"));
            }
        }
        put_rule(arm, &id, &rule, restored).await?;
        if from_tag.is_some() {
            tags_to_drop.push(tag_key);
        }
        changes.push(IsolationChange {
            resource_id: format!("{id}/securityRules/{rule}"),
            description: format!(
                "inbound rule {name}/{rule}: Deny -> {access} (remediated by case {}{})",
                marker.case,
                if entry.is_some() {
                    ", from the record"
                } else {
                    ", from its marker"
                }
            ),
            previous: serde_json::json!({ "access": props["access"], "description": description })
                .to_string(),
        });
    }
    if !tags_to_drop.is_empty() {
        let mut tags = nsg
            .resource
            .tags
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        if let Some(map) = tags.as_object_mut() {
            for key in &tags_to_drop {
                map.remove(key);
            }
        }
        set_nsg_tags(arm, &id, tags).await?;
    }
    Ok(changes)
}

async fn restore_public_ips(
    arm: &Arm,
    nic_id: &str,
    recorded: &Recorded,
) -> Result<Vec<IsolationChange>, PluginError> {
    let mut nic = match get_nic(arm, nic_id).await {
        Ok(nic) => nic,
        Err(PluginError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let id = nic
        .resource
        .id
        .clone()
        .unwrap_or_else(|| nic_id.to_string());
    let nic_ref = ResourceRef::parse(&id)?;
    let tags = nic.resource.tags.clone();
    let mut drop_tags = Vec::new();
    let mut changes = Vec::new();
    let configs = nic
        .properties
        .as_mut()
        .map(|p| p.ip_configurations.iter_mut())
        .into_iter()
        .flatten();
    for config in configs {
        let config_name = config.name.clone().unwrap_or_default();
        let tag_key = format!("{TAG_PUBLIC_IP}{config_name}");
        let from_tag = tag(&tags, &tag_key).map(|v| public_ip_from_tag(v, &nic_ref));
        let from_record = recorded
            .public_ips
            .get(&(
                nic_id.to_ascii_lowercase(),
                config_name.to_ascii_lowercase(),
            ))
            .cloned();
        let Some(pip) = from_record.clone().or(from_tag.clone()) else {
            continue;
        };
        if from_tag.is_some() {
            drop_tags.push(tag_key);
        }
        let Some(props) = config.properties.as_mut() else {
            continue;
        };
        let current = props
            .public_ip_address
            .as_ref()
            .and_then(|p| p.resource.id.clone());
        if current
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&pip))
        {
            continue;
        }
        if let Some(other) = current {
            log::warn(&format!(
                "{}/{config_name} has public IP {} now; {} not put back",
                nic_ref.name,
                ResourceRef::name_of(&other),
                ResourceRef::name_of(&pip)
            ));
            continue;
        }
        props.public_ip_address = Some(model(
            "public IP reference",
            serde_json::json!({ "id": pip }),
        )?);
        changes.push(IsolationChange {
            resource_id: id.clone(),
            description: format!(
                "public IP {} re-associated with {}/{config_name} ({})",
                ResourceRef::name_of(&pip),
                nic_ref.name,
                if from_record.is_some() {
                    "from the record"
                } else {
                    "from its tag"
                }
            ),
            previous: serde_json::json!({ "public_ip": null }).to_string(),
        });
    }
    if drop_tags.is_empty() && changes.is_empty() {
        return Ok(changes);
    }
    let mut new_tags = tags.unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = new_tags.as_object_mut() {
        for key in &drop_tags {
            map.remove(key);
        }
        if !map.keys().any(|k| k.starts_with(TAG_PUBLIC_IP)) {
            map.remove(TAG_REMEDIATED_CASE);
        }
    }
    nic.resource.tags = Some(new_tags);
    put_nic(arm, nic).await?;
    Ok(changes)
}

/// The remediation entries of a record, by kind: rules by (NSG, rule) and
/// public IPs by (NIC, IP configuration), lower-cased.
struct Recorded {
    rules: BTreeMap<(String, String), serde_json::Value>,
    public_ips: BTreeMap<(String, String), String>,
}

impl Recorded {
    fn of(record: Option<&RemediationRecord>) -> Recorded {
        let mut out = Recorded {
            rules: BTreeMap::new(),
            public_ips: BTreeMap::new(),
        };
        for change in record.map(|r| r.changes.as_slice()).unwrap_or_default() {
            let Ok(previous) = serde_json::from_str::<serde_json::Value>(&change.previous) else {
                continue;
            };
            let text = |k: &str| {
                previous[k]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            };
            match previous["kind"].as_str() {
                Some("nsg-rule") => {
                    out.rules
                        .insert((text("nsg"), text("rule")), previous.clone());
                }
                Some("public-ip") => {
                    if let Some(pip) = previous["public_ip"].as_str() {
                        out.public_ips
                            .insert((text("nic"), text("ip_configuration")), pip.to_string());
                    }
                }
                _ => {}
            }
        }
        out
    }
}
