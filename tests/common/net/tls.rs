//! A test certificate authority ([`TestCa`]) and an HTTPS front
//! ([`TlsFront`]) that terminates TLS for a plain-HTTP upstream such as moto.
//!
//! The CA is a real X.509 CA made by rcgen (ECDSA P-256, basic constraints
//! CA, key usages cert-sign and CRL-sign); leaves it issues carry the names
//! as DNS or IP subject alternative names, `serverAuth` extended key usage
//! and an authority key identifier, so rustls/webpki verify them as they
//! would a public server's. The front speaks HTTP/1.1 with keep-alive over
//! rustls (ring provider, ALPN `http/1.1`), like an AWS endpoint does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{forward_once, text, Background};

/// A certificate authority for tests: its PEM goes to `AWS_CA_BUNDLE` (or
/// wherever the code under test takes extra roots) and it issues server
/// certificates for the fixtures.
pub struct TestCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "irhost test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "irhost tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// Write the CA certificate (PEM) to `path`.
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, &self.cert_pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Issue a leaf certificate and its key for `names`: each one that parses
    /// as an IP address becomes an IP SAN, the others DNS SANs (the first is
    /// also the subject CN).
    pub fn issue(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    /// [`Self::issue`] as PEM texts (certificate, PKCS#8 key), for servers
    /// that read files (Azurite's `--cert` / `--key`).
    pub fn issue_pem(&self, names: &[&str]) -> (String, String) {
        let (cert, key) = self.issue(names);
        (
            pem("CERTIFICATE", cert.as_ref()),
            pem("PRIVATE KEY", key.secret_der()),
        )
    }

    /// A rustls server configuration (ring provider, safe default protocol
    /// versions, ALPN `http/1.1`) presenting a leaf for `names`.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.issue(names);
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// DER as a PEM block.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

#[derive(Default)]
struct FrontStats {
    connections: AtomicU64,
    handshakes: AtomicU64,
    requests: AtomicU64,
    lines: Mutex<Vec<String>>,
}

/// An HTTPS server on 127.0.0.1 (certificate for `localhost` and
/// `127.0.0.1`, issued by the given [`TestCa`]) that forwards every request
/// to a plain-HTTP upstream and returns its response.
///
/// Client connections are kept alive (HTTP/1.1); each request goes to the
/// upstream over a NEW connection (moto closes every connection), with the
/// method, path and query, headers (Host included) and body unchanged but
/// for hop-by-hop headers, which are dropped both ways as any proxy does
/// (so the upstream's `Connection: close` does not close the client's
/// connection). An unreachable upstream gives 502. It counts TCP connections
/// accepted, TLS handshakes completed and requests served, so a test can
/// tell whether a client reused its connection.
pub struct TlsFront {
    server: Background,
    stats: Arc<FrontStats>,
}

impl TlsFront {
    /// Front `upstream` (`http://127.0.0.1:PORT`) with a certificate for
    /// `localhost` and `127.0.0.1`.
    pub fn start(upstream: &str, ca: &TestCa) -> TlsFront {
        Self::with_names(upstream, ca, &["localhost", "127.0.0.1"])
    }

    /// Front `upstream` with a certificate for `names`, e.g. a real AWS
    /// endpoint name reached through [`super::ConnectProxy::route`].
    pub fn with_names(upstream: &str, ca: &TestCa, names: &[&str]) -> TlsFront {
        let upstream = parse_upstream(upstream);
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config(names));
        let stats = Arc::new(FrontStats::default());
        let s = stats.clone();
        let server = Background::start("tls-front", move |listener| async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    s.handshakes.fetch_add(1, Ordering::SeqCst);
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(relay(upstream, &s, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsFront { server, stats }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port())
    }

    /// `https://127.0.0.1:PORT`.
    pub fn ip_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port())
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.stats.handshakes.load(Ordering::SeqCst)
    }

    /// Requests served (forwarded or answered 502).
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Each request served, `METHOD path?query`, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.stats.lines.lock().unwrap().clone()
    }
}

async fn relay(
    upstream: SocketAddr,
    stats: &FrontStats,
    req: Request<Incoming>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt as _;
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let line = format!(
        "{} {}",
        req.method(),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    stats.lines.lock().unwrap().push(line);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    forward_once(upstream, parts, body)
        .await
        .unwrap_or_else(|e| text(StatusCode::BAD_GATEWAY, &e))
}

/// `http://127.0.0.1:PORT` (or `localhost`) to a socket address.
fn parse_upstream(upstream: &str) -> SocketAddr {
    let authority = upstream
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("upstream {upstream:?} is not http://"))
        .trim_end_matches('/');
    let authority = authority.replace("localhost", "127.0.0.1");
    authority
        .parse()
        .unwrap_or_else(|e| panic!("upstream {upstream:?}: {e}"))
}
