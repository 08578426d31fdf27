//! Where the host's Azure tokens come from, tried in the order of Azure's
//! own default credential: a pre-obtained `AZURE_ACCESS_TOKEN`; a client
//! secret (`AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET`);
//! workload identity (`AZURE_FEDERATED_TOKEN_FILE`, as AKS sets it); a
//! managed identity (App Service's `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`,
//! else the instance metadata service, at `MSI_ENDPOINT` or
//! `IDENTITY_ENDPOINT` when set); the Azure CLI (`az account
//! get-access-token`). Tokens are for one of the cloud's audiences
//! ([`Audience`]: Resource Manager, or Storage for evidence uploads; the
//! clouds differ, [`AzureCloud`]), fetched over irhost's own host client
//! (proxies, CA bundles). A pre-obtained token is for one audience:
//! `AZURE_ACCESS_TOKEN` for ARM, `AZURE_STORAGE_ACCESS_TOKEN` for Storage.
//! A failure is one line: what was tried, what failed, what to set.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::RequestOptions;

use crate::egress::EgressClient;

/// A cloud's Azure Resource Manager and Entra endpoints, the audience of
/// ARM tokens (which is not the ARM URL) and that of Storage tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureCloud {
    pub name: &'static str,
    pub resource_manager: &'static str,
    pub audience: &'static str,
    pub authority: &'static str,
    /// The audience of Azure Storage (data plane) tokens, as Azure's SDKs
    /// name it per cloud.
    pub storage_audience: &'static str,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Azure Resource Manager (the plugins' calls).
    Arm,
    /// Azure Storage's data plane (the user delegation keys of evidence
    /// uploads).
    Storage,
}

impl Audience {
    /// The resource id of this audience in `cloud`.
    pub fn of(self, cloud: &AzureCloud) -> &'static str {
        match self {
            Audience::Arm => cloud.audience,
            Audience::Storage => cloud.storage_audience,
        }
    }
}

/// The clouds `AZURE_CLOUD` names.
pub const CLOUDS: &[AzureCloud] = &[
    AzureCloud {
        name: "AzurePublicCloud",
        resource_manager: "https://management.azure.com",
        audience: "https://management.core.windows.net/",
        authority: "https://login.microsoftonline.com",
        storage_audience: "https://storage.azure.com",
    },
    AzureCloud {
        name: "AzureChinaCloud",
        resource_manager: "https://management.chinacloudapi.cn",
        audience: "https://management.core.chinacloudapi.cn/",
        authority: "https://login.chinacloudapi.cn",
        storage_audience: "https://storage.azure.cn",
    },
    AzureCloud {
        name: "AzureUSGovernment",
        resource_manager: "https://management.usgovcloudapi.net",
        audience: "https://management.core.usgovcloudapi.net/",
        authority: "https://login.microsoftonline.us",
        storage_audience: "https://storage.azure.us",
    },
];

impl AzureCloud {
    /// The cloud `AZURE_CLOUD` names (its `az cloud` name, any case);
    /// public Azure when unset.
    pub fn named(name: Option<&str>) -> Result<AzureCloud, String> {
        let Some(name) = name else {
            return Ok(CLOUDS[0]);
        };
        CLOUDS
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| {
                format!(
                    "AZURE_CLOUD={name} is not a cloud irhost knows: one of {}",
                    CLOUDS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
                )
            })
    }
}

/// The Azure identity settings of the environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IdentitySettings {
    pub authority: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `AZURE_ACCESS_TOKEN`: a pre-obtained ARM token.
    pub access_token: Option<String>,
    /// `AZURE_STORAGE_ACCESS_TOKEN`: a pre-obtained Storage token.
    pub storage_access_token: Option<String>,
    pub federated_token_file: Option<String>,
    pub identity_endpoint: Option<String>,
    pub identity_header: Option<String>,
    pub msi_endpoint: Option<String>,
    /// `IRHOST_AZURE_CLI=0` turns the Azure CLI fallback off.
    pub cli: bool,
}

impl std::fmt::Debug for IdentitySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("IdentitySettings")
            .field("authority", &self.authority)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &set(&self.client_secret))
            .field("access_token", &set(&self.access_token))
            .field("storage_access_token", &set(&self.storage_access_token))
            .field("federated_token_file", &self.federated_token_file)
            .field("identity_endpoint", &self.identity_endpoint)
            .field("identity_header", &set(&self.identity_header))
            .field("msi_endpoint", &self.msi_endpoint)
            .field("cli", &self.cli)
            .finish()
    }
}

