//! `remediate` and its release against the fake ARM: world-open inbound
//! rules of the VM's own NSGs denied and marked, a shared NSG skipped, the
//! public IP dissociated and tagged; release puts everything back from the
//! markers and tags alone (a separate run with no records), or from the
//! records when the run has them.

use serde_json::{json, Value};

use crate::common::fake_arm::{id_of, FakeArm, NicSpec, VmSpec};
use crate::common::*;
use crate::support::*;

const LONG: &str = "vendor portal for the quarterly audit, opened by change request CHG-20931 and to be closed once the auditors have finished";

fn nsg_id(name: &str) -> String {
    id_of(RG, "Microsoft.Network/networkSecurityGroups", name)
}

fn nic_id(name: &str) -> String {
    id_of(RG, "Microsoft.Network/networkInterfaces", name)
}

fn inbound(
    access: &str,
    port: &str,
    source: Value,
    priority: u32,
    description: Option<&str>,
) -> Value {
    let mut p = json!({
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationPortRange": port,
        "destinationAddressPrefix": "*",
        "access": access,
        "priority": priority,
        "direction": "Inbound",
    });
    match source {
        Value::Array(list) => p["sourceAddressPrefixes"] = json!(list),
        other => p["sourceAddressPrefix"] = other,
    }
    if let Some(d) = description {
        p["description"] = json!(d);
    }
    p
}

/// web-1 (nic0 on web-nsg with a public IP, in subnet `web` whose NSG
/// shared-nsg also covers db-9's NIC; nic1 in subnet `backend` under
/// backend-nsg), and its neighbour db-9.
fn estate(arm: &FakeArm) -> String {
    let vm = two_nic_vm(arm, "web-1");
    let web = nsg_id("web-nsg");
    arm.add_rule(
        &web,
        "ssh-world",
        inbound(
            "Allow",
            "22",
            json!("Internet"),
            200,
            Some("ssh for the vendor"),
        ),
    );
    arm.add_rule(
        &web,
        "rdp-v6",
        inbound("Allow", "3389", json!(["2001:db8::/32", "::/0"]), 210, None),
    );
    arm.add_rule(
        &web,
        "internal",
        inbound(
            "Allow",
            "443",
            json!("10.0.0.0/8"),
            220,
            Some("internal https"),
        ),
    );
    arm.add_rule(
        &web,
        "long-note",
        inbound("Allow", "8443", json!("0.0.0.0/0"), 240, Some(LONG)),
    );
    let mut egress = inbound("Allow", "*", json!("*"), 230, None);
    egress["direction"] = json!("Outbound");
    arm.add_rule(&web, "egress-any", egress);
    arm.set_subnet_nsg(RG, "ir-vnet", "backend", "backend-nsg");
    arm.set_subnet_nsg(RG, "ir-vnet", "web", "shared-nsg");
    arm.seed_vm(
        RG,
        &VmSpec {
            name: "db-9".into(),
            location: "westus".into(),
            data_disks: 0,
            nics: vec![NicSpec {
                name: "db-9-nic0".into(),
                vnet: "ir-vnet".into(),
                subnet: "web".into(),
                private_ip: "10.0.1.9".into(),
                nsg: None,
                public_ip: None,
            }],
        },
    );
    vm
}

