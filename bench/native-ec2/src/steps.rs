//! The four steps of playbooks/aws-instance-compromise.toml, as native code
//! making the same EC2 calls with the same decisions as the plugin
//! (plugins/aws-ec2/src: snapshot.rs, inventory.rs, isolate.rs, seal.rs),
//! with the plugin's defaults (no examiner CIDR, no forensic account).
//!
//! What is left out is what the host does around the calls and the plugin's
//! evidence encoding: no JSON configuration dump, no journal, no artifact
//! store, no case seal. The EC2 traffic is the same.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, EbsInstanceBlockDeviceSpecification, Filter,
    InstanceAttributeName, InstanceBlockDeviceMappingSpecification, InstanceSpecification,
    InstanceType, IpPermission, IpRange, Ipv6Range, NetworkInterface as Eni, ResourceType,
    SecurityGroup as Sg, Snapshot,
};

use crate::ec2::{
    filter, first_instance, now_rfc3339, state_name, tag, tag_spec, tag_value, Ec2, Failure,
    TAG_CASE, TAG_DEVICE, TAG_PREVIOUS_GROUPS, TAG_ROLE, TAG_SEALED, TAG_SEALED_AT,
    TAG_SEAL_DIGEST, TAG_SOURCE_INSTANCE, TAG_TIME, TAG_VOLUME,
};

/// What the snapshot step hands to seal: the provider ids of its artifacts
/// (the seal digest is computed over them, as the plugin does).
pub type ArtifactIds = Vec<String>;

// ---------------------------------------------------------------- snapshot

struct Volume {
    id: String,
    device: String,
    root: bool,
}

pub async fn snapshot(ec2: &Ec2, case: &str, id: &str) -> Result<ArtifactIds, Failure> {
    let described = ec2
        .client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeInstances", e))?;
    let instance = first_instance(described.reservations(), id)?;
    let state = state_name(&instance);
    if state == "terminated" || state == "shutting-down" {
        return Err(Failure::Conflict(format!("instance {id} is {state}")));
    }
    let root_device = instance.root_device_name().unwrap_or_default().to_string();
    let volumes: Vec<Volume> = instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| {
            let vol = m.ebs()?.volume_id()?.to_string();
            let device = m.device_name().unwrap_or_default().to_string();
            Some(Volume {
                root: device == root_device,
                id: vol,
                device,
            })
        })
        .collect();

    let mut artifacts = Vec::new();
    if !volumes.is_empty() {
        artifacts.extend(ebs_snapshots(ec2, case, id, &volumes).await?);
    }

    // Instance-store check (its answer only adds a note artifact).
    let instance_type = instance
        .instance_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let root_type = instance
        .root_device_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let storage = instance_storage_supported(ec2, &instance_type).await;
    if root_type == "instance-store" || storage == Some(true) {
        artifacts.push(format!("{id}/instance-store.json"));
    }

    // User data for the configuration dump; a failure is only a warning.
    let _user_data = ec2
        .client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .map(|o| o.user_data().and_then(|v| v.value()).map(str::to_string))
        .ok();
    artifacts.push(format!("{id}/describe-instances.json"));

    match ec2.client.get_console_output().instance_id(id).send().await {
        Ok(out) => {
            let encoded = out.output().unwrap_or_default();
            let _bytes = aws_smithy_types::base64::decode(encoded.trim())
                .unwrap_or_else(|_| encoded.as_bytes().to_vec());
            artifacts.push(format!("{id}/console-output.txt"));
        }
        Err(e) => {
            let e = ec2.err("GetConsoleOutput", e);
            if matches!(e, Failure::Throttled { .. }) {
                return Err(e);
            }
        }
    }
    Ok(artifacts)
}