impl IdentitySettings {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        IdentitySettings {
            authority: get("AZURE_AUTHORITY_HOST"),
            tenant_id: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            client_secret: get("AZURE_CLIENT_SECRET"),
            access_token: get("AZURE_ACCESS_TOKEN"),
            storage_access_token: get("AZURE_STORAGE_ACCESS_TOKEN"),
            federated_token_file: get("AZURE_FEDERATED_TOKEN_FILE"),
            identity_endpoint: get("IDENTITY_ENDPOINT"),
            identity_header: get("IDENTITY_HEADER"),
            msi_endpoint: get("MSI_ENDPOINT"),
            cli: get("IRHOST_AZURE_CLI").is_none_or(|v| v != "0"),
        }
    }

    /// The pre-obtained token for `audience`, and its variable.
    fn preset(&self, audience: Audience) -> Option<(&str, &'static str)> {
        let (token, var) = match audience {
            Audience::Arm => (&self.access_token, "AZURE_ACCESS_TOKEN"),
            Audience::Storage => (&self.storage_access_token, "AZURE_STORAGE_ACCESS_TOKEN"),
        };
        token.as_deref().map(|t| (t, var))
    }

    /// The first source the environment configures for ARM tokens, in
    /// words (never a secret); the managed identity and the CLI are tried
    /// when none is.
    pub fn describe(&self) -> String {
        self.describe_for(Audience::Arm)
    }

    /// [`Self::describe`] for tokens of `audience`.
    pub fn describe_for(&self, audience: Audience) -> String {
        if let Some((_, var)) = self.preset(audience) {
            var.into()
        } else if self.client_secret.is_some() {
            format!(
                "client secret of {} in tenant {}",
                self.client_id.as_deref().unwrap_or("?"),
                self.tenant_id.as_deref().unwrap_or("?")
            )
        } else if let Some(file) = &self.federated_token_file {
            format!(
                "workload identity of {} in tenant {} (token file {file})",
                self.client_id.as_deref().unwrap_or("?"),
                self.tenant_id.as_deref().unwrap_or("?")
            )
        } else if self.identity_endpoint.is_some() && self.identity_header.is_some() {
            "managed identity (App Service, IDENTITY_ENDPOINT)".into()
        } else {
            format!(
                "managed identity (instance metadata service){}",
                if self.cli { ", then the Azure CLI" } else { "" }
            )
        }
    }
}

/// A token and what it came from.
#[derive(Clone)]
pub struct AzureToken {
    pub token: String,
    pub lifetime: Option<Duration>,
    pub source: String,
}

/// The instance metadata service's token endpoint.
const IMDS_TOKEN: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

impl std::fmt::Debug for AzureToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureToken")
            .field("token", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("source", &self.source)
            .finish()
    }
}

/// A token for `cloud`'s `audience`, in `tenant` (else the settings').
pub async fn fetch_token(
    settings: &IdentitySettings,
    cloud: &AzureCloud,
    audience: Audience,
    tenant: Option<&str>,
) -> Result<AzureToken, String> {
    let tenant = tenant.or(settings.tenant_id.as_deref());
    if let Some((token, var)) = settings.preset(audience) {
        return Ok(AzureToken {
            token: token.to_string(),
            lifetime: None,
            source: var.into(),
        });
    }
    let resource = audience.of(cloud);
    let authority = settings
        .authority
        .as_deref()
        .unwrap_or(cloud.authority)
        .trim_end_matches('/');
    // The v1 resource id with `/.default` (so `…windows.net//.default` for
    // ARM, `https://storage.azure.com/.default` for Storage, as Azure's own
    // SDKs send them).
    let scope = format!("{resource}/.default");
    if let (Some(tenant), Some(client), Some(secret)) =
        (tenant, &settings.client_id, &settings.client_secret)
    {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope.as_str()),
        ];
        let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
        return entra(&url, &form)
            .await
            .map(|(token, lifetime)| AzureToken {
                token,
                lifetime,
                source: format!("client secret of {client} in tenant {tenant}"),
            });
    }
    if let (Some(tenant), Some(client), Some(file)) =
        (tenant, &settings.client_id, &settings.federated_token_file)
    {
        // Re-read each time: the kubelet rotates the file.
        let assertion = std::fs::read_to_string(file)
            .map_err(|e| format!("AZURE_FEDERATED_TOKEN_FILE={file}: cannot read it: {e}"))?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.trim()),
            ("scope", scope.as_str()),
        ];
        let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
        return entra(&url, &form)
            .await
            .map(|(token, lifetime)| AzureToken {
                token,
                lifetime,
                source: format!("workload identity of {client} in tenant {tenant}"),
            });
    }
    let mut tried = Vec::new();
    match managed_identity(settings, resource).await {
        Ok(token) => return Ok(token),
        Err(e) => tried.push(e),
    }
    if settings.cli {
        match azure_cli(resource, tenant).await {
            Ok(token) => return Ok(token),
            Err(e) => tried.push(e),
        }
    }
    let preset = match audience {
        Audience::Arm => "AZURE_ACCESS_TOKEN",
        Audience::Storage => "AZURE_STORAGE_ACCESS_TOKEN",
    };
    let what = match audience {
        Audience::Arm => String::new(),
        Audience::Storage => format!(" for {resource}"),
    };
    Err(format!(
        "no Azure credential{what} ({}); tried: {preset}, a client secret, workload identity (AZURE_FEDERATED_TOKEN_FILE), managed identity, the Azure CLI; set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or {preset}), or run `az login`",
        tried.join("; ")
    ))
}

