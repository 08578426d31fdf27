//! The allow list of one plugin: [`HostPattern`]s parsed from
//! `allow_hosts`, and the [`EgressPolicy`] that decides by name whether a
//! request may leave and which addresses it may reach.
//!
//! Patterns: `host`, `host:port`, `*.suffix`, `*.suffix:port`, `host:*`,
//! optionally prefixed with `http://` or `https://` to restrict the scheme.
//! A pattern without a port allows only the scheme's default port (80 for
//! http, 443 for https). A wildcard never matches an IP literal: an address
//! is allowed only by an entry naming that address.

use std::fmt;

use super::dialer::Reach;

/// One `allow_hosts` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com` stores `.example.com`.
    Suffix(String),
    /// `ec2.*.amazonaws.com`: `*` stands for exactly one label.
    Labels(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortMatch {
    Default,
    Any,
    Exact(u16),
}

impl HostPattern {
    /// Parse one pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let original = text.to_string();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty host pattern".into());
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(format!("scheme `{scheme}` is not http or https"));
                }
                (Some(scheme), rest)
            }
            None => (None, trimmed),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err("a host pattern has no path".into());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, "*")) => (host, PortMatch::Any),
            Some((host, port)) => (
                host,
                PortMatch::Exact(
                    port.parse()
                        .map_err(|_| format!("port `{port}` is not a number from 1 to 65535"))?,
                ),
            ),
            None => (rest, PortMatch::Default),
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            return Err("missing host".into());
        }
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err("a wildcard must look like `*.example.com`".into());
            }
            HostMatch::Suffix(format!(".{suffix}"))
        } else if host.contains('*') {
            let labels: Vec<String> = host.split('.').map(str::to_string).collect();
            if labels.iter().any(|l| l.contains('*') && l != "*") {
                return Err(
                    "`*` must stand for a whole label (`*.example.com`, `ec2.*.amazonaws.com`)"
                        .into(),
                );
            }
            HostMatch::Labels(labels)
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern {
            scheme,
            host,
            port,
            text: original,
        })
    }

    /// An exact `host:port` pattern (used for endpoint overrides).
    pub fn exact(scheme: Option<&str>, host: &str, port: u16) -> Self {
        HostPattern {
            scheme: scheme.map(str::to_string),
            host: HostMatch::Exact(host.to_ascii_lowercase()),
            port: PortMatch::Exact(port),
            text: format!(
                "{}{host}:{port}",
                scheme.map(|s| format!("{s}://")).unwrap_or_default()
            ),
        }
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if let Some(required) = &self.scheme {
            if required != scheme {
                return false;
            }
        }
        // A wildcard never matches an IP literal: an address is allowed only
        // by an entry that is that address.
        let ip_literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
        let host_ok = match &self.host {
            HostMatch::Exact(h) => h == host,
            _ if ip_literal => false,
            HostMatch::Suffix(s) => host.ends_with(s.as_str()) && host.len() > s.len(),
            HostMatch::Labels(pattern) => {
                let labels: Vec<&str> = host.split('.').collect();
                labels.len() == pattern.len()
                    && pattern.iter().zip(&labels).all(|(p, l)| p == "*" || p == l)
            }
        };
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
            PortMatch::Default => port == default_port(scheme),
        };
        host_ok && port_ok
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" {
        80
    } else {
        443
    }
}

/// The hosts one plugin may reach. Empty means nothing may leave.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allowed: Vec<HostPattern>,
    /// Exact endpoints the responder's environment names: these may
    /// resolve to internal addresses.
    trusted: Vec<HostPattern>,
}

/// Whether a request may leave, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressDecision {
    Allow,
    Deny(String),
}

impl EgressPolicy {
    pub fn new(allowed: Vec<HostPattern>) -> Self {
        EgressPolicy {
            allowed,
            trusted: Vec::new(),
        }
    }

    /// Let a name the environment names as an endpoint (`AWS_ENDPOINT_URL`,
    /// `AZURE_RESOURCE_MANAGER_URL`) resolve to an internal address. It
    /// still has to be allowed.
    pub fn trust_endpoint(&mut self, endpoint: HostPattern) {
        if !self.trusted.contains(&endpoint) {
            self.trusted.push(endpoint);
        }
    }

    /// Which addresses an allowed request to `uri` may reach.
    pub fn reach(&self, uri: &http::Uri) -> Reach {
        let Some((scheme, host, port)) = parts(uri) else {
            return Reach::Public;
        };
        if host.parse::<std::net::IpAddr>().is_ok()
            || self.trusted.iter().any(|p| p.matches(&scheme, &host, port))
        {
            Reach::Any
        } else {
            Reach::Public
        }
    }

    pub fn allow(&mut self, pattern: HostPattern) {
        if !self.allowed.contains(&pattern) {
            self.allowed.push(pattern);
        }
    }

    pub fn patterns(&self) -> &[HostPattern] {
        &self.allowed
    }

