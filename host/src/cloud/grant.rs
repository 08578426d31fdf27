//! What a playbook grants a plugin of the responder's cloud power: a
//! [`CloudGrant`] names the cloud and the API actions the plugin may call.
//! The grant, never the plugin's own `describe`, decides whether the host
//! signs or authorizes its requests, for which services and actions.
//!
//! In a playbook: `cloud = { aws = ["ec2:DescribeInstances",
//! "ec2:CreateSnapshots"] }` (IAM action names, `*` wildcards allowed;
//! a bare service, `"ec2"`, grants all its actions),
//! `cloud = { azure = ["Microsoft.Compute/virtualMachines/read"] }` (ARM
//! operations; `azure = "arm"` grants all of them). An AWS grant may name
//! the role its calls are signed with, per target account:
//! `assume_role = "arn:aws:iam::{account}:role/IRResponder"` (with
//! `external_id`, `session_name`, `duration`). A grant may also name where
//! the machine itself uploads evidence too large for the plugin
//! (`evidence_uploads`, [`EvidenceUploads`]) and which of the agent's
//! services an isolation keeps reachable (`isolation_keeps`, [`AGENT_SERVICES`]).

use std::fmt;
use std::time::Duration;

use super::actions::ActionList;
pub use super::uploads::EvidenceUploads;

/// The AWS services a grant may name (the host knows their endpoints).
pub const AWS_SERVICES: &[&str] = &[
    "autoscaling",
    "cloudtrail",
    "ec2",
    "elasticfilesystem",
    "elasticloadbalancing",
    "fsx",
    "iam",
    "kms",
    "logs",
    "s3",
    "ssm",
    "sts",
];

/// The services a machine's agent needs to capture and upload its memory,
/// per cloud: an isolation that keeps them reachable (`isolation_keeps`)
/// may run before the capture; any other must come after it.
pub const AGENT_SERVICES: &[(&str, &[&str])] = &[("aws", &["ssm", "s3"]), ("azure", &["storage"])];

/// The agent's services of `cloud`.
pub fn agent_services(cloud: &str) -> &'static [&'static str] {
    AGENT_SERVICES
        .iter()
        .find(|(c, _)| *c == cloud)
        .map_or(&[], |(_, s)| s)
}

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
        /// The role the calls are signed with (none: the base identity).
        role: Option<AssumeRole>,
    },
    /// A bearer token for Azure Resource Manager, for the listed
    /// operations only.
    Azure {
        actions: ActionList,
        /// The tenant whose token a target's subscription takes
        /// (subscription id, tenant id); others: the environment's tenant.
        tenants: Vec<(String, String)>,
    },
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
            role: None,
        })
    }

    /// An Azure grant of `scope` (`arm`: every ARM operation).
    pub fn azure(scope: &str) -> Result<CloudGrant, String> {
        if AZURE_SCOPES.contains(&scope) {
            Ok(CloudGrant::Azure {
                actions: ActionList::everything(""),
                tenants: Vec::new(),
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
            tenants: Vec::new(),
        })
    }

    /// Sign with `role` (AWS grants only).
    pub fn with_role(self, role: AssumeRole) -> Result<CloudGrant, String> {
        match self {
            CloudGrant::Aws {
                services, actions, ..
            } => Ok(CloudGrant::Aws {
                services,
                actions,
                role: Some(role),
            }),
            CloudGrant::Azure { .. } => Err("assume_role is for AWS grants".into()),
        }
    }

    /// Take a subscription's token from its tenant (Azure grants only):
    /// both are GUIDs.
    pub fn with_tenant(self, subscription: &str, tenant: &str) -> Result<CloudGrant, String> {
        let guid = |s: &str| s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        let CloudGrant::Azure {
            actions,
            mut tenants,
        } = self
        else {
            return Err("tenants are for Azure grants".into());
        };
        if !guid(subscription) || !guid(tenant) {
            return Err(format!(
                "`{subscription}` = `{tenant}`: a subscription id and a tenant id (GUIDs)"
            ));
        }
        tenants.push((subscription.to_ascii_lowercase(), tenant.to_string()));
        Ok(CloudGrant::Azure { actions, tenants })
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
            CloudGrant::Aws { actions, .. } | CloudGrant::Azure { actions, .. } => actions,
        }
    }

    /// Whether a provider plugin of `provider` (its `describe`) may hold
    /// this grant: the same cloud.
    pub fn serves_provider(&self, provider: &str) -> bool {
        provider == self.cloud()
    }
}

/// The role a grant's calls are signed with: `arn` may hold `{account}`,
/// the target's account (a target without one is signed by the base
/// identity); a fixed ARN names one account for every target (a forensic
/// or evidence account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub arn: String,
    pub external_id: Option<String>,
    /// May hold `{case}`; default `irhost-{case}`.
    pub session_name: Option<String>,
    pub duration: Option<Duration>,
}

/// STS's bounds on a role session's length.
const SESSION_LENGTH: std::ops::RangeInclusive<u64> = 900..=43_200;

/// Characters STS accepts in session names and external ids.
fn sts_chars(text: &str, extra: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) || extra.contains(c))
}

