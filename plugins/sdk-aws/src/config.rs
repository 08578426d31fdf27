//! The `SdkConfig` an AWS plugin's service client is built from: wasi:http
//! (aws-smithy-wasm's client), wasi sleep, the standard retry strategy, the
//! region and an optional endpoint, and no credentials.
//!
//! A plugin turns it into its service config with the service's
//! `config::Builder::from(&sdk_config)` (which carries the HTTP client,
//! sleep, retry config, region, endpoint and behavior version over) and adds
//! what is the service's own: `allow_no_auth()`, so that the request goes
//! out unsigned for the host to sign, and e.g. S3's `force_path_style`.

use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_wasm::wasi::{WasiHttpClientBuilder, WasiSleep};
use aws_types::region::Region;
use aws_types::SdkConfig;

/// The configuration for one call's client: `region`, `endpoint_url` when
/// given and not empty (else the SDK resolves the service's own endpoint),
/// `max_attempts` SDK attempts per request (at least one).
pub fn sdk_config(region: &str, endpoint_url: Option<&str>, max_attempts: u32) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(WasiHttpClientBuilder::new().build())
        .sleep_impl(WasiSleep)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)));
    if let Some(endpoint) = endpoint_url.filter(|e| !e.is_empty()) {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_region_endpoint_and_attempts_and_no_credentials() {
        let config = sdk_config("eu-west-1", Some("http://127.0.0.1:5000"), 0);
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            config.retry_config().map(RetryConfig::max_attempts),
            Some(1)
        );
        assert!(config.http_client().is_some());
        assert!(config.sleep_impl().is_some());
        assert!(config.credentials_provider().is_none());
        assert_eq!(config.behavior_version(), Some(BehaviorVersion::latest()));
    }

    #[test]
    fn an_empty_endpoint_is_no_endpoint() {
        assert_eq!(sdk_config("us-east-1", Some(""), 3).endpoint_url(), None);
        assert_eq!(sdk_config("us-east-1", None, 3).endpoint_url(), None);
    }
}
