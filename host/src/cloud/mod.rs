//! Cloud bindings of plugins: what the host adds to a plugin for the cloud
//! power its playbook [grants](grant) it, so that it can reach its cloud
//! without holding credentials — the signer or token at the egress
//! boundary (scoped to the granted services' endpoints and the
//! environment's), endpoint overrides from the environment, default allowed
//! hosts, and the evidence store a grant's `evidence_uploads` names (S3
//! with the AWS identity; Azure Blob with user-delegation SASes from the
//! Azure identity, or account-key SASes when `AZURE_STORAGE_KEY` is set).
//! Every binding is recorded as a note that lands in the journal.

pub mod actions;
pub mod aws;
pub mod azure;
pub mod doctor;
pub mod grant;
pub mod policy;
pub mod uploads;

pub use actions::ActionList;
pub use grant::CloudGrant;

use std::sync::Arc;

use tokio::sync::OnceCell;

use self::aws::credentials::AwsIdentities;
use self::grant::AssumeRole;
use self::grant::EvidenceUploads;
use crate::egress::uploads::EvidenceStore;
use crate::egress::{EgressAuthorizer, EgressPolicy, HostPattern};

/// What the host's environment says about clouds, read once per process.
pub struct CloudEnv {
    /// Endpoints and region, from aws-config (environment and profile),
    /// read when a playbook first needs AWS.
    aws: OnceCell<aws::AwsEnvironment>,
    aws_identities: Arc<AwsIdentities>,
    pub azure: azure::AzureEnvironment,
    azure_tokens: Arc<azure::TokenSource>,
}

impl CloudEnv {
    pub fn from_env() -> Self {
        let azure = azure::AzureEnvironment::from_env();
        CloudEnv {
            aws: OnceCell::new(),
            aws_identities: Arc::new(AwsIdentities::default_chain()),
            azure_tokens: Arc::new(azure::TokenSource::new(azure.clone())),
            azure,
        }
    }

    /// An environment with no cloud settings (unit tests, pure plugins).
    pub fn empty() -> Self {
        CloudEnv {
            aws: OnceCell::new_with(Some(aws::AwsEnvironment::default())),
            aws_identities: Arc::new(AwsIdentities::default_chain()),
            azure: azure::AzureEnvironment::default(),
            azure_tokens: Arc::new(azure::TokenSource::new(Default::default())),
        }
    }

    /// The AWS environment (aws-config's endpoints and region).
    pub async fn aws(&self) -> &aws::AwsEnvironment {
        self.aws
            .get_or_init(|| async {
                aws::AwsEnvironment::from_sdk_config(self.aws_identities.sdk_config().await)
            })
            .await
    }

    /// The responder's AWS identities.
    pub fn aws_identities(&self) -> &Arc<AwsIdentities> {
        &self.aws_identities
    }

    /// What a plugin gets from the host for its cloud: exactly what the
    /// playbook's `grant` hands it, never what its own `describe` claims.
    /// `default_hosts`: the playbook gave no `allow_hosts`, so the granted
    /// services' endpoints are allowed. No grant: nothing (no signer, no
    /// token, no hosts). The value says every change; the plan applies it.
    pub async fn binding(
        &self,
        grant: Option<&CloudGrant>,
        default_hosts: bool,
        config: &serde_json::Value,
        uploads: Option<&EvidenceUploads>,
    ) -> CloudBinding {
        let mut binding = match grant {
            None => CloudBinding::default(),
            Some(CloudGrant::Aws {
                services,
                actions,
                role,
            }) => {
                let aws = self.aws().await;
                let mut binding = self.aws_binding(aws, services, actions, default_hosts, config);
                if let Some(signer) = binding.aws_signer.take() {
                    binding.authorizer = Some(Arc::new(signer.assuming(role.clone())));
                }
                if let Some(role) = role {
                    binding.notes.push(role_note(role));
                }
                binding
            }
            Some(CloudGrant::Azure { actions, tenants }) => {
                let mut binding = self.azure_binding(actions, config);
                if let Some(authorizer) = binding.arm_authorizer.take() {
                    for (subscription, tenant) in tenants {
                        binding.notes.push(format!(
                            "subscription {subscription}: tokens of tenant {tenant}"
                        ));
                    }
                    binding.authorizer = Some(Arc::new(authorizer.with_tenants(tenants.clone())));
                }
                binding
            }
        };
        if let Some(grant) = grant {
            binding.notes.push(actions_note(grant));
        }
        if let Some(uploads) = uploads {
            match self.evidence_store(uploads, config).await {
                Ok((store, signing)) => {
                    binding.uploads = Some(store);
                    binding.notes.push(format!(
                        "evidence uploads: the machine may upload to {uploads}<case>/<target>/ through URLs the host mints per part{}",
                        signing.map(|s| format!(" ({s})")).unwrap_or_default()
                    ));
                }
                Err(why) => {
                    tracing::warn!(error = %why, "evidence uploads to {uploads} are unavailable");
                    binding.notes.push(format!(
                        "evidence uploads to {uploads} are unavailable ({why}): the plugin's uploads are denied"
                    ));
                }
            }
        }
        binding.trusted_endpoints = self.environment_endpoints().await;
        binding
    }

