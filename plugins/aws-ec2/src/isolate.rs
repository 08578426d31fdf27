//! isolate and release.
//!
//! Isolation works per ENI (ModifyNetworkInterfaceAttribute), never with
//! ModifyInstanceAttribute's group set, which only reaches the primary ENI.
//! Each ENI goes first to an allow-all group, which makes its tracked
//! connections untracked, then to the case's isolation group (no ingress, no
//! egress): AWS's documented way to cut connections that are already open.
//! The previous groups are written to the ENI as a tag before anything
//! changes, so a crash or a later run can still undo the isolation.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, EbsInstanceBlockDeviceSpecification,
    InstanceAttributeName, InstanceBlockDeviceMappingSpecification, IpPermission, IpRange,
    Ipv6Range, NetworkInterface as Eni, ResourceType, SecurityGroup as Sg, Tag,
};
use irhost_plugin_sdk::prelude::*;

use crate::aws::{
    filter, now_rfc3339, state_name, tag, tag_spec, tag_value, Ec2, TAG_CASE, TAG_PREVIOUS_GROUPS,
    TAG_ROLE,
};
use crate::inventory::rules_of;

/// Group ids per tag value, so that the value stays under EC2's 256 characters.
const IDS_PER_TAG: usize = 10;

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Isolation,
    Untrack,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Isolation => "isolation",
            Role::Untrack => "untrack",
        }
    }
}

/// Security-group names allow a limited character set; keep the case id readable.
fn group_name(role: Role, case: &str) -> String {
    let case: String = case
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-:/()#,@[]+=&;{}!$*".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("irhost-{}-{case}", role.as_str());
    name.truncate(255);
    name
}

fn group_ids(eni: &Eni) -> Vec<String> {
    eni.groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect()
}

