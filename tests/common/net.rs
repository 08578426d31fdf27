//! Real network fixtures for tests that run the `irhost` binary as a
//! subprocess: a test certificate authority and a TLS front
//! ([`tls`]), an HTTP forward proxy ([`proxy`]), the EC2 instance metadata
//! service ([`imds`]) and the Azure identity endpoints ([`azure_identity`]).
//!
//! Each fixture binds 127.0.0.1 on a free port and serves from its own
//! background thread with its own single-threaded tokio runtime, so plain
//! (non-async) `#[test]` functions can use them; dropping a fixture stops its
//! accept loop and drops the runtime, which ends every open connection.
//! Nothing here connects anywhere but loopback.

pub mod azure_identity;
pub mod imds;
pub mod proxy;
pub mod tls;

// Not every test crate that includes `common` uses every fixture.
#[allow(unused_imports)]
pub use azure_identity::{
    AzureClientCredential, AzureTokenEndpoint, AzureTokenRequest, FakeAzureIdentity,
};
#[allow(unused_imports)]
pub use imds::{FakeImds, ImdsRequest};
#[allow(unused_imports)]
pub use proxy::ConnectProxy;
#[allow(unused_imports)]
pub use tls::{TestCa, TlsFront};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, CONNECTION};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng as _;
use tokio::net::{TcpListener, TcpStream};

/// A server running on its own thread and runtime until dropped.
pub(super) struct Background {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Bind 127.0.0.1:0 and run `serve` on the listener in a new thread.
    pub(super) fn start<F, Fut>(name: &str, serve: F) -> Background
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fixture-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = serve(listener) => {}
                        _ = rx => {}
                    }
                });
                // Dropping the runtime cancels every connection task.
                drop(rt);
            })
            .unwrap();
        Background {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub(super) fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request read in full: its head and its body.
pub(super) type FullRequest = (hyper::http::request::Parts, Bytes);

/// Serve HTTP/1.1 (keep-alive) on every accepted connection, handing each
/// request, read in full, to `handler`.
pub(super) async fn serve_plain<H>(listener: TcpListener, handler: H)
where
    H: Fn(FullRequest) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = match body.collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => {
                            return Ok::<_, Infallible>(text(
                                StatusCode::BAD_REQUEST,
                                &e.to_string(),
                            ))
                        }
                    };
                    Ok(handler((parts, body)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A response with a body and a content type.
pub(super) fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

pub(super) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

pub(super) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json; charset=utf-8", value.to_string())
}

/// `n` random bytes, base64url without padding.
pub(super) fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The decoded query string of a request.
pub(super) fn query_pairs(uri: &hyper::Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Remove hop-by-hop headers (RFC 9110 §7.6.1), as a proxy does: those
/// named in `Connection` and the standard ones.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    ] {
        headers.remove(name);
    }
}

/// Send one request (head without hop-by-hop headers, body in full) to
/// `upstream` over a new plain-HTTP connection and read the response in full.
pub(super) async fn forward_once(
    upstream: SocketAddr,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    strip_hop_by_hop(&mut parts.headers);
    let origin_form = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = origin_form.parse().map_err(|e| format!("{e}"))?;
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connect {upstream}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with {upstream}: {e}"))?;
    tokio::spawn(conn);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("request to {upstream}: {e}"))?;
    let (mut head, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("response body from {upstream}: {e}"))?
        .to_bytes();
    strip_hop_by_hop(&mut head.headers);
    Ok(Response::from_parts(head, Full::new(body)))
}