impl AssumeRole {
    /// A role ARN (`arn:PARTITION:iam::ACCOUNT:role/NAME`, ACCOUNT 12
    /// digits or `{account}`).
    pub fn parse(arn: &str) -> Result<AssumeRole, String> {
        let hint = "`arn:aws:iam::{account}:role/NAME` (or a fixed 12-digit account)";
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, "iam", "", account, resource] = parts.as_slice() else {
            return Err(format!("`{arn}` is not an IAM role ARN: {hint}"));
        };
        let partitions = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];
        let name = resource.strip_prefix("role/").unwrap_or_default();
        if *prefix != "arn"
            || !partitions.contains(partition)
            || name.is_empty()
            || !sts_chars(name, "/")
        {
            return Err(format!("`{arn}` is not an IAM role ARN: {hint}"));
        }
        if *account != "{account}" && !is_account(account) {
            return Err(format!(
                "`{account}` in `{arn}` is not an account: 12 digits, or {{account}} for the target's"
            ));
        }
        Ok(AssumeRole {
            arn: arn.to_string(),
            external_id: None,
            session_name: None,
            duration: None,
        })
    }

    pub fn with_external_id(mut self, id: &str) -> Result<Self, String> {
        if !(2..=1224).contains(&id.len()) || !sts_chars(id, ":/") {
            return Err(format!(
                "`{id}` is not an external id: 2 to 1224 of letters, digits and _+=,.@:/-"
            ));
        }
        self.external_id = Some(id.to_string());
        Ok(self)
    }

    pub fn with_session_name(mut self, name: &str) -> Result<Self, String> {
        let bare = name.replace("{case}", "");
        if name.len() > 64 || (bare.len() < 2 && !name.contains("{case}")) || !sts_chars(&bare, "")
        {
            return Err(format!(
                "`{name}` is not a session name: 2 to 64 of letters, digits and _+=,.@- ({{case}} is the case id)"
            ));
        }
        self.session_name = Some(name.to_string());
        Ok(self)
    }

    pub fn with_duration(mut self, duration: Duration) -> Result<Self, String> {
        if !SESSION_LENGTH.contains(&duration.as_secs()) {
            return Err(format!(
                "a role session lasts 15m to 12h, not {}",
                humantime::format_duration(duration)
            ));
        }
        self.duration = Some(duration);
        Ok(self)
    }

    /// Whether the role depends on the target's account.
    pub fn per_account(&self) -> bool {
        self.arn.contains("{account}")
    }

    /// The role's ARN for a target in `account`: `Ok(None)` when the role
    /// is per account and the target has none (the base identity signs).
    /// An account that is not 12 digits is refused: it would change the
    /// ARN (a hostile event's `accountId` must not name another role).
    pub fn arn_for(&self, account: Option<&str>) -> Result<Option<String>, String> {
        if !self.per_account() {
            return Ok(Some(self.arn.clone()));
        }
        match account {
            None => Ok(None),
            Some(a) if is_account(a) => Ok(Some(self.arn.replace("{account}", a))),
            Some(a) => Err(format!("the target's account `{a}` is not 12 digits")),
        }
    }

    /// The session name of a call in `case` (STS's characters only, at
    /// most 64).
    pub fn session_name_for(&self, case: &str) -> String {
        let template = self.session_name.as_deref().unwrap_or("irhost-{case}");
        let name: String = template
            .replace("{case}", case)
            .chars()
            .map(|c| {
                if sts_chars(&c.to_string(), "") {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        if name.len() < 2 {
            "irhost".into()
        } else {
            name
        }
    }
}

/// An AWS account id: 12 digits.
pub fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
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
        let CloudGrant::Aws {
            services, actions, ..
        } = &grant
        else {
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

    #[test]
    fn a_role_per_account_takes_only_a_12_digit_account() {
        let role = AssumeRole::parse("arn:aws:iam::{account}:role/IRResponder").unwrap();
        assert!(role.per_account());
        assert_eq!(
            role.arn_for(Some("111111111111")).unwrap().as_deref(),
            Some("arn:aws:iam::111111111111:role/IRResponder")
        );
        assert_eq!(role.arn_for(None).unwrap(), None);
        for hostile in ["1111", "111111111111:role/Admin#", "11111111111a", ""] {
            assert!(role.arn_for(Some(hostile)).is_err(), "{hostile}");
        }
        let fixed = AssumeRole::parse("arn:aws:iam::999999999999:role/path/Forensics").unwrap();
        assert_eq!(
            fixed.arn_for(None).unwrap().as_deref(),
            Some("arn:aws:iam::999999999999:role/path/Forensics")
        );
        for bad in [
            "arn:aws:iam::1234:role/X",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::{account}:user/X",
            "arn:aws:iam::{account}:role/",
            "role/X",
            "arn:azure:iam::{account}:role/X",
        ] {
            assert!(AssumeRole::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_names_and_durations_are_within_sts_bounds() {
        let role = AssumeRole::parse("arn:aws:iam::{account}:role/IR").unwrap();
        assert_eq!(role.session_name_for("ir-2026/1"), "irhost-ir-2026-1");
        let named = role.clone().with_session_name("resp-{case}").unwrap();
        assert_eq!(named.session_name_for(&"x".repeat(100)).len(), 64);
        assert!(role.clone().with_session_name("a b").is_err());
        assert!(role.clone().with_session_name("x").is_err());
        assert!(role.clone().with_duration(Duration::from_secs(60)).is_err());
        assert!(role
            .clone()
            .with_duration(Duration::from_secs(3600))
            .is_ok());
        assert!(role.clone().with_external_id("x").is_err());
        assert!(role.with_external_id("case-2026:ir/1").is_ok());
    }
}
