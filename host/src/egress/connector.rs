//! irhost's outbound HTTP client: [`EgressClient`], one per plugin binding
//! (its policy decides which addresses its names may reach) and one for
//! the host's own requests. HTTP/1.1 over hyper-util's pooled client
//! (keep-alive, TLS sessions resumed), every connection opened by the
//! [`Dialer`] (address checks, proxies, TLS; at most so many connections
//! per host), and the wasi-http timeouts of each request.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::dialer::{ConnectionLimits, DialError, Dialer, ReachRule};
use super::network::{NetworkSettings, IDLE_TIMEOUT, MAX_IDLE_PER_HOST};
use super::policy::EgressPolicy;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request on its way out.
pub type OutboundBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why a request did not reach its host.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The name resolves only to addresses the request may not reach: a
    /// denial, journaled like the policy's own.
    Refused(String),
    /// Resolution, connection, proxy, TLS or HTTP failed.
    Failed(Error),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::Refused(reason) => write!(f, "refused: {reason}"),
            ConnectFailure::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// The response and the future that drives the rest of its connection
/// (the pool's executor drives it, so the future has nothing left to do).
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
);

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A pooled outbound client.
pub struct EgressClient {
    client: Client<Dialer, OutboundBody>,
    network: &'static NetworkSettings,
    rule: ReachRule,
    /// Open connections per host: bounds the TLS handshakes to a host by
    /// what the run does at once.
    limits: Arc<ConnectionLimits>,
}

impl EgressClient {
    fn new(rule: ReachRule) -> Result<EgressClient, String> {
        let network = NetworkSettings::shared()?;
        let limits = Arc::new(ConnectionLimits::default());
        let dialer = Dialer {
            network,
            rule: rule.clone(),
            limits: limits.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(dialer);
        Ok(EgressClient {
            client,
            network,
            rule,
            limits,
        })
    }

    /// At most `n` open connections per host from now on (see
    /// [`ConnectionLimits::set`]): a request that finds none free waits for
    /// a pooled one.
    pub fn limit_connections(&self, n: usize) {
        self.limits.set(n);
    }

    /// The client of one plugin binding: its names reach only what
    /// `policy` lets them (see [`EgressPolicy::reach`]).
    pub fn for_plugin(policy: Arc<EgressPolicy>) -> Result<EgressClient, String> {
        Self::new(ReachRule::Plugin(policy))
    }

    /// The client of the host's own requests (credential chains, token
    /// fetches): any address, through the same proxies and TLS trust.
    pub fn host() -> Result<&'static EgressClient, String> {
        static HOST: OnceLock<Result<EgressClient, String>> = OnceLock::new();
        HOST.get_or_init(|| EgressClient::new(ReachRule::Host))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The plugin's policy (`None` for the host's client).
    pub fn policy(&self) -> Option<&EgressPolicy> {
        match &self.rule {
            ReachRule::Plugin(policy) => Some(policy),
            ReachRule::Host => None,
        }
    }

    pub fn network(&self) -> &'static NetworkSettings {
        self.network
    }

    /// Send `request` (an absolute URI) and wait for the response headers,
    /// within the request's connect + first-byte timeouts; the body then
    /// fails when no frame arrives within the between-bytes timeout.
    pub async fn send<B>(
        &self,
        mut request: http::Request<B>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<TimedBody>, ConnectFailure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let connect = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(self.network.connect_timeout);
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            .max(Duration::from_nanos(1));
        if request.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            // Plain HTTP through a proxy carries the proxy's credentials.
            if let Some(auth) = self
                .network
                .proxies
                .route(request.uri())
                .and_then(|r| r.auth)
            {
                request
                    .headers_mut()
                    .insert(http::header::PROXY_AUTHORIZATION, auth);
            }
        }
        let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
        let response = tokio::time::timeout(connect + first_byte, self.client.request(request))
            .await
            .map_err(|_| ConnectFailure::Failed(Error::ConnectionReadTimeout))?
            .map_err(failure)?;
        Ok(response.map(|incoming| {
            let mut timeout = tokio::time::interval(between_bytes);
            timeout.reset();
            TimedBody { incoming, timeout }
        }))
    }

    /// [`Self::send`] for the wasi-http hook.
    pub async fn send_wasi(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, ConnectFailure> {
        let response = self.send(request, options).await?;
        let done: Box<dyn std::future::Future<Output = Result<(), Error>> + Send> =
            Box::new(async { Ok(()) });
        Ok((response.map(BodyExt::boxed_unsync), done))
    }
}

/// The wasi-http error of a failed request.
fn failure(e: hyper_util::client::legacy::Error) -> ConnectFailure {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(dial) = cause.downcast_ref::<DialError>() {
            return match dial {
                DialError::Refused(reason) => ConnectFailure::Refused(reason.clone()),
                DialError::Timeout => ConnectFailure::Failed(Error::ConnectionTimeout),
                DialError::Dns(message) => ConnectFailure::Failed(Error::DnsError {
                    rcode: Some(message.clone()),
                    info_code: None,
                }),
                DialError::Connect(io) => ConnectFailure::Failed(Error::Connect(
                    std::io::Error::new(io.kind(), io.to_string()),
                )),
                DialError::Tls(io) => ConnectFailure::Failed(Error::Tls(std::io::Error::new(
                    io.kind(),
                    io.to_string(),
                ))),
                DialError::Proxy(message) => {
                    ConnectFailure::Failed(Error::InternalError(Some(message.clone())))
                }
            };
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return ConnectFailure::Failed(if hyper.is_timeout() {
                Error::HttpResponseTimeout
            } else if hyper.is_incomplete_message() {
                Error::HttpResponseIncomplete
            } else if hyper.is_closed() || hyper.is_canceled() {
                Error::ConnectionTerminated
            } else {
                Error::InternalError(Some(hyper.to_string()))
            });
        }
        source = cause.source();
    }
    ConnectFailure::Failed(Error::InternalError(Some(e.to_string())))
}

/// A response body that fails when no frame arrives within the
/// between-bytes timeout.
pub struct TimedBody {
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
