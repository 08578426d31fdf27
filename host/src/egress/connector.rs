//! irhost's own connection to an allowed host: resolve the name, keep only
//! the addresses the policy lets it reach, connect to an address that was
//! checked (so a name cannot re-resolve elsewhere between check and use),
//! TLS with irhost's rustls configuration (its crypto provider installed
//! explicitly), HTTP/1.1 over hyper.
//!
//! One connection per request, like the wasi-http default it replaces;
//! proxies, CA bundles and pooling belong here too.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::address::internal_class;

/// Which resolved addresses a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only: a name allowed by a pattern.
    Public,
    /// Any address: an IP literal the policy names, the environment's own
    /// endpoint, or a request of the host itself.
    Any,
}

/// Why a request did not reach its host.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The name resolves only to addresses the request may not reach: a
    /// denial, journaled like the policy's own.
    Refused(String),
    /// Resolution, connection, TLS or HTTP failed.
    Failed(Error),
}

/// The response and the future that drives the rest of its connection.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
);

/// How outbound requests are made; one per process.
pub struct EgressConnector {
    tls: tokio_rustls::TlsConnector,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

impl EgressConnector {
    /// The process's connector: rustls with the `ring` provider and the
    /// Mozilla root certificates.
    pub fn shared() -> &'static EgressConnector {
        static SHARED: OnceLock<EgressConnector> = OnceLock::new();
        SHARED.get_or_init(EgressConnector::new)
    }

    fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        EgressConnector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// The addresses a request to `uri` may connect to, in resolver order.
    pub async fn resolve(
        &self,
        uri: &http::Uri,
        reach: Reach,
        options: Option<RequestOptions>,
    ) -> Result<Vec<SocketAddr>, ConnectFailure> {
        let host = uri
            .host()
            .ok_or(ConnectFailure::Failed(Error::HttpRequestUriInvalid))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if let Ok(ip) = host.parse::<IpAddr>() {
            // The policy allowed a literal only by an entry naming it.
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let timeout = connect_timeout(options);
        let resolved: Vec<SocketAddr> =
            match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
                Err(_) => return Err(ConnectFailure::Failed(Error::DnsTimeout)),
                Ok(Err(e)) => {
                    return Err(ConnectFailure::Failed(Error::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    }))
                }
                Ok(Ok(addrs)) => addrs.collect(),
            };
        if reach == Reach::Any {
            return Ok(resolved);
        }
        let (public, internal): (Vec<_>, Vec<_>) = resolved
            .into_iter()
            .partition(|a| internal_class(a.ip()).is_none());
        if public.is_empty() && !internal.is_empty() {
            let list: Vec<String> = internal
                .iter()
                .map(|a| format!("{} ({})", a.ip(), internal_class(a.ip()).unwrap_or("")))
                .collect();
            return Err(ConnectFailure::Refused(format!(
                "{host} resolves to {}: a name reaches a loopback, link-local or private address only when it is the environment's endpoint; allow the address itself to reach it",
                list.join(", ")
            )));
        }
        Ok(public)
    }

    /// Send `request` over a new connection to the first of `addrs` that
    /// accepts one.
    pub async fn send(
        &self,
        addrs: &[SocketAddr],
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, Error> {
        let connect = connect_timeout(options);
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            .max(Duration::from_nanos(1));
        let uri = request.uri().clone();
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
        let tcp = tokio::time::timeout(connect, connect_first(addrs))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Connect)?;
        let stream: Box<dyn Stream> = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            let name = server_name(host)?;
            let tls = tokio::time::timeout(connect, self.tls.connect(name, tcp))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) = tokio::time::timeout(
            connect,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
        // The request line carries only the path: the authority is in Host.
        *request.uri_mut() = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let mut connection = Box::pin(connection);
        let mut response = Box::pin(tokio::time::timeout(
            first_byte,
            sender.send_request(request),
        ));
        // Drive the connection while the response is awaited; if it ends
        // first, the response is complete or the connection failed.
        let mut finished = false;
        let response = tokio::select! {
            biased;
            r = &mut response => r,
            c = &mut connection => {
                finished = true;
                c?;
                response.await
            }
        }
        .map_err(|_| Error::ConnectionReadTimeout)??;
        let response = response.map(|incoming| {
            let mut timeout = tokio::time::interval(between_bytes);
            timeout.reset();
            TimedBody { incoming, timeout }.boxed_unsync()
        });
        let io = async move {
            if finished {
                return Ok(());
            }
            connection.await.map_err(|e| {
                if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(e)
                }
            })
        };
        Ok((response, Box::new(io)))
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

fn connect_timeout(options: Option<RequestOptions>) -> Duration {
    options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
}

async fn connect_first(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the name resolved to no address")))
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.into());
    }
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| Error::DnsError {
        rcode: Some(format!("invalid DNS name: {e}")),
        info_code: None,
    })
}

/// A response body that fails when no frame arrives within the
/// between-bytes timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
