//! AWS at the egress boundary: the sandboxed AWS plugins hold no
//! credentials; [`AwsSigner`] signs each request the egress policy allowed
//! with SigV4, with the responder's [identities](credentials) (the whole
//! default chain, or the role a grant names in the target's account).
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EC2` and a profile's
//! `endpoint_url` work as in every AWS tool.

pub mod credentials;
pub mod evidence;
pub mod http_client;
pub mod mfa;
pub mod xml;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use wasmtime_wasi_http::WasiBody;

use self::credentials::{AwsIdentities, RoleSession};
use super::grant::AssumeRole;

use super::actions::{aws_call, service_of_request, ActionList};
use crate::egress::hook::AuthorizeFuture;
use crate::egress::memory::{buffer_body, HeldBody};
use crate::egress::{
    ApiCall, AuthorizeError, Authorized, CallScope, EgressAuthorizer, MemoryAccount,
};

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

    /// What aws-config found: `AWS_ENDPOINT_URL_<SERVICE>`,
    /// `AWS_ENDPOINT_URL`, the profile's `services` section and
    /// `endpoint_url` (in that order, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
    /// honoured), and the region of the environment or profile.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        let mut endpoint_overrides = Vec::new();
        if let Some(loader) = config.service_config() {
            for service in super::grant::AWS_SERVICES {
                let id = endpoint_service_id(service);
                let Ok(key) = aws_types::service_config::ServiceConfigKey::builder()
                    .service_id(&id)
                    .env("AWS_ENDPOINT_URL")
                    .profile("endpoint_url")
                    .build()
                else {
                    continue;
                };
                if let Some(url) = loader.load_config(key).filter(|u| !u.is_empty()) {
                    endpoint_overrides.push((service.to_string(), url));
                }
            }
        }
        AwsEnvironment {
            endpoint_overrides,
            region: config.region().map(|r| r.to_string()),
        }
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut endpoint_overrides = Vec::new();
        for service in super::grant::AWS_SERVICES {
            let specific = var(&format!(
                "AWS_ENDPOINT_URL_{}",
                endpoint_service_id(service)
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

/// The name a service has in `AWS_ENDPOINT_URL_<SERVICE>` and a profile's
/// `services` section: its SDK service id, which for EFS is not its
/// signing name (`AWS_ENDPOINT_URL_EFS`).
fn endpoint_service_id(service: &str) -> String {
    match service {
        "elasticfilesystem" => "EFS".to_string(),
        other => other.to_ascii_uppercase(),
    }
}

/// Whether `host` (a name or an IP literal) is this machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The SigV4 scope (service, region) of an AWS endpoint host: regional
/// (`ec2.eu-west-1.amazonaws.com`), global (`iam.amazonaws.com`), FIPS
/// (`ec2-fips.us-east-1…`), dual-stack (`s3.dualstack.us-east-1…`), VPC
/// endpoint (`vpce-0abc.ec2.us-east-1.vpce.amazonaws.com`) and S3
/// virtual-hosted (`bucket.s3.us-west-2…`) names; `None` for anything that
/// is not under `amazonaws.com`.
pub fn scope_from_host(host: &str) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let stem = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let mut labels: Vec<&str> = stem.split('.').collect();
    if let [id, service, region, "vpce"] = labels.as_slice() {
        if id.starts_with("vpce-") {
            labels = vec![service, region];
        }
    }
    labels.retain(|l| *l != "dualstack");
    let base = |s: &str| s.strip_suffix("-fips").unwrap_or(s).to_string();
    match labels.as_slice() {
        [service] => Some((base(service), "us-east-1".to_string())),
        [service, region] if service.starts_with("s3") => Some(("s3".into(), region.to_string())),
        [service, region] => Some((base(service), region.to_string())),
        [.., "s3", region] => Some(("s3".into(), region.to_string())),
        _ => None,
    }
}

/// Signs allowed requests of AWS plugins with SigV4.
#[derive(Clone)]
pub struct AwsSigner {
    identities: Arc<AwsIdentities>,
    /// The grant's role (per target account, or fixed).
    role: Option<AssumeRole>,
    /// The granted services: only their AWS endpoints get signatures.
    services: Vec<String>,
    /// Endpoints of the environment (`AWS_ENDPOINT_URL…`) that are signed
    /// too: (scheme, host, port).
    trusted: Vec<(String, String, u16)>,
    /// Scope for hosts that are not `*.amazonaws.com` (endpoint overrides).
    default_service: String,
    default_region: String,
    /// Fixed signing time (tests against published vectors).
    fixed_time: Option<SystemTime>,
    /// The API actions the grant allows.
    actions: ActionList,
}

impl AwsSigner {
    /// A signer for the granted `services` (the first is the default
    /// scope of an environment endpoint).
    pub fn new<S: AsRef<str>>(
        identities: Arc<AwsIdentities>,
        services: &[S],
        default_region: &str,
    ) -> Self {
        let services: Vec<String> = services.iter().map(|s| s.as_ref().to_string()).collect();
        let every: Vec<String> = services.iter().map(|s| format!("{s}:*")).collect();
        AwsSigner {
            actions: ActionList::new(every),
            identities,
            role: None,
            default_service: services.first().cloned().unwrap_or_default(),
            services,
            trusted: Vec::new(),
            default_region: default_region.to_string(),
            fixed_time: None,
        }
    }

    /// Also sign requests to these endpoint URLs of the environment (plain
    /// http only to a loopback address).
    pub fn trusting(mut self, urls: &[String]) -> Self {
        for url in urls {
            let Ok(parsed) = url::Url::parse(url) else {
                continue;
            };
            let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default())
            else {
                continue;
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(host)) {
                self.trusted
                    .push((parsed.scheme().to_string(), host.to_ascii_lowercase(), port));
            }
        }
        self
    }

    /// Whether a request to `uri` may carry a signature: HTTPS to an AWS
    /// endpoint of a granted service, or exactly an endpoint of the
    /// environment. Everything else leaves unsigned.
    pub fn in_scope(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        if self
            .trusted
            .iter()
            .any(|(s, h, p)| s == scheme && *h == host && *p == port)
        {
            return true;
        }
        scheme == "https"
            && port == 443
            && scope_from_host(&host).is_some_and(|(service, _)| self.services.contains(&service))
    }

    /// Sign with this role, assumed from the base identity.
    pub fn assuming(mut self, role: Option<AssumeRole>) -> Self {
        self.role = role;
        self
    }

    /// The role session a call in `scope` is signed with (`None`: the
    /// base identity).
    pub fn session(&self, scope: &CallScope) -> Result<Option<RoleSession>, String> {
        let Some(role) = &self.role else {
            return Ok(None);
        };
        Ok(role
            .arn_for(scope.account.as_deref())?
            .map(|arn| RoleSession {
                arn,
                external_id: role.external_id.clone(),
                session_name: role.session_name_for(&scope.case_id),
                duration: role.duration,
            }))
    }

    /// Sign only requests for these API actions.
    pub fn allowing(mut self, actions: ActionList) -> Self {
        self.actions = actions;
        self
    }

    /// The service and region a request is signed for: the plugin's hint
    /// headers (a granted service only), else the AWS host name, else the
    /// signer's defaults (endpoint overrides such as a local moto).
    fn scope<B>(&self, request: &http::Request<B>) -> (String, String) {
        let host = request.uri().host().unwrap_or_default();
        let hint = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let from_host = scope_from_host(host);
        let service = hint("x-irhost-aws-service")
            .filter(|s| self.services.contains(s))
            .or_else(|| from_host.as_ref().map(|(s, _)| s.clone()))
            .or_else(|| {
                // An endpoint override serving several services (a local
                // emulator): a JSON protocol or EFS request names its own.
                service_of_request(request.uri(), request.headers())
                    .map(str::to_string)
                    .filter(|s| self.services.contains(s))
            })
            .unwrap_or_else(|| self.default_service.clone());
        let region = hint("x-irhost-aws-region")
            .or_else(|| from_host.as_ref().map(|(_, r)| r.clone()))
            .unwrap_or_else(|| self.default_region.clone());
        (service, region)
    }

    /// The API action of a buffered request, if the grant allows it.
    pub fn check(&self, request: &http::Request<Bytes>) -> Result<ApiCall, String> {
        let (service, _) = self.scope(request);
        if !self.services.contains(&service) {
            return Err(format!("{service} is not a granted service"));
        }
        let call = aws_call(
            &service,
            request.method(),
            request.uri(),
            request.headers(),
            request.body(),
        )?;
        if self.actions.allows(&call.action) {
            Ok(call)
        } else {
            Err(format!(
                "{} is not in the plugin's grant ({})",
                call.action, self.actions
            ))
        }
    }

    pub fn at_time(mut self, time: SystemTime) -> Self {
        self.fixed_time = Some(time);
        self
    }

    /// Sign a buffered request in place with the identity of `scope`;
    /// says whose it was.
    pub async fn sign(
        &self,
        request: &mut http::Request<Bytes>,
        scope: &CallScope,
    ) -> Result<String, String> {
        self.sign_as(request, scope, None).await
    }

    /// Pre-sign a request (the signature in its query, valid `expires`,
    /// its payload unsigned): its URI is a credential for exactly that
    /// request, for that long.
    pub async fn presign(
        &self,
        request: &mut http::Request<Bytes>,
        scope: &CallScope,
        expires: std::time::Duration,
    ) -> Result<String, String> {
        self.sign_as(request, scope, Some(expires)).await
    }

    async fn sign_as(
        &self,
        request: &mut http::Request<Bytes>,
        scope: &CallScope,
        presign: Option<std::time::Duration>,
    ) -> Result<String, String> {
        let session = self.session(scope)?;
        let signer = self.identities.identity(session.as_ref()).await?;
        let credentials = signer.credentials;
        for name in SIGNER_HEADERS {
            request.headers_mut().remove(*name);
        }
        let (service, region) = self.scope(request);
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
        if let Some(expires) = presign {
            settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
            settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::NoHeader;
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
            if presign.is_some() {
                aws_sigv4::http_request::SignableBody::UnsignedPayload
            } else {
                aws_sigv4::http_request::SignableBody::Bytes(request.body())
            },
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(signer.described)
    }
}

impl EgressAuthorizer for AwsSigner {
    fn authorize(
        &self,
        request: http::Request<WasiBody>,
        memory: Arc<MemoryAccount>,
        scope: CallScope,
    ) -> AuthorizeFuture<'_> {
        Box::pin(async move {
            if !self.in_scope(request.uri()) {
                // Not a granted service's endpoint: it leaves unsigned.
                return Ok(Authorized {
                    request,
                    call: None,
                    signer: None,
                });
            }
            let (parts, body) = request.into_parts();
            // Buffered to be signed: counted against the plugin's memory.
            let (bytes, held) = buffer_body(&memory, body, MAX_SIGNED_BODY)
                .await
                // Refused as a denial, so that the journal says why.
                .map_err(|e| AuthorizeError::Denied(format!("not signed: {e}")))?;
            let mut buffered = http::Request::from_parts(parts, bytes);
            // The action is identified (and checked) before anything is
            // signed.
            let call = self.check(&buffered).map_err(AuthorizeError::Denied)?;
            let signer = self
                .sign(&mut buffered, &scope)
                .await
                .map_err(AuthorizeError::Failed)?;
            let (parts, bytes) = buffered.into_parts();
            Ok(Authorized {
                request: http::Request::from_parts(parts, HeldBody::new(bytes, held).boxed()),
                call: Some(call),
                signer: Some(signer),
            })
        })
    }
}

#[cfg(test)]
mod tests;
