//! A moto EC2/S3 server for the AWS tests (`tests/moto/irhost_moto_server.py`)
//! and its fixture scripts (EC2 and S3), from the venv `scripts/setup-moto` creates.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::{repo_root, shared_cache, stderr, Workspace};

pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("IRHOST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/irhost/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-moto (the README's test command does)",
        python.display()
    );
    python
}

/// A moto server on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Self::launch(false)
    }

    pub fn stock() -> Moto {
        Self::launch(true)
    }

    pub fn launch(stock: bool) -> Moto {
        Self::launch_with(if stock { &["--stock"] } else { &[] })
    }

    /// Start the launcher with extra arguments (e.g. `--throttle Action:N`).
    pub fn launch_with(extra: &[&str]) -> Moto {
        let mut command = Command::new(venv_python());
        command
            .arg(repo_root().join("tests/moto/irhost_moto_server.py"))
            .args(["--port", "0"])
            .args(extra);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("moto said {line:?}"))
            .parse()
            .unwrap();
        Moto { child, port }
    }

    /// From now on moto authorizes every request with its IAM users'
    /// policies (the launcher's `--iam-auth`).
    pub fn enforce_iam(&self) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .write_all(
                b"POST /irhost/enforce-iam HTTP/1.1
Host: 127.0.0.1
Content-Length: 0
Connection: close

",
            )
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "enforce-iam: {answer}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn fixture(&self, args: &[&str]) -> Value {
        self.script("ec2_fixture.py", args)
    }

    /// `tests/moto/s3_fixture.py COMMAND ENDPOINT ARGS...` (S3 buckets and
    /// object versions).
    pub fn s3(&self, args: &[&str]) -> Value {
        self.script("s3_fixture.py", args)
    }

    /// The EC2 fixture acting in `account` (credentials assumed into it
    /// through moto's STS).
    pub fn fixture_in(&self, account: &str, args: &[&str]) -> Value {
        self.script_with(
            "ec2_fixture.py",
            args,
            &[("IRHOST_FIXTURE_ACCOUNT", account)],
        )
    }

    /// The EC2 fixture with extra environment (`IRHOST_FIXTURE_REGION`,
    /// `IRHOST_FIXTURE_ACCOUNT`).
    pub fn fixture_with(&self, env: &[(&str, &str)], args: &[&str]) -> Value {
        self.script_with("ec2_fixture.py", args, env)
    }

    fn script(&self, script: &str, args: &[&str]) -> Value {
        self.script_with(script, args, &[])
    }

    fn script_with(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
        let out = Command::new(venv_python())
            .envs(env.iter().copied())
            .arg(repo_root().join("tests/moto").join(script))
            .arg(args[0])
            .arg(self.endpoint())
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(out.status.success(), "fixture {args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn seed(&self, scenario: &str) -> Value {
        self.fixture(&["seed", scenario])
    }

    pub fn state(&self) -> Value {
        self.fixture(&["state"])
    }

    /// Run the real binary with the AWS environment pointing at this moto.
    pub fn irhost(&self, ws: &Workspace, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_irhost"))
            .args(args)
            .current_dir(ws.path())
            .env("IRHOST_CASES_DIR", ws.cases())
            .env("IRHOST_CACHE_DIR", shared_cache())
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
