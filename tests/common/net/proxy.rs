//! An HTTP forward proxy ([`ConnectProxy`]) on 127.0.0.1, as set in
//! `HTTPS_PROXY` / `HTTP_PROXY`.
//!
//! It behaves as squid or any RFC 9110 proxy does for the two forms clients
//! use: `CONNECT host:port` opens a TCP tunnel (answered
//! `HTTP/1.1 200 Connection established`, then bytes are copied both ways
//! until either side closes), and an absolute-form request
//! (`GET http://host:port/path`) is forwarded in origin form over a new
//! connection with hop-by-hop headers (`Proxy-Authorization` included)
//! dropped. Client connections are kept alive between forwarded requests.
//! With [`ConnectProxy::with_auth`] every request needs
//! `Proxy-Authorization: Basic base64(user:pass)`; without it, or with a
//! wrong one, the answer is `407 Proxy Authentication Required` with
//! `Proxy-Authenticate: Basic realm="irhost-test-proxy"`.
//!
//! Unlike a real proxy it resolves no names: it reaches only loopback
//! (`localhost`, 127.0.0.0/8, `[::1]`) and destinations mapped with
//! [`ConnectProxy::route`]; any other destination is recorded and answered
//! `502 Bad Gateway` without a connection attempt.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{forward_once, text, Background};

#[derive(Default)]
struct ProxyState {
    connects: Vec<String>,
    forwarded: Vec<String>,
    /// The cloud API action of each forwarded request (see
    /// [`ConnectProxy::actions`]).
    actions: Vec<String>,
    /// `Proxy-Authorization` values of the requests, decoded
    /// (`user:pass`), `None` where absent or not Basic.
    credentials_seen: Vec<Option<String>>,
    rejected: u64,
    routes: HashMap<String, SocketAddr>,
}

pub struct ConnectProxy {
    server: Background,
    state: Arc<Mutex<ProxyState>>,
}

impl ConnectProxy {
    /// A proxy that needs no credential.
    pub fn start() -> ConnectProxy {
        Self::launch(None)
    }

    /// A proxy that answers 407 unless a request carries
    /// `Proxy-Authorization: Basic base64(user:pass)`.
    pub fn with_auth(user: &str, pass: &str) -> ConnectProxy {
        Self::launch(Some(format!("{user}:{pass}")))
    }

