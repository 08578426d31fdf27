//! Azure at the egress boundary: the sandboxed Azure plugins hold no
//! credential; [`ArmAuthorizer`] puts `Authorization: Bearer <token>` on
//! requests to the Azure Resource Manager endpoint (and on no other host),
//! after stripping whatever the plugin set. Tokens come from the standard
//! environment: a pre-obtained `AZURE_ACCESS_TOKEN`, or the client-credentials
//! flow with `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET`
//! against `AZURE_AUTHORITY_HOST` (default https://login.microsoftonline.com),
//! cached until shortly before they expire. `AZURE_RESOURCE_MANAGER_URL`
//! points the plugins at another ARM endpoint (a sovereign cloud, or the
//! tests' fake ARM).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::Mutex;
use wasmtime_wasi_http::WasiBody;

use super::actions::{arm_call, ActionList};
use crate::egress::hook::AuthorizeFuture;
use crate::egress::{
    ApiCall, AuthorizeError, Authorized, CallScope, EgressAuthorizer, EgressClient, MemoryAccount,
};

/// Azure Resource Manager in the public cloud.
pub const PUBLIC_ARM: &str = "https://management.azure.com";
/// Microsoft Entra ID in the public cloud.
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";
/// A token is renewed this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// Where Azure requests go and how tokens are obtained, from the environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AzureEnvironment {
    /// `AZURE_RESOURCE_MANAGER_URL`, when set.
    pub resource_manager: Option<String>,
    pub authority: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub access_token: Option<String>,
}

impl std::fmt::Debug for AzureEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureEnvironment")
            .field("resource_manager", &self.resource_manager)
            .field("authority", &self.authority)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<set>"),
            )
            .field("access_token", &self.access_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl AzureEnvironment {
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        AzureEnvironment {
            resource_manager: get("AZURE_RESOURCE_MANAGER_URL"),
            authority: get("AZURE_AUTHORITY_HOST"),
            tenant_id: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            client_secret: get("AZURE_CLIENT_SECRET"),
            access_token: get("AZURE_ACCESS_TOKEN"),
        }
    }

    /// The ARM endpoint plugins talk to.
    pub fn resource_manager(&self) -> &str {
        self.resource_manager
            .as_deref()
            .unwrap_or(PUBLIC_ARM)
            .trim_end_matches('/')
    }

    /// How tokens will be obtained, for the journal (never the secret).
    pub fn token_source(&self) -> String {
        if self.access_token.is_some() {
            "AZURE_ACCESS_TOKEN".into()
        } else if self.client_secret.is_some() {
            format!(
                "client credentials of {} in tenant {}",
                self.client_id.as_deref().unwrap_or("?"),
                self.tenant_id.as_deref().unwrap_or("?")
            )
        } else {
            "none configured (set AZURE_ACCESS_TOKEN or AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET)".into()
        }
    }
}

struct CachedToken {
    token: String,
    valid_until: Option<Instant>,
}