/// A managed identity's token: App Service's endpoint with its header, or
/// the instance metadata service.
async fn managed_identity(
    settings: &IdentitySettings,
    resource: &str,
) -> Result<AzureToken, String> {
    let client_id = settings.client_id.as_deref();
    let (url, header, source) = match (&settings.identity_endpoint, &settings.identity_header) {
        (Some(endpoint), Some(secret)) => {
            let mut url = url::Url::parse(endpoint)
                .map_err(|e| format!("IDENTITY_ENDPOINT={endpoint}: {e}"))?;
            url.query_pairs_mut()
                .append_pair("api-version", "2019-08-01")
                .append_pair("resource", resource);
            if let Some(id) = client_id {
                url.query_pairs_mut().append_pair("client_id", id);
            }
            (
                url,
                ("x-identity-header", secret.clone()),
                "managed identity (App Service)",
            )
        }
        _ => {
            let endpoint = settings
                .msi_endpoint
                .as_deref()
                .or(settings.identity_endpoint.as_deref())
                .unwrap_or(IMDS_TOKEN);
            let mut url = url::Url::parse(endpoint)
                .map_err(|e| format!("managed identity endpoint {endpoint}: {e}"))?;
            url.query_pairs_mut()
                .append_pair("api-version", "2018-02-01")
                .append_pair("resource", resource);
            if let Some(id) = client_id {
                url.query_pairs_mut().append_pair("client_id", id);
            }
            (
                url,
                ("metadata", "true".to_string()),
                "managed identity (instance metadata service)",
            )
        }
    };
    let request = http::Request::get(url.as_str())
        .header(header.0, header.1)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("{source}: {e}"))?;
    // The metadata service answers at once where it exists.
    let options = RequestOptions {
        connect_timeout: Some(Duration::from_secs(2)),
        first_byte_timeout: Some(Duration::from_secs(10)),
        between_bytes_timeout: Some(Duration::from_secs(10)),
    };
    let (status, body) = send(request, Some(options))
        .await
        .map_err(|e| format!("{source}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{source} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let (token, lifetime) = parse_token(&body).map_err(|e| format!("{source}: {e}"))?;
    Ok(AzureToken {
        token,
        lifetime,
        source: source.into(),
    })
}

/// `az account get-access-token`, the last resort.
async fn azure_cli(resource: &str, tenant: Option<&str>) -> Result<AzureToken, String> {
    let mut command = tokio::process::Command::new("az");
    command.args([
        "account",
        "get-access-token",
        "--output",
        "json",
        "--resource",
        resource,
    ]);
    if let Some(tenant) = tenant {
        command.args(["--tenant", tenant]);
    }
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .map_err(|_| "the Azure CLI did not answer within 30 s".to_string())?
        .map_err(|e| format!("the Azure CLI (az): {e}"))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "the Azure CLI failed: {}",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    #[derive(serde::Deserialize)]
    struct CliToken {
        #[serde(rename = "accessToken")]
        access_token: String,
        #[serde(default)]
        expires_on: Option<i64>,
    }
    let parsed: CliToken = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the Azure CLI's answer: {e}"))?;
    let lifetime = parsed.expires_on.and_then(|at| {
        let left = at - chrono::Utc::now().timestamp();
        u64::try_from(left).ok().map(Duration::from_secs)
    });
    Ok(AzureToken {
        token: parsed.access_token,
        lifetime,
        source: "the Azure CLI".into(),
    })
}

/// A token from Microsoft Entra's token endpoint.
async fn entra(url: &str, form: &[(&str, &str)]) -> Result<(String, Option<Duration>), String> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = http::Request::post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("token request to {url}: {e}"))?;
    let (status, bytes) = send(request, None)
        .await
        .map_err(|e| format!("token request to {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "token request to {url} failed with {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        ));
    }
    parse_token(&bytes).map_err(|e| format!("token response from {url}: {e}"))
}

