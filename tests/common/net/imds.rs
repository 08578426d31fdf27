//! A fake EC2 instance metadata service ([`FakeImds`]), IMDSv2 only (as an
//! instance with `HttpTokens=required`), at the address given in
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
//!
//! It follows AWS's documented behaviour where a client can observe it:
//! - `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds`
//!   between 1 and 21600 (400 otherwise) and is refused (403) when it
//!   carries `X-Forwarded-For`; it answers a random token (`text/plain`)
//!   with the TTL header echoed. Other methods on that path get 405.
//! - Every other request must be a GET (405 otherwise) with
//!   `X-aws-ec2-metadata-token` set to an issued, unexpired token; a
//!   missing, unknown or expired one gets 401.
//! - Paths: `meta-data/iam/security-credentials/` (the role name),
//!   `…/security-credentials/irhost-test-role` (the credentials JSON,
//!   `Expiration` one hour after start), `meta-data/iam/info`,
//!   `meta-data/placement/region`, `…/availability-zone`,
//!   `meta-data/instance-id`, `dynamic/instance-identity/document`; any
//!   other path (the newer `security-credentials-extended/` included, as on
//!   an instance without that feature) gets IMDS's HTML 404.
//! - Like IMDS, every body is `text/plain` (JSON documents too) and the
//!   `Server` header is `EC2ws`.
//!
//! What aws-config 1.13's IMDS client sends, all answered here: one
//! `PUT /latest/api/token` with TTL 21600 (token cached for that TTL, less a
//! buffer; it retries a GET answered 401 or 5xx), then `GET
//! /latest/meta-data/iam/security-credentials/` and `GET
//! …/security-credentials/{role}`; its region chain (when no region is set)
//! asks `GET /latest/meta-data/placement/region`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{random_b64, serve_plain, Background, FullRequest};

pub const ROLE: &str = "irhost-test-role";
pub const ACCOUNT: &str = "123456789012";
pub const INSTANCE_ID: &str = "i-0123456789abcdef0";

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct ImdsRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct ImdsConfig {
    access_key: String,
    secret: String,
    token: String,
    region: String,
    last_updated: String,
    expiration: String,
}

#[derive(Default)]
struct ImdsState {
    /// Issued session tokens and when they expire.
    tokens: HashMap<String, Instant>,
    token_requests: u64,
    credential_requests: u64,
    log: Vec<ImdsRequest>,
}

pub struct FakeImds {
    server: Background,
    state: Arc<Mutex<ImdsState>>,
}