    /// The store of a grant's `evidence_uploads`, with the responder's
    /// base identity, and how it signs (when that is worth a note); or why
    /// there is none. An Azure store signs with `AZURE_STORAGE_KEY` when
    /// it is set, else with user delegation keys of the responder's Azure
    /// identity (Storage tokens).
    async fn evidence_store(
        &self,
        uploads: &EvidenceUploads,
        config: &serde_json::Value,
    ) -> Result<(Arc<dyn EvidenceStore>, Option<String>), String> {
        match uploads {
            EvidenceUploads::S3 { bucket, prefix } => {
                let aws = self.aws().await;
                let region = config
                    .get("region")
                    .and_then(|r| r.as_str())
                    .map(str::to_string)
                    .or_else(|| aws.region.clone())
                    .unwrap_or_else(|| "us-east-1".into());
                let store = aws::evidence::S3Evidence::new(
                    self.aws_identities.clone(),
                    bucket,
                    prefix,
                    &region,
                    aws.endpoint_for("s3"),
                );
                Ok((Arc::new(store), None))
            }
            EvidenceUploads::AzureBlob {
                service,
                container,
                prefix,
            } => {
                use azure::{evidence::BlobEvidence, signer::BlobSigner};
                let signer = match self.azure.storage_key.as_deref() {
                    Some(key) => BlobSigner::account_key(key)?,
                    None => BlobSigner::identity(self.azure_tokens.clone()),
                };
                let store = BlobEvidence::new(service, container, prefix, signer)?;
                let signing = store.signing();
                Ok((Arc::new(store), Some(signing)))
            }
        }
    }

    /// The exact endpoints the responder's environment names
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
    /// `AZURE_RESOURCE_MANAGER_URL`): an allowed request to one of them may
    /// reach a loopback or private address (a local emulator, a VPC
    /// endpoint by its private name), as no other name may.
    pub async fn environment_endpoints(&self) -> Vec<HostPattern> {
        let aws = match self.aws.get() {
            Some(aws) => aws,
            None => self.aws().await,
        };
        let urls = aws
            .endpoint_overrides
            .iter()
            .map(|(_, url)| url.as_str())
            .chain(self.azure.resource_manager.as_deref());
        let mut endpoints: Vec<HostPattern> = Vec::new();
        for pattern in urls.filter_map(|url| endpoint_pattern(url).ok()) {
            if !endpoints.contains(&pattern) {
                endpoints.push(pattern);
            }
        }
        endpoints
    }

