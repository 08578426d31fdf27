//! Opening one outbound connection, the only place irhost does: resolve the
//! name, keep only the addresses the request may reach, connect to an
//! address that was checked (a name cannot re-resolve elsewhere between
//! check and use), or tunnel through the configured proxy (`CONNECT`, by
//! hyper-util), then TLS with the process's rustls configuration. Pooled
//! connections were all opened here, so reusing one is as safe as opening
//! it was.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::address::internal_class;
use super::network::{NetworkSettings, MAX_CONNECTIONS_PER_HOST};
use super::policy::EgressPolicy;

/// Which resolved addresses a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only: a name allowed by a pattern.
    Public,
    /// Any address: an IP literal the policy names, the environment's own
    /// endpoint, or a request of the host itself.
    Any,
}

/// Whose rules a dialer applies.
#[derive(Clone)]
pub enum ReachRule {
    /// The host's own requests (credential chains, token fetches).
    Host,
    /// A plugin's requests, allowed by its policy.
    Plugin(Arc<EgressPolicy>),
}

impl ReachRule {
    fn reach(&self, uri: &http::Uri) -> Reach {
        match self {
            ReachRule::Host => Reach::Any,
            ReachRule::Plugin(policy) => policy.reach(uri),
        }
    }
}

/// Why no connection was opened.
#[derive(Debug)]
pub enum DialError {
    /// The name resolves only to addresses the request may not reach: a
    /// denial, journaled like the policy's own.
    Refused(String),
    Dns(String),
    Timeout,
    Connect(std::io::Error),
    Tls(std::io::Error),
    /// The proxy refused or failed the tunnel.
    Proxy(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Refused(reason) => write!(f, "refused: {reason}"),
            DialError::Dns(e) => write!(f, "name resolution failed: {e}"),
            DialError::Timeout => f.write_str("connecting timed out"),
            DialError::Connect(e) => write!(f, "connection failed: {e}"),
            DialError::Tls(e) => write!(f, "TLS failed: {e}"),
            DialError::Proxy(e) => write!(f, "proxy: {e}"),
        }
    }
}

impl std::error::Error for DialError {}

/// How many connections one client may hold open to each host: a dial
/// beyond waits until one closes (meanwhile the pool hands the request an
/// idle one, as soon as there is one).
pub struct ConnectionLimits {
    limit: AtomicUsize,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            limit: AtomicUsize::new(MAX_CONNECTIONS_PER_HOST),
            per_host: Mutex::default(),
        }
    }
}

impl ConnectionLimits {
    /// At most `n` (1 ..= [`MAX_CONNECTIONS_PER_HOST`]) from now on;
    /// connections already open count against the old limit until they
    /// close.
    pub fn set(&self, n: usize) {
        self.limit
            .store(n.clamp(1, MAX_CONNECTIONS_PER_HOST), Ordering::Relaxed);
        self.per_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    async fn acquire(&self, host: &str) -> OwnedSemaphorePermit {
        let semaphore = self
            .per_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit.load(Ordering::Relaxed))))
            .clone();
        semaphore
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

