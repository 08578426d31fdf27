//! The least privilege a playbook needs, as the clouds write it: the IAM
//! policy of its AWS grants (resource ARNs and conditions where the
//! playbook's config names them, `*` where AWS requires it) and the Azure
//! custom role of its ARM grants.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::grant::CloudGrant;

/// One plugin's grant and config, as the policy needs them.
pub struct GrantedPlugin<'a> {
    pub name: &'a str,
    pub grant: &'a CloudGrant,
    pub config: &'a Value,
}

/// The policy documents of a playbook, and what they could not narrow.
pub struct LeastPrivilege {
    pub aws: Option<Value>,
    pub azure: Option<Value>,
    pub notes: Vec<String>,
}

impl LeastPrivilege {
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(aws) = &self.aws {
            out.insert("aws".into(), aws.clone());
        }
        if let Some(azure) = &self.azure {
            out.insert("azure".into(), azure.clone());
        }
        out.insert("notes".into(), json!(self.notes));
        Value::Object(out)
    }
}

/// EC2 resource ARNs an action acts on (region and account left `*`: the
/// playbook names neither).
fn ec2_resources(action: &str) -> Option<Vec<&'static str>> {
    const INSTANCE: &str = "arn:aws:ec2:*:*:instance/*";
    const VOLUME: &str = "arn:aws:ec2:*:*:volume/*";
    const SNAPSHOT: &str = "arn:aws:ec2:*::snapshot/*";
    const ENI: &str = "arn:aws:ec2:*:*:network-interface/*";
    const GROUP: &str = "arn:aws:ec2:*:*:security-group/*";
    const VPC: &str = "arn:aws:ec2:*:*:vpc/*";
    Some(match action {
        "CreateSnapshots" => vec![INSTANCE, VOLUME, SNAPSHOT],
        "CreateTags" | "DeleteTags" => vec![SNAPSHOT, ENI, GROUP, INSTANCE],
        "CreateSecurityGroup" => vec![GROUP, VPC],
        "AuthorizeSecurityGroupIngress"
        | "AuthorizeSecurityGroupEgress"
        | "RevokeSecurityGroupIngress"
        | "RevokeSecurityGroupEgress" => vec![GROUP],
        "ModifyNetworkInterfaceAttribute" => vec![ENI, GROUP],
        "ModifyInstanceAttribute" => vec![INSTANCE, GROUP],
        "ModifySnapshotAttribute" => vec![SNAPSHOT],
        "GetConsoleOutput" | "GetConsoleScreenshot" => vec![INSTANCE],
        _ => return None,
    })
}

/// S3 actions on a bucket itself (the rest act on its objects).
const S3_BUCKET_ACTIONS: &[&str] = &[
    "GetBucketObjectLockConfiguration",
    "PutBucketObjectLockConfiguration",
    "GetBucketVersioning",
    "ListBucket",
    "ListBucketVersions",
    "GetBucketLocation",
];

/// A statement's resources, condition, and a note when it stays broad.
type Scope = (Vec<String>, Option<Value>, Option<String>);

fn aws_scope(plugin: &GrantedPlugin, action: &str) -> Scope {
    let (service, name) = action.split_once(':').unwrap_or((action, ""));
    if name.contains('*') || name.contains('?') {
        return (
            vec!["*".into()],
            None,
            Some(format!(
                "{action} ({}): a wildcard grant is not narrowed; list the actions for least privilege",
                plugin.name
            )),
        );
    }
    match service {
        "ec2" if name.starts_with("Describe") => (
            vec!["*".into()],
            None,
            Some(format!(
                "{action}: `*` because AWS requires it (Describe actions have no resource-level permissions)"
            )),
        ),
        "elasticfilesystem" | "fsx" if name.starts_with("Describe") => (
            vec!["*".into()],
            None,
            Some(format!(
                "{action}: `*` because the plugin lists every file system of the account and region (it cannot name them beforehand)"
            )),
        ),
        "ec2" => match ec2_resources(name) {
            Some(arns) => {
                let condition = (name == "ModifySnapshotAttribute")
                    .then(|| plugin.config.get("forensic_account")?.as_str().map(str::to_string))
                    .flatten()
                    .map(|account| json!({ "StringEquals": { "ec2:Add/userId": account } }));
                (arns.iter().map(|a| a.to_string()).collect(), condition, None)
            }
            None => (
                vec!["*".into()],
                None,
                Some(format!("{action} ({}): resource not narrowed", plugin.name)),
            ),
        },
        "s3" => match plugin.config.get("bucket").and_then(Value::as_str) {
            Some(bucket) if S3_BUCKET_ACTIONS.contains(&name) => {
                (vec![format!("arn:aws:s3:::{bucket}")], None, None)
            }
            Some(bucket) => (vec![format!("arn:aws:s3:::{bucket}/*")], None, None),
            None => (
                vec!["*".into()],
                None,
                Some(format!(
                    "{action} ({}): no bucket in the plugin's config, so `*`",
                    plugin.name
                )),
            ),
        },
        _ => (
            vec!["*".into()],
            None,
            Some(format!("{action} ({}): resource not narrowed", plugin.name)),
        ),
    }
}