    fn aws_binding(
        &self,
        aws: &aws::AwsEnvironment,
        services: &[String],
        actions: &ActionList,
        default_hosts: bool,
        config: &serde_json::Value,
    ) -> CloudBinding {
        let mut binding = CloudBinding::default();
        if default_hosts {
            // Regional endpoints, path-style for S3 (`*.s3.*` is not a
            // pattern the egress policy can express; a virtual-hosted
            // bucket needs its own allow_hosts entry).
            let default: Vec<String> = services
                .iter()
                .map(|s| format!("{s}.*.amazonaws.com"))
                .collect();
            for pattern in &default {
                match HostPattern::parse(pattern) {
                    Ok(p) => binding.allowed_hosts.push(p),
                    Err(e) => binding.notes.push(format!("ignoring {pattern}: {e}")),
                }
            }
            binding.notes.push(format!(
                "no allow_hosts given: allowing the AWS {} endpoints ({})",
                services.join(", "),
                default.join(", ")
            ));
        }
        let mut trusted = Vec::new();
        let object = config.as_object();
        for service in services {
            let Some(url) = aws.endpoint_for(service) else {
                continue;
            };
            let pattern = match endpoint_pattern(url) {
                Ok(pattern) => pattern,
                Err(e) => {
                    binding
                        .notes
                        .push(format!("ignoring AWS endpoint override {url}: {e}"));
                    continue;
                }
            };
            trusted.push(url.to_string());
            if object.is_some_and(|c| c.contains_key("endpoint_url")) {
                binding.notes.push(format!(
                    "the playbook's endpoint_url wins over the environment's {url}"
                ));
                continue;
            }
            binding.notes.push(format!(
                "endpoint override from AWS_ENDPOINT_URL: {url} passed to the plugin and added to its allowed hosts ({pattern})"
            ));
            if !binding.allowed_hosts.contains(&pattern) {
                binding.allowed_hosts.push(pattern);
            }
            binding
                .config_patch
                .entry("endpoint_url")
                .or_insert_with(|| serde_json::Value::String(url.to_string()));
        }
        if let (Some(config), Some(region)) = (object, &aws.region) {
            if !config.contains_key("region") {
                binding
                    .config_patch
                    .insert("region".into(), serde_json::Value::String(region.clone()));
            }
        }
        let region = binding
            .config_patch
            .get("region")
            .or_else(|| config.get("region"))
            .and_then(|r| r.as_str())
            .unwrap_or("us-east-1")
            .to_string();
        let signer = aws::AwsSigner::new(self.aws_identities.clone(), services, &region)
            .trusting(&trusted)
            .allowing(actions.clone());
        binding.notes.push(format!(
            "requests are signed by the host with SigV4 only over HTTPS to the AWS endpoints of the granted services ({}){}, default region {region}; every other allowed host gets them unsigned; the plugin holds no credentials",
            services.join(", "),
            if trusted.is_empty() {
                String::new()
            } else {
                format!(" and to the environment's endpoint {}", trusted.join(", "))
            }
        ));
        binding.aws_signer = Some(signer);
        binding
    }

    fn azure_binding(&self, actions: &ActionList, config: &serde_json::Value) -> CloudBinding {
        let mut binding = CloudBinding::default();
        let configured = config
            .get("endpoint_url")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let endpoint = match (&configured, &self.azure.resource_manager) {
            (Some(url), Some(env)) => {
                binding.notes.push(format!(
                    "the playbook's endpoint_url {url} wins over AZURE_RESOURCE_MANAGER_URL {env}"
                ));
                url.clone()
            }
            (Some(url), None) => url.clone(),
            (None, Some(env)) => {
                if config.is_object() {
                    binding.config_patch.insert(
                        "endpoint_url".into(),
                        serde_json::Value::String(env.clone()),
                    );
                }
                binding.notes.push(format!(
                    "endpoint override from AZURE_RESOURCE_MANAGER_URL: {env} passed to the plugin"
                ));
                env.clone()
            }
            (None, None) => self.azure.resource_manager().to_string(),
        };
        match endpoint_pattern(&endpoint) {
            Ok(pattern) => {
                binding.notes.push(format!(
                    "the ARM endpoint {pattern} is added to the allowed hosts"
                ));
                binding.allowed_hosts.push(pattern);
            }
            Err(e) => binding
                .notes
                .push(format!("ignoring ARM endpoint {endpoint}: {e}")),
        }
        // The token goes only to the ARM endpoint the environment names (or
        // public ARM), never to a host a playbook chose: a playbook must not
        // be able to send the responder's token somewhere else.
        let trusted = self.azure.resource_manager().to_string();
        if endpoint_pattern(&endpoint).ok() != endpoint_pattern(&trusted).ok() {
            binding.notes.push(format!(
                "the playbook's endpoint_url {endpoint} is not the environment's ARM endpoint ({trusted}): requests to it carry no token"
            ));
        }
        match azure::ArmAuthorizer::new(self.azure_tokens.clone(), &trusted) {
            Ok(authorizer) => {
                binding.arm_authorizer = Some(authorizer.allowing(actions.clone()));
                binding.notes.push(format!(
                    "requests to the ARM endpoint {trusted} carry a bearer token the host obtains ({}); the plugin holds no credential and no other host receives the token",
                    self.azure.token_source()
                ));
            }
            Err(e) => binding
                .notes
                .push(format!("no ARM authorization: endpoint {trusted}: {e}")),
        }
        binding
    }
}

