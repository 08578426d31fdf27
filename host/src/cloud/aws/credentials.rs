//! Whose AWS credentials sign a call: the responder's base identity from
//! aws-config's whole default chain (environment, shared config and
//! credentials files with `role_arn` + `source_profile` /
//! `credential_source` / `external_id`, `credential_process`, IAM Identity
//! Center (SSO), web identity, ECS/EKS container credentials, IMDSv2),
//! loaded once over irhost's own HTTP client; and, where a grant names
//! `assume_role`, the role assumed from it in the target's account, one
//! cached session per role. A profile with `mfa_serial` asks for the code
//! ([`super::mfa`]). Credentials are refreshed shortly before they
//! expire. Failures are one line: what was tried, what failed, what to set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use tokio::sync::{Mutex, OnceCell};

use super::http_client::HostHttpClient;

/// Credentials are renewed this long before they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// Credentials and the words that say whose they are (never a secret).
#[derive(Clone)]
pub struct Identity {
    pub credentials: Credentials,
    /// `default chain (Environment)`, `role arn:aws:iam::…:role/IR
    /// (session irhost-ir-1)`.
    pub described: String,
}

/// One provider's credentials, cached until shortly before they expire.
struct CredentialCache {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        CredentialCache {
            provider,
            cached: Mutex::new(None),
        }
    }

    async fn get(
        &self,
    ) -> Result<Credentials, aws_credential_types::provider::error::CredentialsError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.expiry()
                .is_none_or(|e| e > SystemTime::now() + EXPIRY_MARGIN)
            {
                return Ok(c.clone());
            }
        }
        let fresh = self.provider.provide_credentials().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

/// A role session: the role's ARN for one account, and how to assume it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleSession {
    pub arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
    pub duration: Option<Duration>,
}

/// The responder's AWS identities.
pub struct AwsIdentities {
    source: Source,
    config: OnceCell<SdkConfig>,
    base: OnceCell<CredentialCache>,
    roles: Mutex<HashMap<RoleSession, Arc<CredentialCache>>>,
}

enum Source {
    DefaultChain,
    Fixed(Credentials),
}

impl AwsIdentities {
    /// The default chain, loaded on first use.
    pub fn default_chain() -> Self {
        Self::with_source(Source::DefaultChain)
    }

    /// Fixed credentials (tests, or an embedder that obtained them).
    pub fn fixed(credentials: Credentials) -> Self {
        Self::with_source(Source::Fixed(credentials))
    }

    fn with_source(source: Source) -> Self {
        AwsIdentities {
            source,
            config: OnceCell::new(),
            base: OnceCell::new(),
            roles: Mutex::new(HashMap::new()),
        }
    }

    /// aws-config's view of the environment and profile: region,
    /// endpoints, the credential chain, over irhost's HTTP client.
    pub async fn sdk_config(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                let loader =
                    aws_config::defaults(BehaviorVersion::latest()).http_client(HostHttpClient);
                match &self.source {
                    Source::DefaultChain => loader.load().await,
                    Source::Fixed(credentials) => {
                        loader
                            .credentials_provider(credentials.clone())
                            .load()
                            .await
                    }
                }
            })
            .await
    }

    async fn base(&self) -> &CredentialCache {
        self.base
            .get_or_init(|| async {
                let provider = match &self.source {
                    Source::Fixed(c) => SharedCredentialsProvider::new(c.clone()),
                    Source::DefaultChain => {
                        let config = self.sdk_config().await;
                        match (
                            super::mfa::selected_mfa_profile().await,
                            config.credentials_provider(),
                        ) {
                            // aws-config would assume the role without the
                            // code, and be refused.
                            (Some(mfa), _) => SharedCredentialsProvider::new(
                                super::mfa::MfaProvider::new(mfa, config.clone()),
                            ),
                            (None, Some(provider)) => provider,
                            (None, None) => SharedCredentialsProvider::new(NoProvider),
                        }
                    }
                };
                CredentialCache::new(provider)
            })
            .await
    }

    /// The credentials of the base identity, or of `role` assumed from it.
    pub async fn identity(&self, role: Option<&RoleSession>) -> Result<Identity, String> {
        let base = self.base().await;
        let Some(role) = role else {
            let credentials = base.get().await.map_err(|e| chain_failure(&e))?;
            let described = describe_base(&credentials);
            return Ok(Identity {
                credentials,
                described,
            });
        };
        let cache = self.role_cache(role).await;
        let credentials = cache.get().await.map_err(|e| {
            format!(
                "cannot assume {} (session {}): {}; the base identity must be allowed to assume it (the role's trust policy{})",
                role.arn,
                role.session_name,
                one_line(&e),
                if role.external_id.is_some() {
                    " and its external id"
                } else {
                    ""
                }
            )
        })?;
        Ok(Identity {
            credentials,
            described: format!("role {} (session {})", role.arn, role.session_name),
        })
    }

    async fn role_cache(&self, role: &RoleSession) -> Arc<CredentialCache> {
        if let Some(cache) = self.roles.lock().await.get(role) {
            return cache.clone();
        }
        let config = self.sdk_config().await.clone();
        let base = self.base().await.provider.clone();
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(&role.arn)
            .session_name(&role.session_name)
            .configure(&config);
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id);
        }
        if let Some(duration) = role.duration {
            builder = builder.session_length(duration);
        }
        let provider = builder.build_from_provider(base).await;
        let cache = Arc::new(CredentialCache::new(SharedCredentialsProvider::new(
            provider,
        )));
        self.roles
            .lock()
            .await
            .entry(role.clone())
            .or_insert(cache)
            .clone()
    }
}

/// Whose base credentials these are: the access key id (an identifier,
/// as CloudTrail shows it; never the secret) and the account when the
/// chain said it.
fn describe_base(credentials: &Credentials) -> String {
    let mut text = format!("default chain (access key {}", credentials.access_key_id());
    if let Some(account) = credentials.account_id() {
        text.push_str(&format!(", account {}", account.as_str()));
    }
    text.push(')');
    text
}

#[derive(Debug)]
struct NoProvider;

impl ProvideCredentials for NoProvider {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no credential provider is configured",
            ),
        ))
    }
}

/// An error and its causes on one line, each said once.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        // Providers' messages span lines ("Attempted:\n  Environment: …").
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The base chain found nothing: what it tried and what to set.
fn chain_failure(error: &aws_credential_types::provider::error::CredentialsError) -> String {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    format!(
        "no AWS credentials ({}); tried: environment variables, profile `{profile}` of the shared config and credentials files (role_arn, credential_process, SSO), web identity, ECS/EKS container credentials, EC2 instance metadata (IMDSv2); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (run `aws sso login` for an SSO profile)",
        one_line(error)
    )
}