    fn launch(auth: Option<String>) -> ConnectProxy {
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        let auth = Arc::new(auth);
        let server = Background::start("connect-proxy", move |listener| async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let auth = auth.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        let auth = auth.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(&st, auth.as_deref(), req).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        ConnectProxy { server, state }
    }

    /// Send requests for `from` (`host:port`, e.g.
    /// `ec2.us-east-1.amazonaws.com:443`) to `to` (`127.0.0.1:PORT`).
    pub fn route(&self, from: &str, to: &str) {
        let to: SocketAddr = to
            .replace("localhost", "127.0.0.1")
            .parse()
            .unwrap_or_else(|e| panic!("route target {to:?}: {e}"));
        assert!(to.ip().is_loopback(), "route target {to} is not loopback");
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(from.to_ascii_lowercase(), to);
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The destination (`host:port`) of each authorized CONNECT, in order,
    /// reachable or not.
    pub fn connects(&self) -> Vec<String> {
        self.state.lock().unwrap().connects.clone()
    }

    /// Each authorized absolute-form request, `METHOD http://host:port/path`,
    /// in order.
    pub fn forwarded(&self) -> Vec<String> {
        self.state.lock().unwrap().forwarded.clone()
    }

    /// The AWS API action of each forwarded request, in order: the
    /// `X-Amz-Target` action (`SendCommand`), the Query `Action=`
    /// (`StopInstances`), or for S3 `S3 METHOD` with the query's keys
    /// (`S3 POST uploads`, `S3 PUT partNumber&uploadId`).
    pub fn actions(&self) -> Vec<String> {
        self.state.lock().unwrap().actions.clone()
    }

    /// For every request received (authorized or not), the Basic
    /// credential it carried, decoded to `user:pass`.
    pub fn credentials_seen(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().credentials_seen.clone()
    }

    /// Whether any request carried a Basic `Proxy-Authorization` (right or
    /// wrong; [`Self::credentials_seen`] tells which).
    pub fn auth_seen(&self) -> bool {
        self.credentials_seen().iter().any(Option::is_some)
    }

    /// Requests answered 407.
    pub fn rejected(&self) -> u64 {
        self.state.lock().unwrap().rejected
    }
}

fn basic_credential(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get("proxy-authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    String::from_utf8(decoded).ok()
}

/// Where `authority` (`host:port`) may be reached: a route, or loopback.
fn destination(state: &Mutex<ProxyState>, authority: &str) -> Option<SocketAddr> {
    if let Some(to) = state
        .lock()
        .unwrap()
        .routes
        .get(&authority.to_ascii_lowercase())
    {
        return Some(*to);
    }
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().ok()?
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

async fn handle(
    state: &Mutex<ProxyState>,
    auth: Option<&str>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let credential = basic_credential(&req);
    state
        .lock()
        .unwrap()
        .credentials_seen
        .push(credential.clone());
    if let Some(expected) = auth {
        if credential.as_deref() != Some(expected) {
            state.lock().unwrap().rejected += 1;
            let mut response = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "proxy authentication required\n",
            );
            response.headers_mut().insert(
                "proxy-authenticate",
                "Basic realm=\"irhost-test-proxy\"".parse().unwrap(),
            );
            return response;
        }
    }
    if req.method() == Method::CONNECT {
        let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
            return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n");
        };
        state.lock().unwrap().connects.push(authority.clone());
        let Some(to) = destination(state, &authority) else {
            return text(
                StatusCode::BAD_GATEWAY,
                "destination not reachable from the test proxy\n",
            );
        };
        let target = match TcpStream::connect(to).await {
            Ok(t) => t,
            Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("connect {to}: {e}\n")),
        };
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            let mut client = TokioIo::new(upgraded);
            let mut target = target;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                b"Connection established",
            ));
        return response;
    }
    if req.uri().scheme_str() != Some("http") {
        return text(
            StatusCode::BAD_REQUEST,
            "a proxy request is CONNECT or absolute-form http://\n",
        );
    }
    let uri = req.uri().clone();
    state
        .lock()
        .unwrap()
        .forwarded
        .push(format!("{} {uri}", req.method()));
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let authority = if authority.contains(':') {
        authority
    } else {
        format!("{authority}:80")
    };
    let Some(to) = destination(state, &authority) else {
        return text(
            StatusCode::BAD_GATEWAY,
            "destination not reachable from the test proxy\n",
        );
    };
    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key("host") {
        if let Some(a) = uri.authority() {
            parts.headers.insert("host", a.as_str().parse().unwrap());
        }
    }
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let action = api_action(&parts, &body);
    state.lock().unwrap().actions.push(action);
    forward_once(to, parts, body)
        .await
        .unwrap_or_else(|e| text(StatusCode::BAD_GATEWAY, &e))
}

/// The AWS API action a request calls, as [`ConnectProxy::actions`] names it.
fn api_action(parts: &hyper::http::request::Parts, body: &[u8]) -> String {
    if let Some(target) = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let query = parts.uri.query().unwrap_or_default();
    let form = String::from_utf8_lossy(body);
    let action = query
        .split('&')
        .chain(form.split('&'))
        .find_map(|kv| kv.strip_prefix("Action="));
    match action {
        Some(action) => action.to_string(),
        None => {
            let keys: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("X-Amz-"))
                .map(|kv| kv.split('=').next().unwrap_or(kv))
                .collect();
            format!("S3 {} {}", parts.method, keys.join("&"))
        }
    }
}