/// Previous groups recorded on the ENI's tags, if any.
fn tagged_previous(eni: &Eni) -> Option<Vec<String>> {
    let mut parts: Vec<(usize, &str)> = eni
        .tag_set()
        .iter()
        .filter_map(|t| {
            let key = t.key()?;
            let rest = key.strip_prefix(TAG_PREVIOUS_GROUPS)?;
            let index = if rest.is_empty() {
                1
            } else {
                rest.strip_prefix('-')?.parse().ok()?
            };
            Some((index, t.value().unwrap_or_default()))
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort();
    Some(
        parts
            .iter()
            .flat_map(|(_, v)| v.split(','))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn previous_group_tags(ids: &[String]) -> Vec<Tag> {
    let chunks: Vec<&[String]> = ids.chunks(IDS_PER_TAG).collect();
    if chunks.is_empty() {
        return vec![tag(TAG_PREVIOUS_GROUPS, "")];
    }
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let key = if i == 0 {
                TAG_PREVIOUS_GROUPS.to_string()
            } else {
                format!("{TAG_PREVIOUS_GROUPS}-{}", i + 1)
            };
            tag(&key, &chunk.join(","))
        })
        .collect()
}

/// Allow-all rules, IPv4 and IPv6 apart so that each can be added on its own.
fn allow_all() -> Vec<IpPermission> {
    vec![
        IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build(),
        IpPermission::builder()
            .ip_protocol("-1")
            .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
            .build(),
    ]
}

/// The examiner's allowance on the isolation group, from `examiner_cidr` and
/// `examiner_ports` (default 22).
fn examiner_permissions() -> Result<Vec<IpPermission>, PluginError> {
    let Some(cidr) = irhost_plugin_sdk::param::<String>("examiner_cidr")? else {
        return Ok(Vec::new());
    };
    if !cidr.contains('/') {
        return Err(PluginError::InvalidInput(format!(
            "examiner_cidr `{cidr}` is not a CIDR (a.b.c.d/n)"
        )));
    }
    let ports: Vec<u16> = crate::aws::param_or("examiner_ports", vec![22])?;
    Ok(ports
        .into_iter()
        .map(|port| {
            let mut p = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(i32::from(port))
                .to_port(i32::from(port));
            if cidr.contains(':') {
                p = p.ipv6_ranges(
                    Ipv6Range::builder()
                        .cidr_ipv6(&cidr)
                        .description("irhost examiner access")
                        .build(),
                );
            } else {
                p = p.ip_ranges(
                    IpRange::builder()
                        .cidr_ip(&cidr)
                        .description("irhost examiner access")
                        .build(),
                );
            }
            p.build()
        })
        .collect())
}

/// Comparable form of a group's rules in one direction.
fn rule_set(perms: &[IpPermission], direction: Direction) -> BTreeSet<String> {
    perms
        .iter()
        .flat_map(|p| rules_of(p, direction))
        .map(|r| {
            format!(
                "{}|{:?}|{:?}|{}",
                r.protocol, r.from_port, r.to_port, r.peer
            )
        })
        .collect()
}

fn rules_json(perms: &[IpPermission], direction: Direction) -> serde_json::Value {
    perms
        .iter()
        .flat_map(|p| rules_of(p, direction))
        .map(|r| json!({ "protocol": r.protocol, "from_port": r.from_port, "to_port": r.to_port, "peer": r.peer }))
        .collect()
}

async fn find_group(ec2: &Ec2, vpc: &str, name: &str) -> Result<Option<Sg>, PluginError> {
    let out = ec2
        .client
        .describe_security_groups()
        .filters(filter("vpc-id", vpc))
        .filters(filter("group-name", name))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeSecurityGroups", e))?;
    Ok(out
        .security_groups()
        .iter()
        .find(|g| g.group_name() == Some(name) && g.vpc_id() == Some(vpc))
        .cloned())
}

async fn group_by_id(ec2: &Ec2, id: &str) -> Result<Sg, PluginError> {
    let out = ec2
        .client
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeSecurityGroups", e))?;
    out.security_groups()
        .first()
        .cloned()
        .ok_or_else(|| PluginError::NotFound(format!("security group {id} vanished")))
}

/// The case's group of `role` in `vpc`, created once and brought to its rules.
async fn ensure_group(
    ec2: &Ec2,
    vpc: &str,
    case: &str,
    role: Role,
    examiner: &[IpPermission],
    agent: &[IpPermission],
    changes: &mut Vec<IsolationChange>,
) -> Result<String, PluginError> {
    let name = group_name(role, case);
    let sg = match find_group(ec2, vpc, &name).await? {
        Some(sg) => sg,
        None => {
            let description = match role {
                Role::Isolation => format!("irhost isolation for case {case}: no traffic"),
                Role::Untrack => format!(
                    "irhost case {case}: allow-all transit group that untracks connections before isolation"
                ),
            };
            let created = ec2
                .client
                .create_security_group()
                .group_name(&name)
                .description(description)
                .vpc_id(vpc)
                .tag_specifications(tag_spec(
                    ResourceType::SecurityGroup,
                    vec![
                        tag(TAG_CASE, case),
                        tag(TAG_ROLE, role.as_str()),
                        tag("Name", &name),
                    ],
                ))
                .send()
                .await;
            match created {
                Ok(out) => {
                    let id = out.group_id().unwrap_or_default().to_string();
                    log::info(&format!(
                        "created {} group {id} ({name}) in {vpc}",
                        role.as_str()
                    ));
                    changes.push(IsolationChange {
                        resource_id: id.clone(),
                        description: format!(
                            "created {} security group {name} in {vpc}",
                            role.as_str()
                        ),
                        previous: json!({ "kind": "created-group", "vpc": vpc, "name": name })
                            .to_string(),
                    });
                    group_by_id(ec2, &id).await?
                }
                // Another target of the same case in the same VPC won the race.
                Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
                    log::info(&format!(
                        "{name} was created concurrently in {vpc}; using it"
                    ));
                    find_group(ec2, vpc, &name).await?.ok_or_else(|| {
                        PluginError::Conflict(format!(
                            "security group {name} exists in {vpc} but cannot be read"
                        ))
                    })?
                }
                Err(e) => return Err(ec2.err("CreateSecurityGroup", e)),
            }
        }
    };
    let id = sg.group_id().unwrap_or_default().to_string();

    let (want_ingress, want_egress): (Vec<IpPermission>, Vec<IpPermission>) = match role {
        Role::Isolation => (examiner.to_vec(), agent.to_vec()),
        Role::Untrack => (allow_all(), allow_all()),
    };
    for direction in [Direction::Egress, Direction::Ingress] {
        let (have, want) = match direction {
            Direction::Ingress => (sg.ip_permissions(), &want_ingress),
            Direction::Egress => (sg.ip_permissions_egress(), &want_egress),
        };
        if rule_set(have, direction) == rule_set(want, direction) {
            continue;
        }
        let which = match direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        // The untrack group only ever gains rules; the isolation group is
        // reset to exactly its wanted rules.
        if role == Role::Isolation && !have.is_empty() {
            let r = match direction {
                Direction::Ingress => ec2
                    .client
                    .revoke_security_group_ingress()
                    .group_id(&id)
                    .set_ip_permissions(Some(have.to_vec()))
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| tolerate(ec2, "RevokeSecurityGroupIngress", e)),
                Direction::Egress => ec2
                    .client
                    .revoke_security_group_egress()
                    .group_id(&id)
                    .set_ip_permissions(Some(have.to_vec()))
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| tolerate(ec2, "RevokeSecurityGroupEgress", e)),
            };
            r?;
        }
        let missing: Vec<IpPermission> = if role == Role::Isolation {
            want.clone()
        } else {
            let have_set = rule_set(have, direction);
            want.iter()
                .filter(|p| !rule_set(std::slice::from_ref(*p), direction).is_subset(&have_set))
                .cloned()
                .collect()
        };
        // One permission per call, so that a rule already present (added by
        // a concurrent target of the case) does not hold back the others.
        for permission in missing {
            let r = match direction {
                Direction::Ingress => ec2
                    .client
                    .authorize_security_group_ingress()
                    .group_id(&id)
                    .ip_permissions(permission)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.code() == Some("InvalidPermission.Duplicate"),
                            ec2.err("AuthorizeSecurityGroupIngress", e),
                        )
                    }),
                Direction::Egress => ec2
                    .client
                    .authorize_security_group_egress()
                    .group_id(&id)
                    .ip_permissions(permission)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.code() == Some("InvalidPermission.Duplicate"),
                            ec2.err("AuthorizeSecurityGroupEgress", e),
                        )
                    }),
            };
            match r {
                Ok(()) | Err((true, _)) => {}
                Err((false, e)) => return Err(e),
            }
        }
        changes.push(IsolationChange {
            resource_id: id.clone(),
            description: format!(
                "set the {which} rules of the {} group {name}",
                role.as_str()
            ),
            previous: json!({ "kind": "group-rules", "direction": which, "rules": rules_json(have, direction) })
                .to_string(),
        });
    }
    Ok(id)
}