/// The plugin's `SnapshotLookup` (plugins/aws-ec2/src/snapshot.rs), call for call.
pub enum SnapshotLookup<'a> {
    Volumes(&'a [String]),
    Ids(&'a [String]),
    Tagged,
}

pub async fn case_snapshots(
    ec2: &Ec2,
    case: &str,
    instance: &str,
    lookup: SnapshotLookup<'_>,
) -> Result<Vec<Snapshot>, Failure> {
    let mut query = ec2.client.describe_snapshots();
    match lookup {
        SnapshotLookup::Volumes([]) | SnapshotLookup::Ids([]) => return Ok(Vec::new()),
        SnapshotLookup::Volumes(volumes) => {
            query = query.owner_ids("self").filters(
                Filter::builder()
                    .name("volume-id")
                    .set_values(Some(volumes.to_vec()))
                    .build(),
            )
        }
        SnapshotLookup::Ids(ids) => query = query.set_snapshot_ids(Some(ids.to_vec())),
        SnapshotLookup::Tagged => {
            query = query
                .owner_ids("self")
                .filters(filter(&format!("tag:{TAG_CASE}"), case))
                .filters(filter(&format!("tag:{TAG_SOURCE_INSTANCE}"), instance))
        }
    }
    let mut snapshots = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = query
            .clone()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| ec2.err("DescribeSnapshots", e))?;
        snapshots.extend(
            out.snapshots()
                .iter()
                .filter(|s| {
                    tag_value(s.tags(), TAG_CASE) == Some(case)
                        && tag_value(s.tags(), TAG_SOURCE_INSTANCE) == Some(instance)
                })
                .cloned(),
        );
        match out.next_token().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    Ok(snapshots)
}

async fn ebs_snapshots(
    ec2: &Ec2,
    case: &str,
    id: &str,
    volumes: &[Volume],
) -> Result<ArtifactIds, Failure> {
    let mut existing: BTreeMap<String, Snapshot> = BTreeMap::new();
    let volume_ids: Vec<String> = volumes.iter().map(|v| v.id.clone()).collect();
    for s in case_snapshots(ec2, case, id, SnapshotLookup::Volumes(&volume_ids)).await? {
        let usable = s.state().map(|st| st.as_str() != "error").unwrap_or(true);
        let volume = s
            .volume_id()
            .or_else(|| tag_value(s.tags(), TAG_VOLUME))
            .map(str::to_string);
        if let (true, Some(volume)) = (usable, volume) {
            existing.entry(volume).or_insert(s);
        }
    }
    let missing: Vec<&Volume> = volumes
        .iter()
        .filter(|v| !existing.contains_key(&v.id))
        .collect();
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    for (volume, s) in &existing {
        if let Some(sid) = s.snapshot_id() {
            created.insert(volume.clone(), sid.to_string());
        }
    }
    if !missing.is_empty() {
        let time = now_rfc3339();
        let exclude_boot = !missing.iter().any(|v| v.root);
        let exclude_data: Vec<String> = volumes
            .iter()
            .filter(|v| !v.root && existing.contains_key(&v.id))
            .map(|v| v.id.clone())
            .collect();
        let mut spec = InstanceSpecification::builder().instance_id(id);
        if exclude_boot {
            spec = spec.exclude_boot_volume(true);
        }
        if !exclude_data.is_empty() {
            spec = spec.set_exclude_data_volume_ids(Some(exclude_data));
        }
        let out = ec2
            .client
            .create_snapshots()
            .instance_specification(spec.build())
            .description(format!("irhost case {case}: {id}"))
            .tag_specifications(tag_spec(
                ResourceType::Snapshot,
                vec![
                    tag(TAG_CASE, case),
                    tag(TAG_SOURCE_INSTANCE, id),
                    tag(TAG_TIME, &time),
                ],
            ))
            .send()
            .await
            .map_err(|e| ec2.err("CreateSnapshots", e))?;
        for info in out.snapshots() {
            let (Some(sid), Some(vol)) = (info.snapshot_id(), info.volume_id()) else {
                continue;
            };
            let device = volumes
                .iter()
                .find(|v| v.id == vol)
                .map(|v| v.device.as_str())
                .unwrap_or_default();
            ec2.client
                .create_tags()
                .resources(sid)
                .tags(tag(TAG_VOLUME, vol))
                .tags(tag(TAG_DEVICE, device))
                .send()
                .await
                .map_err(|e| ec2.err("CreateTags", e))?;
            created.insert(vol.to_string(), sid.to_string());
        }
    }
    Ok(volumes
        .iter()
        .filter_map(|v| created.get(&v.id).cloned())
        .collect())
}

