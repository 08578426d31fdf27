//! The Azure Resource Manager clients as the sandbox builds them: the
//! wasi:http transport, the placeholder credential, error mapping (404,
//! 409, 429 with Retry-After, host denials) and small helpers shared by the
//! verbs (VM references, tags, polling a long-running resource).
//!
//! azure_core's own transport (reqwest) and sleep (a thread) do not work in
//! wasm32-wasip2. [`WasiTransport`] sends each request through the guest
//! SDK's `wasi:http` client; retries are off (`RetryOptions::none`), the
//! engine owns them; long-running operations are started with `.send()` and
//! polled here with the reactor's sleep. No credential enters the sandbox:
//! the clients carry [`HostAuthorizedCredential`], whose placeholder bearer
//! the host replaces with a real ARM token at its egress boundary.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::error::{Error as AzureError, ErrorKind};
use azure_core::headers::{HeaderName, HeaderValue, Headers};
use azure_core::{HttpClient, Request, Response, RetryOptions, StatusCode, TransportOptions};
use irhost_plugin_sdk::http::{fetch_async, Method};
use irhost_plugin_sdk::prelude::*;

/// The SDK packages irhost is built against (and so the api-versions it sends:
/// compute 2024-07-01 / disks 2024-03-02, network 2024-03-01, locks 2020-05-01).
pub use azure_mgmt_compute::package_2024_07_01 as compute;
pub use azure_mgmt_network::package_2024_03 as network;
pub use azure_mgmt_resources::package_locks_2020_05 as locks;

pub const TAG_CASE: &str = "irhost-case";
pub const TAG_SOURCE_VM: &str = "irhost-source-vm";
pub const TAG_DISK: &str = "irhost-disk";
pub const TAG_TIME: &str = "irhost-time";
pub const TAG_ROLE: &str = "irhost-role";
pub const TAG_PREVIOUS_NSG: &str = "irhost-previous-nsg";
pub const TAG_SEALED: &str = "irhost-sealed";
pub const TAG_SEAL_DIGEST: &str = "irhost-seal-digest";
pub const TAG_SEALED_AT: &str = "irhost-sealed-at";

/// The token the clients carry instead of a credential; the host strips it.
pub const PLACEHOLDER_TOKEN: &str = "irhost-host-authorizes-this-request";

/// Azure Resource Manager in the public cloud.
pub const PUBLIC_ARM: &str = "https://management.azure.com";

/// A credential that holds nothing: the host authorizes requests.
#[derive(Debug)]
pub struct HostAuthorizedCredential;

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl TokenCredential for HostAuthorizedCredential {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        Ok(AccessToken::new(Secret::new(PLACEHOLDER_TOKEN), expires))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// What the transport saw that azure_core's error type does not carry:
    /// a host denial, or the Retry-After of a 429 / 503.
    static TRANSPORT_NOTE: RefCell<Option<TransportNote>> = const { RefCell::new(None) };
}

#[derive(Debug, Clone)]
enum TransportNote {
    Denied(String),
    RetryAfter(Duration),
}

/// azure_core's `HttpClient` over the guest SDK's wasi:http client.
#[derive(Debug)]
pub struct WasiTransport;

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl HttpClient for WasiTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<Response> {
        let method = Method::from_bytes(request.method().to_string().as_bytes())
            .map_err(|e| AzureError::full(ErrorKind::DataConversion, e, "HTTP method"))?;
        let url = request.url().to_string();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_str().to_string()))
            .collect();
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = match request.body() {
            azure_core::Body::Bytes(bytes) if !bytes.is_empty() => Some(bytes.to_vec()),
            _ => None,
        };
        let fetched = match fetch_async(method, &url, &header_refs, body).await {
            Ok(fetched) => fetched,
            Err(PluginError::Denied(message)) => {
                TRANSPORT_NOTE
                    .with(|n| *n.borrow_mut() = Some(TransportNote::Denied(message.clone())));
                return Err(AzureError::message(ErrorKind::Io, message));
            }
            Err(other) => {
                return Err(AzureError::message(ErrorKind::Io, format!("{other:?}")));
            }
        };
        if fetched.status == 429 || fetched.status == 503 {
            let after = fetched
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(2));
            TRANSPORT_NOTE.with(|n| *n.borrow_mut() = Some(TransportNote::RetryAfter(after)));
        }
        let status = StatusCode::try_from(fetched.status).map_err(|e| {
            AzureError::message(
                ErrorKind::DataConversion,
                format!("status {}: {e}", fetched.status),
            )
        })?;
        let mut response_headers = Headers::new();
        for (name, value) in fetched.headers {
            response_headers.insert(
                HeaderName::from(name.to_ascii_lowercase()),
                HeaderValue::from(value),
            );
        }
        let body = bytes::Bytes::from(fetched.body);
        let stream = futures::stream::once(async move { Ok::<_, AzureError>(body) });
        Ok(Response::new(status, response_headers, Box::pin(stream)))
    }
}

