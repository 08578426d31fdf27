//! `remediate`: from the inventory an `enumerate-interfaces` step took
//! before isolation, revoke what exposed the instance to the world — the
//! ingress rules open to `0.0.0.0/0` or `::/0` on its original security
//! groups, where no other machine uses the group (otherwise reported and
//! left alone: never break a neighbour), and its Elastic IP associations.
//! Every change is recorded with what it replaced and tagged on the
//! resource, so `release` can undo it without this run's records:
//! - a revoked rule: tag `irhost:remediated:<case>:<protocol>:<from>:<to>:<cidr>`
//!   on the group, its value the rule's description;
//! - a dissociated Elastic IP: tag `irhost:remediated:<case>` on the
//!   allocation, its value `<eni>|<private ip>`.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, SecurityGroup as Sg};
use irhost_plugin_sdk::prelude::*;

use crate::aws::{filter, tag, Ec2};

/// The world, as EC2 writes it.
const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// The tag key of a revoked rule (EC2 tag keys take `:` and `/`).
pub fn rule_tag(case: &str, protocol: &str, from: i32, to: i32, cidr: &str) -> String {
    format!("irhost:remediated:{case}:{protocol}:{from}:{to}:{cidr}")
}

/// The tag key of a dissociated Elastic IP.
pub fn address_tag(case: &str) -> String {
    format!("irhost:remediated:{case}")
}

/// One world-open ingress grant of a group.
struct WorldRule {
    protocol: String,
    from: i32,
    to: i32,
    cidr: String,
    description: String,
}

fn world_rules(sg: &Sg) -> Vec<WorldRule> {
    let mut rules = Vec::new();
    for p in sg.ip_permissions() {
        let protocol = p.ip_protocol().unwrap_or("-1").to_string();
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        let v4 = p.ip_ranges().iter().map(|r| (r.cidr_ip(), r.description()));
        let v6 = p
            .ipv6_ranges()
            .iter()
            .map(|r| (r.cidr_ipv6(), r.description()));
        for (cidr, description) in v4.chain(v6) {
            if let Some(cidr) = cidr.filter(|c| WORLD.contains(c)) {
                rules.push(WorldRule {
                    protocol: protocol.clone(),
                    from,
                    to,
                    cidr: cidr.to_string(),
                    description: description.unwrap_or_default().to_string(),
                });
            }
        }
    }
    rules
}

/// The permission that grants exactly `rule`.
pub fn permission(
    protocol: &str,
    from: i32,
    to: i32,
    cidr: &str,
    description: &str,
) -> IpPermission {
    let mut p = IpPermission::builder().ip_protocol(protocol);
    if protocol != "-1" {
        p = p.from_port(from).to_port(to);
    }
    let description = (!description.is_empty()).then(|| description.to_string());
    if cidr.contains(':') {
        p = p.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(cidr)
                .set_description(description)
                .build(),
        );
    } else {
        p = p.ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .set_description(description)
                .build(),
        );
    }
    p.build()
}

/// The machines other than `instance` whose interfaces use `group`.
async fn neighbours(ec2: &Ec2, group: &str, instance: &str) -> Result<Vec<String>, PluginError> {
    let out = ec2
        .client
        .describe_network_interfaces()
        .filters(filter("group-id", group))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeNetworkInterfaces", e))?;
    Ok(out
        .network_interfaces()
        .iter()
        .filter(|eni| eni.attachment().and_then(|a| a.instance_id()) != Some(instance))
        .map(|eni| {
            eni.attachment()
                .and_then(|a| a.instance_id())
                .unwrap_or_else(|| eni.network_interface_id().unwrap_or("an interface"))
                .to_string()
        })
        .collect())
}

