//! Fake Azure identity endpoints ([`FakeAzureIdentity`]) on one port:
//!
//! - the VM instance metadata service's managed identity,
//!   `GET /metadata/identity/oauth2/token?api-version=…&resource=…`
//!   (optional `client_id`, `object_id`, `msi_res_id`), header
//!   `Metadata: true`;
//! - App Service / Functions managed identity (`IDENTITY_ENDPOINT`),
//!   `GET /msi/token?api-version=2019-08-01&resource=…` with header
//!   `X-IDENTITY-HEADER` equal to [`FakeAzureIdentity::identity_header`]
//!   (`IDENTITY_HEADER`);
//! - a Microsoft Entra token endpoint (the authority), `POST
//!   /{tenant}/oauth2/v2.0/token` with a form body for the client-credentials
//!   grant, by secret or by client assertion (certificate or federated
//!   workload identity).
//!
//! Faithful to the documented contracts where a client can tell: IMDS
//! answers 400 `invalid_request` without `Metadata: true`, with
//! `X-Forwarded-For`, or without `resource`, and 400 for a missing or
//! unknown api-version; App Service answers 401 for a missing or wrong
//! identity header and 400 for another api-version; Entra answers with its
//! OAuth error JSON (400, or 401 `invalid_client`; `AADSTS` codes where the
//! code is known: 900144, 70003, 1002012, 7000218, 7000215, 50027) for a
//! body that is not a form, a missing parameter, another grant type, a scope
//! that is not one `…/.default`, both or neither of secret and assertion, an
//! empty secret, another assertion type or an assertion that is not a JWT.
//! Response bodies have the documented shapes (IMDS's `expires_in` and
//! `expires_on` are strings; Entra's `expires_in` is a number); access
//! tokens are random JWT-shaped strings (header.payload.signature, base64url)
//! whose payload carries `aud`, `iss`, `tid`, `appid`, `oid` (the client's
//! object id, [`object_id`]) and `exp`. It does not check
//! secrets or assertion signatures: any client and any secret gets a token,
//! and tests assert on what was sent via [`FakeAzureIdentity::requests`].

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{param, query_pairs, random_b64, serve_plain, Background, FullRequest};

/// The api-versions Azure IMDS accepts for the identity endpoint.
const IMDS_API_VERSIONS: &[&str] = &[
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
];

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureTokenEndpoint {
    /// `GET /metadata/identity/oauth2/token` (VM IMDS).
    Imds,
    /// `GET /msi/token` (App Service / Functions).
    AppService,
    /// `POST /{tenant}/oauth2/v2.0/token` (Entra).
    Entra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureClientCredential {
    Secret(String),
    /// The `client_assertion` text (a JWT).
    Assertion(String),
}

/// One token request as the fake saw it.
#[derive(Debug, Clone)]
pub struct AzureTokenRequest {
    pub endpoint: AzureTokenEndpoint,
    /// The tenant in the path (Entra only).
    pub tenant: Option<String>,
    /// `resource` (managed identity) or `scope` (Entra).
    pub resource: Option<String>,
    pub client_id: Option<String>,
    /// Entra only: the secret or the assertion sent (when both were sent,
    /// which Entra refuses, the assertion).
    pub credential: Option<AzureClientCredential>,
    pub status: u16,
    /// The token issued, when the status is 200.
    pub token: Option<String>,
}

#[derive(Default)]
struct IdentityState {
    requests: Vec<AzureTokenRequest>,
}

pub struct FakeAzureIdentity {
    server: Background,
    state: Arc<Mutex<IdentityState>>,
    identity_header: String,
}

impl FakeAzureIdentity {
    pub fn start() -> FakeAzureIdentity {
        let identity_header = format!("irhost-identity-{}", random_b64(16));
        let state = Arc::new(Mutex::new(IdentityState::default()));
        let st = state.clone();
        let secret = identity_header.clone();
        let server = Background::start("azure-identity", move |listener| {
            serve_plain(listener, move |req| {
                let (record, response) = answer(&secret, req);
                if let Some(record) = record {
                    st.lock().unwrap().requests.push(record);
                }
                response
            })
        });
        FakeAzureIdentity {
            server,
            state,
            identity_header,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT`: the IMDS base and the Entra authority.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The App Service `IDENTITY_ENDPOINT`: `http://127.0.0.1:PORT/msi/token`.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.endpoint())
    }

    /// The App Service `IDENTITY_HEADER` secret.
    pub fn identity_header(&self) -> &str {
        &self.identity_header
    }

    /// Every token request, in order (paths that are no token endpoint are
    /// answered 404 and not recorded).
    pub fn requests(&self) -> Vec<AzureTokenRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The access tokens issued, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.token)
            .collect()
    }
}