/// The IAM policy and Azure role a playbook's grants need.
pub fn least_privilege(playbook: &str, plugins: &[GrantedPlugin]) -> LeastPrivilege {
    let mut notes = Vec::new();
    // Statements keyed by (resources, condition), actions collected.
    let mut statements: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
    let mut azure_actions: Vec<String> = Vec::new();
    let mut any_aws = false;
    for plugin in plugins {
        match plugin.grant {
            CloudGrant::Aws { actions, .. } => {
                any_aws = true;
                for action in actions.entries() {
                    let (resources, condition, note) = aws_scope(plugin, action);
                    if let Some(note) = note {
                        if !notes.contains(&note) {
                            notes.push(note);
                        }
                    }
                    let key = (
                        resources,
                        condition.map(|c| c.to_string()).unwrap_or_default(),
                    );
                    let list = statements.entry(key).or_default();
                    if !list.contains(action) {
                        list.push(action.clone());
                    }
                }
            }
            CloudGrant::Azure { actions, .. } => {
                for action in actions.entries() {
                    if !azure_actions.contains(action) {
                        azure_actions.push(action.clone());
                    }
                }
                if actions.is_unbounded("") {
                    notes.push(format!(
                        "{}: azure = \"arm\" grants every operation; list the operations for least privilege",
                        plugin.name
                    ));
                }
            }
        }
    }
    let aws = any_aws.then(|| {
        let statement: Vec<Value> = statements
            .into_iter()
            .enumerate()
            .map(|(i, ((resources, condition), mut actions))| {
                actions.sort();
                let mut s = json!({
                    "Sid": format!("Irhost{}", i + 1),
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": resources,
                });
                if !condition.is_empty() {
                    s["Condition"] = serde_json::from_str(&condition).unwrap_or(Value::Null);
                }
                s
            })
            .collect();
        json!({ "Version": "2012-10-17", "Statement": statement })
    });
    let azure = (!azure_actions.is_empty()).then(|| {
        azure_actions.sort();
        json!({
            "Name": format!("irhost {playbook}"),
            "IsCustom": true,
            "Description": format!("What the irhost playbook {playbook} calls on Azure Resource Manager"),
            "Actions": azure_actions,
            "NotActions": [],
            "DataActions": [],
            "NotDataActions": [],
            "AssignableScopes": ["/subscriptions/{subscription-id}"],
        })
    });
    if azure.is_some() {
        notes.push(
            "azure: replace {subscription-id} in AssignableScopes (or narrow it to the resource groups of the targets)".into(),
        );
    }
    if any_aws {
        notes
            .push("aws: region and account are `*` in the ARNs: the playbook names neither".into());
    }
    LeastPrivilege { aws, azure, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_conditions_follow_the_config() {
        let ec2 = CloudGrant::aws(&[
            "ec2:DescribeInstances",
            "ec2:CreateSnapshots",
            "ec2:ModifySnapshotAttribute",
        ])
        .unwrap();
        let s3 = CloudGrant::aws(&["s3:PutObject", "s3:GetBucketObjectLockConfiguration"]).unwrap();
        let ec2_config = json!({ "forensic_account": "111122223333" });
        let s3_config = json!({ "bucket": "vault" });
        let policy = least_privilege(
            "p",
            &[
                GrantedPlugin {
                    name: "ec2",
                    grant: &ec2,
                    config: &ec2_config,
                },
                GrantedPlugin {
                    name: "vault",
                    grant: &s3,
                    config: &s3_config,
                },
            ],
        );
        let aws = policy.aws.unwrap();
        let text = aws.to_string();
        let find = |action: &str| {
            aws["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
                .cloned()
                .unwrap_or_else(|| panic!("{action} in {text}"))
        };
        assert_eq!(find("ec2:DescribeInstances")["Resource"], json!(["*"]));
        assert_eq!(
            find("ec2:ModifySnapshotAttribute")["Condition"],
            json!({ "StringEquals": { "ec2:Add/userId": "111122223333" } })
        );
        assert_eq!(
            find("s3:PutObject")["Resource"],
            json!(["arn:aws:s3:::vault/*"])
        );
        assert_eq!(
            find("s3:GetBucketObjectLockConfiguration")["Resource"],
            json!(["arn:aws:s3:::vault"])
        );
        assert!(policy.notes.iter().any(|n| n.contains("AWS requires it")));
        assert!(policy.azure.is_none());
    }
}