/// A rule another target of the case revoked a moment ago is not an error.
fn tolerate<E>(
    ec2: &Ec2,
    operation: &str,
    error: aws_sdk_ec2::error::SdkError<E>,
) -> Result<(), PluginError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if error.code() == Some("InvalidPermission.NotFound") {
        Ok(())
    } else {
        Err(ec2.err(operation, error))
    }
}

async fn set_eni_groups(ec2: &Ec2, eni: &str, groups: &[String]) -> Result<(), PluginError> {
    ec2.client
        .modify_network_interface_attribute()
        .network_interface_id(eni)
        .set_groups(Some(groups.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ec2.err("ModifyNetworkInterfaceAttribute", e))
}

pub async fn isolate(ec2: &Ec2, target: &Target) -> Result<IsolationRecord, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let id = target.id.as_str();
    let instance = ec2.instance(id).await?;
    let state = state_name(&instance);
    if state == "terminated" || state == "shutting-down" {
        return Err(PluginError::Conflict(format!(
            "instance {id} is {state}: there is nothing left to isolate"
        )));
    }
    let enis = ec2.interfaces(&instance).await?;
    if enis.is_empty() {
        return Err(PluginError::Conflict(format!(
            "instance {id} ({state}) has no network interface to isolate"
        )));
    }
    let examiner = examiner_permissions()?;
    let mut changes = Vec::new();

    // One isolation group (and one transit group) per VPC of the instance.
    let vpcs: BTreeSet<String> = enis
        .iter()
        .filter_map(|e| e.vpc_id().map(str::to_string))
        .collect();
    let mut isolation: BTreeMap<String, String> = BTreeMap::new();
    let mut untrack: BTreeMap<String, String> = BTreeMap::new();
    let kept = crate::agent_reach::kept()?;
    for vpc in &vpcs {
        let agent = crate::agent_reach::egress(ec2, vpc, &kept).await?;
        let iso = ensure_group(
            ec2,
            vpc,
            &case,
            Role::Isolation,
            &examiner,
            &agent,
            &mut changes,
        )
        .await?;
        let un = ensure_group(ec2, vpc, &case, Role::Untrack, &[], &[], &mut changes).await?;
        isolation.insert(vpc.clone(), iso);
        untrack.insert(vpc.clone(), un);
    }

    for eni in &enis {
        let eni_id = eni.network_interface_id().unwrap_or_default();
        let vpc = eni.vpc_id().unwrap_or_default();
        let (Some(iso), Some(un)) = (isolation.get(vpc), untrack.get(vpc)) else {
            return Err(PluginError::Conflict(format!(
                "{eni_id} of {id} has no VPC; cannot isolate it"
            )));
        };
        let current = group_ids(eni);
        if current == [iso.clone()] {
            log::info(&format!(
                "{eni_id} already has only the isolation group {iso}"
            ));
            continue;
        }
        let ours: BTreeSet<&String> = [iso, un].into_iter().collect();
        let foreign: Vec<String> = current
            .iter()
            .filter(|g| !ours.contains(g))
            .cloned()
            .collect();
        let previous = if foreign.is_empty() {
            // An interrupted earlier run left it in one of our groups: the
            // tag it wrote then still knows the original groups.
            tagged_previous(eni).unwrap_or_else(|| {
                log::warn(&format!(
                    "{eni_id} is in irhost's groups {current:?} with no record of its original groups"
                ));
                Vec::new()
            })
        } else {
            // Record before changing anything (once: a run cut after the
            // tag and before the change finds it already written).
            let recorded = tagged_previous(eni).as_deref() == Some(foreign.as_slice())
                && tag_value(eni.tag_set(), TAG_CASE) == Some(case.as_str());
            if !recorded {
                ec2.client
                    .create_tags()
                    .resources(eni_id)
                    .set_tags(Some(
                        previous_group_tags(&foreign)
                            .into_iter()
                            .chain([tag(TAG_CASE, &case)])
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| ec2.err("CreateTags", e))?;
            }
            foreign
        };
        let names: Vec<&str> = eni
            .groups()
            .iter()
            .filter(|g| {
                g.group_id()
                    .is_some_and(|gid| previous.iter().any(|p| p == gid))
            })
            .filter_map(|g| g.group_name())
            .collect();
        if current != [un.clone()] {
            set_eni_groups(ec2, eni_id, std::slice::from_ref(un)).await?;
        }
        set_eni_groups(ec2, eni_id, std::slice::from_ref(iso)).await?;
        log::info(&format!(
            "{eni_id}: groups {previous:?} replaced by isolation group {iso} (through {un})"
        ));
        changes.push(IsolationChange {
            resource_id: eni_id.to_string(),
            description: format!(
                "security groups {} replaced by isolation group {iso}, through the allow-all group {un} to untrack open connections",
                previous.join(",")
            ),
            previous: json!({
                "kind": "security-groups",
                "instance": id,
                "vpc": vpc,
                "groups": previous,
                "names": names,
            })
            .to_string(),
        });
    }

    protect_instance(ec2, &instance, &mut changes).await?;

    // Verified isolation: re-read and accept nothing but the isolation group.
    let instance = ec2.instance(id).await?;
    let enis = ec2.interfaces(&instance).await?;
    let mut offenders = Vec::new();
    for eni in &enis {
        let eni_id = eni.network_interface_id().unwrap_or_default();
        let want = eni.vpc_id().and_then(|v| isolation.get(v));
        let have = group_ids(eni);
        if want.is_none() || have != [want.cloned().unwrap_or_default()] {
            offenders.push(format!("{eni_id} has {have:?}"));
        }
    }
    if !offenders.is_empty() {
        for c in &changes {
            log::warn(&format!(
                "change made before the failed verification: {} {}",
                c.resource_id, c.description
            ));
        }
        return Err(PluginError::Conflict(format!(
            "isolation of {id} not verified: {} (expected only the isolation group)",
            offenders.join("; ")
        )));
    }
    Ok(IsolationRecord {
        target_id: id.to_string(),
        changes,
        verified: true,
    })
}

/// Termination protection, shutdown → stop, and volumes that survive termination.
async fn protect_instance(
    ec2: &Ec2,
    instance: &aws_sdk_ec2::types::Instance,
    changes: &mut Vec<IsolationChange>,
) -> Result<(), PluginError> {
    let id = instance.instance_id().unwrap_or_default();
    let termination = ec2
        .client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeInstanceAttribute", e))?;
    let protected = termination
        .disable_api_termination()
        .and_then(|v| v.value())
        .unwrap_or(false);
    if !protected {
        ec2.client
            .modify_instance_attribute()
            .instance_id(id)
            .disable_api_termination(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| ec2.err("ModifyInstanceAttribute(DisableApiTermination)", e))?;
        changes.push(IsolationChange {
            resource_id: id.to_string(),
            description: "enabled termination protection".into(),
            previous: json!({ "kind": "instance-attribute", "attribute": "disableApiTermination", "value": false })
                .to_string(),
        });
    }

    let shutdown = ec2
        .client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeInstanceAttribute", e))?;
    let behaviour = shutdown
        .instance_initiated_shutdown_behavior()
        .and_then(|v| v.value())
        .unwrap_or("stop")
        .to_string();
    if behaviour != "stop" {
        ec2.client
            .modify_instance_attribute()
            .instance_id(id)
            .instance_initiated_shutdown_behavior(AttributeValue::builder().value("stop").build())
            .send()
            .await
            .map_err(|e| {
                ec2.err(
                    "ModifyInstanceAttribute(InstanceInitiatedShutdownBehavior)",
                    e,
                )
            })?;
        changes.push(IsolationChange {
            resource_id: id.to_string(),
            description: "instance-initiated shutdown now stops instead of terminating".into(),
            previous: json!({ "kind": "instance-attribute", "attribute": "instanceInitiatedShutdownBehavior", "value": behaviour })
                .to_string(),
        });
    }

    keep_volumes_on_termination(ec2, instance, changes).await
}

/// DeleteOnTermination off on every EBS volume of the instance that has
/// it on, recorded with what it replaced (isolate and stop both do it).
pub async fn keep_volumes_on_termination(
    ec2: &Ec2,
    instance: &aws_sdk_ec2::types::Instance,
    changes: &mut Vec<IsolationChange>,
) -> Result<(), PluginError> {
    let id = instance.instance_id().unwrap_or_default();
    let doomed: Vec<(String, String)> = instance
        .block_device_mappings()
        .iter()
        .filter(|m| m.ebs().and_then(|e| e.delete_on_termination()) == Some(true))
        .filter_map(|m| {
            Some((
                m.device_name()?.to_string(),
                m.ebs()?.volume_id().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    if !doomed.is_empty() {
        let mappings = doomed
            .iter()
            .map(|(device, volume)| {
                InstanceBlockDeviceMappingSpecification::builder()
                    .device_name(device)
                    .ebs(
                        EbsInstanceBlockDeviceSpecification::builder()
                            .volume_id(volume)
                            .delete_on_termination(false)
                            .build(),
                    )
                    .build()
            })
            .collect();
        ec2.client
            .modify_instance_attribute()
            .instance_id(id)
            .set_block_device_mappings(Some(mappings))
            .send()
            .await
            .map_err(|e| ec2.err("ModifyInstanceAttribute(BlockDeviceMappings)", e))?;
        changes.push(IsolationChange {
            resource_id: id.to_string(),
            description: format!(
                "DeleteOnTermination=false on {}",
                doomed
                    .iter()
                    .map(|(d, v)| format!("{v} ({d})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            previous: json!({
                "kind": "delete-on-termination",
                "volumes": doomed.iter().map(|(d, v)| json!({ "device": d, "volume": v, "delete_on_termination": true })).collect::<Vec<_>>(),
            })
            .to_string(),
        });
    }
    Ok(())
}

pub async fn release(
    ec2: &Ec2,
    target: &Target,
    previous: Option<IsolationRecord>,
) -> Result<IsolationRecord, PluginError> {
    let id = target.id.as_str();
    let instance = ec2.instance(id).await?;
    let enis = ec2.interfaces(&instance).await?;

    // The isolation record of this run first, the ENI's tags otherwise.
    let mut recorded: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for change in previous.iter().flat_map(|r| r.changes.iter()) {
        let Ok(p) = serde_json::from_str::<serde_json::Value>(&change.previous) else {
            continue;
        };
        if p["kind"] == "security-groups" {
            let groups: Vec<String> = p["groups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            recorded.insert(change.resource_id.clone(), groups);
        }
    }

    let mut changes = Vec::new();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for eni in &enis {
        let eni_id = eni.network_interface_id().unwrap_or_default();
        let restore = recorded
            .get(eni_id)
            .cloned()
            .filter(|g| !g.is_empty())
            .or_else(|| tagged_previous(eni).filter(|g| !g.is_empty()));
        let Some(restore) = restore else {
            log::info(&format!("{eni_id}: no recorded isolation to undo"));
            continue;
        };
        let current = group_ids(eni);
        let mut a = current.clone();
        let mut b = restore.clone();
        a.sort();
        b.sort();
        if a != b {
            set_eni_groups(ec2, eni_id, &restore).await?;
            log::info(&format!(
                "{eni_id}: restored groups {restore:?} (was {current:?})"
            ));
            changes.push(IsolationChange {
                resource_id: eni_id.to_string(),
                description: format!("restored security groups {}", restore.join(",")),
                previous: json!({ "kind": "security-groups", "instance": id, "groups": current })
                    .to_string(),
            });
        }
        // The isolation is undone: its record on the ENI goes too.
        let stale: Vec<Tag> = eni
            .tag_set()
            .iter()
            .filter(|t| t.key().is_some_and(|k| k.starts_with(TAG_PREVIOUS_GROUPS)))
            .map(|t| Tag::builder().set_key(t.key().map(str::to_string)).build())
            .collect();
        if !stale.is_empty() {
            ec2.client
                .delete_tags()
                .resources(eni_id)
                .set_tags(Some(stale))
                .send()
                .await
                .map_err(|e| ec2.err("DeleteTags", e))?;
        }
        expected.insert(eni_id.to_string(), b);
    }
    log::info(&format!(
        "{id}: termination protection, shutdown behaviour and DeleteOnTermination are left as isolation set them (released at {})",
        now_rfc3339()
    ));

    let enis = ec2.interfaces(&instance).await?;
    let mut verified = true;
    for eni in &enis {
        let eni_id = eni.network_interface_id().unwrap_or_default();
        if let Some(want) = expected.get(eni_id) {
            let mut have = group_ids(eni);
            have.sort();
            if &have != want {
                log::warn(&format!(
                    "{eni_id}: expected {want:?} after release, found {have:?}"
                ));
                verified = false;
            }
        }
    }
    Ok(IsolationRecord {
        target_id: id.to_string(),
        changes,
        verified,
    })
}
