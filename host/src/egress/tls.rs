//! Which servers irhost's outbound TLS trusts, and the one rustls client
//! configuration every outbound connection uses (plugins' requests, the
//! AWS credential chain, Azure token fetches): the `ring` crypto provider
//! installed explicitly (never rustls' process-wide default, so no second
//! provider can make `ClientConfig::builder()` panic), the Mozilla roots,
//! the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` as OpenSSL reads
//! them) and the extra CA bundle of `AWS_CA_BUNDLE`. A file named by
//! `AWS_CA_BUNDLE` or `SSL_CERT_FILE` that cannot be read is an error, not
//! a silent fallback. Sessions are resumed (rustls' in-memory cache).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Variables naming a PEM file of extra CA certificates.
pub const CA_BUNDLE_VARS: &[&str] = &["AWS_CA_BUNDLE", "SSL_CERT_FILE"];

/// Where the trusted roots came from, for the journal and `doctor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSummary {
    pub mozilla: usize,
    pub system: usize,
    /// (variable, file, certificates).
    pub bundles: Vec<(String, PathBuf, usize)>,
}

impl std::fmt::Display for TrustSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} Mozilla roots, {} system roots",
            self.mozilla, self.system
        )?;
        for (var, path, n) in &self.bundles {
            write!(f, ", {n} from {var}={}", path.display())?;
        }
        Ok(())
    }
}

/// The client side of outbound TLS.
pub struct TlsSettings {
    pub config: Arc<rustls::ClientConfig>,
    pub trust: TrustSummary,
}

impl TlsSettings {
    /// From this process's environment. An unreadable or empty bundle named
    /// by a variable is an error naming the variable and the file.
    pub fn from_env() -> Result<TlsSettings, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<TlsSettings, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut trust = TrustSummary {
            mozilla: roots.len(),
            ..TrustSummary::default()
        };
        // Unreadable system stores are not fatal: the Mozilla roots remain.
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "a system root store could not be read");
        }
        let (system, _) = roots.add_parsable_certificates(native.certs);
        trust.system = system;
        for name in CA_BUNDLE_VARS {
            let Some(path) = var(name).filter(|v| !v.is_empty()) else {
                continue;
            };
            let path = PathBuf::from(path);
            let certs =
                read_bundle(&path).map_err(|e| format!("{name}={}: {e}", path.display()))?;
            let (added, ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "{name}={}: no usable CA certificate in it ({ignored} unparsable)",
                    path.display()
                ));
            }
            trust.bundles.push((name.to_string(), path, added));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsSettings {
            config: Arc::new(config),
            trust,
        })
    }
}

/// The certificates of a PEM file.
fn read_bundle(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = certs.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bundle_names_the_variable_and_the_file() {
        let e = TlsSettings::from_vars(|k| {
            (k == "AWS_CA_BUNDLE").then(|| "/nonexistent/ca.pem".to_string())
        })
        .err()
        .unwrap();
        assert!(
            e.starts_with("AWS_CA_BUNDLE=/nonexistent/ca.pem: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e =
            TlsSettings::from_vars(|k| (k == "SSL_CERT_FILE").then(|| path.display().to_string()))
                .err()
                .unwrap();
        assert!(e.contains("SSL_CERT_FILE="), "{e}");
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn without_bundles_the_mozilla_roots_are_trusted() {
        let settings = TlsSettings::from_vars(|_| None).unwrap();
        assert!(settings.trust.mozilla > 100, "{}", settings.trust);
        assert!(settings.trust.bundles.is_empty());
    }
}
