//! remediate: revoke what the enumerate step's inventory shows open to the
//! world, in a way `release` can undo from the resources alone.
//!
//! **Rules.** On every NSG of the inventory (on the VM's NICs and on their
//! subnets), each custom *inbound Allow* rule whose source is the world
//! (`*`, `Internet`, `Any`, `0.0.0.0/0`, `::/0`, alone or among its
//! prefixes) is flipped to `Deny` at the same priority (so it now blocks
//! what it admitted; a rule that also named other prefixes blocks those
//! too), and its description is marked:
//!
//! ```text
//! [irhost:remediated access=Allow case=IR-42] <the original description>
//! [irhost:remediated access=Allow desc=tag case=IR-42]
//! ```
//!
//! `access` is the access it had, `case` the case that changed it. An NSG
//! rule's description holds at most 140 characters: when the original
//! does not fit beside the marker it goes, whole, into the NSG's tag
//! `irhost-description-<rule>` and the marker says `desc=tag` (a case id
//! too long for the marker is cut, ending in `…`; the record has it
//! whole). A rule without a description gets the marker alone.
//!
//! **Neighbours.** An NSG that also applies to a NIC of another machine
//! (attached to another NIC, or to a subnet with other IP configurations)
//! is shared: it is not touched, and is reported in `skipped` with the
//! reason. irhost's own isolation NSG is never remediated.
//!
//! **Public IPs.** Every public IP on the inventory's NICs is dissociated
//! from its IP configuration (one PUT of the NIC), and the NIC is tagged
//! `irhost-public-ip-<ip configuration>` = the public IP's id (or
//! `<resource group>/<name>` when the id is longer than a tag value may
//! be) and `irhost-remediated-case` = the case.
//!
//! Each change is in the record with what it replaced. Then every changed
//! NSG and NIC is read again: `verified` when nothing world-open remains on
//! them and no public IP is on the NICs. A second run changes nothing and
//! records what is already remediated.

use irhost_plugin_sdk::prelude::*;

use crate::arm::{json_of, network, tag, vm_of, with_tags, Arm, ResourceRef, TAG_ROLE};
use crate::inventory::{get_nic, get_nsg, get_vm, nic_ids};
use crate::writes::{put_nic, put_rule, rule_properties, set_nsg_tags};

pub const MARKER: &str = "[irhost:remediated ";
pub const TAG_PUBLIC_IP: &str = "irhost-public-ip-";
pub const TAG_REMEDIATED_CASE: &str = "irhost-remediated-case";
pub const TAG_DESCRIPTION: &str = "irhost-description-";
/// Sources that mean "anyone on the Internet".
const WORLD: &[&str] = &["*", "internet", "any", "0.0.0.0/0", "::/0"];
/// ARM's limits: a rule's description, a tag's value.
const MAX_DESCRIPTION: usize = 140;
const MAX_TAG_VALUE: usize = 256;

/// What a marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub access: String,
    pub case: String,
    /// The original description, when it is in the marked description;
    /// `None` with `in_tag` when it is in the NSG's tag.
    pub description: Option<String>,
    pub in_tag: bool,
}

/// The marked description of a rule, and the original description when
/// it must go into the NSG's tag instead.
pub fn mark(case: &str, access: &str, original: Option<&str>) -> (String, Option<String>) {
    let marker = |desc_tag: bool, case: &str| {
        format!(
            "{MARKER}access={access}{} case={case}]",
            if desc_tag { " desc=tag" } else { "" }
        )
    };
    let original = original.filter(|o| !o.is_empty());
    let inline = match original {
        Some(o) => format!("{} {o}", marker(false, case)),
        None => marker(false, case),
    };
    if inline.chars().count() <= MAX_DESCRIPTION {
        return (inline, None);
    }
    let mut text = marker(original.is_some(), case);
    if text.chars().count() > MAX_DESCRIPTION {
        let room = MAX_DESCRIPTION - marker(original.is_some(), "").chars().count() - 1;
        let short: String = case.chars().take(room).collect();
        text = marker(original.is_some(), &format!("{short}…"));
    }
    (text, original.map(str::to_string))
}

