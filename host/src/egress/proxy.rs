//! Which outbound requests go through a proxy: `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper or lower case) read as
//! curl reads them, by hyper-util's matcher. The instance and container
//! metadata services are never proxied (a proxy cannot reach the
//! link-local address of the machine irhost runs on).

use http::{HeaderValue, Uri};
use hyper_util::client::proxy::matcher::Matcher;

/// Link-local metadata endpoints that always bypass a proxy: EC2 IMDS (v4
/// and v6), ECS/EKS container credentials, Azure IMDS (the same address).
const NEVER_PROXIED: &[&str] = &["169.254.169.254", "fd00:ec2::254", "169.254.170.2"];

/// A proxy a request goes through.
#[derive(Debug, Clone)]
pub struct ProxyRoute {
    /// The proxy's own URI (`http://proxy.corp:3128`).
    pub proxy: Uri,
    /// `Proxy-Authorization` from the proxy URL's user and password.
    pub auth: Option<HeaderValue>,
}

/// The process's proxy settings.
pub struct ProxySettings {
    matcher: Matcher,
    /// The variables that were set, for the journal (never a password).
    pub described: Vec<String>,
}

impl ProxySettings {
    pub fn from_env() -> ProxySettings {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> ProxySettings {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.is_empty()))
                .unwrap_or_default()
        };
        let (all, https, http, no) = (
            first(&["ALL_PROXY", "all_proxy"]),
            first(&["HTTPS_PROXY", "https_proxy"]),
            // `http_proxy` in lower case only under CGI is the httpoxy
            // hazard; irhost is not a CGI program.
            first(&["HTTP_PROXY", "http_proxy"]),
            first(&["NO_PROXY", "no_proxy"]),
        );
        let mut described = Vec::new();
        for (name, value) in [
            ("ALL_PROXY", &all),
            ("HTTPS_PROXY", &https),
            ("HTTP_PROXY", &http),
        ] {
            if !value.is_empty() {
                described.push(format!("{name}={}", redact(value)));
            }
        }
        if !no.is_empty() {
            described.push(format!("NO_PROXY={no}"));
        }
        let matcher = Matcher::builder()
            .all(all)
            .https(https)
            .http(http)
            .no(no)
            .build();
        ProxySettings { matcher, described }
    }

    /// The proxy a request to `uri` goes through, if any.
    pub fn route(&self, uri: &Uri) -> Option<ProxyRoute> {
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        if NEVER_PROXIED.contains(&host) {
            return None;
        }
        let intercept = self.matcher.intercept(uri)?;
        Some(ProxyRoute {
            proxy: intercept.uri().clone(),
            auth: intercept.basic_auth().cloned(),
        })
    }
}

/// A proxy URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> ProxySettings {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxySettings::from_vars(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn https_requests_use_https_proxy_and_no_proxy_bypasses_it() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("NO_PROXY", "internal.corp,10.0.0.0/8"),
        ]);
        let route = s
            .route(&"https://ec2.us-east-1.amazonaws.com/".parse().unwrap())
            .unwrap();
        assert_eq!(route.proxy, "http://proxy.corp:3128/");
        assert!(s.route(&"http://ec2.example/".parse().unwrap()).is_none());
        assert!(s
            .route(&"https://api.internal.corp/".parse().unwrap())
            .is_none());
        assert!(s.route(&"https://10.1.2.3/".parse().unwrap()).is_none());
    }

    #[test]
    fn metadata_services_are_never_proxied() {
        let s = settings(&[("ALL_PROXY", "http://proxy.corp:3128")]);
        for uri in [
            "http://169.254.169.254/latest/api/token",
            "http://[fd00:ec2::254]/latest/api/token",
            "http://169.254.170.2/v2/credentials/x",
        ] {
            assert!(s.route(&uri.parse().unwrap()).is_none(), "{uri}");
        }
        assert!(s.route(&"http://example.com/".parse().unwrap()).is_some());
    }

    #[test]
    fn the_password_is_not_described_but_is_sent() {
        let s = settings(&[("https_proxy", "http://ir:s3cret@proxy.corp:3128")]);
        assert_eq!(s.described, ["HTTPS_PROXY=http://ir:***@proxy.corp:3128/"]);
        let route = s.route(&"https://example.com/".parse().unwrap()).unwrap();
        assert!(route.auth.is_some());
    }
}