async fn instance_storage_supported(ec2: &Ec2, instance_type: &str) -> Option<bool> {
    if instance_type.is_empty() {
        return None;
    }
    match ec2
        .client
        .describe_instance_types()
        .instance_types(InstanceType::from(instance_type))
        .send()
        .await
    {
        Ok(out) => out
            .instance_types()
            .first()
            .map(|t| t.instance_storage_supported().unwrap_or(false)),
        Err(_) => None,
    }
}

// ------------------------------------------------------ enumerate-interfaces

pub async fn enumerate(ec2: &Ec2, id: &str) -> Result<usize, Failure> {
    let instance = ec2.instance(id).await?;
    let enis = ec2.interfaces(&instance).await?;
    let ids: BTreeSet<String> = enis
        .iter()
        .flat_map(|e| e.groups())
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    let mut rules = 0;
    if !ids.is_empty() {
        let out = ec2
            .client
            .describe_security_groups()
            .set_group_ids(Some(ids.into_iter().collect()))
            .send()
            .await
            .map_err(|e| ec2.err("DescribeSecurityGroups", e))?;
        for sg in out.security_groups() {
            rules += rule_set(sg.ip_permissions(), "in").len()
                + rule_set(sg.ip_permissions_egress(), "out").len();
        }
    }
    Ok(rules)
}

/// Comparable rules of one direction (the plugin's `rules_of` + `rule_set`).
fn rule_set(perms: &[IpPermission], direction: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for p in perms {
        let protocol = match p.ip_protocol().unwrap_or("-1") {
            "-1" | "all" => "all",
            "6" | "tcp" => "tcp",
            "17" | "udp" => "udp",
            "1" | "icmp" => "icmp",
            "58" | "icmpv6" => "icmpv6",
            other => other,
        };
        let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
        let (from, to) = if protocol == "tcp" || protocol == "udp" {
            let (f, t) = (port(p.from_port()), port(p.to_port()));
            if f == Some(0) && t == Some(65535) {
                (None, None)
            } else {
                (f, t)
            }
        } else {
            (None, None)
        };
        let mut peers: Vec<String> = Vec::new();
        peers.extend(
            p.ip_ranges()
                .iter()
                .map(|r| r.cidr_ip().unwrap_or_default().to_string()),
        );
        peers.extend(
            p.ipv6_ranges()
                .iter()
                .map(|r| r.cidr_ipv6().unwrap_or_default().to_string()),
        );
        for g in p.user_id_group_pairs() {
            peers.push(match (g.group_id(), g.user_id()) {
                (Some(gid), Some(user)) if !user.is_empty() => format!("{user}/{gid}"),
                (Some(gid), _) => gid.to_string(),
                (None, _) => g.group_name().unwrap_or_default().to_string(),
            });
        }
        peers.extend(
            p.prefix_list_ids()
                .iter()
                .map(|pl| pl.prefix_list_id().unwrap_or_default().to_string()),
        );
        for peer in peers {
            set.insert(format!("{direction}|{protocol}|{from:?}|{to:?}|{peer}"));
        }
    }
    set
}

// ------------------------------------------------------------------ isolate

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