/// Parse a marked description.
pub fn parse_marker(description: &str) -> Option<Marker> {
    let rest = description.strip_prefix(MARKER)?;
    let (inner, after) = rest.split_once(']')?;
    let mut marker = Marker {
        access: String::new(),
        case: String::new(),
        description: None,
        in_tag: false,
    };
    for field in inner.split(' ') {
        match field.split_once('=') {
            Some(("access", v)) => marker.access = v.to_string(),
            Some(("case", v)) => marker.case = v.to_string(),
            Some(("desc", "tag")) => marker.in_tag = true,
            _ => {}
        }
    }
    if marker.access.is_empty() {
        return None;
    }
    let after = after.strip_prefix(' ').unwrap_or(after);
    if !marker.in_tag && !after.is_empty() {
        marker.description = Some(after.to_string());
    }
    Some(marker)
}

/// Whether a rule (ARM JSON properties) admits the world inbound.
pub fn world_open(props: &serde_json::Value) -> bool {
    let world = |v: &serde_json::Value| {
        v.as_str()
            .is_some_and(|s| WORLD.contains(&s.trim().to_ascii_lowercase().as_str()))
    };
    props["direction"] == "Inbound"
        && props["access"] == "Allow"
        && (world(&props["sourceAddressPrefix"])
            || props["sourceAddressPrefixes"]
                .as_array()
                .is_some_and(|l| l.iter().any(world)))
}

/// The custom rules of an NSG with their properties as ARM JSON.
pub fn custom_rules(
    nsg: &network::models::NetworkSecurityGroup,
) -> Vec<(String, serde_json::Value)> {
    nsg.properties
        .as_ref()
        .map(|p| {
            p.security_rules
                .iter()
                .map(|r| (r.name.clone().unwrap_or_default(), rule_properties(r)))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the tag recording a public IP.
pub fn public_ip_tag(pip_id: &str) -> String {
    if pip_id.len() <= MAX_TAG_VALUE {
        return pip_id.to_string();
    }
    match ResourceRef::parse(pip_id) {
        Ok(r) => format!("{}/{}", r.resource_group, r.name),
        Err(_) => pip_id.to_string(),
    }
}

/// A public IP id from its tag value (`<rg>/<name>` is in the NIC's subscription).
pub fn public_ip_from_tag(value: &str, nic: &ResourceRef) -> String {
    if value.starts_with('/') {
        return value.to_string();
    }
    let (rg, name) = value
        .split_once('/')
        .unwrap_or((&nic.resource_group, value));
    format!(
        "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Network/publicIPAddresses/{name}",
        nic.subscription
    )
}

/// The NICs (lower-cased ids) an NSG applies to that are not `own`: the
/// ones it is attached to, and those with an IP configuration in a subnet
/// it is attached to.
async fn neighbours(
    arm: &Arm,
    nsg: &network::models::NetworkSecurityGroup,
    own: &[String],
) -> Result<Vec<String>, PluginError> {
    let nsg_json = json_of(nsg);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["id"].as_str().map(str::to_ascii_lowercase))
            .collect()
    };
    let mut users = ids(&nsg_json["properties"]["networkInterfaces"]);
    for subnet_id in ids(&nsg_json["properties"]["subnets"]) {
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
        for config in ids(&json_of(&subnet)["properties"]["ipConfigurations"]) {
            let owner = match config.find("/ipconfigurations/") {
                Some(i) => config[..i].to_string(),
                None => config,
            };
            users.push(owner);
        }
    }
    users.retain(|u| !own.contains(u));
    users.sort();
    users.dedup();
    Ok(users)
}

pub async fn remediate(
    arm: &Arm,
    target: &Target,
    inventory: &InterfaceInventory,
) -> Result<RemediationRecord, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let vm_ref = vm_of(target)?;
    let vm = get_vm(arm, &vm_ref).await?;
    let own: Vec<String> = nic_ids(&vm)
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let (nsg_ids, nics) = inventory_ids(inventory);
    let mut record = RemediationRecord {
        target_id: target.id.clone(),
        changes: Vec::new(),
        skipped: Vec::new(),
        verified: false,
    };
    let mut changed_nsgs = Vec::new();
    for nsg_id in &nsg_ids {
        if remediate_nsg(arm, nsg_id, &own, &case, &mut record).await? {
            changed_nsgs.push(nsg_id.clone());
        }
    }
    for nic_id in &nics {
        record
            .changes
            .extend(dissociate_public_ips(arm, nic_id, &case).await?);
    }
    let left = still_open(arm, &changed_nsgs, &nics).await?;
    if !left.is_empty() {
        log::error(&format!(
            "{}: remediation not verified: still open: {}",
            vm_ref.name,
            left.join("; ")
        ));
    }
    record.verified = left.is_empty();
    log::info(&format!(
        "{}: {} change(s), {} skipped, verified {}",
        vm_ref.name,
        record.changes.len(),
        record.skipped.len(),
        record.verified
    ));
    Ok(record)
}

