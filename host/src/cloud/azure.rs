//! Azure at the egress boundary: the sandboxed Azure plugins hold no
//! credential; [`ArmAuthorizer`] puts `Authorization: Bearer <token>` on
//! requests to the Azure Resource Manager endpoint (and on no other host),
//! after stripping whatever the plugin set. Tokens come from the
//! responder's [identity](identity) (a token, a client secret, workload
//! identity, a managed identity, the Azure CLI), for the cloud's ARM
//! audience (`AZURE_CLOUD`), cached until shortly before they expire
//! ([`TokenSource`], which also holds the Storage tokens of [evidence]
//! uploads: their SASes are [`sas`], signed by a [`signer`]; [`storage`]
//! sends a Storage request). `AZURE_RESOURCE_MANAGER_URL` points the plugins at another
//! ARM endpoint (Azure Stack, or the tests' fake ARM) without changing the
//! audience.

pub mod evidence;
pub mod identity;
pub mod sas;
pub mod signer;
pub mod storage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use wasmtime_wasi_http::WasiBody;

use self::identity::{Audience, AzureCloud, IdentitySettings};
use super::actions::{arm_call, ActionList};
use crate::egress::hook::AuthorizeFuture;
use crate::egress::{
    ApiCall, AuthorizeError, Authorized, CallScope, EgressAuthorizer, MemoryAccount,
};

/// A token is renewed this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// Where Azure requests go and how tokens are obtained, from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureEnvironment {
    /// `AZURE_RESOURCE_MANAGER_URL`, when set.
    pub resource_manager: Option<String>,
    /// `AZURE_CLOUD` (public Azure when unset).
    pub cloud: AzureCloud,
    /// Why `AZURE_CLOUD` was not understood, if it was not.
    pub cloud_problem: Option<String>,
    pub identity: IdentitySettings,
    /// `AZURE_STORAGE_KEY`: the storage account key evidence-upload SASes
    /// are signed with; without it they are user-delegation SASes from the
    /// identity.
    pub storage_key: Option<String>,
}

impl std::fmt::Debug for AzureEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureEnvironment")
            .field("resource_manager", &self.resource_manager)
            .field("cloud", &self.cloud)
            .field("cloud_problem", &self.cloud_problem)
            .field("identity", &self.identity)
            .field("storage_key", &self.storage_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Default for AzureEnvironment {
    fn default() -> Self {
        Self::from_vars(|_| None)
    }
}

impl AzureEnvironment {
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let (cloud, cloud_problem) = match AzureCloud::named(get("AZURE_CLOUD").as_deref()) {
            Ok(cloud) => (cloud, None),
            Err(e) => (identity::CLOUDS[0], Some(e)),
        };
        AzureEnvironment {
            resource_manager: get("AZURE_RESOURCE_MANAGER_URL"),
            cloud,
            cloud_problem,
            identity: IdentitySettings::from_vars(&var),
            storage_key: get("AZURE_STORAGE_KEY"),
        }
    }

    /// The ARM endpoint plugins talk to.
    pub fn resource_manager(&self) -> &str {
        self.resource_manager
            .as_deref()
            .unwrap_or(self.cloud.resource_manager)
            .trim_end_matches('/')
    }

    /// How ARM tokens will be obtained, for the journal (never the secret).
    pub fn token_source(&self) -> String {
        self.token_source_for(Audience::Arm)
    }

    /// How tokens for `audience` will be obtained, for the journal.
    pub fn token_source_for(&self, audience: Audience) -> String {
        format!(
            "{}, audience {} ({})",
            self.identity.describe_for(audience),
            audience.of(&self.cloud),
            self.cloud.name
        )
    }
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    source: String,
    valid_until: Option<Instant>,
}

/// Obtains tokens (ARM, Storage) and caches them until shortly before they
/// expire.
pub struct TokenSource {
    env: AzureEnvironment,
    /// Per audience and tenant (`None`: the environment's).
    cached: Mutex<HashMap<(Audience, Option<String>), CachedToken>>,
}

