//! Cloud bindings of plugins: what the host adds to a plugin of a given
//! provider (from its `describe`) so that it can reach its cloud without
//! holding credentials — the signer at the egress boundary, endpoint
//! overrides from the environment, default allowed hosts. Every binding is
//! recorded as a note that lands in the journal.

pub mod aws;
pub mod azure;

use std::sync::Arc;

use crate::egress::{EgressPolicy, HostPattern};
use crate::runtime::LoadedPlugin;

/// What the host's environment says about clouds, read once per process.
pub struct CloudEnv {
    pub aws: aws::AwsEnvironment,
    aws_credentials: Arc<aws::AwsCredentialSource>,
    pub azure: azure::AzureEnvironment,
    azure_tokens: Arc<azure::ArmTokenSource>,
}

impl CloudEnv {
    pub fn from_env() -> Self {
        let azure = azure::AzureEnvironment::from_env();
        CloudEnv {
            aws: aws::AwsEnvironment::from_env(),
            aws_credentials: Arc::new(aws::AwsCredentialSource::default_chain()),
            azure_tokens: Arc::new(azure::ArmTokenSource::new(azure.clone())),
            azure,
        }
    }

    /// An environment with no cloud settings (unit tests, pure plugins).
    pub fn empty() -> Self {
        CloudEnv {
            aws: aws::AwsEnvironment::default(),
            aws_credentials: Arc::new(aws::AwsCredentialSource::default_chain()),
            azure: azure::AzureEnvironment::default(),
            azure_tokens: Arc::new(azure::ArmTokenSource::new(Default::default())),
        }
    }

    /// Attach what a plugin of this provider needs. Returns notes for the
    /// journal describing each change.
    pub fn bind(&self, plugin: &mut LoadedPlugin) -> Vec<String> {
        let provider = plugin.info.provider.clone();
        if provider == "aws" || provider.starts_with("aws-") {
            self.bind_aws(plugin, provider.strip_prefix("aws-").unwrap_or("ec2"))
        } else if provider == "azure" {
            self.bind_azure(plugin)
        } else {
            Vec::new()
        }
    }

    fn bind_aws(&self, plugin: &mut LoadedPlugin, service: &str) -> Vec<String> {
        let mut notes = Vec::new();
        let mut policy: EgressPolicy = (*plugin.egress).clone();
        if policy.patterns().is_empty() {
            let default: Vec<String> = match service {
                // Regional endpoints, path-style requests (`*.s3.*` is not a
                // pattern the egress policy can express; a virtual-hosted
                // bucket needs its own allow_hosts entry).
                "s3" => vec!["s3.*.amazonaws.com".into()],
                other => vec![format!("{other}.*.amazonaws.com")],
            };
            for pattern in &default {
                policy.allow(HostPattern::parse(pattern).expect("valid default pattern"));
            }
            notes.push(format!(
                "no allow_hosts given: allowing the AWS {service} endpoints ({})",
                default.join(", ")
            ));
        }
        let config = plugin.config.as_object_mut();
        if let Some(config) = config {
            if let Some(url) = self.aws.endpoint_for(service) {
                if config.contains_key("endpoint_url") {
                    notes.push(format!(
                        "the playbook's endpoint_url wins over the environment's {url}"
                    ));
                } else {
                    match endpoint_pattern(url) {
                        Ok(pattern) => {
                            notes.push(format!(
                                "endpoint override from AWS_ENDPOINT_URL: {url} passed to the plugin and added to its allowed hosts ({pattern})"
                            ));
                            policy.allow(pattern);
                            config.insert(
                                "endpoint_url".into(),
                                serde_json::Value::String(url.to_string()),
                            );
                        }
                        Err(e) => notes.push(format!("ignoring AWS endpoint override {url}: {e}")),
                    }
                }
            }
            if let Some(region) = &self.aws.region {
                config
                    .entry("region")
                    .or_insert_with(|| serde_json::Value::String(region.clone()));
            }
        }
        let region = plugin
            .config
            .get("region")
            .and_then(|r| r.as_str())
            .unwrap_or("us-east-1")
            .to_string();
        plugin.egress = Arc::new(policy);
        plugin.authorizer = Some(Arc::new(aws::AwsSigner::new(
            self.aws_credentials.clone(),
            service,
            &region,
        )));
        notes.push(format!("requests to allowed hosts are signed by the host with SigV4 ({service}, default region {region}); the plugin holds no credentials"));
        notes
    }
}

impl CloudEnv {
    fn bind_azure(&self, plugin: &mut LoadedPlugin) -> Vec<String> {
        let mut notes = Vec::new();
        let mut policy: EgressPolicy = (*plugin.egress).clone();
        let configured = plugin
            .config
            .get("endpoint_url")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let endpoint = match (&configured, &self.azure.resource_manager) {
            (Some(url), Some(env)) => {
                notes.push(format!(
                    "the playbook's endpoint_url {url} wins over AZURE_RESOURCE_MANAGER_URL {env}"
                ));
                url.clone()
            }
            (Some(url), None) => url.clone(),
            (None, Some(env)) => {
                if let Some(config) = plugin.config.as_object_mut() {
                    config.insert(
                        "endpoint_url".into(),
                        serde_json::Value::String(env.clone()),
                    );
                }
                notes.push(format!(
                    "endpoint override from AZURE_RESOURCE_MANAGER_URL: {env} passed to the plugin"
                ));
                env.clone()
            }
            (None, None) => azure::PUBLIC_ARM.to_string(),
        };
        match endpoint_pattern(&endpoint) {
            Ok(pattern) => {
                notes.push(format!(
                    "the ARM endpoint {pattern} is added to the allowed hosts"
                ));
                policy.allow(pattern);
            }
            Err(e) => notes.push(format!("ignoring ARM endpoint {endpoint}: {e}")),
        }
        plugin.egress = Arc::new(policy);
        // The token goes only to the ARM endpoint the environment names (or
        // public ARM), never to a host a playbook chose: a playbook must not
        // be able to send the responder's token somewhere else.
        let trusted = self.azure.resource_manager().to_string();
        if endpoint_pattern(&endpoint).ok() != endpoint_pattern(&trusted).ok() {
            notes.push(format!(
                "the playbook's endpoint_url {endpoint} is not the environment's ARM endpoint ({trusted}): requests to it carry no token"
            ));
        }
        match azure::ArmAuthorizer::new(self.azure_tokens.clone(), &trusted) {
            Ok(authorizer) => {
                plugin.authorizer = Some(Arc::new(authorizer));
                notes.push(format!(
                    "requests to the ARM endpoint {trusted} carry a bearer token the host obtains ({}); the plugin holds no credential and no other host receives the token",
                    self.azure.token_source()
                ));
            }
            Err(e) => notes.push(format!("no ARM authorization: endpoint {trusted}: {e}")),
        }
        notes
    }
}

/// The exact host:port pattern of an endpoint URL.
fn endpoint_pattern(url: &str) -> Result<HostPattern, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("no host")?;
    let port = parsed.port_or_known_default().ok_or("no port")?;
    Ok(HostPattern::exact(Some(parsed.scheme()), host, port))
}