    /// Decide for a request to `uri`.
    pub fn decide(&self, uri: &http::Uri) -> EgressDecision {
        let Some((scheme, host, port)) = parts(uri) else {
            return EgressDecision::Deny("the request names no host".into());
        };
        if self.allowed.is_empty() {
            return EgressDecision::Deny("the plugin has no allow_hosts".into());
        }
        if self.allowed.iter().any(|p| p.matches(&scheme, &host, port)) {
            EgressDecision::Allow
        } else {
            EgressDecision::Deny(format!(
                "{scheme}://{host}:{port} is not in allow_hosts [{}]",
                self.allowed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// A URI's scheme, host (lower case, no brackets) and port.
fn parts(uri: &http::Uri) -> Option<(String, String, u16)> {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
    Some((scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> EgressPolicy {
        EgressPolicy::new(
            patterns
                .iter()
                .map(|p| HostPattern::parse(p).unwrap())
                .collect(),
        )
    }

    fn decide(policy: &EgressPolicy, url: &str) -> bool {
        policy.decide(&url.parse().unwrap()) == EgressDecision::Allow
    }

    #[test]
    fn wildcards_never_match_an_ip_literal() {
        let p = policy(&["*.0.0.1", "10.*.0.5", "*.amazonaws.com:*", "127.0.0.1:8080"]);
        assert!(!decide(&p, "http://127.0.0.1/"));
        assert!(!decide(&p, "http://10.1.0.5/"));
        assert!(decide(&p, "http://127.0.0.1:8080/"));
        assert!(decide(&p, "https://ec2.amazonaws.com:8443/"));
        let v6 = policy(&["*.1"]);
        assert!(!decide(&v6, "http://[::1]/"));
    }

    #[test]
    fn exact_host_allows_only_its_default_port() {
        let p = policy(&["ec2.us-east-1.amazonaws.com"]);
        assert!(decide(&p, "https://ec2.us-east-1.amazonaws.com/"));
        assert!(!decide(&p, "https://ec2.us-east-1.amazonaws.com:8443/"));
        assert!(!decide(&p, "https://ec2.us-west-2.amazonaws.com/"));
        assert!(
            decide(&p, "http://ec2.us-east-1.amazonaws.com/"),
            "http on 80"
        );
    }

    #[test]
    fn wildcard_needs_a_label_before_the_suffix() {
        let p = policy(&["*.amazonaws.com"]);
        assert!(decide(&p, "https://ec2.eu-west-1.amazonaws.com/x"));
        assert!(!decide(&p, "https://amazonaws.com/"));
        assert!(!decide(&p, "https://evilamazonaws.com/"));
        assert!(!decide(&p, "https://amazonaws.com.evil.net/"));
    }

    #[test]
    fn ports_and_schemes_are_enforced() {
        let p = policy(&[
            "127.0.0.1:5000",
            "https://api.example.com",
            "any.example.com:*",
        ]);
        assert!(decide(&p, "http://127.0.0.1:5000/"));
        assert!(!decide(&p, "http://127.0.0.1:5001/"));
        assert!(decide(&p, "https://api.example.com/"));
        assert!(!decide(&p, "http://api.example.com:443/"));
        assert!(decide(&p, "http://any.example.com:1234/"));
    }

    #[test]
    fn a_middle_wildcard_stands_for_one_label() {
        let p = policy(&["ec2.*.amazonaws.com"]);
        assert!(decide(&p, "https://ec2.us-east-1.amazonaws.com/"));
        assert!(!decide(&p, "https://ec2.amazonaws.com/"));
        assert!(!decide(&p, "https://ec2.a.b.amazonaws.com/"));
        assert!(!decide(&p, "https://s3.us-east-1.amazonaws.com/"));
    }

    #[test]
    fn only_literals_and_the_environments_endpoints_reach_internal_addresses() {
        let mut p = policy(&["localhost:5000", "127.0.0.1:5000", "*.example.com"]);
        let reach = |p: &EgressPolicy, url: &str| p.reach(&url.parse().unwrap());
        assert_eq!(reach(&p, "http://127.0.0.1:5000/"), Reach::Any);
        assert_eq!(reach(&p, "http://localhost:5000/"), Reach::Public);
        assert_eq!(reach(&p, "https://api.example.com/"), Reach::Public);
        p.trust_endpoint(HostPattern::exact(Some("http"), "localhost", 5000));
        assert_eq!(reach(&p, "http://localhost:5000/"), Reach::Any);
        assert_eq!(
            reach(&p, "https://localhost:5000/"),
            Reach::Public,
            "the endpoint's scheme"
        );
        assert_eq!(
            reach(&p, "http://localhost:5001/"),
            Reach::Public,
            "the endpoint's port"
        );
    }

    #[test]
    fn empty_policy_denies_everything() {
        let p = EgressPolicy::default();
        assert!(!decide(&p, "https://example.com/"));
    }

    #[test]
    fn bad_patterns_are_rejected_with_a_reason() {
        assert!(HostPattern::parse("ftp://x")
            .unwrap_err()
            .contains("scheme"));
        assert!(HostPattern::parse("a.b*.com")
            .unwrap_err()
            .contains("whole label"));
        assert!(HostPattern::parse("host:99999")
            .unwrap_err()
            .contains("port"));
        assert!(HostPattern::parse("host/path")
            .unwrap_err()
            .contains("path"));
        assert!(HostPattern::parse("").is_err());
    }
}