/// Opens connections for one client (see [`super::connector`]).
#[derive(Clone)]
pub struct Dialer {
    pub(super) network: &'static NetworkSettings,
    pub(super) rule: ReachRule,
    pub(super) limits: Arc<ConnectionLimits>,
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// An open connection (TCP, maybe tunnelled, maybe TLS).
pub struct Conn {
    io: TokioIo<Box<dyn Stream>>,
    /// Plain HTTP through a proxy: requests go in absolute form.
    proxied: bool,
    /// Its place among the client's connections to the host, given back
    /// when it closes.
    _slot: OwnedSemaphorePermit,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type DialFuture = Pin<Box<dyn Future<Output = Result<Conn, DialError>> + Send>>;

impl tower_service::Service<http::Uri> for Dialer {
    type Response = Conn;
    type Error = DialError;
    type Future = DialFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> DialFuture {
        let dialer = self.clone();
        Box::pin(async move {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            // Waiting for a free place is bounded by the request's own
            // timeout, not the connect timeout.
            let slot = dialer.limits.acquire(&authority).await;
            let timeout = dialer.network.connect_timeout;
            let (io, proxied) = tokio::time::timeout(timeout, dialer.dial(uri))
                .await
                .map_err(|_| DialError::Timeout)??;
            Ok(Conn {
                io,
                proxied,
                _slot: slot,
            })
        })
    }
}

/// A URI's host (no brackets) and port.
fn host_port(uri: &http::Uri) -> Result<(&str, u16), DialError> {
    let host = uri
        .host()
        .ok_or_else(|| DialError::Dns("the URI names no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    Ok((host, uri.port_u16().unwrap_or(if https { 443 } else { 80 })))
}

impl Dialer {
    async fn dial(&self, uri: http::Uri) -> Result<(TokioIo<Box<dyn Stream>>, bool), DialError> {
        let (host, port) = host_port(&uri)?;
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let Some(route) = self.network.proxies.route(&uri) else {
            let addrs = resolve(host, port, self.rule.reach(&uri)).await?;
            let tcp = connect_first(&addrs).await?;
            return self.finish(host, https, tcp, false).await;
        };
        // Through a proxy: its own address is the responder's setting (any
        // address may be reached); the destination's name was checked
        // against the allow list before, and the proxy resolves it.
        if route.proxy.scheme() != Some(&http::uri::Scheme::HTTP) {
            return Err(DialError::Proxy(format!(
                "{}: only http:// proxies are supported",
                route.proxy
            )));
        }
        if !https {
            let (proxy_host, proxy_port) = host_port(&route.proxy)?;
            let addrs = resolve(proxy_host, proxy_port, Reach::Any).await?;
            let tcp = connect_first(&addrs).await?;
            return self.finish(host, false, tcp, true).await;
        }
        let mut tunnel = Tunnel::new(route.proxy.clone(), ProxyHop);
        if let Some(auth) = route.auth {
            tunnel = tunnel.with_auth(auth);
        }
        let tcp = tower_service::Service::call(&mut tunnel, uri.clone())
            .await
            .map_err(|e| DialError::Proxy(format!("{}: {e}", route.proxy)))?
            .into_inner();
        self.finish(host, true, tcp, false).await
    }

    async fn finish(
        &self,
        host: &str,
        https: bool,
        tcp: TcpStream,
        proxied: bool,
    ) -> Result<(TokioIo<Box<dyn Stream>>, bool), DialError> {
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Stream> = if https {
            let connector = tokio_rustls::TlsConnector::from(self.network.tls.config.clone());
            Box::new(
                connector
                    .connect(server_name(host)?, tcp)
                    .await
                    .map_err(DialError::Tls)?,
            )
        } else {
            Box::new(tcp)
        };
        Ok((TokioIo::new(io), proxied))
    }
}

/// The TCP hop to a proxy, for hyper-util's tunnel.
#[derive(Clone)]
struct ProxyHop;

impl tower_service::Service<http::Uri> for ProxyHop {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, proxy: http::Uri) -> Self::Future {
        Box::pin(async move {
            let (host, port) = host_port(&proxy)?;
            let addrs = resolve(host, port, Reach::Any).await?;
            Ok(TokioIo::new(connect_first(&addrs).await?))
        })
    }
}

/// The addresses a connection to `host:port` may use, in resolver order.
pub async fn resolve(host: &str, port: u16, reach: Reach) -> Result<Vec<SocketAddr>, DialError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        // The policy allowed a literal only by an entry naming it.
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| DialError::Dns(format!("{host}: {e}")))?
        .collect();
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
        return Err(DialError::Refused(format!(
            "{host} resolves to {}: a name reaches a loopback, link-local or private address only when it is the environment's endpoint; allow the address itself to reach it",
            list.join(", ")
        )));
    }
    Ok(public)
}

async fn connect_first(addrs: &[SocketAddr]) -> Result<TcpStream, DialError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(DialError::Connect(last.unwrap_or_else(|| {
        std::io::Error::other("the name resolved to no address")
    })))
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, DialError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.into());
    }
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| DialError::Dns(format!("invalid DNS name {host}: {e}")))
}
