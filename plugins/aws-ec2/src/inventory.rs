//! enumerate-interfaces: every ENI of the instance with its addresses,
//! security groups (ingress and egress rules) and the ports they expose,
//! and the storage it shares with other machines: multi-attach EBS
//! volumes, and the EFS mount targets and FSx file systems in its subnets
//! ([`crate::filesystems`], whose failures are reported, not fatal).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{IpPermission, NetworkInterface as Eni, SecurityGroup as Sg};
use irhost_plugin_sdk::prelude::*;

use crate::aws::Ec2;

pub async fn enumerate(ec2: &Ec2, target: &Target) -> Result<InterfaceInventory, PluginError> {
    let instance = ec2.instance(&target.id).await?;
    let enis = ec2.interfaces(&instance).await?;
    let groups = security_groups(ec2, &enis).await?;

    let interfaces: Vec<NetworkInterface> = enis
        .iter()
        .map(|eni| interface(eni, &instance, &groups))
        .collect();
    let exposed = interfaces
        .iter()
        .flat_map(|nic| {
            nic.security_groups.iter().flat_map(move |sg| {
                sg.rules
                    .iter()
                    .filter(|r| matches!(r.direction, Direction::Ingress) && r.access == "allow")
                    .map(move |r| ExposedPort {
                        interface_id: nic.id.clone(),
                        protocol: r.protocol.clone(),
                        from_port: r.from_port,
                        to_port: r.to_port,
                        peer: r.peer.clone(),
                        via: sg.id.clone(),
                    })
            })
        })
        .collect();
    log::info(&format!(
        "{}: {} network interface(s), {} security group(s)",
        target.id,
        interfaces.len(),
        groups.len()
    ));
    let mut shared_storage = shared_volumes(ec2, &instance).await?;
    shared_storage.extend(crate::filesystems::shared_file_systems(ec2, target, &enis).await?);
    Ok(InterfaceInventory {
        interfaces,
        exposed,
        shared_storage,
    })
}

/// The instance's multi-attach EBS volumes, with every instance they are
/// attached to.
async fn shared_volumes(
    ec2: &Ec2,
    instance: &aws_sdk_ec2::types::Instance,
) -> Result<Vec<SharedStorage>, PluginError> {
    let ids: Vec<String> = instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.volume_id().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = ec2
        .client
        .describe_volumes()
        .set_volume_ids(Some(ids))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeVolumes", e))?;
    Ok(out
        .volumes()
        .iter()
        .filter(|v| v.multi_attach_enabled() == Some(true))
        .map(|v| SharedStorage {
            id: v.volume_id().unwrap_or_default().to_string(),
            kind: "ebs-multi-attach".into(),
            attached_to: v
                .attachments()
                .iter()
                .filter_map(|a| a.instance_id().map(str::to_string))
                .collect(),
            endpoints: v
                .attachments()
                .iter()
                .filter_map(|a| a.device().map(str::to_string))
                .collect(),
            attributes: vec![
                ("size-gib".into(), v.size().unwrap_or_default().to_string()),
                (
                    "volume-type".into(),
                    v.volume_type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                ),
            ],
        })
        .collect())
}

/// Every security group on any of the ENIs, by id.
pub async fn security_groups(ec2: &Ec2, enis: &[Eni]) -> Result<BTreeMap<String, Sg>, PluginError> {
    let ids: BTreeSet<String> = enis
        .iter()
        .flat_map(|e| e.groups())
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = ec2
        .client
        .describe_security_groups()
        .set_group_ids(Some(ids.into_iter().collect()))
        .send()
        .await
        .map_err(|e| ec2.err("DescribeSecurityGroups", e))?;
    Ok(out
        .security_groups()
        .iter()
        .filter_map(|sg| sg.group_id().map(|id| (id.to_string(), sg.clone())))
        .collect())
}

