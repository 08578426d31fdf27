//! AWS at the egress boundary: the sandboxed AWS plugins hold no
//! credentials; [`AwsSigner`] signs each request the egress policy allowed
//! with SigV4, using the standard AWS credential chain (environment,
//! profiles, `AWS_PROFILE`, credential processes). `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_EC2` work as in every AWS tool.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::Mutex;
use wasmtime_wasi_http::WasiBody;

use crate::egress::EgressAuthorizer;

/// Largest request body the signer buffers (it must hash the whole body).
pub const MAX_SIGNED_BODY: usize = 64 << 20;

/// Headers a plugin may not set itself: the signer owns them.
const SIGNER_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Where AWS requests go and how they are signed, from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsEnvironment {
    /// `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL`, per service.
    pub endpoint_overrides: Vec<(String, String)>,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
}

impl AwsEnvironment {
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut endpoint_overrides = Vec::new();
        for service in ["ec2", "s3"] {
            let specific = var(&format!(
                "AWS_ENDPOINT_URL_{}",
                service.to_ascii_uppercase()
            ));
            if let Some(url) = specific
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .filter(|u| !u.is_empty())
            {
                endpoint_overrides.push((service.to_string(), url));
            }
        }
        AwsEnvironment {
            endpoint_overrides,
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .filter(|r| !r.is_empty()),
        }
    }

    /// The endpoint override for a service, if any.
    pub fn endpoint_for(&self, service: &str) -> Option<&str> {
        self.endpoint_overrides
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, u)| u.as_str())
    }
}

/// The SigV4 scope (service, region) of a request host.
pub fn scope_from_host(host: &str) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let stem = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let labels: Vec<&str> = stem.split('.').collect();
    match labels.as_slice() {
        [service] => Some((service.to_string(), "us-east-1".to_string())),
        [service, region] if service.starts_with("s3") => Some(("s3".into(), region.to_string())),
        [service, region] => Some((service.to_string(), region.to_string())),
        [.., "s3", region] => Some(("s3".into(), region.to_string())),
        _ => None,
    }
}

/// Fetches credentials from the standard chain, caching them until shortly
/// before they expire.
pub struct AwsCredentialSource {
    provider: aws_credential_types::provider::SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
}

impl AwsCredentialSource {
    /// The default chain: environment, shared config and credentials files
    /// (`AWS_PROFILE`), credential processes.
    pub fn default_chain() -> Self {
        let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder();
        // Building the chain is async; defer it to first use.
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(LazyChain {
            chain: tokio::sync::OnceCell::new(),
            builder: std::sync::Mutex::new(Some(chain)),
        });
        AwsCredentialSource {
            provider,
            cached: Mutex::new(None),
        }
    }

    /// Fixed credentials (tests, or a host that obtained them itself).
    pub fn fixed(credentials: Credentials) -> Self {
        AwsCredentialSource {
            provider: aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            cached: Mutex::new(None),
        }
    }

    pub async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
            if fresh {
                return Ok(c.clone());
            }
        }
        let credentials = self.provider.provide_credentials().await.map_err(|e| {
            format!("no AWS credentials from the standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws): {e}")
        })?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

struct LazyChain {
    chain:
        tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
    builder: std::sync::Mutex<Option<aws_config::default_provider::credentials::Builder>>,
}

impl std::fmt::Debug for LazyChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LazyChain")
    }
}

impl ProvideCredentials for LazyChain {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let builder = self
                        .builder
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or_default();
                    builder.build().await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// Signs allowed requests of AWS plugins with SigV4.
pub struct AwsSigner {
    credentials: Arc<AwsCredentialSource>,
    /// Scope for hosts that are not `*.amazonaws.com` (endpoint overrides).
    default_service: String,
    default_region: String,
    /// Fixed signing time (tests against published vectors).
    fixed_time: Option<SystemTime>,
}

impl AwsSigner {
    pub fn new(
        credentials: Arc<AwsCredentialSource>,
        default_service: &str,
        default_region: &str,
    ) -> Self {
        AwsSigner {
            credentials,
            default_service: default_service.to_string(),
            default_region: default_region.to_string(),
            fixed_time: None,
        }
    }

    pub fn at_time(mut self, time: SystemTime) -> Self {
        self.fixed_time = Some(time);
        self
    }

