//! What a playbook grants a plugin of the responder's cloud power: a
//! [`CloudGrant`] names the cloud and the API actions the plugin may call.
//! The grant, never the plugin's own `describe`, decides whether the host
//! signs or authorizes its requests, for which services and actions.
//!
//! In a playbook: `cloud = { aws = ["ec2:DescribeInstances",
//! "ec2:CreateSnapshots"] }` (IAM action names, `*` wildcards allowed;
//! a bare service, `"ec2"`, grants all its actions),
//! `cloud = { azure = ["Microsoft.Compute/virtualMachines/read"] }` (ARM
//! operations; `azure = "arm"` grants all of them).

use std::fmt;

use super::actions::ActionList;

/// The AWS services a grant may name (the host knows their endpoints).
pub const AWS_SERVICES: &[&str] = &[
    "autoscaling",
    "cloudtrail",
    "ec2",
    "elasticloadbalancing",
    "iam",
    "kms",
    "logs",
    "s3",
    "ssm",
    "sts",
];

/// The Azure scopes a grant may name.
pub const AZURE_SCOPES: &[&str] = &["arm"];

/// Cloud power a playbook hands one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudGrant {
    /// SigV4 signatures for requests to these AWS services, for the
    /// listed actions only.
    Aws {
        services: Vec<String>,
        actions: ActionList,
    },
    /// A bearer token for Azure Resource Manager, for the listed
    /// operations only.
    Azure { actions: ActionList },
}

/// An action name's characters (IAM and ARM names, `*` and `?`).
fn action_chars(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || "*?./-_".contains(c))
}

impl CloudGrant {
    /// An AWS grant of `entries`: each a service of [`AWS_SERVICES`] (all
    /// its actions) or `service:Action` (wildcards allowed), at least one,
    /// none twice.
    pub fn aws<S: AsRef<str>>(entries: &[S]) -> Result<CloudGrant, String> {
        if entries.is_empty() {
            return Err(format!(
                "an AWS grant names the actions the plugin may call (\"ec2:DescribeInstances\"), or whole services: {}",
                AWS_SERVICES.join(", ")
            ));
        }
        let mut services: Vec<String> = Vec::new();
        let mut actions: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (service, action) = entry.split_once(':').unwrap_or((entry, "*"));
            if !AWS_SERVICES.contains(&service) {
                return Err(format!(
                    "`{service}` is not an AWS service irhost can grant: one of {}",
                    AWS_SERVICES.join(", ")
                ));
            }
            if action.is_empty() || !action_chars(action) || action.contains(['/', '.']) {
                return Err(format!(
                    "`{entry}` is not an AWS action: `{service}:ActionName` (`*` wildcards allowed)"
                ));
            }
            let name = format!("{service}:{action}");
            if actions.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
                return Err(format!("`{entry}` is granted twice"));
            }
            if !services.iter().any(|s| s == service) {
                services.push(service.to_string());
            }
            actions.push(name);
        }
        Ok(CloudGrant::Aws {
            services,
            actions: ActionList::new(actions),
        })
    }

    /// An Azure grant of `scope` (`arm`: every ARM operation).
    pub fn azure(scope: &str) -> Result<CloudGrant, String> {
        if AZURE_SCOPES.contains(&scope) {
            Ok(CloudGrant::Azure {
                actions: ActionList::everything(""),
            })
        } else {
            Err(format!(
                "`{scope}` is not an Azure scope irhost can grant: one of {}, or a list of ARM operations",
                AZURE_SCOPES.join(", ")
            ))
        }
    }

    /// An Azure grant of ARM operations
    /// (`Microsoft.Compute/virtualMachines/read`, wildcards allowed).
    pub fn azure_actions<S: AsRef<str>>(entries: &[S]) -> Result<CloudGrant, String> {
        if entries.is_empty() {
            return Err(
                "an Azure grant names the ARM operations the plugin may call (\"Microsoft.Compute/virtualMachines/read\"), or \"arm\" for all"
                    .into(),
            );
        }
        let mut actions: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (namespace, rest) = entry.split_once('/').unwrap_or((entry, ""));
            if !namespace.contains('.') || rest.is_empty() || !action_chars(entry) {
                return Err(format!(
                    "`{entry}` is not an ARM operation: `Namespace.Provider/resourceType/read|write|delete|…/action`"
                ));
            }
            if actions.iter().any(|a| a.eq_ignore_ascii_case(entry)) {
                return Err(format!("`{entry}` is granted twice"));
            }
            actions.push(entry.to_string());
        }
        Ok(CloudGrant::Azure {
            actions: ActionList::new(actions),
        })
    }

    /// The cloud: `aws` or `azure`.
    pub fn cloud(&self) -> &'static str {
        match self {
            CloudGrant::Aws { .. } => "aws",
            CloudGrant::Azure { .. } => "azure",
        }
    }

    /// The actions the grant allows.
    pub fn actions(&self) -> &ActionList {
        match self {
            CloudGrant::Aws { actions, .. } | CloudGrant::Azure { actions } => actions,
        }
    }

    /// Whether a provider plugin of `provider` (its `describe`) may hold
    /// this grant: the same cloud.
    pub fn serves_provider(&self, provider: &str) -> bool {
        provider == self.cloud()
    }
}

impl fmt::Display for CloudGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.cloud(), self.actions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_known_services_and_actions_only() {
        let grant = CloudGrant::aws(&["ec2:DescribeInstances", "ec2:Create*", "s3"]).unwrap();
        let CloudGrant::Aws { services, actions } = &grant else {
            panic!("{grant:?}")
        };
        assert_eq!(services, &["ec2", "s3"]);
        assert_eq!(
            actions.entries(),
            &["ec2:DescribeInstances", "ec2:Create*", "s3:*"]
        );
        for bad in [
            &["a/b"][..],
            &["ec3"],
            &["ec2", "ec2"],
            &[],
            &["ec2:"],
            &["ec2:Describe Instances"],
            &["ec2:a/b"],
        ] {
            assert!(CloudGrant::aws(bad).is_err(), "{bad:?}");
        }
        assert_eq!(CloudGrant::azure("arm").unwrap().cloud(), "azure");
        assert!(CloudGrant::azure("arm")
            .unwrap()
            .actions()
            .allows("Microsoft.Compute/virtualMachines/delete"));
        assert!(CloudGrant::azure("graph").is_err());
        let azure = CloudGrant::azure_actions(&["Microsoft.Compute/virtualMachines/read"]).unwrap();
        assert!(azure.serves_provider("azure"));
        assert!(!azure.serves_provider("aws"));
        assert!(CloudGrant::azure_actions(&["virtualMachines/read"]).is_err());
        assert!(CloudGrant::azure_actions::<&str>(&[]).is_err());
    }
}
