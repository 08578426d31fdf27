//! Microsoft.Network in the fake ARM: NSGs (PUT, PATCH of tags, GET with
//! the read-only `networkInterfaces` and `subnets` ARM computes), their
//! security rules (PUT, GET), NICs (PUT of the NSG, tags and the public IP
//! of each IP configuration, keeping each public IP's `ipConfiguration`
//! back reference) and subnets (GET with the `ipConfigurations` in them).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::routes::Req;
use super::{arm_error, json_response, not_found, rewrite, ArmState, Done, Examples};

/// The longest description ARM accepts on a security rule.
const MAX_RULE_DESCRIPTION: usize = 140;

pub(crate) fn route(ex: &Examples, state: &mut ArmState, req: &Req) -> Option<Response> {
    let child = req.segments.get(9).copied();
    let response = match (
        req.namespace_type.as_str(),
        req.name,
        req.action.as_deref(),
        req.method,
    ) {
        ("microsoft.network/networksecuritygroups", Some(name), None, &Method::PUT) => {
            put_nsg(ex, state, req, name)
        }
        ("microsoft.network/networksecuritygroups", Some(name), None, &Method::PATCH) => {
            patch_nsg_tags(state, req, name)
        }
        ("microsoft.network/networksecuritygroups", Some(name), None, &Method::GET) => {
            match state.resources.get(&req.id_lower) {
                Some(nsg) => json_response(StatusCode::OK, with_nsg_users(state, nsg), &[]),
                None => not_found("Microsoft.Network/networkSecurityGroups", name, req.rg),
            }
        }
        ("microsoft.network/networksecuritygroups", Some(name), Some("securityrules"), method)
            if req.segments.len() == 10 =>
        {
            let rule = child.unwrap_or_default();
            match *method {
                Method::PUT => put_rule(ex, state, req, name, rule),
                Method::GET => get_rule(state, req, rule),
                _ => return None,
            }
        }
        ("microsoft.network/networkinterfaces", Some(name), None, &Method::PUT) => {
            put_nic(state, req, name)
        }
        ("microsoft.network/virtualnetworks", Some(_), Some("subnets"), &Method::GET)
            if req.segments.len() == 10 =>
        {
            match state.resources.get(&req.exact_lower) {
                Some(subnet) => {
                    json_response(StatusCode::OK, with_subnet_users(state, subnet), &[])
                }
                None => not_found(
                    "Microsoft.Network/virtualNetworks/subnets",
                    child.unwrap_or_default(),
                    req.rg,
                ),
            }
        }
        _ => return None,
    };
    Some(response)
}

fn id_eq(value: &Value, id: &str) -> bool {
    value.as_str().is_some_and(|v| v.eq_ignore_ascii_case(id))
}

