//! The EC2 client of the native baseline, error classification as the plugin
//! does it (so that the same failures are retried), the per-Action call
//! counter and small helpers shared by the steps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_ec2::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{
    Filter, Instance, NetworkInterface as Eni, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;

pub const TAG_CASE: &str = "irhost:case";
pub const TAG_SOURCE_INSTANCE: &str = "irhost:source-instance";
pub const TAG_VOLUME: &str = "irhost:volume";
pub const TAG_DEVICE: &str = "irhost:device";
pub const TAG_TIME: &str = "irhost:time";
pub const TAG_ROLE: &str = "irhost:role";
pub const TAG_PREVIOUS_GROUPS: &str = "irhost:previous-groups";
pub const TAG_SEALED: &str = "irhost:sealed";
pub const TAG_SEAL_DIGEST: &str = "irhost:seal-digest";
pub const TAG_SEALED_AT: &str = "irhost:sealed-at";

/// A failed step, classified as the plugin classifies it (`Ec2::err` in
/// plugins/aws-ec2/src/aws.rs) and retried as the engine retries it.
#[derive(Debug)]
pub enum Failure {
    NotFound(String),
    Denied(String),
    Conflict(String),
    Throttled {
        message: String,
        retry_after_ms: u64,
    },
    Provider {
        code: String,
        message: String,
    },
}

impl Failure {
    /// What the engine retries (CallFailure::retryable): throttling and
    /// provider errors.
    pub fn retryable(&self) -> bool {
        matches!(self, Failure::Throttled { .. } | Failure::Provider { .. })
    }

    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Failure::Throttled { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound(m) => write!(f, "not found: {m}"),
            Failure::Denied(m) => write!(f, "denied: {m}"),
            Failure::Conflict(m) => write!(f, "conflict: {m}"),
            Failure::Throttled { message, .. } => write!(f, "throttled: {message}"),
            Failure::Provider { code, message } => write!(f, "provider error {code}: {message}"),
        }
    }
}

/// Counts every request that goes on the wire, by the `Action` of its
/// query-protocol body: what moto's `--count-actions` counts on its side.
#[derive(Debug, Clone, Default)]
pub struct ActionCounter(pub Arc<Mutex<BTreeMap<String, u64>>>);

impl ActionCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Intercept for ActionCounter {
    fn name(&self) -> &'static str {
        "bench-action-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let action = context
            .request()
            .body()
            .bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|body| {
                body.split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "(unknown)".to_string());
        if let Ok(mut m) = self.0.lock() {
            *m.entry(action).or_insert(0) += 1;
        }
        Ok(())
    }
}

pub struct Ec2 {
    pub client: Client,
    pub retry_after_ms: u64,
}

impl Ec2 {
    /// One client for the whole run, as a native program would hold it:
    /// hyper 1 over plain HTTP with its connection pool, static credentials
    /// (the SDK signs with SigV4), and one attempt per call like the plugin
    /// (`max_attempts` 1: the engine, here `run_step`, owns retries).
    /// `reuse` false: no idle connection is kept, so every request opens a
    /// new one.
    /// `ca`: a PEM bundle to trust for an HTTPS endpoint (rustls, ring).
    pub fn new(
        endpoint: &str,
        region: &str,
        counter: ActionCounter,
        reuse: bool,
        ca: Option<Vec<u8>>,
    ) -> Self {
        let mut http = aws_smithy_http_client::Builder::new();
        if !reuse {
            http = http.pool_max_idle_per_host(0);
        }
        let http = match ca {
            None => http.build_http(),
            Some(pem) => {
                use aws_smithy_http_client::tls;
                let trust = tls::TrustStore::empty()
                    .with_native_roots(false)
                    .with_pem_certificate(pem);
                http.tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .tls_context(
                    tls::TlsContext::builder()
                        .with_trust_store(trust)
                        .build()
                        .expect("a TLS context"),
                )
                .build_https()
            }
        };
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .interceptor(counter)
            .build();
        Ec2 {
            client: Client::from_conf(config),
            retry_after_ms: 2000,
        }
    }

    /// Same mapping as the plugin's `Ec2::err`.
    pub fn err<E>(&self, operation: &str, error: SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = error.code().map(str::to_string);
        let message = error
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
        let text = format!("{operation}: {message}");
        match code.as_deref() {
            Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed") => {
                Failure::NotFound(text)
            }
            Some(
                "RequestLimitExceeded"
                | "SnapshotCreationPerVolumeRateExceeded"
                | "Throttling"
                | "ThrottlingException",
            ) => Failure::Throttled {
                message: text,
                retry_after_ms: self.retry_after_ms,
            },
            Some(
                "UnauthorizedOperation"
                | "AuthFailure"
                | "Blocked"
                | "OptInRequired"
                | "SignatureDoesNotMatch",
            ) => Failure::Denied(text),
            Some("IncorrectInstanceState" | "IncorrectState") => Failure::Conflict(text),
            Some(code) => Failure::Provider {
                code: code.to_string(),
                message: text,
            },
            None => {
                let code = match &error {
                    SdkError::TimeoutError(_) => "timeout",
                    SdkError::DispatchFailure(_) => "dispatch",
                    SdkError::ResponseError(_) => "response",
                    SdkError::ConstructionFailure(_) => "construction",
                    _ => "unknown",
                };
                Failure::Provider {
                    code: code.into(),
                    message: text,
                }
            }
        }
    }

    pub async fn instance(&self, id: &str) -> Result<Instance, Failure> {
        let out = self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| self.err("DescribeInstances", e))?;
        first_instance(out.reservations(), id)
    }

    /// The instance's ENIs in device-index order (one DescribeNetworkInterfaces).
    pub async fn interfaces(&self, instance: &Instance) -> Result<Vec<Eni>, Failure> {
        let mut ids: Vec<(i32, String)> = instance
            .network_interfaces()
            .iter()
            .filter_map(|n| {
                let index = n
                    .attachment()
                    .and_then(|a| a.device_index())
                    .unwrap_or(i32::MAX);
                n.network_interface_id().map(|id| (index, id.to_string()))
            })
            .collect();
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_network_interfaces()
            .set_network_interface_ids(Some(ids.iter().map(|(_, id)| id.clone()).collect()))
            .send()
            .await
            .map_err(|e| self.err("DescribeNetworkInterfaces", e))?;
        let mut enis = out.network_interfaces().to_vec();
        enis.sort_by_key(|eni| {
            ids.iter()
                .position(|(_, id)| Some(id.as_str()) == eni.network_interface_id())
                .unwrap_or(usize::MAX)
        });
        Ok(enis)
    }
}

pub fn first_instance(
    reservations: &[aws_sdk_ec2::types::Reservation],
    id: &str,
) -> Result<Instance, Failure> {
    reservations
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| Failure::NotFound(format!("instance {id} does not exist")))
}

pub fn state_name(instance: &Instance) -> String {
    instance
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

pub fn tag_spec(resource: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags))
        .build()
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

pub fn now_rfc3339() -> String {
    DateTime::from(SystemTime::now())
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