async fn find_group(ec2: &Ec2, vpc: &str, name: &str) -> Result<Option<Sg>, Failure> {
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

async fn group_by_id(ec2: &Ec2, id: &str) -> Result<Sg, Failure> {
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
        .ok_or_else(|| Failure::NotFound(format!("security group {id} vanished")))
}

async fn ensure_group(ec2: &Ec2, vpc: &str, case: &str, role: Role) -> Result<String, Failure> {
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
                Ok(out) => group_by_id(ec2, out.group_id().unwrap_or_default()).await?,
                Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
                    find_group(ec2, vpc, &name).await?.ok_or_else(|| {
                        Failure::Conflict(format!("security group {name} cannot be read"))
                    })?
                }
                Err(e) => return Err(ec2.err("CreateSecurityGroup", e)),
            }
        }
    };
    let id = sg.group_id().unwrap_or_default().to_string();
    // No examiner CIDR: the isolation group wants no rules at all.
    let (want_ingress, want_egress) = match role {
        Role::Isolation => (Vec::new(), Vec::new()),
        Role::Untrack => (allow_all(), allow_all()),
    };
    for ingress in [false, true] {
        let dir = if ingress { "in" } else { "out" };
        let (have, want) = if ingress {
            (sg.ip_permissions(), &want_ingress)
        } else {
            (sg.ip_permissions_egress(), &want_egress)
        };
        if rule_set(have, dir) == rule_set(want, dir) {
            continue;
        }
        if role == Role::Isolation && !have.is_empty() {
            let r = if ingress {
                ec2.client
                    .revoke_security_group_ingress()
                    .group_id(&id)
                    .set_ip_permissions(Some(have.to_vec()))
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| tolerate(ec2, "RevokeSecurityGroupIngress", e))
            } else {
                ec2.client
                    .revoke_security_group_egress()
                    .group_id(&id)
                    .set_ip_permissions(Some(have.to_vec()))
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| tolerate(ec2, "RevokeSecurityGroupEgress", e))
            };
            r?;
        }
        let missing: Vec<IpPermission> = if role == Role::Isolation {
            want.clone()
        } else {
            let have_set = rule_set(have, dir);
            want.iter()
                .filter(|p| !rule_set(std::slice::from_ref(*p), dir).is_subset(&have_set))
                .cloned()
                .collect()
        };
        for permission in missing {
            let r = if ingress {
                ec2.client
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
                    })
            } else {
                ec2.client
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
                    })
            };
            match r {
                Ok(()) | Err((true, _)) => {}
                Err((false, e)) => return Err(e),
            }
        }
    }
    Ok(id)
}

fn tolerate<E>(
    ec2: &Ec2,
    operation: &str,
    error: aws_sdk_ec2::error::SdkError<E>,
) -> Result<(), Failure>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if error.code() == Some("InvalidPermission.NotFound") {
        Ok(())
    } else {
        Err(ec2.err(operation, error))
    }
}