async fn send(
    request: http::Request<Full<Bytes>>,
    options: Option<RequestOptions>,
) -> Result<(http::StatusCode, Bytes), String> {
    let client = EgressClient::host()?;
    let response = client
        .send(request, options)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// `access_token` and `expires_in` (a number, or a string as the metadata
/// service sends it).
fn parse_token(bytes: &[u8]) -> Result<(String, Option<Duration>), String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let parsed: TokenResponse = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let lifetime = parsed
        .expires_in
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .map(Duration::from_secs);
    Ok((parsed.access_token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_have_their_own_audience() {
        let public = AzureCloud::named(None).unwrap();
        assert_eq!(public.audience, "https://management.core.windows.net/");
        assert_ne!(public.audience, public.resource_manager);
        let china = AzureCloud::named(Some("azurechinacloud")).unwrap();
        assert_eq!(china.authority, "https://login.chinacloudapi.cn");
        let e = AzureCloud::named(Some("Mars")).unwrap_err();
        assert!(e.contains("AzureUSGovernment"), "{e}");
        // Storage tokens have an audience of their own, per cloud.
        assert_eq!(Audience::Storage.of(&public), "https://storage.azure.com");
        assert_eq!(Audience::Storage.of(&china), "https://storage.azure.cn");
        let us = AzureCloud::named(Some("AzureUSGovernment")).unwrap();
        assert_eq!(Audience::Storage.of(&us), "https://storage.azure.us");
        assert_eq!(Audience::Arm.of(&us), us.audience);
    }

    #[tokio::test]
    async fn a_preset_token_is_for_its_own_audience() {
        let s = IdentitySettings::from_vars(|k| match k {
            "AZURE_ACCESS_TOKEN" => Some("arm-token".into()),
            "AZURE_STORAGE_ACCESS_TOKEN" => Some("storage-token".into()),
            _ => None,
        });
        let cloud = AzureCloud::named(None).unwrap();
        let arm = fetch_token(&s, &cloud, Audience::Arm, None).await.unwrap();
        let storage = fetch_token(&s, &cloud, Audience::Storage, None)
            .await
            .unwrap();
        assert_eq!(
            (arm.token.as_str(), arm.source.as_str()),
            ("arm-token", "AZURE_ACCESS_TOKEN")
        );
        assert_eq!(storage.token, "storage-token");
        assert_eq!(
            s.describe_for(Audience::Storage),
            "AZURE_STORAGE_ACCESS_TOKEN"
        );
        assert!(!format!("{arm:?} {s:?}").contains("-token"));

        // An ARM token is never sent to Storage: without a Storage source
        // the chain goes on (here to nothing).
        let arm_only = IdentitySettings::from_vars(|k| match k {
            "AZURE_ACCESS_TOKEN" => Some("arm-token".into()),
            "MSI_ENDPOINT" => Some("http://127.0.0.1:9/token".into()),
            "IRHOST_AZURE_CLI" => Some("0".into()),
            _ => None,
        });
        let e = fetch_token(&arm_only, &cloud, Audience::Storage, None)
            .await
            .unwrap_err();
        assert!(
            e.starts_with("no Azure credential for https://storage.azure.com (managed identity"),
            "{e}"
        );
        assert!(e.contains("(or AZURE_STORAGE_ACCESS_TOKEN)"), "{e}");
    }

    #[test]
    fn token_lifetimes_are_numbers_or_strings() {
        let (t, l) = parse_token(br#"{"access_token":"a","expires_in":"3599"}"#).unwrap();
        assert_eq!((t.as_str(), l), ("a", Some(Duration::from_secs(3599))));
        let (_, l) = parse_token(br#"{"access_token":"a","expires_in":60}"#).unwrap();
        assert_eq!(l, Some(Duration::from_secs(60)));
        assert!(parse_token(b"{}").is_err());
    }

    #[test]
    fn settings_never_show_secrets() {
        let s = IdentitySettings::from_vars(|k| match k {
            "AZURE_CLIENT_SECRET" => Some("s3cret".into()),
            "IDENTITY_HEADER" => Some("h3ader".into()),
            _ => None,
        });
        let text = format!("{s:?} {}", s.describe());
        assert!(
            !text.contains("s3cret") && !text.contains("h3ader"),
            "{text}"
        );
    }
}