/// Send an SDK request builder and read its typed body, mapping either
/// failure to the plugin's error for `what`: `arm_call!(arm, what, builder)`.
#[macro_export]
macro_rules! arm_call {
    ($arm:expr, $what:expr, $builder:expr) => {{
        let what: &str = &$what;
        match $builder.send().await {
            Ok(response) => response.into_body().await.map_err(|e| $arm.error(what, e)),
            Err(e) => Err($arm.error(what, e)),
        }
    }};
}

/// The ARM clients of one call, and where they point.
pub struct Arm {
    pub compute: compute::Client,
    pub network: network::Client,
    pub locks: locks::Client,
    /// Milliseconds the engine is asked to wait after a throttling answer
    /// that carried no Retry-After.
    pub retry_after_ms: u64,
    /// How long `wait_*` polls a long-running resource before giving up.
    pub operation_timeout: Duration,
}

pub fn param_or<T: serde::de::DeserializeOwned>(name: &str, default: T) -> Result<T, PluginError> {
    Ok(irhost_plugin_sdk::param(name)?.unwrap_or(default))
}

impl Arm {
    /// Clients for the `endpoint_url` parameter (the host passes
    /// AZURE_RESOURCE_MANAGER_URL here), else public Azure.
    pub fn from_params() -> Result<Self, PluginError> {
        let endpoint: String = param_or("endpoint_url", PUBLIC_ARM.to_string())?;
        let endpoint = azure_core::Url::parse(&endpoint)
            .map_err(|e| PluginError::InvalidInput(format!("endpoint_url `{endpoint}`: {e}")))?;
        let retry_after_ms: u64 = param_or("retry_after_ms", 2000)?;
        let timeout_s: u64 = param_or("operation_timeout_s", 600)?;
        let credential: Arc<dyn TokenCredential> = Arc::new(HostAuthorizedCredential);
        let transport = TransportOptions::new(Arc::new(WasiTransport));
        let build_err = |e: AzureError| PluginError::InvalidInput(format!("ARM client: {e}"));
        let compute = compute::Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .retry(RetryOptions::none())
            .transport(transport.clone())
            .build()
            .map_err(build_err)?;
        let network = network::Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .retry(RetryOptions::none())
            .transport(transport.clone())
            .build()
            .map_err(build_err)?;
        let locks = locks::Client::builder(credential)
            .endpoint(endpoint)
            .retry(RetryOptions::none())
            .transport(transport)
            .build()
            .map_err(build_err)?;
        Ok(Arm {
            compute,
            network,
            locks,
            retry_after_ms,
            operation_timeout: Duration::from_secs(timeout_s),
        })
    }

    /// Map an azure_core error of `what` to the plugin's error.
    pub fn error(&self, what: &str, error: AzureError) -> PluginError {
        let note = TRANSPORT_NOTE.with(|n| n.borrow_mut().take());
        if let Some(TransportNote::Denied(message)) = &note {
            return PluginError::Denied(format!("{what}: {message}"));
        }
        let Some(http) = error.as_http_error() else {
            return PluginError::Provider(ProviderFailure {
                code: "transport".into(),
                message: format!("{what}: {error}"),
            });
        };
        let status = u16::from(http.status());
        let code = http.error_code().unwrap_or("").to_string();
        let message = format!(
            "{what}: {status} {code}: {}",
            http.error_message().unwrap_or("(no message)")
        );
        match status {
            404 => PluginError::NotFound(message),
            409 => PluginError::Conflict(message),
            400 => PluginError::InvalidInput(message),
            401 | 403 => PluginError::Denied(message),
            429 | 503 => {
                let after = match note {
                    Some(TransportNote::RetryAfter(d)) => d,
                    _ => Duration::from_millis(self.retry_after_ms),
                };
                PluginError::Throttled(Throttle {
                    message,
                    retry_after_ms: after.as_millis() as u64,
                })
            }
            _ => PluginError::Provider(ProviderFailure {
                code: if code.is_empty() {
                    status.to_string()
                } else {
                    code
                },
                message,
            }),
        }
    }
}

