//! A JSON view of an EC2 instance for the configuration dump (the SDK's types
//! are not serde types). The raw API answer is stored next to it.

use aws_sdk_ec2::types::{GroupIdentifier, Instance, Tag};
use irhost_plugin_sdk::prelude::*;

use crate::aws::fmt_time;

fn tags(tags: &[Tag]) -> serde_json::Value {
    serde_json::Value::Object(
        tags.iter()
            .filter_map(|t| Some((t.key()?.to_string(), json!(t.value()))))
            .collect(),
    )
}

fn groups(groups: &[GroupIdentifier]) -> serde_json::Value {
    groups
        .iter()
        .map(|g| json!({ "id": g.group_id(), "name": g.group_name() }))
        .collect()
}

pub fn instance_json(i: &Instance) -> serde_json::Value {
    json!({
        "instance_id": i.instance_id(),
        "instance_type": i.instance_type().map(|t| t.as_str()),
        "state": i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        "state_transition_reason": i.state_transition_reason(),
        "state_reason": i.state_reason().map(|r| json!({ "code": r.code(), "message": r.message() })),
        "launch_time": fmt_time(i.launch_time()),
        "image_id": i.image_id(),
        "key_name": i.key_name(),
        "platform": i.platform().map(|p| p.as_str()),
        "platform_details": i.platform_details(),
        "architecture": i.architecture().map(|a| a.as_str()),
        "hypervisor": i.hypervisor().map(|h| h.as_str()),
        "virtualization_type": i.virtualization_type().map(|v| v.as_str()),
        "instance_lifecycle": i.instance_lifecycle().map(|l| l.as_str()),
        "placement": i.placement().map(|p| json!({
            "availability_zone": p.availability_zone(),
            "tenancy": p.tenancy().map(|t| t.as_str()),
            "group_name": p.group_name(),
            "host_id": p.host_id(),
        })),
        "vpc_id": i.vpc_id(),
        "subnet_id": i.subnet_id(),
        "private_ip_address": i.private_ip_address(),
        "private_dns_name": i.private_dns_name(),
        "public_ip_address": i.public_ip_address(),
        "public_dns_name": i.public_dns_name(),
        "source_dest_check": i.source_dest_check(),
        "iam_instance_profile": i.iam_instance_profile().map(|p| json!({ "arn": p.arn(), "id": p.id() })),
        "metadata_options": i.metadata_options().map(|m| json!({
            "http_tokens": m.http_tokens().map(|t| t.as_str()),
            "http_endpoint": m.http_endpoint().map(|t| t.as_str()),
            "http_put_response_hop_limit": m.http_put_response_hop_limit(),
            "instance_metadata_tags": m.instance_metadata_tags().map(|t| t.as_str()),
        })),
        "monitoring": i.monitoring().and_then(|m| m.state()).map(|s| s.as_str()),
        "root_device_name": i.root_device_name(),
        "root_device_type": i.root_device_type().map(|t| t.as_str()),
        "ebs_optimized": i.ebs_optimized(),
        "ena_support": i.ena_support(),
        "boot_mode": i.boot_mode().map(|b| b.as_str()),
        "block_device_mappings": i.block_device_mappings().iter().map(|m| json!({
            "device_name": m.device_name(),
            "volume_id": m.ebs().and_then(|e| e.volume_id()),
            "status": m.ebs().and_then(|e| e.status()).map(|s| s.as_str()),
            "attach_time": m.ebs().and_then(|e| fmt_time(e.attach_time())),
            "delete_on_termination": m.ebs().and_then(|e| e.delete_on_termination()),
        })).collect::<Vec<_>>(),
        "security_groups": groups(i.security_groups()),
        "network_interfaces": i.network_interfaces().iter().map(|n| json!({
            "network_interface_id": n.network_interface_id(),
            "device_index": n.attachment().and_then(|a| a.device_index()),
            "attachment_id": n.attachment().and_then(|a| a.attachment_id()),
            "mac_address": n.mac_address(),
            "subnet_id": n.subnet_id(),
            "vpc_id": n.vpc_id(),
            "private_ip_address": n.private_ip_address(),
            "private_ip_addresses": n.private_ip_addresses().iter().map(|p| json!({
                "private_ip_address": p.private_ip_address(),
                "primary": p.primary(),
                "public_ip": p.association().and_then(|a| a.public_ip()),
            })).collect::<Vec<_>>(),
            "ipv6_addresses": n.ipv6_addresses().iter().filter_map(|a| a.ipv6_address()).collect::<Vec<_>>(),
            "public_ip": n.association().and_then(|a| a.public_ip()),
            "ip_owner_id": n.association().and_then(|a| a.ip_owner_id()),
            "source_dest_check": n.source_dest_check(),
            "status": n.status().map(|s| s.as_str()),
            "groups": groups(n.groups()),
        })).collect::<Vec<_>>(),
        "tags": tags(i.tags()),
    })
}
