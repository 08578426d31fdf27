//! enumerate-interfaces: every NIC of the VM with its private and public
//! addresses, subnet and VNet, the NSGs on the NIC and on its subnet with
//! their rules, the ports they expose, and the VM's shared disks
//! ([`crate::shared`]).
//!
//! NSG rules are evaluated as Azure does: by priority, first match wins,
//! and inbound traffic must pass the subnet's NSG and then the NIC's. A port
//! is listed as exposed when an allow rule admits it at one level and the
//! representative packet (its protocol, first port and peer) is also allowed
//! by the other level, if there is one.

use std::collections::BTreeMap;

use irhost_plugin_sdk::prelude::*;

use crate::arm::{json_of, network, vm_of, Arm, ResourceRef};

/// A NIC with what the inventory needs from around it.
pub struct NicView {
    pub nic: network::models::NetworkInterface,
    /// NSG on the NIC, by id (lower-cased).
    pub nic_nsg: Option<String>,
    /// NSGs on the NIC's subnets, by id (lower-cased).
    pub subnet_nsgs: Vec<String>,
    pub subnets: Vec<String>,
    pub public_ips: Vec<String>,
}

pub async fn enumerate(arm: &Arm, target: &Target) -> Result<InterfaceInventory, PluginError> {
    let vm_ref = vm_of(target)?;
    let vm = get_vm(arm, &vm_ref).await?;
    let nics = nic_ids(&vm);
    let mut views = Vec::new();
    let mut nsgs: BTreeMap<String, network::models::NetworkSecurityGroup> = BTreeMap::new();
    for id in &nics {
        let view = nic_view(arm, id).await?;
        for nsg_id in view.nic_nsg.iter().chain(view.subnet_nsgs.iter()) {
            if !nsgs.contains_key(nsg_id) {
                nsgs.insert(nsg_id.clone(), get_nsg(arm, nsg_id).await?);
            }
        }
        views.push(view);
    }

    let mut interfaces = Vec::new();
    let mut exposed = Vec::new();
    for view in &views {
        let props = view.nic.properties.as_ref();
        let nic_id = view.nic.resource.id.clone().unwrap_or_default();
        let private_ips = props
            .map(|p| {
                p.ip_configurations
                    .iter()
                    .filter_map(|c| c.properties.as_ref()?.private_ip_address.clone())
                    .collect()
            })
            .unwrap_or_default();
        let levels: Vec<(&str, &network::models::NetworkSecurityGroup)> = view
            .subnet_nsgs
            .iter()
            .filter_map(|id| nsgs.get(id).map(|n| ("subnet", n)))
            .chain(
                view.nic_nsg
                    .iter()
                    .filter_map(|id| nsgs.get(id).map(|n| ("nic", n))),
            )
            .collect();
        let security_groups: Vec<SecurityGroup> =
            levels.iter().map(|(_, n)| security_group(n)).collect();
        if levels.is_empty() {
            // No NSG on the NIC nor on its subnet: Azure admits everything.
            exposed.push(ExposedPort {
                interface_id: nic_id.clone(),
                protocol: "all".into(),
                from_port: None,
                to_port: None,
                peer: "*".into(),
                via: "no NSG on the NIC or its subnet".into(),
            });
        }
        for (i, (level, nsg)) in levels.iter().enumerate() {
            let others: Vec<&network::models::NetworkSecurityGroup> = levels
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, n))| *n)
                .collect();
            for rule in rules_of(nsg) {
                if rule.direction != "Inbound" || rule.access != "Allow" {
                    continue;
                }
                let probe = Probe::of(&rule);
                let admitted = decide(nsg, &probe).is_some_and(|r| r.name == rule.name)
                    && others
                        .iter()
                        .all(|other| decide(other, &probe).is_some_and(|r| r.access == "Allow"));
                if admitted {
                    for (from, to) in &rule.ports {
                        exposed.push(ExposedPort {
                            interface_id: nic_id.clone(),
                            protocol: protocol_name(&rule.protocol),
                            from_port: *from,
                            to_port: *to,
                            peer: rule.source.clone(),
                            via: format!(
                                "{} rule {} ({level} NSG)",
                                nsg.resource.name.clone().unwrap_or_default(),
                                rule.name
                            ),
                        });
                    }
                }
            }
        }
        let mut attributes = vec![("source".to_string(), "azure".to_string())];
        if let Some(p) = props {
            if p.primary == Some(true) {
                attributes.push(("primary".into(), "true".into()));
            }
            if let Some(nsg) = &view.nic_nsg {
                attributes.push(("nic-nsg".into(), nsg.clone()));
            }
            for nsg in &view.subnet_nsgs {
                attributes.push(("subnet-nsg".into(), nsg.clone()));
            }
            if p.enable_ip_forwarding == Some(true) {
                attributes.push(("ip-forwarding".into(), "true".into()));
            }
        }
        interfaces.push(NetworkInterface {
            id: nic_id,
            mac: props.and_then(|p| p.mac_address.clone()),
            private_ips,
            public_ips: view.public_ips.clone(),
            subnet: view.subnets.first().cloned(),
            network: view.subnets.first().map(|s| vnet_of(s)),
            security_groups,
            attributes,
        });
    }
    log::info(&format!(
        "{}: {} network interface(s), {} NSG(s), {} exposed port range(s)",
        vm_ref.name,
        interfaces.len(),
        nsgs.len(),
        exposed.len()
    ));
    let shared_storage = crate::shared::shared_disks(arm, &vm_ref, &vm).await?;
    Ok(InterfaceInventory {
        interfaces,
        exposed,
        shared_storage,
    })
}