/// The NSGs and NICs of an inventory (lower-cased, each once).
fn inventory_ids(inventory: &InterfaceInventory) -> (Vec<String>, Vec<String>) {
    let (mut nsgs, mut nics): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let add = |list: &mut Vec<String>, id: &str| {
        let id = id.to_ascii_lowercase();
        if !id.is_empty() && !list.contains(&id) {
            list.push(id);
        }
    };
    for nic in &inventory.interfaces {
        add(&mut nics, &nic.id);
        for group in &nic.security_groups {
            add(&mut nsgs, &group.id);
        }
    }
    (nsgs, nics)
}

/// Deny the world-open rules of one NSG unless it is shared (then say
/// so in `skipped`); whether it was changed.
async fn remediate_nsg(
    arm: &Arm,
    nsg_id: &str,
    own: &[String],
    case: &str,
    record: &mut RemediationRecord,
) -> Result<bool, PluginError> {
    let nsg = match get_nsg(arm, nsg_id).await {
        Ok(nsg) => nsg,
        Err(PluginError::NotFound(m)) => {
            record.skipped.push(SkippedChange {
                resource_id: nsg_id.to_string(),
                reason: format!("no longer exists: {m}"),
            });
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if tag(&nsg.resource.tags, TAG_ROLE) == Some("isolation") {
        return Ok(false);
    }
    let name = nsg.resource.name.clone().unwrap_or_default();
    let rules = custom_rules(&nsg);
    for (rule, props) in &rules {
        if let Some(marker) = props["description"].as_str().and_then(parse_marker) {
            record.changes.push(already(nsg_id, &name, rule, &marker));
        }
    }
    let open: Vec<&(String, serde_json::Value)> =
        rules.iter().filter(|(_, p)| world_open(p)).collect();
    if open.is_empty() {
        return Ok(false);
    }
    let others = neighbours(arm, &nsg, own).await?;
    if !others.is_empty() {
        let names: Vec<String> = open.iter().map(|(r, _)| r.clone()).collect();
        let users: Vec<String> = others.iter().map(|o| ResourceRef::name_of(o)).collect();
        log::warn(&format!(
            "{name} also applies to {} other interface(s) ({}): world-open rule(s) {} left in place, never break a neighbour",
            others.len(),
            users.join(", "),
            names.join(", ")
        ));
        record.skipped.push(SkippedChange {
            resource_id: nsg.resource.id.clone().unwrap_or_default(),
            reason: format!(
                "shared: {name} also applies to {} ({}); its world-open inbound rule(s) {} were left in place (never break a neighbour)",
                users.join(", "),
                others.join(", "),
                names.join(", ")
            ),
        });
        return Ok(false);
    }
    record
        .changes
        .extend(flip_rules(arm, &nsg, case, &open).await?);
    Ok(true)
}

/// What is still open to the world on the changed NSGs and the NICs.
async fn still_open(
    arm: &Arm,
    nsgs: &[String],
    nics: &[String],
) -> Result<Vec<String>, PluginError> {
    let mut left = Vec::new();
    for nsg_id in nsgs {
        let nsg = get_nsg(arm, nsg_id).await?;
        for (rule, props) in custom_rules(&nsg) {
            if world_open(&props) {
                left.push(format!("{}/{rule}", ResourceRef::name_of(nsg_id)));
            }
        }
    }
    for nic_id in nics {
        let nic = get_nic(arm, nic_id).await?;
        for config in nic
            .properties
            .iter()
            .flat_map(|p| p.ip_configurations.iter())
        {
            if config
                .properties
                .as_ref()
                .is_some_and(|p| p.public_ip_address.is_some())
            {
                left.push(format!(
                    "{} keeps a public IP on {}",
                    ResourceRef::name_of(nic_id),
                    config.name.clone().unwrap_or_default()
                ));
            }
        }
    }
    Ok(left)
}

fn rule_id(nsg_id: &str, rule: &str) -> String {
    format!("{nsg_id}/securityRules/{rule}")
}

fn already(nsg_id: &str, nsg_name: &str, rule: &str, marker: &Marker) -> IsolationChange {
    IsolationChange {
        resource_id: rule_id(nsg_id, rule),
        description: format!(
            "inbound rule {nsg_name}/{rule}: already remediated (case {})",
            marker.case
        ),
        previous: serde_json::json!({
            "kind": "nsg-rule", "nsg": nsg_id, "rule": rule,
            "access": marker.access, "description": marker.description,
            "description_in_tag": marker.in_tag,
        })
        .to_string(),
    }
}

/// Deny and mark the world-open rules of an unshared NSG.
async fn flip_rules(
    arm: &Arm,
    nsg: &network::models::NetworkSecurityGroup,
    case: &str,
    open: &[&(String, serde_json::Value)],
) -> Result<Vec<IsolationChange>, PluginError> {
    let nsg_id = nsg.resource.id.clone().unwrap_or_default();
    let name = nsg.resource.name.clone().unwrap_or_default();
    let mut planned = Vec::new();
    let mut overflow: Vec<(String, String)> = Vec::new();
    for (rule, props) in open {
        let original = props["description"].as_str();
        let access = props["access"].as_str().unwrap_or("Allow").to_string();
        let (description, in_tag) = mark(case, &access, original);
        if let Some(text) = in_tag {
            overflow.push((format!("{TAG_DESCRIPTION}{rule}"), text));
        }
        let mut flipped = props.clone();
        flipped["access"] = "Deny".into();
        flipped["description"] = description.into();
        planned.push((rule.clone(), props.clone(), flipped));
    }
    // The originals that do not fit beside a marker are kept first.
    if !overflow.is_empty() {
        let entries: Vec<(&str, String)> = overflow
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        set_nsg_tags(arm, &nsg_id, with_tags(&nsg.resource.tags, &entries)).await?;
    }
    let mut changes = Vec::new();
    for (rule, before, flipped) in planned {
        put_rule(arm, &nsg_id, &rule, flipped).await?;
        let ports = before["destinationPortRange"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                let list: Vec<String> = before["destinationPortRanges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect();
                list.join(",")
            });
        let source = before["sourceAddressPrefix"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| before["sourceAddressPrefixes"].to_string());
        changes.push(IsolationChange {
            resource_id: rule_id(&nsg_id, &rule),
            description: format!(
                "inbound rule {name}/{rule} (priority {}, {} port {ports} from {source}): Allow -> Deny",
                before["priority"], before["protocol"].as_str().unwrap_or("*")
            ),
            previous: serde_json::json!({
                "kind": "nsg-rule", "nsg": nsg_id, "rule": rule,
                "access": before["access"], "description": before["description"],
            })
            .to_string(),
        });
    }
    Ok(changes)
}

/// Dissociate every public IP of a NIC, tagging it with what it had.
async fn dissociate_public_ips(
    arm: &Arm,
    nic_id: &str,
    case: &str,
) -> Result<Vec<IsolationChange>, PluginError> {
    let mut nic = get_nic(arm, nic_id).await?;
    let nic_name = ResourceRef::name_of(nic_id);
    let id = nic
        .resource
        .id
        .clone()
        .unwrap_or_else(|| nic_id.to_string());
    let mut entries: Vec<(String, String)> = Vec::new();
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
        let Some(props) = config.properties.as_mut() else {
            continue;
        };
        match props.public_ip_address.take() {
            Some(pip) => {
                let pip_id = pip.resource.id.clone().unwrap_or_default();
                entries.push((tag_key, public_ip_tag(&pip_id)));
                changes.push(IsolationChange {
                    resource_id: id.clone(),
                    description: format!(
                        "dissociated public IP {} from {nic_name}/{config_name}",
                        ResourceRef::name_of(&pip_id)
                    ),
                    previous: serde_json::json!({
                        "kind": "public-ip", "nic": id, "ip_configuration": config_name,
                        "public_ip": pip_id,
                    })
                    .to_string(),
                });
            }
            None => {
                if let Some(value) = tag(&nic.resource.tags, &tag_key) {
                    let pip_id = public_ip_from_tag(value, &ResourceRef::parse(&id)?);
                    changes.push(IsolationChange {
                        resource_id: id.clone(),
                        description: format!(
                            "public IP {} already dissociated from {nic_name}/{config_name}",
                            ResourceRef::name_of(&pip_id)
                        ),
                        previous: serde_json::json!({
                            "kind": "public-ip", "nic": id, "ip_configuration": config_name,
                            "public_ip": pip_id,
                        })
                        .to_string(),
                    });
                }
            }
        }
    }
    if entries.is_empty() {
        return Ok(changes);
    }
    entries.push((TAG_REMEDIATED_CASE.to_string(), case.to_string()));
    let refs: Vec<(&str, String)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    nic.resource.tags = Some(with_tags(&nic.resource.tags, &refs));
    put_nic(arm, nic).await?;
    Ok(changes)
}