async fn set_eni_groups(ec2: &Ec2, eni: &str, groups: &[String]) -> Result<(), Failure> {
    ec2.client
        .modify_network_interface_attribute()
        .network_interface_id(eni)
        .set_groups(Some(groups.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ec2.err("ModifyNetworkInterfaceAttribute", e))
}

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

fn previous_group_tags(ids: &[String]) -> Vec<aws_sdk_ec2::types::Tag> {
    let chunks: Vec<&[String]> = ids.chunks(10).collect();
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

pub async fn isolate(ec2: &Ec2, case: &str, id: &str) -> Result<(), Failure> {
    let instance = ec2.instance(id).await?;
    let state = state_name(&instance);
    if state == "terminated" || state == "shutting-down" {
        return Err(Failure::Conflict(format!("instance {id} is {state}")));
    }
    let enis = ec2.interfaces(&instance).await?;
    if enis.is_empty() {
        return Err(Failure::Conflict(format!("instance {id} has no ENI")));
    }
    let vpcs: BTreeSet<String> = enis
        .iter()
        .filter_map(|e| e.vpc_id().map(str::to_string))
        .collect();
    let mut isolation: BTreeMap<String, String> = BTreeMap::new();
    let mut untrack: BTreeMap<String, String> = BTreeMap::new();
    for vpc in &vpcs {
        let iso = ensure_group(ec2, vpc, case, Role::Isolation).await?;
        let un = ensure_group(ec2, vpc, case, Role::Untrack).await?;
        isolation.insert(vpc.clone(), iso);
        untrack.insert(vpc.clone(), un);
    }
    for eni in &enis {
        let eni_id = eni.network_interface_id().unwrap_or_default();
        let vpc = eni.vpc_id().unwrap_or_default();
        let (Some(iso), Some(un)) = (isolation.get(vpc), untrack.get(vpc)) else {
            return Err(Failure::Conflict(format!("{eni_id} of {id} has no VPC")));
        };
        let current = group_ids(eni);
        if current == [iso.clone()] {
            continue;
        }
        let ours: BTreeSet<&String> = [iso, un].into_iter().collect();
        let foreign: Vec<String> = current
            .iter()
            .filter(|g| !ours.contains(g))
            .cloned()
            .collect();
        if foreign.is_empty() {
            let _ = tagged_previous(eni);
        } else {
            ec2.client
                .create_tags()
                .resources(eni_id)
                .set_tags(Some(
                    previous_group_tags(&foreign)
                        .into_iter()
                        .chain([tag(TAG_CASE, case)])
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| ec2.err("CreateTags", e))?;
        }
        if current != [un.clone()] {
            set_eni_groups(ec2, eni_id, std::slice::from_ref(un)).await?;
        }
        set_eni_groups(ec2, eni_id, std::slice::from_ref(iso)).await?;
    }

    protect_instance(ec2, &instance).await?;

    let instance = ec2.instance(id).await?;
    let enis = ec2.interfaces(&instance).await?;
    let mut offenders = Vec::new();
    for eni in &enis {
        let want = eni.vpc_id().and_then(|v| isolation.get(v));
        let have = group_ids(eni);
        if want.is_none() || have != [want.cloned().unwrap_or_default()] {
            offenders.push(format!(
                "{} has {have:?}",
                eni.network_interface_id().unwrap_or_default()
            ));
        }
    }
    if !offenders.is_empty() {
        return Err(Failure::Conflict(format!(
            "isolation of {id} not verified: {}",
            offenders.join("; ")
        )));
    }
    Ok(())
}

async fn protect_instance(
    ec2: &Ec2,
    instance: &aws_sdk_ec2::types::Instance,
) -> Result<(), Failure> {
    let id = instance.instance_id().unwrap_or_default();
    let termination = ec2
        .client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeInstanceAttribute", e))?;
    if !termination
        .disable_api_termination()
        .and_then(|v| v.value())
        .unwrap_or(false)
    {
        ec2.client
            .modify_instance_attribute()
            .instance_id(id)
            .disable_api_termination(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| ec2.err("ModifyInstanceAttribute(DisableApiTermination)", e))?;
    }
    let shutdown = ec2
        .client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeInstanceAttribute", e))?;
    if shutdown
        .instance_initiated_shutdown_behavior()
        .and_then(|v| v.value())
        .unwrap_or("stop")
        != "stop"
    {
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
    }
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
    }
    Ok(())
}

// --------------------------------------------------------------------- seal

/// sha256 over the sorted, de-duplicated artifact ids, each followed by a newline.
fn artifact_digest(artifacts: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<&str> = artifacts.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

pub async fn seal(ec2: &Ec2, case: &str, id: &str, artifacts: &[String]) -> Result<usize, Failure> {
    let digest = artifact_digest(artifacts);
    let snapshot_ids: Vec<String> = artifacts
        .iter()
        .filter(|a| a.starts_with("snap-"))
        .cloned()
        .collect();
    let lookup = if snapshot_ids.is_empty() {
        SnapshotLookup::Tagged
    } else {
        SnapshotLookup::Ids(&snapshot_ids)
    };
    let snapshots = case_snapshots(ec2, case, id, lookup).await?;
    let to_tag: Vec<String> = snapshots
        .iter()
        .filter(|s| {
            !(tag_value(s.tags(), TAG_SEALED) == Some("true")
                && tag_value(s.tags(), TAG_SEAL_DIGEST) == Some(digest.as_str()))
        })
        .map(|s| s.snapshot_id().unwrap_or_default().to_string())
        .collect();
    if !to_tag.is_empty() {
        let time = now_rfc3339();
        ec2.client
            .create_tags()
            .set_resources(Some(to_tag.clone()))
            .tags(tag(TAG_SEALED, "true"))
            .tags(tag(TAG_SEAL_DIGEST, &digest))
            .tags(tag(TAG_SEALED_AT, &time))
            .tags(tag(TAG_CASE, case))
            .send()
            .await
            .map_err(|e| ec2.err("CreateTags", e))?;
    }
    Ok(to_tag.len())
}
