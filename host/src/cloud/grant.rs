//! What a playbook grants a plugin of the responder's cloud power: a
//! [`CloudGrant`] names the cloud and, for AWS, every service the plugin
//! may call. The grant, never the plugin's own `describe`, decides whether
//! the host signs or authorizes its requests, and for which services.
//!
//! In a playbook: `cloud = { aws = ["ec2"] }`, `cloud = { aws = ["ec2",
//! "ssm", "s3"] }`, `cloud = { azure = "arm" }`.

use std::fmt;

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
    /// SigV4 signatures for requests to these AWS services.
    Aws { services: Vec<String> },
    /// A bearer token for Azure Resource Manager.
    Azure,
}

impl CloudGrant {
    /// An AWS grant of `services` (each one of [`AWS_SERVICES`], at least
    /// one, none twice).
    pub fn aws<S: AsRef<str>>(services: &[S]) -> Result<CloudGrant, String> {
        if services.is_empty() {
            return Err(format!(
                "an AWS grant names the services the plugin may call: one or more of {}",
                AWS_SERVICES.join(", ")
            ));
        }
        let mut granted: Vec<String> = Vec::new();
        for service in services {
            let service = service.as_ref();
            if !AWS_SERVICES.contains(&service) {
                return Err(format!(
                    "`{service}` is not an AWS service irhost can grant: one of {}",
                    AWS_SERVICES.join(", ")
                ));
            }
            if granted.iter().any(|g| g == service) {
                return Err(format!("`{service}` is granted twice"));
            }
            granted.push(service.to_string());
        }
        Ok(CloudGrant::Aws { services: granted })
    }

    /// An Azure grant of `scope` (`arm`).
    pub fn azure(scope: &str) -> Result<CloudGrant, String> {
        if AZURE_SCOPES.contains(&scope) {
            Ok(CloudGrant::Azure)
        } else {
            Err(format!(
                "`{scope}` is not an Azure scope irhost can grant: one of {}",
                AZURE_SCOPES.join(", ")
            ))
        }
    }

    /// The cloud: `aws` or `azure`.
    pub fn cloud(&self) -> &'static str {
        match self {
            CloudGrant::Aws { .. } => "aws",
            CloudGrant::Azure => "azure",
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
        match self {
            CloudGrant::Aws { services } => write!(f, "aws ({})", services.join(", ")),
            CloudGrant::Azure => f.write_str("azure (arm)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_known_services_only() {
        assert_eq!(
            CloudGrant::aws(&["ec2", "s3"]).unwrap(),
            CloudGrant::Aws {
                services: vec!["ec2".into(), "s3".into()]
            }
        );
        for bad in [&["a/b"][..], &["ec3"], &["ec2", "ec2"], &[]] {
            assert!(CloudGrant::aws(bad).is_err(), "{bad:?}");
        }
        assert_eq!(CloudGrant::azure("arm").unwrap().cloud(), "azure");
        assert!(CloudGrant::azure("graph").is_err());
        assert!(CloudGrant::Azure.serves_provider("azure"));
        assert!(!CloudGrant::Azure.serves_provider("aws"));
    }
}