/// The object id tokens of `client_id` carry (one per client, as Entra's
/// service principals have).
pub fn object_id(client_id: &str) -> String {
    use sha2::Digest as _;
    let h = hex::encode(&sha2::Sha256::digest(client_id.as_bytes())[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A random JWT-shaped access token and its expiry (unix seconds).
fn access_token(audience: &str, tenant: &str, client_id: &str) -> (String, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = now + 3599;
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "irhost-test"});
    let payload = json!({
        "aud": audience, "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now, "nbf": now, "exp": exp, "tid": tenant, "appid": client_id,
        "oid": object_id(client_id),
        "uti": random_b64(16),
    });
    let token = format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        random_b64(64)
    );
    (token, exp)
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn answer(
    identity_header: &str,
    (head, body): FullRequest,
) -> (Option<AzureTokenRequest>, Response<Full<Bytes>>) {
    let path = head.uri.path().to_string();
    let query = query_pairs(&head.uri);
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    let mut record = AzureTokenRequest {
        endpoint: AzureTokenEndpoint::Imds,
        tenant: None,
        resource: None,
        client_id: None,
        credential: None,
        status: 0,
        token: None,
    };
    let response = if path == "/metadata/identity/oauth2/token" {
        record.resource = param(&query, "resource").map(str::to_string);
        record.client_id = param(&query, "client_id").map(str::to_string);
        imds(
            &head.method,
            &query,
            header("metadata"),
            header("x-forwarded-for"),
            &mut record,
        )
    } else if path == "/msi/token" {
        record.endpoint = AzureTokenEndpoint::AppService;
        record.resource = param(&query, "resource").map(str::to_string);
        record.client_id = param(&query, "client_id").map(str::to_string);
        app_service(
            &head.method,
            &query,
            header("x-identity-header"),
            identity_header,
            &mut record,
        )
    } else if let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .filter(|t| !t.is_empty() && !t.contains('/'))
    {
        record.endpoint = AzureTokenEndpoint::Entra;
        record.tenant = Some(tenant.to_string());
        let form_body = header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let form: Vec<(String, String)> = if form_body {
            url::form_urlencoded::parse(&body).into_owned().collect()
        } else {
            Vec::new()
        };
        record.resource = param(&form, "scope").map(str::to_string);
        record.client_id = param(&form, "client_id").map(str::to_string);
        record.credential = match (
            param(&form, "client_assertion"),
            param(&form, "client_secret"),
        ) {
            (Some(a), _) => Some(AzureClientCredential::Assertion(a.to_string())),
            (None, Some(s)) => Some(AzureClientCredential::Secret(s.to_string())),
            (None, None) => None,
        };
        if head.method == Method::POST {
            entra(tenant, &form, &mut record)
        } else {
            oauth_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "AADSTS900561: The endpoint only accepts POST requests.",
            )
        }
    } else {
        return (
            None,
            reply(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
        );
    };
    record.status = response.status().as_u16();
    (Some(record), response)
}

/// The managed-identity response both IMDS and App Service give.
fn managed_identity_token(record: &mut AzureTokenRequest, resource: &str) -> Response<Full<Bytes>> {
    let client_id = record
        .client_id
        .clone()
        .unwrap_or_else(|| "00000000-0000-0000-0000-00000000c11d".to_string());
    let (token, exp) = access_token(resource, "irhost-test-tenant", &client_id);
    record.token = Some(token.clone());
    reply(
        StatusCode::OK,
        json!({
            "access_token": token,
            "client_id": client_id,
            "expires_in": "3599",
            "expires_on": exp.to_string(),
            "ext_expires_in": "3599",
            "not_before": (exp - 3599).to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

fn imds(
    method: &Method,
    query: &[(String, String)],
    metadata: Option<&str>,
    forwarded_for: Option<&str>,
    record: &mut AzureTokenRequest,
) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "Method not allowed"}),
        );
    }
    if forwarded_for.is_some() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Request contains X-Forwarded-For header",
        );
    }
    if !metadata.is_some_and(|m| m.eq_ignore_ascii_case("true")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    match param(query, "api-version") {
        None => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds", "newest-versions": ["2021-02-01", "2020-12-01", "2020-10-01"]}),
            )
        }
        Some(v) if !IMDS_API_VERSIONS.contains(&v) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds", "newest-versions": ["2021-02-01", "2020-12-01", "2020-10-01"]}),
            )
        }
        Some(_) => {}
    }
    match param(query, "resource").filter(|r| !r.is_empty()) {
        Some(resource) => managed_identity_token(record, resource),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required audience parameter not specified",
        ),
    }
}

