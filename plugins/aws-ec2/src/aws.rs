//! The EC2 client as the sandbox builds it, EC2's error codes, and small
//! helpers shared by the verbs. (The SDK configuration and the mapping of
//! SDK errors are irhost-plugin-sdk-aws's, shared with the S3 vault.)
//!
//! The client carries no credentials: requests leave the component unsigned
//! (the `no_auth` scheme, enabled with `allow_no_auth()`) and the host signs
//! them with SigV4 at its egress boundary, for hosts the plugin may reach.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_ec2::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{
    Filter, Instance, NetworkInterface as Eni, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use irhost_plugin_sdk::prelude::*;
use irhost_plugin_sdk_aws::{Call, ServiceErrors};

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

/// EC2's error codes by the contract's error kind.
const EC2_ERRORS: ServiceErrors = ServiceErrors {
    service: "EC2",
    not_found: &["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"],
    throttled: &[
        "RequestLimitExceeded",
        "SnapshotCreationPerVolumeRateExceeded",
        "Throttling",
        "ThrottlingException",
    ],
    throttled_statuses: &[],
    denied: &[
        "UnauthorizedOperation",
        "AuthFailure",
        "Blocked",
        "OptInRequired",
        "SignatureDoesNotMatch",
    ],
    conflict: &["IncorrectInstanceState", "IncorrectState"],
    invalid_input: &[],
    name_by_status: false,
};

/// Where and how the plugin talks to EC2 for one call.
pub struct Ec2 {
    pub client: Client,
    pub region: String,
    /// Milliseconds the engine is asked to wait after a throttling answer.
    pub retry_after_ms: u64,
}

pub fn param_or<T: serde::de::DeserializeOwned>(name: &str, default: T) -> Result<T, PluginError> {
    Ok(irhost_plugin_sdk::param(name)?.unwrap_or(default))
}

impl Ec2 {
    /// Region: the target's, else the `region` parameter, else us-east-1.
    /// Endpoint: the `endpoint_url` parameter (the host passes
    /// AWS_ENDPOINT_URL here), else the SDK's own resolution
    /// (`https://ec2.{region}.amazonaws.com` in the aws partition).
    pub fn for_target(target: &Target) -> Result<Self, PluginError> {
        let region = match target.region.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => param_or("region", "us-east-1".to_string())?,
        };
        let endpoint: Option<String> = irhost_plugin_sdk::param("endpoint_url")?;
        // One attempt by default: the engine owns retries (with the throttled
        // retry-after the plugin reports).
        let max_attempts: u32 = param_or("max_attempts", 1)?;
        let retry_after_ms: u64 = param_or("retry_after_ms", 2000)?;
        let sdk_config =
            irhost_plugin_sdk_aws::sdk_config(&region, endpoint.as_deref(), max_attempts);
        let config = aws_sdk_ec2::config::Builder::from(&sdk_config)
            // No credentials provider: the sigv4 scheme has no identity, so
            // the resolver falls back to no_auth and the request goes out
            // unsigned; the host signs it.
            .allow_no_auth()
            .build();
        Ok(Ec2 {
            client: Client::from_conf(config),
            region,
            retry_after_ms,
        })
    }

    /// Map an SDK error to the contract's error, naming the operation.
    pub fn err<E>(&self, operation: &str, error: SdkError<E>) -> PluginError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        EC2_ERRORS.map(&Call::new(operation, self.retry_after_ms), error)
    }

    /// The instance, or not-found.
    pub async fn instance(&self, id: &str) -> Result<Instance, PluginError> {
        let out = self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| self.err("DescribeInstances", e))?;
        first_instance(out.reservations(), id)
    }

    /// The instance's ENIs as DescribeNetworkInterfaces reports them, in
    /// device-index order.
    pub async fn interfaces(&self, instance: &Instance) -> Result<Vec<Eni>, PluginError> {
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
) -> Result<Instance, PluginError> {
    reservations
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| PluginError::NotFound(format!("instance {id} does not exist")))
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

/// RFC 3339 time, now.
pub fn now_rfc3339() -> String {
    DateTime::from(SystemTime::now())
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

pub fn fmt_time(time: Option<&DateTime>) -> Option<String> {
    time.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
}

/// Keeps the raw body of the response it sees, for evidence that should be
/// the API's own words rather than our re-encoding of them.
#[derive(Debug, Clone, Default)]
pub struct CaptureBody(pub Arc<Mutex<Option<Vec<u8>>>>);

impl CaptureBody {
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok().and_then(|mut b| b.take())
    }
}

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "irhost-capture-body"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(bytes.to_vec());
            }
        }
        Ok(())
    }
}
