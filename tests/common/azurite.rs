//! Azurite's Blob service (npm `azurite`, installed by scripts/setup-azurite
//! under ~/.cache/irhost/azurite) on 127.0.0.1 for the tests, with its
//! well-known development account, and the account SAS a test uses to make
//! containers and read blobs back. Plain HTTP ([`Azurite::start`]), or
//! HTTPS with OAuth (`--oauth basic`: bearer tokens and Get User Delegation
//! Key; [`Azurite::start_with_oauth`]).
#![allow(dead_code)]

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Azurite's development account and key (public, in its documentation).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
    /// HTTPS: the CA file the test's own requests trust.
    ca: Option<PathBuf>,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("IRHOST_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/irhost/azurite/node_modules/.bin/azurite-blob")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-azurite (the README's test command does)",
        path.display()
    );
    path
}

impl Azurite {
    /// Start Azurite on a free port, waiting up to a minute for it to
    /// listen; a start that exits (a port taken between choosing and
    /// binding it) is tried again on another port. A failure panics with
    /// what Azurite printed.
    pub fn start() -> Azurite {
        Azurite::start_with(Vec::new(), None)
    }

    /// [`Self::start`] over HTTPS with OAuth (`--oauth basic`, which
    /// Azurite allows only with HTTPS): `cert` and `key` are the server's
    /// PEM files (for 127.0.0.1), `ca` the PEM of the CA that issued it.
    /// In basic mode Azurite checks a bearer token's form, `iat`/`nbf`/`exp`,
    /// issuer prefix and audience, not its signature.
    pub fn start_with_oauth(cert: &Path, key: &Path, ca: &Path) -> Azurite {
        let args = vec![
            OsString::from("--oauth"),
            "basic".into(),
            "--cert".into(),
            cert.into(),
            "--key".into(),
            key.into(),
        ];
        Azurite::start_with(args, Some(ca.to_path_buf()))
    }

    fn start_with(args: Vec<OsString>, ca: Option<PathBuf>) -> Azurite {
        let mut last = String::new();
        for _ in 0..3 {
            match Azurite::try_start(&args, ca.clone()) {
                Ok(azurite) => return azurite,
                Err(why) => last = why,
            }
        }
        panic!("azurite did not start: {last}");
    }

    fn try_start(args: &[OsString], ca: Option<PathBuf>) -> Result<Azurite, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = tempfile::tempdir().unwrap();
        let log_path = data.path().join("azurite.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(binary())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let printed = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("it exited ({status}) printing:\n{}", printed()));
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "not listening on port {port} after 60 s; it printed:\n{}",
                    printed()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Azurite {
            child,
            port,
            _data: data,
            ca,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account's Blob service URL (path-style), `https://` when
    /// started with OAuth.
    pub fn service(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// curl, trusting the CA when over HTTPS.
    fn curl(&self) -> Command {
        let mut command = Command::new("curl");
        if let Some(ca) = &self.ca {
            command.arg("--cacert").arg(ca);
        }
        command
    }

    /// The HTTP status of `method url` (with `body`, when given), as any
    /// holder of a URL could send it.
    pub fn status(&self, method: &str, url: &str, body: Option<&str>) -> u16 {
        let mut command = self.curl();
        command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]);
        if let Some(body) = body {
            command.args(["--data-binary", body]);
        }
        let out = command.arg(url).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .parse()
            .unwrap_or_else(|_| panic!("curl {method} {url}: {out:?}"))
    }

    /// An account SAS (`ss=b`) for `resource_types` (`c`, `o`) and
    /// `permissions`, valid an hour.
    pub fn account_sas(&self, resource_types: &str, permissions: &str) -> String {
        let expiry = (chrono::Utc::now() + chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let version = "2022-11-02";
        let to_sign = format!("{ACCOUNT}\n{permissions}\nb\n{resource_types}\n\n{expiry}\n\nhttps,http\n{version}\n\n");
        let key = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "sv={version}&ss=b&srt={resource_types}&sp={permissions}&se={}&spr=https%2Chttp&sig={}",
            enc(&expiry),
            enc(&sig)
        )
    }

    /// Create a container.
    pub fn create_container(&self, name: &str) {
        let url = format!(
            "{}/{name}?restype=container&{}",
            self.service(),
            self.account_sas("c", "c")
        );
        let out = self
            .curl()
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                "x-ms-version: 2022-11-02",
                "-H",
                "Content-Length: 0",
                &url,
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "201",
            "create container {name}"
        );
    }

    /// A blob's bytes, or the HTTP status when it cannot be read.
    pub fn blob(&self, container: &str, name: &str) -> Result<Vec<u8>, String> {
        let url = format!(
            "{}/{container}/{name}?{}",
            self.service(),
            self.account_sas("o", "r")
        );
        let out = self
            .curl()
            .args(["-s", "-f", "-H", "x-ms-version: 2022-11-02", &url])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!("curl exit {:?}", out.status.code()))
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