impl FakeImds {
    /// Serve the role `irhost-test-role` with these credentials, on an
    /// instance in `region`.
    pub fn start(access_key: &str, secret: &str, token: &str, region: &str) -> FakeImds {
        let now = chrono::Utc::now();
        let config = Arc::new(ImdsConfig {
            access_key: access_key.to_string(),
            secret: secret.to_string(),
            token: token.to_string(),
            region: region.to_string(),
            last_updated: rfc3339(now),
            expiration: rfc3339(now + chrono::Duration::hours(1)),
        });
        let state = Arc::new(Mutex::new(ImdsState::default()));
        let st = state.clone();
        let server = Background::start("imds", move |listener| {
            serve_plain(listener, move |req| {
                let (method, path) = (req.0.method.to_string(), req.0.uri.path().to_string());
                let response = answer(&config, &st, req);
                st.lock().unwrap().log.push(ImdsRequest {
                    method,
                    path,
                    status: response.status().as_u16(),
                });
                response
            })
        });
        FakeImds { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// `PUT /latest/api/token` requests received (issued or refused).
    pub fn token_requests(&self) -> u64 {
        self.state.lock().unwrap().token_requests
    }

    /// Credentials served (`GET …/security-credentials/irhost-test-role`
    /// answered 200).
    pub fn credential_requests(&self) -> u64 {
        self.state.lock().unwrap().credential_requests
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        self.state.lock().unwrap().log.clone()
    }

    /// Expire every issued token now (the next GET with one gets 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in self.state.lock().unwrap().tokens.values_mut() {
            *expiry = now;
        }
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// IMDS's own error page.
fn error(status: StatusCode) -> Response<Full<Bytes>> {
    let title = format!(
        "{} - {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
         \t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
         <head>\n  <title>{title}</title>\n </head>\n \
         <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    with_server(
        Response::builder()
            .status(status)
            .header("content-type", "text/html"),
        body,
    )
}

fn ok(body: String) -> Response<Full<Bytes>> {
    with_server(
        Response::builder().header("content-type", "text/plain"),
        body,
    )
}

fn with_server(builder: hyper::http::response::Builder, body: String) -> Response<Full<Bytes>> {
    builder
        .header("server", "EC2ws")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn answer(
    config: &ImdsConfig,
    state: &Mutex<ImdsState>,
    (head, _body): FullRequest,
) -> Response<Full<Bytes>> {
    let path = head.uri.path();
    if path == "/latest/api/token" {
        if head.method != Method::PUT {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        state.lock().unwrap().token_requests += 1;
        if head.headers.contains_key("x-forwarded-for") {
            return error(StatusCode::FORBIDDEN);
        }
        let ttl = head
            .headers
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|t| (1..=21_600).contains(t));
        let Some(ttl) = ttl else {
            return error(StatusCode::BAD_REQUEST);
        };
        let token = format!("AQAEA{}", random_b64(42));
        state
            .lock()
            .unwrap()
            .tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
        let mut response = ok(token);
        response
            .headers_mut()
            .insert(TTL_HEADER, ttl.to_string().parse().unwrap());
        return response;
    }
    if head.method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED);
    }
    let authorized = head
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| state.lock().unwrap().tokens.get(t).copied())
        .is_some_and(|expiry| Instant::now() < expiry);
    if !authorized {
        return error(StatusCode::UNAUTHORIZED);
    }
    let region = &config.region;
    let credentials = format!("/latest/meta-data/iam/security-credentials/{ROLE}");
    match path {
        "/latest/meta-data/iam/security-credentials/"
        | "/latest/meta-data/iam/security-credentials" => ok(ROLE.to_string()),
        p if p == credentials || p == format!("{credentials}/") => {
            state.lock().unwrap().credential_requests += 1;
            // IMDS's field order and layout.
            let q = |s: &str| Value::from(s).to_string();
            ok(format!(
                "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : {},\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : {},\n  \"SecretAccessKey\" : {},\n  \"Token\" : {},\n  \"Expiration\" : {}\n}}",
                q(&config.last_updated),
                q(&config.access_key),
                q(&config.secret),
                q(&config.token),
                q(&config.expiration),
            ))
        }
        "/latest/meta-data/iam/info" => ok(serde_json::to_string_pretty(&json!({
            "Code": "Success",
            "LastUpdated": config.last_updated,
            "InstanceProfileArn": format!("arn:aws:iam::{ACCOUNT}:instance-profile/{ROLE}"),
            "InstanceProfileId": "AIPAIRHOSTTESTPROFILE",
        }))
        .unwrap()),
        "/latest/meta-data/placement/region" => ok(region.clone()),
        "/latest/meta-data/placement/availability-zone" => ok(format!("{region}a")),
        "/latest/meta-data/instance-id" => ok(INSTANCE_ID.to_string()),
        "/latest/dynamic/instance-identity/document" => ok(serde_json::to_string_pretty(&json!({
            "accountId": ACCOUNT,
            "architecture": "x86_64",
            "availabilityZone": format!("{region}a"),
            "billingProducts": null,
            "devpayProductCodes": null,
            "marketplaceProductCodes": null,
            "imageId": "ami-0123456789abcdef0",
            "instanceId": INSTANCE_ID,
            "instanceType": "t3.micro",
            "kernelId": null,
            "pendingTime": config.last_updated,
            "privateIp": "10.0.0.10",
            "ramdiskId": null,
            "region": region,
            "version": "2017-09-30",
        }))
        .unwrap()),
        _ => error(StatusCode::NOT_FOUND),
    }
}
