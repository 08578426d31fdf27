//! The network writes isolate, remediate and release share: PUT a NIC, PUT
//! one security rule of an NSG, replace an NSG's tags; each waits for ARM
//! to finish the operation it started.

use irhost_plugin_sdk::prelude::*;

use crate::arm::{complete, model, network, Arm, ResourceRef};

/// PUT a NIC as given (its tags, NSG and IP configurations); wait for ARM.
pub async fn put_nic(arm: &Arm, nic: network::models::NetworkInterface) -> Result<(), PluginError> {
    let id = nic.resource.id.clone().unwrap_or_default();
    let r = ResourceRef::parse(&id)?;
    let what = format!("update network interface {}", r.name);
    let response = arm
        .network
        .network_interfaces_client()
        .create_or_update(&r.resource_group, &r.name, nic, &r.subscription)
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    Ok(())
}

/// PUT one rule of an NSG with these properties (ARM's JSON); wait for ARM.
pub async fn put_rule(
    arm: &Arm,
    nsg_id: &str,
    rule: &str,
    properties: serde_json::Value,
) -> Result<(), PluginError> {
    let r = ResourceRef::parse(nsg_id)?;
    let body: network::models::SecurityRule = model(
        "security rule",
        serde_json::json!({ "name": rule, "properties": properties }),
    )?;
    let what = format!("update rule {rule} of {}", r.name);
    let response = arm
        .network
        .security_rules_client()
        .create_or_update(&r.resource_group, &r.name, rule, body, &r.subscription)
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    Ok(())
}

/// Replace the tags of an NSG (PATCH; ARM replaces the whole set).
pub async fn set_nsg_tags(
    arm: &Arm,
    nsg_id: &str,
    tags: serde_json::Value,
) -> Result<(), PluginError> {
    let r = ResourceRef::parse(nsg_id)?;
    let what = format!("tag network security group {}", r.name);
    let body: network::models::TagsObject = model("NSG tags", serde_json::json!({ "tags": tags }))?;
    let response = arm
        .network
        .network_security_groups_client()
        .update_tags(&r.resource_group, &r.name, body, &r.subscription)
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    Ok(())
}

/// A rule's properties as ARM JSON, without what ARM computes.
pub fn rule_properties(rule: &network::models::SecurityRule) -> serde_json::Value {
    let mut props = crate::arm::json_of(&rule.properties);
    if let Some(map) = props.as_object_mut() {
        map.remove("provisioningState");
    }
    props
}