/// An ARM resource id split into what the SDK calls take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub subscription: String,
    pub resource_group: String,
    /// The last type segment (`virtualMachines`, `networkInterfaces`, ...).
    pub kind: String,
    pub name: String,
    /// Segments after the name (`subnets/default` of a VNet).
    pub child: Option<(String, String)>,
}

impl ResourceRef {
    /// Parse `/subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME[/CHILDTYPE/CHILD]`.
    pub fn parse(id: &str) -> Result<Self, PluginError> {
        let bad = || {
            PluginError::InvalidInput(format!(
                "`{id}` is not an ARM resource id (/subscriptions/…/resourceGroups/…/providers/…)"
            ))
        };
        let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
        if parts.len() < 8
            || !parts[0].eq_ignore_ascii_case("subscriptions")
            || !parts[2].eq_ignore_ascii_case("resourceGroups")
            || !parts[4].eq_ignore_ascii_case("providers")
        {
            return Err(bad());
        }
        let child = match parts.len() {
            8 => None,
            10 => Some((parts[8].to_string(), parts[9].to_string())),
            _ => return Err(bad()),
        };
        Ok(ResourceRef {
            subscription: parts[1].to_string(),
            resource_group: parts[3].to_string(),
            kind: parts[6].to_string(),
            name: parts[7].to_string(),
            child,
        })
    }

    pub fn name_of(id: &str) -> String {
        id.rsplit('/').next().unwrap_or(id).to_string()
    }
}

/// The VM a target names: a full ARM id, or `resourceGroup/vmName` with the
/// subscription from the target's account or the `subscription_id` parameter.
pub fn vm_of(target: &Target) -> Result<ResourceRef, PluginError> {
    if target.id.starts_with("/subscriptions/") || target.id.starts_with("subscriptions/") {
        let vm = ResourceRef::parse(&target.id)?;
        if !vm.kind.eq_ignore_ascii_case("virtualMachines") || vm.child.is_some() {
            return Err(PluginError::InvalidInput(format!(
                "`{}` is not a virtual machine (Microsoft.Compute/virtualMachines)",
                target.id
            )));
        }
        return Ok(vm);
    }
    let Some((group, name)) = target.id.split_once('/') else {
        return Err(PluginError::InvalidInput(format!(
            "target `{}`: give an ARM VM id or resourceGroup/vmName",
            target.id
        )));
    };
    let subscription = match target.account.clone().filter(|a| !a.is_empty()) {
        Some(s) => s,
        None => irhost_plugin_sdk::param::<String>("subscription_id")?.ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "target `{}` has no subscription: give a full ARM id, account=, or the subscription_id parameter",
                target.id
            ))
        })?,
    };
    Ok(ResourceRef {
        subscription,
        resource_group: group.to_string(),
        kind: "virtualMachines".into(),
        name: name.to_string(),
        child: None,
    })
}

/// The full id of a VM reference.
pub fn vm_id(vm: &ResourceRef) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
        vm.subscription, vm.resource_group, vm.name
    )
}

/// A tag value from an ARM `tags` object.
pub fn tag<'a>(tags: &'a Option<serde_json::Value>, key: &str) -> Option<&'a str> {
    tags.as_ref()?.get(key)?.as_str()
}

/// `tags` with `entries` added (existing keys replaced).
pub fn with_tags(
    tags: &Option<serde_json::Value>,
    entries: &[(&str, String)],
) -> serde_json::Value {
    let mut map = tags
        .as_ref()
        .and_then(|t| t.as_object().cloned())
        .unwrap_or_default();
    for (k, v) in entries {
        map.insert((*k).to_string(), serde_json::Value::String(v.clone()));
    }
    serde_json::Value::Object(map)
}

/// Azure resource names: letters, digits, `-`, `_`, `.`; at most `max`.
pub fn resource_name(parts: &[&str], max: usize) -> String {
    let joined = parts.join("-");
    let mut name: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(max);
    name.trim_end_matches(['.', '-']).to_string()
}

pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::from(SystemTime::now());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Sleep on the reactor (usable inside `block_on`).
pub async fn pause(duration: Duration) {
    wstd::task::sleep(wstd::time::Duration::from(duration)).await;
}

/// The poll interval for long-running resources: the `poll_ms` parameter.
pub fn poll_interval() -> Result<Duration, PluginError> {
    Ok(Duration::from_millis(param_or("poll_ms", 1000u64)?))
}

/// Parse a JSON body into an SDK model (request bodies are written as JSON
/// so that only the fields irhost sets are sent).
pub fn model<T: serde::de::DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, PluginError> {
    serde_json::from_value(value).map_err(|e| PluginError::InvalidInput(format!("{what}: {e}")))
}

/// A typed SDK value as JSON text (for artifacts and isolation records).
pub fn json_of<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// How a long-running ARM operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// The request completed synchronously (no operation headers).
    Done,
    /// The operation was polled to success.
    Succeeded,
}

/// Read a write's answer to its end, so that its connection goes back to
/// the pool at once (an answer dropped unread takes its connection down
/// with it), then wait for the operation it started, if any.
pub async fn complete(
    arm: &Arm,
    what: &str,
    response: azure_core::Response,
) -> Result<Operation, PluginError> {
    let (_, headers, body) = response.deconstruct();
    body.collect().await.map_err(|e| arm.error(what, e))?;
    wait_operation(arm, what, &headers).await
}

/// Wait for the operation an ARM response started, if any: poll its
/// `Azure-AsyncOperation` URL (a JSON `status`) or else its `Location`
/// (202 while running), honouring `Retry-After`, until it ends or
/// `arm.operation_timeout` passes. azure_core's own poller sleeps on a
/// thread, which wasm32-wasip2 does not have; this one sleeps on the reactor.
pub async fn wait_operation(
    arm: &Arm,
    what: &str,
    headers: &Headers,
) -> Result<Operation, PluginError> {
    let async_op = headers.get_optional_string(&HeaderName::from_static("azure-asyncoperation"));
    let location = headers.get_optional_string(&HeaderName::from_static("location"));
    let (url, by_status) = match (async_op, location) {
        (Some(url), _) => (url, true),
        (None, Some(url)) => (url, false),
        (None, None) => return Ok(Operation::Done),
    };
    let started = SystemTime::now();
    let mut delay = retry_after(headers).unwrap_or(poll_interval()?);
    let auth = format!("Bearer {PLACEHOLDER_TOKEN}");
    loop {
        pause(delay).await;
        let fetched = fetch_async(Method::GET, &url, &[("authorization", auth.as_str())], None)
            .await
            .map_err(|e| match e {
                PluginError::Denied(m) => {
                    PluginError::Denied(format!("{what}: polling {url}: {m}"))
                }
                other => other,
            })?;
        let body: serde_json::Value =
            serde_json::from_slice(&fetched.body).unwrap_or(serde_json::Value::Null);
        let failed = |detail: String| {
            PluginError::Provider(ProviderFailure {
                code: "OperationFailed".into(),
                message: format!("{what}: the operation ended {detail}"),
            })
        };
        match fetched.status {
            429 => {}
            200..=299 if by_status => {
                match body.get("status").and_then(|s| s.as_str()).unwrap_or("") {
                    "Succeeded" => return Ok(Operation::Succeeded),
                    "Failed" | "Canceled" | "Cancelled" => {
                        let error = body.get("error").map(|e| e.to_string()).unwrap_or_default();
                        return Err(failed(format!("{} {error}", body["status"])));
                    }
                    _ => {}
                }
            }
            202 => {}
            200..=299 => return Ok(Operation::Succeeded),
            status => {
                return Err(failed(format!(
                    "with HTTP {status} from {url}: {}",
                    fetched.text()
                )))
            }
        }
        if started.elapsed().unwrap_or_default() > arm.operation_timeout {
            return Err(PluginError::Provider(ProviderFailure {
                code: "OperationTimeout".into(),
                message: format!(
                    "{what}: still running after {:?} ({url})",
                    arm.operation_timeout
                ),
            }));
        }
        delay = fetched
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(poll_interval()?);
    }
}

fn retry_after(headers: &Headers) -> Option<Duration> {
    headers
        .get_optional_str(&HeaderName::from_static("retry-after"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