impl TokenSource {
    pub fn new(env: AzureEnvironment) -> Self {
        TokenSource {
            env,
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// The environment the tokens come from.
    pub fn environment(&self) -> &AzureEnvironment {
        &self.env
    }

    /// A token valid for ARM and where it came from, fetching one when
    /// none is cached or it is about to expire.
    pub async fn token(&self) -> Result<(String, String), String> {
        self.token_of(None).await
    }

    /// [`Self::token`] from `tenant` (`None`: the environment's).
    pub async fn token_of(&self, tenant: Option<&str>) -> Result<(String, String), String> {
        self.token_for(Audience::Arm, tenant).await
    }

    /// A token for `audience` from `tenant` (`None`: the environment's) and
    /// where it came from.
    pub async fn token_for(
        &self,
        audience: Audience,
        tenant: Option<&str>,
    ) -> Result<(String, String), String> {
        if let Some(problem) = &self.env.cloud_problem {
            return Err(problem.clone());
        }
        let key = (audience, tenant.map(str::to_string));
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.get(&key) {
            if c.valid_until.is_none_or(|t| Instant::now() < t) {
                return Ok((c.token.clone(), c.source.clone()));
            }
        }
        let started = Instant::now();
        let fresh =
            identity::fetch_token(&self.env.identity, &self.env.cloud, audience, tenant).await?;
        tracing::info!(source = %fresh.source, lifetime = ?fresh.lifetime, ?audience, "obtained an Azure token");
        let token = (fresh.token.clone(), fresh.source.clone());
        cached.insert(
            key,
            CachedToken {
                token: fresh.token,
                source: fresh.source,
                valid_until: fresh
                    .lifetime
                    .map(|l| started + l.saturating_sub(EXPIRY_MARGIN)),
            },
        );
        Ok(token)
    }
}

/// Authorizes a plugin's requests to the ARM endpoint with a bearer token.
#[derive(Clone)]
pub struct ArmAuthorizer {
    tokens: Arc<TokenSource>,
    /// scheme, host and port of the ARM endpoint.
    arm: (String, String, u16),
    /// The ARM operations the grant allows.
    actions: ActionList,
    /// (subscription, tenant): where a target's token comes from.
    tenants: Vec<(String, String)>,
}

impl ArmAuthorizer {
    pub fn new(tokens: Arc<TokenSource>, resource_manager: &str) -> Result<Self, String> {
        let url = url::Url::parse(resource_manager).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_ascii_lowercase();
        let port = url.port_or_known_default().ok_or("no port")?;
        Ok(ArmAuthorizer {
            tokens,
            arm: (url.scheme().to_string(), host, port),
            actions: ActionList::everything(""),
            tenants: Vec::new(),
        })
    }

    /// Tokens of these tenants for targets in these subscriptions.
    pub fn with_tenants(mut self, tenants: Vec<(String, String)>) -> Self {
        self.tenants = tenants;
        self
    }

    /// The tenant of a call's target: by the subscription its id names
    /// (`/subscriptions/SUB/…`) or its account, from the grant's list.
    fn tenant_of(&self, scope: &CallScope) -> Option<&str> {
        let from_id = scope
            .target
            .split('/')
            .skip_while(|s| !s.eq_ignore_ascii_case("subscriptions"))
            .nth(1);
        let subscription = from_id.or(scope.account.as_deref())?.to_ascii_lowercase();
        self.tenants
            .iter()
            .find(|(s, _)| *s == subscription)
            .map(|(_, t)| t.as_str())
    }

    /// Authorize only these ARM operations.
    pub fn allowing(mut self, actions: ActionList) -> Self {
        self.actions = actions;
        self
    }

    /// The ARM operation of a request to the ARM endpoint, if the grant
    /// allows it.
    pub fn check(&self, method: &http::Method, uri: &http::Uri) -> Result<ApiCall, AuthorizeError> {
        let call = arm_call(method, uri).map_err(AuthorizeError::Denied)?;
        if self.actions.allows(&call.action) {
            Ok(call)
        } else {
            Err(AuthorizeError::Denied(format!(
                "{} is not in the plugin's grant ({})",
                call.action, self.actions
            )))
        }
    }

    /// Whether a request goes to the ARM endpoint.
    pub fn is_arm(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        (scheme, host.as_str(), port) == (self.arm.0.as_str(), self.arm.1.as_str(), self.arm.2)
    }

    /// Replace any Authorization header with the real one (ARM only).
    /// Says where the token came from, when one was added.
    pub async fn authorize_parts(
        &self,
        parts: &mut http::request::Parts,
        scope: &CallScope,
    ) -> Result<Option<String>, String> {
        parts.headers.remove(http::header::AUTHORIZATION);
        if !self.is_arm(&parts.uri) {
            return Ok(None);
        }
        let (token, source) = self.tokens.token_of(self.tenant_of(scope)).await?;
        let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| format!("token is not a valid header value: {e}"))?;
        parts.headers.insert(http::header::AUTHORIZATION, value);
        Ok(Some(source))
    }
}

impl EgressAuthorizer for ArmAuthorizer {
    fn authorize(
        &self,
        request: http::Request<WasiBody>,
        _memory: Arc<MemoryAccount>,
        scope: CallScope,
    ) -> AuthorizeFuture<'_> {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let call = if self.is_arm(&parts.uri) {
                Some(self.check(&parts.method, &parts.uri)?)
            } else {
                None
            };
            let signer = self
                .authorize_parts(&mut parts, &scope)
                .await
                .map_err(AuthorizeError::Failed)?;
            Ok(Authorized {
                request: http::Request::from_parts(parts, body),
                call,
                signer,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> AzureEnvironment {
        AzureEnvironment::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[tokio::test]
    async fn bearer_only_for_the_arm_endpoint_and_plugin_headers_stripped() {
        let e = env(&[
            ("AZURE_ACCESS_TOKEN", "real-token"),
            ("AZURE_RESOURCE_MANAGER_URL", "http://127.0.0.1:8443/"),
        ]);
        let auth = ArmAuthorizer::new(Arc::new(TokenSource::new(e.clone())), e.resource_manager())
            .unwrap();
        let mut arm = http::Request::get("http://127.0.0.1:8443/subscriptions/s?api-version=1")
            .header("authorization", "Bearer placeholder")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        auth.authorize_parts(&mut arm, &CallScope::default())
            .await
            .unwrap();
        assert_eq!(arm.headers["authorization"], "Bearer real-token");

        let mut other = http::Request::get("http://127.0.0.1:9999/blob")
            .header("authorization", "Bearer placeholder")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        auth.authorize_parts(&mut other, &CallScope::default())
            .await
            .unwrap();
        assert!(other.headers.get("authorization").is_none());
        assert!(!auth.is_arm(&"https://127.0.0.1:8443/".parse().unwrap()));
    }

    #[tokio::test]
    async fn no_credential_is_one_line_naming_what_to_set() {
        // Nothing answers on port 9 of loopback: the managed identity is
        // refused at once; the CLI fallback is off.
        let tokens = TokenSource::new(env(&[
            ("MSI_ENDPOINT", "http://127.0.0.1:9/token"),
            ("IRHOST_AZURE_CLI", "0"),
        ]));
        let err = tokens.token().await.unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.starts_with("no Azure credential (managed identity"),
            "{err}"
        );
        assert!(
            err.contains("set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unknown_cloud_is_an_error() {
        let tokens = TokenSource::new(env(&[("AZURE_CLOUD", "Mars"), ("AZURE_ACCESS_TOKEN", "t")]));
        assert!(tokens
            .token()
            .await
            .unwrap_err()
            .contains("AZURE_CLOUD=Mars"));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let e = env(&[
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_ACCESS_TOKEN", "tok"),
            ("AZURE_STORAGE_KEY", "c3RvcmFnZWtleQ=="),
        ]);
        let text = format!(
            "{e:?} {} {}",
            e.token_source(),
            e.token_source_for(Audience::Storage)
        );
        assert!(
            !text.contains("s3cret") && !text.contains("tok\"") && !text.contains("c3RvcmFnZWtleQ"),
            "{text}"
        );
        assert!(
            text.contains("audience https://storage.azure.com (AzurePublicCloud)"),
            "{text}"
        );
    }
}