/// The journal's words for a grant's role.
fn role_note(role: &AssumeRole) -> String {
    let mut note = if role.per_account() {
        format!(
            "calls for a target with an account are signed with the role {} assumed in that account (a target without one: the base identity)",
            role.arn
        )
    } else {
        format!(
            "calls are signed with the role {} assumed from the base identity",
            role.arn
        )
    };
    if role.external_id.is_some() {
        note.push_str(", with the grant's external id");
    }
    note.push_str(&format!(
        ", session {}",
        role.session_name.as_deref().unwrap_or("irhost-{case}")
    ));
    if let Some(d) = role.duration {
        note.push_str(&format!(" for {}", humantime::format_duration(d)));
    }
    note
}

/// The journal's words for a grant's action list.
fn actions_note(grant: &CloudGrant) -> String {
    let actions = grant.actions();
    let unbounded: Vec<&str> = match grant {
        CloudGrant::Aws { services, .. } => services
            .iter()
            .filter(|s| actions.is_unbounded(&format!("{s}:")))
            .map(String::as_str)
            .collect(),
        CloudGrant::Azure { .. } => {
            if actions.is_unbounded("") {
                vec!["ARM"]
            } else {
                vec![]
            }
        }
    };
    let mut note = format!(
        "API actions allowed ({} cloud): {actions}; any other is denied before signing",
        grant.cloud()
    );
    if !unbounded.is_empty() {
        note.push_str(&format!(
            "; every action of {} is granted: list the actions the plugin calls for least privilege",
            unbounded.join(", ")
        ));
    }
    note
}

/// What the host adds to one plugin for its cloud. Nothing here is handed
/// to the plugin but the config patch (endpoints, region): the authorizer
/// acts at the egress, outside the sandbox.
#[derive(Default, Clone)]
pub struct CloudBinding {
    /// Hosts added to the plugin's allowed hosts, after the playbook's.
    pub allowed_hosts: Vec<HostPattern>,
    /// Signs or authorizes requests at the egress (SigV4, ARM token).
    pub authorizer: Option<Arc<dyn EgressAuthorizer>>,
    /// The AWS signer before the grant's role is applied.
    aws_signer: Option<aws::AwsSigner>,
    /// The ARM authorizer before the grant's tenants are applied.
    arm_authorizer: Option<azure::ArmAuthorizer>,
    /// Keys set in the plugin's config (never replacing the playbook's).
    pub config_patch: serde_json::Map<String, serde_json::Value>,
    /// Each change in words, for the journal.
    pub notes: Vec<String>,
    /// The environment's endpoints, which may resolve to internal
    /// addresses (see [`CloudEnv::environment_endpoints`]).
    pub trusted_endpoints: Vec<HostPattern>,
    /// The store of the grant's `evidence_uploads`.
    pub uploads: Option<Arc<dyn EvidenceStore>>,
}

impl CloudBinding {
    /// The playbook's allowed hosts with the binding's added.
    pub fn egress(&self, playbook: &EgressPolicy) -> EgressPolicy {
        let mut policy = playbook.clone();
        for pattern in &self.allowed_hosts {
            policy.allow(pattern.clone());
        }
        for endpoint in &self.trusted_endpoints {
            policy.trust_endpoint(endpoint.clone());
        }
        policy
    }

    /// The plugin's config with the patch applied.
    pub fn config(&self, playbook: &serde_json::Value) -> serde_json::Value {
        let mut config = playbook.clone();
        if let Some(map) = config.as_object_mut() {
            for (k, v) in &self.config_patch {
                map.insert(k.clone(), v.clone());
            }
        }
        config
    }
}

/// The exact host:port pattern of an endpoint URL.
fn endpoint_pattern(url: &str) -> Result<HostPattern, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("no host")?;
    let port = parsed.port_or_known_default().ok_or("no port")?;
    Ok(HostPattern::exact(Some(parsed.scheme()), host, port))
}