pub async fn get_vm(
    arm: &Arm,
    vm: &ResourceRef,
) -> Result<crate::arm::compute::models::VirtualMachine, PluginError> {
    let what = format!("get VM {}", vm.name);
    crate::arm_call!(
        arm,
        what,
        arm.compute
            .virtual_machines_client()
            .get(&vm.resource_group, &vm.name, &vm.subscription)
    )
}

/// The ids of the VM's NICs, primary first.
pub fn nic_ids(vm: &crate::arm::compute::models::VirtualMachine) -> Vec<String> {
    let mut refs: Vec<(bool, String)> = vm
        .properties
        .as_ref()
        .and_then(|p| p.network_profile.as_ref())
        .map(|n| {
            n.network_interfaces
                .iter()
                .filter_map(|r| {
                    let primary = r
                        .properties
                        .as_ref()
                        .and_then(|p| p.primary)
                        .unwrap_or(false);
                    r.sub_resource.id.clone().map(|id| (!primary, id))
                })
                .collect()
        })
        .unwrap_or_default();
    refs.sort();
    refs.into_iter().map(|(_, id)| id).collect()
}

pub async fn get_nic(
    arm: &Arm,
    id: &str,
) -> Result<network::models::NetworkInterface, PluginError> {
    let r = ResourceRef::parse(id)?;
    let what = format!("get network interface {}", r.name);
    crate::arm_call!(
        arm,
        what,
        arm.network
            .network_interfaces_client()
            .get(&r.resource_group, &r.name, &r.subscription)
    )
}

pub async fn get_nsg(
    arm: &Arm,
    id: &str,
) -> Result<network::models::NetworkSecurityGroup, PluginError> {
    let r = ResourceRef::parse(id)?;
    let what = format!("get network security group {}", r.name);
    crate::arm_call!(
        arm,
        what,
        arm.network.network_security_groups_client().get(
            &r.resource_group,
            &r.name,
            &r.subscription
        )
    )
}

async fn nic_view(arm: &Arm, id: &str) -> Result<NicView, PluginError> {
    let nic = get_nic(arm, id).await?;
    let props = nic.properties.as_ref();
    let nic_nsg = props
        .and_then(|p| p.network_security_group.as_ref())
        .and_then(|n| n.resource.id.clone())
        .map(|id| id.to_ascii_lowercase());
    let mut subnets = Vec::new();
    let mut subnet_nsgs = Vec::new();
    let mut public_ips = Vec::new();
    let configs = props
        .map(|p| p.ip_configurations.clone())
        .unwrap_or_default();
    for config in &configs {
        let Some(cp) = config.properties.as_ref() else {
            continue;
        };
        if let Some(subnet_id) = cp.subnet.as_ref().and_then(|s| s.sub_resource.id.clone()) {
            if !subnets.contains(&subnet_id) {
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
                if let Some(nsg) = subnet
                    .properties
                    .as_ref()
                    .and_then(|p| p.network_security_group.as_ref())
                    .and_then(|n| n.resource.id.clone())
                {
                    let nsg = nsg.to_ascii_lowercase();
                    if !subnet_nsgs.contains(&nsg) {
                        subnet_nsgs.push(nsg);
                    }
                }
                subnets.push(subnet_id);
            }
        }
        if let Some(pip) = cp.public_ip_address.as_ref() {
            let address = match pip.properties.as_ref().and_then(|p| p.ip_address.clone()) {
                Some(a) => Some(a),
                None => match pip.resource.id.as_deref() {
                    Some(pip_id) => {
                        let r = ResourceRef::parse(pip_id)?;
                        let what = format!("get public IP {}", r.name);
                        let full = crate::arm_call!(
                            arm,
                            what,
                            arm.network.public_ip_addresses_client().get(
                                &r.resource_group,
                                &r.name,
                                &r.subscription
                            )
                        )?;
                        full.properties.and_then(|p| p.ip_address)
                    }
                    None => None,
                },
            };
            if let Some(a) = address {
                public_ips.push(a);
            }
        }
    }
    Ok(NicView {
        nic,
        nic_nsg,
        subnet_nsgs,
        subnets,
        public_ips,
    })
}

/// The VNet id of a subnet id.
fn vnet_of(subnet_id: &str) -> String {
    match subnet_id.to_ascii_lowercase().find("/subnets/") {
        Some(i) => subnet_id[..i].to_string(),
        None => subnet_id.to_string(),
    }
}

