//! The network as this process finds it, read once: TLS trust
//! ([`TlsSettings`]), proxies ([`ProxySettings`]) and connection limits,
//! shared by every outbound connection irhost makes — plugins' requests
//! and the host's own (credential chains, token fetches) alike.

use std::sync::OnceLock;
use std::time::Duration;

use super::proxy::ProxySettings;
use super::tls::TlsSettings;

/// Idle connections kept per host and client.
pub const MAX_IDLE_PER_HOST: usize = 32;
/// How long an idle pooled connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections of one client (one plugin binding) to one host, at
/// most; a run sets fewer (see `EgressClient::limit_connections`). A
/// request that finds none free waits for a pooled one.
pub const MAX_CONNECTIONS_PER_HOST: usize = 64;
/// Connecting (resolution, TCP, proxy tunnel, TLS) gives up after this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The process's network settings.
pub struct NetworkSettings {
    pub tls: TlsSettings,
    pub proxies: ProxySettings,
    pub connect_timeout: Duration,
}

impl NetworkSettings {
    pub fn from_env() -> Result<NetworkSettings, String> {
        Ok(NetworkSettings {
            tls: TlsSettings::from_env()?,
            proxies: ProxySettings::from_env(),
            connect_timeout: CONNECT_TIMEOUT,
        })
    }

    /// The settings of this process, read from its environment on first
    /// use; an unusable setting (an unreadable `AWS_CA_BUNDLE`) is the same
    /// error at every use.
    pub fn shared() -> Result<&'static NetworkSettings, String> {
        static SHARED: OnceLock<Result<NetworkSettings, String>> = OnceLock::new();
        SHARED
            .get_or_init(NetworkSettings::from_env)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The settings in words, for the journal and `doctor`.
    pub fn describe(&self) -> String {
        let proxies = if self.proxies.described.is_empty() {
            "no proxy".to_string()
        } else {
            format!("proxies {}", self.proxies.described.join(", "))
        };
        format!(
            "TLS trusts {}; {proxies}; connections pooled per plugin and host (at most {MAX_CONNECTIONS_PER_HOST} per host, {MAX_IDLE_PER_HOST} idle for {}s)",
            self.tls.trust,
            IDLE_TIMEOUT.as_secs()
        )
    }
}