pub async fn remediate(
    ec2: &Ec2,
    target: &Target,
    inputs: &Inputs,
) -> Result<RemediationRecord, PluginError> {
    let inventory = inputs.inventory()?.ok_or_else(|| {
        PluginError::InvalidInput(
            "remediate works from the inventory of an enumerate-interfaces step: put one in its `after`".into(),
        )
    })?;
    let id = target.id.as_str();
    let case = irhost_plugin_sdk::case_id();
    let groups: BTreeSet<String> = inventory
        .interfaces
        .iter()
        .flat_map(|nic| nic.security_groups.iter().map(|g| g.id.clone()))
        .collect();
    let (mut changes, mut skipped) = (Vec::new(), Vec::new());
    let mut revoked_groups = Vec::new();
    for group in &groups {
        let sg = describe_group(ec2, group).await?;
        let rules = world_rules(&sg);
        if rules.is_empty() {
            continue;
        }
        let others = neighbours(ec2, group, id).await?;
        if !others.is_empty() {
            skipped.push(SkippedChange {
                resource_id: group.clone(),
                reason: format!(
                    "{group} is also used by {}: its {} world-open ingress rule(s) are left in place (never break a neighbour); the isolation already cuts them for {id}",
                    others.join(", "),
                    rules.len()
                ),
            });
            continue;
        }
        for rule in rules {
            let key = rule_tag(&case, &rule.protocol, rule.from, rule.to, &rule.cidr);
            ec2.client
                .create_tags()
                .resources(group)
                .tags(tag(&key, &rule.description))
                .send()
                .await
                .map_err(|e| ec2.err("CreateTags", e))?;
            ec2.client
                .revoke_security_group_ingress()
                .group_id(group)
                .ip_permissions(permission(
                    &rule.protocol,
                    rule.from,
                    rule.to,
                    &rule.cidr,
                    "",
                ))
                .send()
                .await
                .map_err(|e| ec2.err("RevokeSecurityGroupIngress", e))?;
            changes.push(IsolationChange {
                resource_id: group.clone(),
                description: format!(
                    "revoked ingress {} {}-{} from {} (tagged {key})",
                    rule.protocol, rule.from, rule.to, rule.cidr
                ),
                previous: json!({
                    "kind": "world-ingress", "group": group, "protocol": rule.protocol,
                    "from": rule.from, "to": rule.to, "cidr": rule.cidr, "description": rule.description,
                })
                .to_string(),
            });
        }
        revoked_groups.push(group.clone());
    }
    dissociate_addresses(ec2, id, &case, &mut changes, &mut skipped, &inventory).await?;
    let mut verified = true;
    for group in &revoked_groups {
        if !world_rules(&describe_group(ec2, group).await?).is_empty() {
            verified = false;
        }
    }
    let still = ec2
        .client
        .describe_addresses()
        .filters(filter("instance-id", id))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeAddresses", e))?;
    verified &= still
        .addresses()
        .iter()
        .all(|a| a.association_id().is_none());
    log::info(&format!(
        "{id}: {} change(s), {} left alone",
        changes.len(),
        skipped.len()
    ));
    Ok(RemediationRecord {
        target_id: id.to_string(),
        changes,
        skipped,
        verified,
    })
}

pub async fn describe_group(ec2: &Ec2, group: &str) -> Result<Sg, PluginError> {
    let out = ec2
        .client
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeSecurityGroups", e))?;
    out.security_groups()
        .first()
        .cloned()
        .ok_or_else(|| PluginError::NotFound(format!("security group {group} does not exist")))
}

/// Dissociate the instance's Elastic IPs; an auto-assigned public IP (no
/// allocation) cannot be removed from a running instance: reported.
async fn dissociate_addresses(
    ec2: &Ec2,
    id: &str,
    case: &str,
    changes: &mut Vec<IsolationChange>,
    skipped: &mut Vec<SkippedChange>,
    inventory: &InterfaceInventory,
) -> Result<(), PluginError> {
    let out = ec2
        .client
        .describe_addresses()
        .filters(filter("instance-id", id))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeAddresses", e))?;
    let mut elastic = BTreeSet::new();
    for address in out.addresses() {
        let (Some(association), Some(allocation)) =
            (address.association_id(), address.allocation_id())
        else {
            continue;
        };
        let ip = address.public_ip().unwrap_or_default();
        elastic.insert(ip.to_string());
        let eni = address.network_interface_id().unwrap_or_default();
        let private = address.private_ip_address().unwrap_or_default();
        ec2.client
            .create_tags()
            .resources(allocation)
            .tags(tag(&address_tag(case), &format!("{eni}|{private}")))
            .send()
            .await
            .map_err(|e| ec2.err("CreateTags", e))?;
        ec2.client
            .disassociate_address()
            .association_id(association)
            .send()
            .await
            .map_err(|e| ec2.err("DisassociateAddress", e))?;
        changes.push(IsolationChange {
            resource_id: allocation.to_string(),
            description: format!("dissociated Elastic IP {ip} from {eni} ({private})"),
            previous: json!({
                "kind": "elastic-ip", "allocation": allocation, "public_ip": ip,
                "eni": eni, "private_ip": private,
            })
            .to_string(),
        });
    }
    for nic in &inventory.interfaces {
        for ip in nic.public_ips.iter().filter(|ip| !elastic.contains(*ip)) {
            skipped.push(SkippedChange {
                resource_id: nic.id.clone(),
                reason: format!(
                    "{ip} is an auto-assigned public IP: EC2 removes it only when the instance stops; the isolation blocks it meanwhile"
                ),
            });
        }
    }
    Ok(())
}