    /// Sign a buffered request in place.
    pub async fn sign(&self, request: &mut http::Request<Bytes>) -> Result<(), String> {
        let credentials = self.credentials.credentials().await?;
        for name in SIGNER_HEADERS {
            request.headers_mut().remove(*name);
        }
        let host = request.uri().host().unwrap_or_default().to_string();
        let hint = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // Scope: the plugin's hint headers, else the AWS host name, else the
        // signer's defaults (endpoint overrides such as a local moto).
        let from_host = scope_from_host(&host);
        let service = hint("x-irhost-aws-service")
            .or_else(|| from_host.as_ref().map(|(s, _)| s.clone()))
            .unwrap_or_else(|| self.default_service.clone());
        let region = hint("x-irhost-aws-region")
            .or_else(|| from_host.as_ref().map(|(_, r)| r.clone()))
            .unwrap_or_else(|| self.default_region.clone());
        request.headers_mut().remove("x-irhost-aws-service");
        request.headers_mut().remove("x-irhost-aws-region");
        if !request.headers().contains_key(http::header::HOST) {
            let authority = request
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let value = http::HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
            request.headers_mut().insert(http::header::HOST, value);
        }
        let identity = credentials.into();
        let mut settings = aws_sigv4::http_request::SigningSettings::default();
        if service == "s3" {
            settings.payload_checksum_kind =
                aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
            settings.uri_path_normalization_mode =
                aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
            settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name(&service)
            .time(self.fixed_time.unwrap_or_else(SystemTime::now))
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect();
        let uri = request.uri().to_string();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            aws_sigv4::http_request::SignableBody::Bytes(request.body()),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

impl EgressAuthorizer for AwsSigner {
    fn authorize(
        &self,
        request: http::Request<WasiBody>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http::Request<WasiBody>, String>> + Send + '_>,
    > {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = Limited::new(body, MAX_SIGNED_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the request body to sign it: {e}"))?
                .to_bytes();
            let mut buffered = http::Request::from_parts(parts, bytes);
            self.sign(&mut buffered).await?;
            let (parts, bytes) = buffered.into_parts();
            let body: WasiBody = Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync();
            Ok(http::Request::from_parts(parts, body))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_signer() -> AwsSigner {
        // The credentials and time of the published AWS SigV4 test suite.
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test-suite",
        );
        AwsSigner::new(
            Arc::new(AwsCredentialSource::fixed(credentials)),
            "service",
            "us-east-1",
        )
        .at_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)) // 20150830T123600Z
    }

    async fn sign(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> http::Request<Bytes> {
        // The suite signs for service "service"; the hint header says so
        // (and is not signed: the signer removes it).
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-irhost-aws-service", "service");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut request = builder.body(Bytes::from(body.to_string())).unwrap();
        vector_signer().sign(&mut request).await.unwrap();
        request
    }

    fn authorization(request: &http::Request<Bytes>) -> &str {
        request.headers()["authorization"].to_str().unwrap()
    }

    // aws-sig-v4-test-suite/get-vanilla
    #[tokio::test]
    async fn published_vector_get_vanilla() {
        let r = sign(
            "GET",
            "https://example.amazonaws.com/",
            &[("host", "example.amazonaws.com")],
            "",
        )
        .await;
        assert_eq!(r.headers()["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            authorization(&r),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    // aws-sig-v4-test-suite/get-vanilla-query-order-key-case
    #[tokio::test]
    async fn published_vector_get_vanilla_query_order_key_case() {
        let r = sign(
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            &[("host", "example.amazonaws.com")],
            "",
        )
        .await;
        assert!(
            authorization(&r).ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            ),
            "{}",
            authorization(&r)
        );
    }

    // aws-sig-v4-test-suite/post-x-www-form-urlencoded
    #[tokio::test]
    async fn published_vector_post_form_body() {
        let r = sign(
            "POST",
            "https://example.amazonaws.com/",
            &[
                ("host", "example.amazonaws.com"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "Param1=value1",
        )
        .await;
        assert!(
            authorization(&r).ends_with(
                "SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            ),
            "{}",
            authorization(&r)
        );
    }

    #[tokio::test]
    async fn a_plugin_cannot_supply_its_own_authorization() {
        let r = sign(
            "GET",
            "https://example.amazonaws.com/",
            &[
                ("host", "example.amazonaws.com"),
                ("authorization", "forged"),
                ("x-amz-date", "19700101T000000Z"),
            ],
            "",
        )
        .await;
        assert!(authorization(&r).starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert_eq!(r.headers().get_all("authorization").iter().count(), 1);
        assert_eq!(r.headers()["x-amz-date"], "20150830T123600Z");
    }

    #[test]
    fn scope_comes_from_the_host() {
        let s = |h: &str| scope_from_host(h).map(|(a, b)| format!("{a}/{b}"));
        assert_eq!(
            s("ec2.eu-west-1.amazonaws.com").as_deref(),
            Some("ec2/eu-west-1")
        );
        assert_eq!(s("iam.amazonaws.com").as_deref(), Some("iam/us-east-1"));
        assert_eq!(
            s("bucket.s3.us-west-2.amazonaws.com").as_deref(),
            Some("s3/us-west-2")
        );
        assert_eq!(s("127.0.0.1"), None);
    }

    #[test]
    fn endpoint_overrides_follow_the_aws_convention() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            AwsEnvironment::from_vars(move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let env = vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_REGION", "eu-west-1"),
        ]);
        assert_eq!(env.endpoint_for("ec2"), Some("http://127.0.0.1:5000"));
        assert_eq!(env.endpoint_for("s3"), Some("http://127.0.0.1:5000"));
        assert_eq!(env.region.as_deref(), Some("eu-west-1"));
        let env = vars(&[
            ("AWS_ENDPOINT_URL", "http://a:1"),
            ("AWS_ENDPOINT_URL_EC2", "http://b:2"),
        ]);
        assert_eq!(env.endpoint_for("ec2"), Some("http://b:2"));
        assert_eq!(env.endpoint_for("s3"), Some("http://a:1"));
        assert_eq!(vars(&[]), AwsEnvironment::default());
    }
}