/// An NSG as ARM returns it: with the NICs and subnets it is attached to.
fn with_nsg_users(state: &ArmState, nsg: &Value) -> Value {
    let id = nsg["id"].as_str().unwrap_or_default();
    let mut nics = Vec::new();
    let mut subnets = Vec::new();
    for r in state.resources.values() {
        if !id_eq(&r["properties"]["networkSecurityGroup"]["id"], id) {
            continue;
        }
        let rid = r["id"].clone();
        if r["id"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("/subnets/")
        {
            subnets.push(json!({ "id": rid }));
        } else if r["type"] == "Microsoft.Network/networkInterfaces" {
            nics.push(json!({ "id": rid }));
        }
    }
    let mut out = nsg.clone();
    out["properties"]["networkInterfaces"] = json!(nics);
    out["properties"]["subnets"] = json!(subnets);
    out
}

/// A subnet as ARM returns it: with the IP configurations in it.
fn with_subnet_users(state: &ArmState, subnet: &Value) -> Value {
    let id = subnet["id"].as_str().unwrap_or_default();
    let configs: Vec<Value> = state
        .resources
        .values()
        .filter(|r| r["type"] == "Microsoft.Network/networkInterfaces")
        .flat_map(|nic| {
            nic["properties"]["ipConfigurations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| id_eq(&c["properties"]["subnet"]["id"], id))
        .map(|c| json!({ "id": c["id"] }))
        .collect();
    let mut out = subnet.clone();
    out["properties"]["ipConfigurations"] = json!(configs);
    out
}

fn put_nsg(ex: &Examples, state: &mut ArmState, req: &Req, nsg_name: &str) -> Response {
    let request = match req.json() {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let id = format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/{nsg_name}",
        &req.path[..req.lower.find("/providers/").unwrap()]
    );
    let mut nsg = ex.nsg_create.clone();
    rewrite(&mut nsg, "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/testnsg", &id);
    nsg["name"] = json!(nsg_name);
    nsg["location"] = request["location"].clone();
    if let Some(tags) = request.get("tags") {
        nsg["tags"] = tags.clone();
    }
    let mut rules = Vec::new();
    for rule in request["properties"]["securityRules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let rule_name = rule["name"].as_str().unwrap_or("").to_string();
        let mut r = rule.clone();
        r["id"] = json!(format!("{id}/securityRules/{rule_name}"));
        r["properties"]["provisioningState"] = json!("Succeeded");
        rules.push(r);
    }
    nsg["properties"]["securityRules"] = json!(rules);
    nsg["properties"]["flushConnection"] = json!(request["properties"]["flushConnection"]
        .as_bool()
        .unwrap_or(false));
    nsg["properties"]["provisioningState"] = json!("Updating");
    let existed = state
        .resources
        .insert(req.id_lower.clone(), nsg.clone())
        .is_some();
    let headers = state.async_headers(&req.id_lower, Done::Provisioned, "Microsoft.Network", req);
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json_response(status, with_nsg_users(state, &nsg), &headers)
}

/// PATCH `{ "tags": … }` (NetworkSecurityGroupUpdateTags): the tags are
/// replaced; synchronous.
fn patch_nsg_tags(state: &mut ArmState, req: &Req, nsg_name: &str) -> Response {
    let request = match req.json() {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(nsg) = state.resources.get_mut(&req.id_lower) else {
        return not_found("Microsoft.Network/networkSecurityGroups", nsg_name, req.rg);
    };
    if let Some(tags) = request.get("tags") {
        nsg["tags"] = tags.clone();
    }
    let nsg = nsg.clone();
    json_response(StatusCode::OK, with_nsg_users(state, &nsg), &[])
}

fn put_rule(ex: &Examples, state: &mut ArmState, req: &Req, nsg: &str, name: &str) -> Response {
    let request = match req.json() {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let p = &request["properties"];
    let bad =
        |message: String| arm_error(StatusCode::BAD_REQUEST, "InvalidRequestFormat", &message);
    if !["Allow", "Deny"].contains(&p["access"].as_str().unwrap_or_default()) {
        return bad(format!(
            "Security rule {name}: access must be Allow or Deny."
        ));
    }
    if !["Inbound", "Outbound"].contains(&p["direction"].as_str().unwrap_or_default()) {
        return bad(format!(
            "Security rule {name}: direction must be Inbound or Outbound."
        ));
    }
    if !p["priority"]
        .as_i64()
        .is_some_and(|n| (100..=4096).contains(&n))
        || p["protocol"].is_null()
    {
        return bad(format!(
            "Security rule {name}: priority (100-4096) and protocol are required."
        ));
    }
    if p["description"]
        .as_str()
        .is_some_and(|d| d.chars().count() > MAX_RULE_DESCRIPTION)
    {
        return bad(format!(
            "Security rule {name}: the description is longer than {MAX_RULE_DESCRIPTION} characters."
        ));
    }
    let Some(group) = state.resources.get_mut(&req.id_lower) else {
        return not_found("Microsoft.Network/networkSecurityGroups", nsg, req.rg);
    };
    let id = format!(
        "{}/securityRules/{name}",
        group["id"].as_str().unwrap_or_default()
    );
    let mut rule = ex.rule_create.clone();
    rule["id"] = json!(id);
    rule["name"] = json!(name);
    rule["properties"] = p.clone();
    rule["properties"]["provisioningState"] = json!("Updating");
    let rules = group["properties"]["securityRules"]
        .as_array_mut()
        .expect("an NSG has securityRules");
    let existed = rules.iter().any(|r| r["name"] == name);
    rules.retain(|r| r["name"] != name);
    rules.push(rule.clone());
    group["properties"]["provisioningState"] = json!("Updating");
    let headers = state.async_headers(
        &req.id_lower,
        Done::Rule(name.into()),
        "Microsoft.Network",
        req,
    );
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json_response(status, rule, &headers[..1])
}

fn get_rule(state: &ArmState, req: &Req, name: &str) -> Response {
    let rule = state.resources.get(&req.id_lower).and_then(|nsg| {
        nsg["properties"]["securityRules"]
            .as_array()?
            .iter()
            .find(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .cloned()
    });
    match rule {
        Some(r) => json_response(StatusCode::OK, r, &[]),
        None => not_found(
            "Microsoft.Network/networkSecurityGroups/securityRules",
            name,
            req.rg,
        ),
    }
}

fn put_nic(state: &mut ArmState, req: &Req, nic_name: &str) -> Response {
    let request = match req.json() {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(existing) = state.resources.get(&req.id_lower).cloned() else {
        return not_found("Microsoft.Network/networkInterfaces", nic_name, req.rg);
    };
    let nic_id = existing["id"].as_str().unwrap_or_default().to_string();
    let missing = |what: &str| {
        arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidResourceReference",
            &format!("Resource {what} referenced by resource {nic_id} was not found."),
        )
    };
    let mut nic = existing.clone();
    if let Some(tags) = request.get("tags") {
        nic["tags"] = tags.clone();
    }
    match request["properties"]
        .get("networkSecurityGroup")
        .and_then(|n| n["id"].as_str())
    {
        Some(nsg_id) => {
            if !state.resources.contains_key(&nsg_id.to_ascii_lowercase()) {
                return missing(nsg_id);
            }
            nic["properties"]["networkSecurityGroup"] = json!({ "id": nsg_id });
        }
        None => {
            nic["properties"]
                .as_object_mut()
                .unwrap()
                .remove("networkSecurityGroup");
        }
    }
    // IP configurations: the request's list, each with its public IP.
    let mut associate: Vec<(String, String)> = Vec::new();
    if let Some(configs) = request["properties"].get("ipConfigurations") {
        let Some(wanted) = configs.as_array().filter(|c| !c.is_empty()) else {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                "A network interface must have at least one IP configuration.",
            );
        };
        let current = existing["properties"]["ipConfigurations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut next = Vec::new();
        for w in wanted {
            let Some(mut config) = current.iter().find(|c| c["name"] == w["name"]).cloned() else {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    &format!(
                        "Adding IP configuration {} is not served by the fake ARM.",
                        w["name"]
                    ),
                );
            };
            match w["properties"]["publicIPAddress"]["id"].as_str() {
                Some(pip) => {
                    let Some(target) = state.resources.get(&pip.to_ascii_lowercase()) else {
                        return missing(pip);
                    };
                    let config_id = config["id"].as_str().unwrap_or_default().to_string();
                    let holder = &target["properties"]["ipConfiguration"]["id"];
                    if holder
                        .as_str()
                        .is_some_and(|h| !h.eq_ignore_ascii_case(&config_id))
                    {
                        return arm_error(
                            StatusCode::BAD_REQUEST,
                            "PublicIPAddressInUse",
                            &format!("Public IP address {pip} is in use by IP configuration {holder}; it cannot be referenced by {config_id}."),
                        );
                    }
                    config["properties"]["publicIPAddress"] = json!({ "id": pip });
                    associate.push((pip.to_ascii_lowercase(), config_id));
                }
                None => {
                    config["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("publicIPAddress");
                }
            }
            next.push(config);
        }
        // Public IPs the NIC no longer references are free again.
        for c in &current {
            if let Some(pip) = c["properties"]["publicIPAddress"]["id"].as_str() {
                let pip = pip.to_ascii_lowercase();
                if !associate.iter().any(|(p, _)| *p == pip) {
                    if let Some(r) = state.resources.get_mut(&pip) {
                        r["properties"]
                            .as_object_mut()
                            .unwrap()
                            .remove("ipConfiguration");
                    }
                }
            }
        }
        nic["properties"]["ipConfigurations"] = json!(next);
    }
    for (pip, config) in associate {
        if let Some(r) = state.resources.get_mut(&pip) {
            r["properties"]["ipConfiguration"] = json!({ "id": config });
        }
    }
    nic["properties"]["provisioningState"] = json!("Updating");
    state.resources.insert(req.id_lower.clone(), nic.clone());
    let headers = state.async_headers(&req.id_lower, Done::Provisioned, "Microsoft.Network", req);
    json_response(StatusCode::OK, nic, &headers)
}