fn interface(
    eni: &Eni,
    instance: &aws_sdk_ec2::types::Instance,
    groups: &BTreeMap<String, Sg>,
) -> NetworkInterface {
    let id = eni.network_interface_id().unwrap_or_default().to_string();
    let mut private_ips: Vec<String> = Vec::new();
    let mut public_ips: Vec<String> = Vec::new();
    let mut attributes: Vec<(String, String)> = Vec::new();
    if let Some(ip) = eni.private_ip_address() {
        private_ips.push(ip.to_string());
    }
    for addr in eni.private_ip_addresses() {
        if let Some(ip) = addr.private_ip_address() {
            if !private_ips.iter().any(|p| p == ip) {
                private_ips.push(ip.to_string());
            }
        }
        if let Some(assoc) = addr.association() {
            if let Some(ip) = assoc.public_ip() {
                if !public_ips.iter().any(|p| p == ip) {
                    public_ips.push(ip.to_string());
                }
                if let Some(alloc) = assoc.allocation_id() {
                    attributes.push((format!("elastic-ip:{ip}"), alloc.to_string()));
                }
            }
        }
    }
    if let Some(assoc) = eni.association() {
        if let Some(ip) = assoc.public_ip() {
            if !public_ips.iter().any(|p| p == ip) {
                public_ips.push(ip.to_string());
            }
            let key = format!("elastic-ip:{ip}");
            if let Some(alloc) = assoc.allocation_id() {
                if !attributes.iter().any(|(k, _)| *k == key) {
                    attributes.push((key, alloc.to_string()));
                }
            }
        }
        if let Some(dns) = assoc.public_dns_name().filter(|d| !d.is_empty()) {
            attributes.push(("public-dns".into(), dns.to_string()));
        }
    }
    // The instance's public IP, when the ENI view does not carry it.
    if let Some(primary) = instance
        .network_interfaces()
        .iter()
        .find(|n| n.network_interface_id() == eni.network_interface_id())
    {
        if let Some(ip) = primary.association().and_then(|a| a.public_ip()) {
            if !public_ips.iter().any(|p| p == ip) {
                public_ips.push(ip.to_string());
            }
        }
    }
    let ipv6: Vec<&str> = eni
        .ipv6_addresses()
        .iter()
        .filter_map(|a| a.ipv6_address())
        .collect();
    if !ipv6.is_empty() {
        attributes.push(("ipv6-addresses".into(), ipv6.join(",")));
    }
    if let Some(att) = eni.attachment() {
        if let Some(index) = att.device_index() {
            attributes.push(("device-index".into(), index.to_string()));
            attributes.push(("primary".into(), (index == 0).to_string()));
        }
        if let Some(att_id) = att.attachment_id() {
            attributes.push(("attachment-id".into(), att_id.to_string()));
        }
        if let Some(dot) = att.delete_on_termination() {
            attributes.push(("delete-on-termination".into(), dot.to_string()));
        }
    }
    if let Some(t) = eni.interface_type() {
        attributes.push(("interface-type".into(), t.as_str().to_string()));
    }
    if let Some(s) = eni.status() {
        attributes.push(("status".into(), s.as_str().to_string()));
    }
    if let Some(d) = eni.description().filter(|d| !d.is_empty()) {
        attributes.push(("description".into(), d.to_string()));
    }
    if let Some(sdc) = eni.source_dest_check() {
        attributes.push(("source-dest-check".into(), sdc.to_string()));
    }
    if let Some(az) = eni.availability_zone() {
        attributes.push(("availability-zone".into(), az.to_string()));
    }
    if let Some(dns) = eni.private_dns_name().filter(|d| !d.is_empty()) {
        attributes.push(("private-dns".into(), dns.to_string()));
    }
    for t in eni.tag_set() {
        if let (Some(k), Some(v)) = (t.key(), t.value()) {
            attributes.push((format!("tag:{k}"), v.to_string()));
        }
    }

    let security_groups = eni
        .groups()
        .iter()
        .map(|g| {
            let gid = g.group_id().unwrap_or_default();
            match groups.get(gid) {
                Some(sg) => security_group(sg),
                None => SecurityGroup {
                    id: gid.to_string(),
                    name: g.group_name().unwrap_or_default().to_string(),
                    rules: Vec::new(),
                },
            }
        })
        .collect();

    NetworkInterface {
        id,
        mac: eni.mac_address().map(str::to_string),
        private_ips,
        public_ips,
        subnet: eni.subnet_id().map(str::to_string),
        network: eni.vpc_id().map(str::to_string),
        security_groups,
        attributes,
    }
}

pub fn security_group(sg: &Sg) -> SecurityGroup {
    let mut rules = Vec::new();
    for p in sg.ip_permissions() {
        rules.extend(rules_of(p, Direction::Ingress));
    }
    for p in sg.ip_permissions_egress() {
        rules.extend(rules_of(p, Direction::Egress));
    }
    SecurityGroup {
        id: sg.group_id().unwrap_or_default().to_string(),
        name: sg.group_name().unwrap_or_default().to_string(),
        rules,
    }
}

/// `-1` → `all`, protocol numbers of tcp/udp/icmp → their names.
pub fn protocol_name(p: Option<&str>) -> String {
    match p.unwrap_or("-1") {
        "-1" | "all" => "all".into(),
        "6" | "tcp" => "tcp".into(),
        "17" | "udp" => "udp".into(),
        "1" | "icmp" => "icmp".into(),
        "58" | "icmpv6" => "icmpv6".into(),
        other => other.to_string(),
    }
}

fn port(p: Option<i32>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

/// One contract rule per peer of an EC2 permission.
pub fn rules_of(p: &IpPermission, direction: Direction) -> Vec<Rule> {
    let protocol = protocol_name(p.ip_protocol());
    // Ports only mean ports for tcp and udp (icmp reuses them for type/code).
    let (from_port, to_port) = if protocol == "tcp" || protocol == "udp" {
        let (f, t) = (port(p.from_port()), port(p.to_port()));
        if f == Some(0) && t == Some(65535) {
            (None, None)
        } else {
            (f, t)
        }
    } else {
        (None, None)
    };
    let mut peers: Vec<(String, Option<String>)> = Vec::new();
    for r in p.ip_ranges() {
        peers.push((
            r.cidr_ip().unwrap_or_default().to_string(),
            r.description().map(str::to_string),
        ));
    }
    for r in p.ipv6_ranges() {
        peers.push((
            r.cidr_ipv6().unwrap_or_default().to_string(),
            r.description().map(str::to_string),
        ));
    }
    for g in p.user_id_group_pairs() {
        let peer = match (g.group_id(), g.user_id()) {
            (Some(gid), Some(user)) if !user.is_empty() => format!("{user}/{gid}"),
            (Some(gid), _) => gid.to_string(),
            (None, _) => g.group_name().unwrap_or_default().to_string(),
        };
        peers.push((peer, g.description().map(str::to_string)));
    }
    for pl in p.prefix_list_ids() {
        peers.push((
            pl.prefix_list_id().unwrap_or_default().to_string(),
            pl.description().map(str::to_string),
        ));
    }
    peers
        .into_iter()
        .map(|(peer, description)| Rule {
            direction,
            protocol: protocol.clone(),
            from_port,
            to_port,
            peer,
            access: "allow".into(),
            description,
        })
        .collect()
}