/// Obtains ARM tokens and caches them until shortly before they expire.
pub struct ArmTokenSource {
    env: AzureEnvironment,
    cached: Mutex<Option<CachedToken>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl ArmTokenSource {
    pub fn new(env: AzureEnvironment) -> Self {
        ArmTokenSource {
            env,
            cached: Mutex::new(None),
        }
    }

    /// A token valid for ARM, fetching one when none is cached or it is
    /// about to expire.
    pub async fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.valid_until.is_none_or(|t| Instant::now() < t) {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn fetch(&self) -> Result<CachedToken, String> {
        let env = &self.env;
        if let Some(token) = &env.access_token {
            return Ok(CachedToken {
                token: token.clone(),
                valid_until: None,
            });
        }
        let (Some(tenant), Some(client), Some(secret)) =
            (&env.tenant_id, &env.client_id, &env.client_secret)
        else {
            return Err(format!("no Azure credential: {}", env.token_source()));
        };
        let authority = env
            .authority
            .as_deref()
            .unwrap_or(PUBLIC_AUTHORITY)
            .trim_end_matches('/');
        let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
        let scope = format!("{}/.default", env.resource_manager());
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client)
            .append_pair("client_secret", secret)
            .append_pair("scope", &scope)
            .finish();
        let body = Full::new(Bytes::from(form));
        let request = http::Request::post(&url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .map_err(|e| format!("token request to {url}: {e}"))?;
        let started = Instant::now();
        // The host's own request to the authority the environment names:
        // any address may be reached, through the responder's proxies.
        let client = EgressClient::host()?;
        let response = client
            .send(request, None)
            .await
            .map_err(|e| format!("token request to {url}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("token response from {url}: {e:?}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "token request to {url} failed with {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| format!("token response from {url}: {e}"))?;
        let lifetime = parsed
            .expires_in
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .map(Duration::from_secs);
        tracing::info!(%url, ?lifetime, "obtained an ARM token");
        Ok(CachedToken {
            token: parsed.access_token,
            valid_until: lifetime.map(|l| started + l.saturating_sub(EXPIRY_MARGIN)),
        })
    }
}

/// Authorizes a plugin's requests to the ARM endpoint with a bearer token.
pub struct ArmAuthorizer {
    tokens: Arc<ArmTokenSource>,
    /// scheme, host and port of the ARM endpoint.
    arm: (String, String, u16),
    /// The ARM operations the grant allows.
    actions: ActionList,
}

impl ArmAuthorizer {
    pub fn new(tokens: Arc<ArmTokenSource>, resource_manager: &str) -> Result<Self, String> {
        let url = url::Url::parse(resource_manager).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_ascii_lowercase();
        let port = url.port_or_known_default().ok_or("no port")?;
        Ok(ArmAuthorizer {
            tokens,
            arm: (url.scheme().to_string(), host, port),
            actions: ActionList::everything(""),
        })
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
    pub async fn authorize_parts(&self, parts: &mut http::request::Parts) -> Result<(), String> {
        parts.headers.remove(http::header::AUTHORIZATION);
        if self.is_arm(&parts.uri) {
            let token = self.tokens.token().await?;
            let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| format!("token is not a valid header value: {e}"))?;
            parts.headers.insert(http::header::AUTHORIZATION, value);
        }
        Ok(())
    }
}

impl EgressAuthorizer for ArmAuthorizer {
    fn authorize(
        &self,
        request: http::Request<WasiBody>,
        _memory: Arc<MemoryAccount>,
        _scope: CallScope,
    ) -> AuthorizeFuture<'_> {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let call = if self.is_arm(&parts.uri) {
                Some(self.check(&parts.method, &parts.uri)?)
            } else {
                None
            };
            self.authorize_parts(&mut parts)
                .await
                .map_err(AuthorizeError::Failed)?;
            let signer = call.as_ref().map(|_| self.tokens.env.token_source());
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
        let auth = ArmAuthorizer::new(
            Arc::new(ArmTokenSource::new(e.clone())),
            e.resource_manager(),
        )
        .unwrap();
        let mut arm = http::Request::get("http://127.0.0.1:8443/subscriptions/s?api-version=1")
            .header("authorization", "Bearer placeholder")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        auth.authorize_parts(&mut arm).await.unwrap();
        assert_eq!(arm.headers["authorization"], "Bearer real-token");

        let mut other = http::Request::get("http://127.0.0.1:9999/blob")
            .header("authorization", "Bearer placeholder")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        auth.authorize_parts(&mut other).await.unwrap();
        assert!(other.headers.get("authorization").is_none());
        assert!(!auth.is_arm(&"https://127.0.0.1:8443/".parse().unwrap()));
    }

    #[tokio::test]
    async fn no_credential_is_a_clear_error() {
        let tokens = ArmTokenSource::new(env(&[]));
        let err = tokens.token().await.unwrap_err();
        assert!(err.contains("AZURE_ACCESS_TOKEN"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let e = env(&[
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_ACCESS_TOKEN", "tok"),
        ]);
        let text = format!("{e:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("tok\""),
            "{text}"
        );
    }
}