/// One NSG rule, flattened from the SDK's model.
#[derive(Debug, Clone)]
pub struct FlatRule {
    pub name: String,
    pub priority: i32,
    /// `Inbound` / `Outbound`.
    pub direction: String,
    /// `Allow` / `Deny`.
    pub access: String,
    /// `Tcp`, `Udp`, `Icmp`, `*`, ...
    pub protocol: String,
    /// Destination port ranges; `(None, None)` is every port.
    pub ports: Vec<(Option<u16>, Option<u16>)>,
    /// Source (inbound) or destination (outbound) address prefix.
    pub source: String,
    pub description: Option<String>,
}

/// Every rule of an NSG, custom and default, by priority.
pub fn rules_of(nsg: &network::models::NetworkSecurityGroup) -> Vec<FlatRule> {
    let Some(p) = nsg.properties.as_ref() else {
        return Vec::new();
    };
    let mut rules: Vec<FlatRule> = p
        .security_rules
        .iter()
        .chain(p.default_security_rules.iter())
        .filter_map(flat_rule)
        .collect();
    rules.sort_by_key(|r| r.priority);
    rules
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    json_of(value).as_str().unwrap_or_default().to_string()
}

fn flat_rule(rule: &network::models::SecurityRule) -> Option<FlatRule> {
    let p = rule.properties.as_ref()?;
    let direction = enum_text(&p.direction);
    let mut ranges: Vec<String> = p.destination_port_ranges.clone();
    if let Some(r) = &p.destination_port_range {
        ranges.push(r.clone());
    }
    let ports = if ranges.is_empty() {
        vec![(None, None)]
    } else {
        ranges.iter().map(|r| port_range(r)).collect()
    };
    let (prefix, prefixes) = if direction == "Outbound" {
        (
            &p.destination_address_prefix,
            &p.destination_address_prefixes,
        )
    } else {
        (&p.source_address_prefix, &p.source_address_prefixes)
    };
    let mut peers: Vec<String> = prefixes.clone();
    if let Some(x) = prefix {
        peers.insert(0, x.clone());
    }
    Some(FlatRule {
        name: rule.name.clone().unwrap_or_default(),
        priority: p.priority,
        direction,
        access: enum_text(&p.access),
        protocol: enum_text(&p.protocol),
        ports,
        source: if peers.is_empty() {
            "*".into()
        } else {
            peers.join(",")
        },
        description: p.description.clone(),
    })
}

/// `22`, `80-90` or `*`.
pub fn port_range(text: &str) -> (Option<u16>, Option<u16>) {
    let text = text.trim();
    if text == "*" || text.is_empty() {
        return (None, None);
    }
    match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok(), b.trim().parse().ok()),
        None => {
            let p = text.parse().ok();
            (p, p)
        }
    }
}

fn protocol_name(protocol: &str) -> String {
    match protocol {
        "*" => "all".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn security_group(nsg: &network::models::NetworkSecurityGroup) -> SecurityGroup {
    SecurityGroup {
        id: nsg.resource.id.clone().unwrap_or_default(),
        name: nsg.resource.name.clone().unwrap_or_default(),
        rules: rules_of(nsg)
            .into_iter()
            .flat_map(|r| {
                r.ports.clone().into_iter().map(move |(from, to)| Rule {
                    direction: if r.direction == "Outbound" {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    protocol: protocol_name(&r.protocol),
                    from_port: from,
                    to_port: to,
                    peer: r.source.clone(),
                    access: r.access.to_ascii_lowercase(),
                    description: Some(match &r.description {
                        Some(d) => format!("{} (priority {}): {d}", r.name, r.priority),
                        None => format!("{} (priority {})", r.name, r.priority),
                    }),
                })
            })
            .collect(),
    }
}

/// A representative inbound packet: protocol, destination port, source.
struct Probe {
    protocol: String,
    port: Option<u16>,
    source: String,
}

impl Probe {
    fn of(rule: &FlatRule) -> Probe {
        Probe {
            protocol: rule.protocol.clone(),
            port: rule.ports.first().and_then(|(from, _)| *from),
            source: rule.source.clone(),
        }
    }
}

const ANY_SOURCE: &[&str] = &["*", "any", "internet", "0.0.0.0/0"];

/// The inbound rule of `nsg` that decides `probe` (first match by priority).
fn decide(nsg: &network::models::NetworkSecurityGroup, probe: &Probe) -> Option<FlatRule> {
    rules_of(nsg).into_iter().find(|r| {
        r.direction == "Inbound"
            && (r.protocol == "*" || r.protocol.eq_ignore_ascii_case(&probe.protocol))
            && r.ports
                .iter()
                .any(|(from, to)| match (from, to, probe.port) {
                    (None, None, _) => true,
                    (Some(f), Some(t), Some(p)) => *f <= p && p <= *t,
                    _ => false,
                })
            && (ANY_SOURCE.contains(&r.source.to_ascii_lowercase().as_str())
                || r.source
                    .split(',')
                    .any(|s| s.eq_ignore_ascii_case(&probe.source)))
    })
}