fn app_service(
    method: &Method,
    query: &[(String, String)],
    sent_header: Option<&str>,
    identity_header: &str,
    record: &mut AzureTokenRequest,
) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "Method not allowed"}),
        );
    }
    if sent_header != Some(identity_header) {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER is missing or does not match"}),
        );
    }
    if param(query, "api-version") != Some("2019-08-01") {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"statusCode": 400, "message": "An api-version of 2019-08-01 is required with X-IDENTITY-HEADER"}),
        );
    }
    match param(query, "resource").filter(|r| !r.is_empty()) {
        Some(resource) => managed_identity_token(record, resource),
        None => reply(
            StatusCode::BAD_REQUEST,
            json!({"statusCode": 400, "message": "resource is required"}),
        ),
    }
}

/// Whether `s` is three base64url segments whose first decodes to a JSON
/// object (a JWT, as Entra requires of `client_assertion`).
fn is_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty())
        && engine
            .decode(parts[0].trim_end_matches('='))
            .ok()
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .is_some_and(|h| h.is_object())
}

fn entra(
    tenant: &str,
    form: &[(String, String)],
    record: &mut AzureTokenRequest,
) -> Response<Full<Bytes>> {
    let bad = |code: &str, error: &str, text: &str| {
        oauth_error(StatusCode::BAD_REQUEST, error, &format!("{code}: {text}"))
    };
    for name in ["grant_type", "client_id", "scope"] {
        if param(form, name).is_none_or(str::is_empty) {
            return bad(
                "AADSTS900144",
                "invalid_request",
                &format!("The request body must contain the following parameter: '{name}'."),
            );
        }
    }
    if param(form, "grant_type") != Some("client_credentials") {
        return bad(
            "AADSTS70003",
            "unsupported_grant_type",
            "The app requested an unsupported grant type.",
        );
    }
    let scope = param(form, "scope").unwrap_or_default();
    if !scope.ends_with("/.default") || scope.contains(' ') {
        return bad("AADSTS1002012", "invalid_scope", &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
    }
    let assertion = param(form, "client_assertion");
    let secret = param(form, "client_secret");
    match (secret, assertion) {
        (Some(_), Some(_)) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Only one of 'client_secret' and 'client_assertion' may be presented."),
        (None, None) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
        (Some(""), None) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "AADSTS7000215: Invalid client secret provided."),
        (None, Some(a)) => {
            if param(form, "client_assertion_type") != Some(JWT_BEARER) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The 'client_assertion_type' must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.");
            }
            if !is_jwt(a) {
                return bad("AADSTS50027", "invalid_request", "JWT token is invalid or malformed.");
            }
        }
        (Some(_), None) => {}
    }
    let client_id = param(form, "client_id").unwrap_or_default();
    let audience = scope.trim_end_matches("/.default");
    let (token, _) = access_token(audience, tenant, client_id);
    record.token = Some(token.clone());
    reply(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}