/// The custom rules of an NSG by name, without what ARM computes.
fn rules(arm: &FakeArm, nsg: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = arm.resource(&nsg_id(nsg)).unwrap()["properties"]
        ["securityRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut p = r["properties"].clone();
            p.as_object_mut().unwrap().remove("provisioningState");
            (r["name"].as_str().unwrap().to_string(), p)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn rule<'a>(rules: &'a [(String, Value)], name: &str) -> &'a Value {
    &rules.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn remediate_denies_only_world_open_rules_of_unshared_nsgs_and_release_restores_from_markers() {
    let arm = FakeArm::start();
    let vm = estate(&arm);
    let (web0, backend0, shared0) = (
        rules(&arm, "web-nsg"),
        rules(&arm, "backend-nsg"),
        rules(&arm, "shared-nsg"),
    );
    let pip = arm.resource(&nic_id("web-1-nic0")).unwrap()["properties"]["ipConfigurations"][0]
        ["properties"]["publicIPAddress"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = Workspace::new();
    let book = full_protocol_without_memory(&ws);
    let out = run_book(&arm, &ws, &book, "IR-AZ-REM", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // web-nsg: the four world-open inbound rules denied and marked; the
    // internal and outbound rules untouched.
    let web = rules(&arm, "web-nsg");
    for name in ["rule1", "ssh-world", "rdp-v6", "long-note"] {
        assert_eq!(rule(&web, name)["access"], "Deny", "{name}");
    }
    assert_eq!(
        rule(&web, "ssh-world")["description"],
        "[irhost:remediated access=Allow case=IR-AZ-REM] ssh for the vendor"
    );
    assert_eq!(
        rule(&web, "rule1")["description"],
        "[irhost:remediated access=Allow case=IR-AZ-REM]"
    );
    // Too long to keep beside the marker: the original is in the NSG's tag.
    assert_eq!(
        rule(&web, "long-note")["description"],
        "[irhost:remediated access=Allow desc=tag case=IR-AZ-REM]"
    );
    let web_nsg = arm.resource(&nsg_id("web-nsg")).unwrap();
    assert_eq!(tag(&web_nsg, "irhost-description-long-note"), Some(LONG));
    assert_eq!(rule(&web, "internal"), rule(&web0, "internal"));
    assert_eq!(rule(&web, "egress-any"), rule(&web0, "egress-any"));
    // backend-nsg (only web-1 in its subnet): denied too.
    assert_eq!(rule(&rules(&arm, "backend-nsg"), "rule1")["access"], "Deny");
    // shared-nsg (db-9 is in its subnet): never written.
    assert_eq!(rules(&arm, "shared-nsg"), shared0);
    for method in ["PUT", "PATCH"] {
        assert!(calls_to(&arm, method, "/shared-nsg").is_empty());
    }
    // The public IP is dissociated, and the NIC says which it was.
    let nic0 = arm.resource(&nic_id("web-1-nic0")).unwrap();
    assert!(nic0["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"].is_null());
    assert_eq!(tag(&nic0, "irhost-public-ip-ipconfig1"), Some(pip.as_str()));
    assert_eq!(tag(&nic0, "irhost-remediated-case"), Some("IR-AZ-REM"));
    assert!(arm.resource(&pip).unwrap()["properties"]["ipConfiguration"].is_null());

    // The record: each change with what it replaced, the skip with its reason.
    let records = ws.journal("IR-AZ-REM");
    let target = format!("azure:{vm}");
    let record = step_values(&records, &target, "remediate");
    assert_eq!(record["verified"], true, "{record:#}");
    let changes = record["changes"].as_array().unwrap();
    assert_eq!(
        changes.len(),
        6,
        "five rules and one public IP: {changes:#?}"
    );
    let ssh = changes
        .iter()
        .find(|c| {
            c["resource_id"]
                .as_str()
                .unwrap()
                .ends_with("/securityRules/ssh-world")
        })
        .unwrap();
    let previous: Value = serde_json::from_str(ssh["previous"].as_str().unwrap()).unwrap();
    assert_eq!(previous["access"], "Allow");
    assert_eq!(previous["description"], "ssh for the vendor");
    let ip = changes
        .iter()
        .find(|c| c["description"].as_str().unwrap().contains("public IP"))
        .unwrap();
    let previous: Value = serde_json::from_str(ip["previous"].as_str().unwrap()).unwrap();
    assert_eq!(previous["public_ip"], pip.as_str());
    let skipped = record["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert!(skipped[0]["resource_id"]
        .as_str()
        .unwrap()
        .ends_with("/shared-nsg"));
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("db-9-nic0") && reason.contains("never break a neighbour"),
        "{reason}"
    );

    // Release in a separate run: no records, only the markers and tags.
    let release = run(&arm, &ws, "azure-release.toml", "IR-AZ-REM-RELEASE", &[&vm]);
    assert!(
        release.status.success(),
        "{}\n{}",
        stdout(&release),
        stderr(&release)
    );
    assert_eq!(rules(&arm, "web-nsg"), web0, "every rule as it was");
    assert_eq!(rules(&arm, "backend-nsg"), backend0);
    assert_eq!(rules(&arm, "shared-nsg"), shared0);
    let web_nsg = arm.resource(&nsg_id("web-nsg")).unwrap();
    assert_eq!(tag(&web_nsg, "irhost-description-long-note"), None);
    let nic0 = arm.resource(&nic_id("web-1-nic0")).unwrap();
    assert_eq!(
        nic0["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"],
        pip.as_str()
    );
    assert_eq!(tag(&nic0, "irhost-public-ip-ipconfig1"), None);
    assert_eq!(tag(&nic0, "irhost-remediated-case"), None);
    assert!(
        arm.resource(&pip).unwrap()["properties"]["ipConfiguration"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/web-1-nic0/ipConfigurations/ipconfig1")
    );
    // The isolation is released too.
    assert_eq!(nsg_of(&nic0), Some(nsg_id("web-nsg").to_ascii_lowercase()));
    let records = ws.journal("IR-AZ-REM-RELEASE");
    let released = step_values(&records, &target, "release");
    assert_eq!(released["verified"], true);
    let descriptions: Vec<&str> = released["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["description"].as_str().unwrap())
        .collect();
    assert!(
        descriptions
            .iter()
            .any(|d| d.contains("ssh-world") && d.contains("from its marker")),
        "{descriptions:#?}"
    );
    assert!(
        descriptions
            .iter()
            .any(|d| d.contains("re-associated") && d.contains("from its tag")),
        "{descriptions:#?}"
    );
}

#[test]
fn release_uses_the_remediation_record_when_the_run_has_it() {
    let arm = FakeArm::start();
    let vm = estate(&arm);
    let web0 = rules(&arm, "web-nsg");
    let ws = Workspace::new();
    let steps = r#"[[steps]]
id = "snapshot"
plugin = "azure"
action = "snapshot"

[[steps]]
id = "interfaces"
plugin = "azure"
action = "enumerate-interfaces"

[[steps]]
id = "remediate"
plugin = "azure"
action = "remediate"
after = ["snapshot", "interfaces"]

[[steps]]
id = "release"
plugin = "azure"
action = "release"
after = ["remediate"]
"#;
    let book = custom(&ws, "remediate-release.toml", steps, |t| t);
    let out = run_book(&arm, &ws, &book, "IR-AZ-REM-2", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("IR-AZ-REM-2");
    let target = format!("azure:{vm}");
    let remediated = step_values(&records, &target, "remediate");
    assert_eq!(remediated["verified"], true);
    assert_eq!(rules(&arm, "web-nsg"), web0, "released in the same run");
    let released = step_values(&records, &target, "release");
    let descriptions: Vec<&str> = released["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["description"].as_str().unwrap())
        .collect();
    assert_eq!(descriptions.len(), 6, "{descriptions:#?}");
    assert!(
        descriptions.iter().all(|d| d.contains("from the record")),
        "{descriptions:#?}"
    );
    let nic0 = arm.resource(&nic_id("web-1-nic0")).unwrap();
    assert!(
        nic0["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"]
            .is_string()
    );
}
