//! What an isolation keeps reachable when the playbook's grant says
//! `isolation_keeps = ["ssm", "s3"]` (the host passes it as the
//! `isolation_keeps` parameter): the SSM agent's endpoints and S3, so a
//! memory capture can run after the machine is isolated. Only HTTPS, only
//! to the VPC's interface endpoints of ssm, ssmmessages and ec2messages (by
//! their private addresses) and to S3's prefix list; a VPC without those
//! endpoints cannot keep the agent reachable without opening the internet,
//! so the isolation refuses rather than widen.

use aws_sdk_ec2::types::{IpPermission, IpRange, PrefixListId};
use irhost_plugin_sdk::prelude::*;

use crate::aws::{filter, Ec2};

/// The interface endpoints the SSM agent talks to.
const SSM_ENDPOINTS: [&str; 3] = ["ssm", "ssmmessages", "ec2messages"];

/// The services the playbook keeps reachable (`isolation_keeps`).
pub fn kept() -> Result<Vec<String>, PluginError> {
    Ok(irhost_plugin_sdk::param("isolation_keeps")?.unwrap_or_default())
}

fn https() -> aws_sdk_ec2::types::builders::IpPermissionBuilder {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
}

/// The isolation group's egress permissions for `kept` in `vpc`.
pub async fn egress(
    ec2: &Ec2,
    vpc: &str,
    kept: &[String],
) -> Result<Vec<IpPermission>, PluginError> {
    let mut permissions = Vec::new();
    if kept.iter().any(|k| k == "ssm") {
        let mut missing = Vec::new();
        let mut addresses = Vec::new();
        for service in SSM_ENDPOINTS {
            let name = format!("com.amazonaws.{}.{service}", ec2.region);
            let out = ec2
                .client
                .describe_vpc_endpoints()
                .filters(filter("vpc-id", vpc))
                .filters(filter("service-name", &name))
                .send()
                .await
                .map_err(|e| ec2.err("DescribeVpcEndpoints", e))?;
            let enis: Vec<String> = out
                .vpc_endpoints()
                .iter()
                .flat_map(|e| e.network_interface_ids().iter().cloned())
                .collect();
            if enis.is_empty() {
                missing.push(name);
                continue;
            }
            let out = ec2
                .client
                .describe_network_interfaces()
                .set_network_interface_ids(Some(enis))
                .send()
                .await
                .map_err(|e| ec2.err("DescribeNetworkInterfaces", e))?;
            addresses.extend(
                out.network_interfaces()
                    .iter()
                    .filter_map(|n| n.private_ip_address().map(str::to_string)),
            );
        }
        if !missing.is_empty() {
            return Err(PluginError::InvalidInput(format!(
                "isolation_keeps \"ssm\": {vpc} has no interface endpoint for {}; without them the agent is reached only through the internet, which an isolation does not open",
                missing.join(", ")
            )));
        }
        addresses.sort();
        addresses.dedup();
        for address in addresses {
            permissions.push(
                https()
                    .ip_ranges(
                        IpRange::builder()
                            .cidr_ip(format!("{address}/32"))
                            .description("irhost: the SSM agent's endpoint")
                            .build(),
                    )
                    .build(),
            );
        }
    }
    if kept.iter().any(|k| k == "s3") {
        let name = format!("com.amazonaws.{}.s3", ec2.region);
        let out = ec2
            .client
            .describe_prefix_lists()
            .filters(filter("prefix-list-name", &name))
            .send()
            .await
            .map_err(|e| ec2.err("DescribePrefixLists", e))?;
        let Some(id) = out.prefix_lists().iter().find_map(|p| p.prefix_list_id()) else {
            return Err(PluginError::InvalidInput(format!(
                "isolation_keeps \"s3\": no prefix list {name} in {}",
                ec2.region
            )));
        };
        permissions.push(
            https()
                .prefix_list_ids(
                    PrefixListId::builder()
                        .prefix_list_id(id)
                        .description("irhost: S3, for the memory upload")
                        .build(),
                )
                .build(),
        );
    }
    if !permissions.is_empty() {
        log::info(&format!(
            "{vpc}: the isolation keeps {} reachable over HTTPS ({} rule(s))",
            kept.join(", "),
            permissions.len()
        ));
    }
    Ok(permissions)
}