/// Undo the remediation of `case` on the instance: re-authorize the rules
/// and re-associate the Elastic IPs its tags record (on `groups`, the
/// instance's groups and those of the run's record), removing the tags.
pub async fn undo(
    ec2: &Ec2,
    id: &str,
    case: &str,
    groups: BTreeSet<String>,
) -> Result<Vec<IsolationChange>, PluginError> {
    let mut changes = Vec::new();
    let prefix = format!("irhost:remediated:{case}:");
    for group in &groups {
        let sg = describe_group(ec2, group).await?;
        for t in sg.tags() {
            let (Some(key), value) = (t.key(), t.value().unwrap_or_default()) else {
                continue;
            };
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let mut fields = rest.splitn(4, ':');
            let (Some(protocol), Some(from), Some(to), Some(cidr)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(from), Ok(to)) = (from.parse::<i32>(), to.parse::<i32>()) else {
                continue;
            };
            let present = world_rules(&sg)
                .iter()
                .any(|r| r.protocol == protocol && r.from == from && r.to == to && r.cidr == cidr);
            if !present {
                ec2.client
                    .authorize_security_group_ingress()
                    .group_id(group)
                    .ip_permissions(permission(protocol, from, to, cidr, value))
                    .send()
                    .await
                    .map_err(|e| ec2.err("AuthorizeSecurityGroupIngress", e))?;
            }
            ec2.client
                .delete_tags()
                .resources(group)
                .tags(aws_sdk_ec2::types::Tag::builder().key(key).build())
                .send()
                .await
                .map_err(|e| ec2.err("DeleteTags", e))?;
            changes.push(IsolationChange {
                resource_id: group.clone(),
                description: format!("restored ingress {protocol} {from}-{to} from {cidr}"),
                previous: json!({ "kind": "world-ingress-revoked", "group": group }).to_string(),
            });
        }
    }
    let out = ec2
        .client
        .describe_addresses()
        .filters(filter("tag-key", &address_tag(case)))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeAddresses", e))?;
    for address in out.addresses() {
        let Some(allocation) = address.allocation_id() else {
            continue;
        };
        let recorded = address
            .tags()
            .iter()
            .find(|t| t.key() == Some(address_tag(case).as_str()))
            .and_then(|t| t.value())
            .unwrap_or_default();
        let (eni, private) = recorded.split_once('|').unwrap_or((recorded, ""));
        if address.association_id().is_none() && !eni.is_empty() {
            let mut call = ec2
                .client
                .associate_address()
                .allocation_id(allocation)
                .network_interface_id(eni);
            if !private.is_empty() {
                call = call.private_ip_address(private);
            }
            call.send()
                .await
                .map_err(|e| ec2.err("AssociateAddress", e))?;
        }
        ec2.client
            .delete_tags()
            .resources(allocation)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(address_tag(case))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| ec2.err("DeleteTags", e))?;
        changes.push(IsolationChange {
            resource_id: allocation.to_string(),
            description: format!(
                "re-associated Elastic IP {} with {eni} ({private})",
                address.public_ip().unwrap_or_default()
            ),
            previous: json!({ "kind": "elastic-ip-dissociated", "allocation": allocation })
                .to_string(),
        });
    }
    log::info(&format!(
        "{id}: {} remediation change(s) undone",
        changes.len()
    ));
    Ok(changes)
}
