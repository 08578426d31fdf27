//! `irhost serve` end to end: the real binary on a loopback port, the
//! test-provider plugin, and a minimal HTTP/1.1 client.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "test-token-0123456789abcdef";

const PLAYBOOK: &str = r#"
[playbook]
name = "api-test"

[plugins.test]
path = "{test}"
config = { volumes = 2 }

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"

[[steps]]
id = "interfaces"
plugin = "test"
action = "enumerate-interfaces"

[[steps]]
id = "isolate"
plugin = "test"
action = "isolate"
after = ["snapshot", "interfaces"]

[[steps]]
id = "seal"
plugin = "test"
action = "seal"
after = ["isolate"]

# What a run may set (the slow-run test sets it).
[inputs.sleep_ms]
type = "integer"
"#;

/// A running `irhost serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
    ws: Workspace,
}

impl Server {
    fn start() -> Server {
        Server::start_with(|_| Vec::new())
    }

    /// Start with more arguments, made from the workspace before the start.
    fn start_with(extra: impl FnOnce(&Workspace) -> Vec<String>) -> Server {
        let ws = Workspace::new();
        let extra = extra(&ws);
        let playbooks = ws.path().join("playbooks");
        std::fs::create_dir_all(&playbooks).unwrap();
        let pb = ws.playbook("api-test.toml", PLAYBOOK);
        std::fs::rename(&pb, playbooks.join("api-test.toml")).unwrap();
        let token_file = ws.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_irhost"))
            .args(["serve", "--addr", "127.0.0.1:0", "--max-body-kb", "16"])
            .arg("--playbooks")
            .arg(&playbooks)
            .arg("--token-file")
            .arg(&token_file)
            .args(&extra)
            .current_dir(ws.path())
            .env("IRHOST_CASES_DIR", ws.cases())
            .env("IRHOST_CACHE_DIR", shared_cache())
            .env_remove("IRHOST_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("serve said {line:?}"))
            .to_string();
        Server { child, addr, ws }
    }

    /// One request; returns the status and the body (read to the end).
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: irhost\r\nConnection: close\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        if let Some(b) = body {
            // A server may answer (413) before reading a large body.
            let _ = stream.write_all(b.as_bytes());
        }
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_response(&raw)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.request("GET", path, Some(TOKEN), None);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, body) = self.request("POST", path, Some(TOKEN), Some(&body.to_string()));
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn cases(&self) -> PathBuf {
        self.ws.cases()
    }

    fn wait_for(&self, run: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(&format!("/v1/runs/{run}"));
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return (status, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    (status, out)
}

#[test]
fn auth_health_openapi_and_limits() {
    let server = Server::start();
    let (status, body) = server.request("GET", "/healthz", None, None);
    assert_eq!(status, 200, "{body}");
    for (method, path) in irhost::serve::ROUTES {
        if *path == "/healthz" {
            continue;
        }
        let path = path.replace("{id}", "x");
        let (status, _) = server.request(method, &path, None, Some("{}"));
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _) = server.request(method, &path, Some("wrong-token"), Some("{}"));
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        let (status, _) = server.request(method, &path, Some(&format!("{TOKEN}x")), Some("{}"));
        assert_eq!(status, 401, "{method} {path} with a longer token");
    }
    let (status, doc) = server.get("/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for (method, path) in irhost::serve::ROUTES {
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "{method} {path} is not documented"
        );
    }
    // Bodies over the limit are refused; unknown fields and bad names too.
    let big = json!({"playbook": "api-test", "params": {"pad": "x".repeat(20 * 1024)}});
    assert_eq!(server.post("/v1/runs", &big).0, 413);
    assert_eq!(
        server
            .post("/v1/runs", &json!({"playbook": "api-test", "bogus": 1}))
            .0,
        422
    );
    assert_eq!(
        server
            .post(
                "/v1/runs",
                &json!({"playbook": "../api-test", "targets": ["test:a"]})
            )
            .0,
        400
    );
    assert_eq!(
        server
            .post(
                "/v1/runs",
                &json!({"playbook": "nope", "targets": ["test:a"]})
            )
            .0,
        404
    );
    assert_eq!(
        server
            .post(
                "/v1/runs",
                &json!({"playbook": "api-test", "targets": ["test:a"], "case": "../x"})
            )
            .0,
        400
    );
    assert_eq!(server.get("/v1/runs/unknown").0, 404);
    assert_eq!(server.get("/v1/cases/nope/verify").0, 404);
}

#[test]
fn run_parameters_are_only_the_playbooks_inputs() {
    let server = Server::start();
    // A hostile client tries to share the evidence with its own account.
    let (status, body) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:a"], "case": "attack", "params": {"forensic_account": "999999999999"}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`forensic_account` is not an input"),
        "{body}"
    );
    assert!(!server.ws.cases().join("attack").exists(), "nothing ran");
    // A declared input with a value of the wrong type is refused too.
    let (status, body) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:a"], "params": {"sleep_ms": "soon"}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("`sleep_ms`"),
        "{body}"
    );
    // A valid one runs, and the journal says what it was.
    let (status, created) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:a"], "case": "inputs", "params": {"sleep_ms": 1}}),
    );
    assert_eq!(status, 201, "{created}");
    let run = created["run_id"].as_str().unwrap().to_string();
    server.wait_for(&run, "the end", |s| s["state"] != "running");
    let records = server.ws.journal("inputs");
    assert!(records.iter().any(|r| matches!(&r.event,
        irhost::events::RunEvent::RunStarted { params, .. } if params.get("sleep_ms") == Some(&json!(1)))));
}

#[test]
fn a_target_no_step_serves_is_refused_before_any_run_starts() {
    let server = Server::start();
    let (status, body) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:a", "gcp:projects/p/zones/z/instances/i"], "case": "unserved"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("gcp:projects/p/zones/z/instances/i"),
        "{body}"
    );
    // Nothing ran: no case was started.
    assert!(!server.ws.cases().join("unserved").exists());
    // The same request without the stranger starts a run.
    let (status, body) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:a"], "case": "served"}),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_run_goes_from_request_to_verified_case_with_events() {
    let server = Server::start();
    let (status, created) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:a", {"provider": "test", "id": "b", "region": "r1"}], "case": "api-1"}),
    );
    assert_eq!(status, 201, "{created}");
    let run = created["run_id"].as_str().unwrap().to_string();
    assert_eq!(created["case_id"], "api-1");

    // The event stream replays from the first record and ends with the run.
    let (status, sse) = server.request("GET", &format!("/v1/runs/{run}/events"), Some(TOKEN), None);
    assert_eq!(status, 200);
    for needle in [
        "event: run_started",
        "event: step_finished",
        "event: run_finished",
        "event: end",
    ] {
        assert!(sse.contains(needle), "no `{needle}` in\n{sse}");
    }
    let first_data = sse.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let first: Value = serde_json::from_str(first_data).unwrap();
    assert_eq!(first["seq"], 0);
    assert_eq!(first["event"]["type"], "run_started");

    let status = server.wait_for(&run, "the end", |s| s["state"] != "running");
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["succeeded"], 2);
    let targets = status["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for t in targets {
        assert_eq!(t["state"], "succeeded", "{t}");
        let steps: Vec<&str> = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps, vec!["snapshot", "interfaces", "isolate", "seal"]);
        assert!(t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "succeeded"));
    }

    let (status, verify) = server.get("/v1/cases/api-1/verify");
    assert_eq!(status, 200);
    // Intact, but never `valid` without a key the server pins.
    assert_eq!(verify["intact"], true, "{verify}");
    assert_eq!(verify["valid"], false, "{verify}");
    assert_eq!(verify["key_pinned"], false, "{verify}");
    assert!(
        verify["signature"]
            .as_str()
            .unwrap()
            .contains("not checked against a pinned key"),
        "{verify}"
    );
    let records = server.ws.journal("api-1");
    assert_eq!(verify["records"], records.len() as u64);

    // A tampered journal no longer verifies.
    let path = server.cases().join("api-1/journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("test:a", "test:z", 1)).unwrap();
    let (_, verify) = server.get("/v1/cases/api-1/verify");
    assert_eq!(verify["valid"], false, "{verify}");
    assert_eq!(verify["intact"], false, "{verify}");
    assert!(
        verify["error"].as_str().unwrap().contains("hash mismatch"),
        "{verify}"
    );
}

#[test]
fn verify_is_valid_only_on_the_key_the_server_pins() {
    // Two keys; the server pins the first.
    let server = Server::start_with(|ws| {
        for name in ["pinned", "other"] {
            let prefix = ws.path().join(name);
            let out = ws.irhost(&["keygen", "-o", prefix.to_str().unwrap()]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        vec![
            "--verify-key".into(),
            ws.path().join("pinned.pub").display().to_string(),
        ]
    });
    let ws = &server.ws;
    let pb = ws.playbook("signed.toml", PLAYBOOK);
    for (case, key) in [("by-pinned", "pinned.key"), ("by-other", "other.key")] {
        let out = ws.irhost(&[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:a",
            "--case",
            case,
            "--signing-key",
            ws.path().join(key).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (status, verify) = server.get("/v1/cases/by-pinned/verify");
    assert_eq!(status, 200);
    assert_eq!(verify["valid"], true, "{verify}");
    assert_eq!(verify["key_pinned"], true, "{verify}");
    assert!(
        verify["signature"]
            .as_str()
            .unwrap()
            .starts_with("signed by the pinned key"),
        "{verify}"
    );
    // Signed, intact on its own key, but not by the pinned one.
    let (_, verify) = server.get("/v1/cases/by-other/verify");
    assert_eq!(verify["valid"], false, "{verify}");
    assert!(
        verify["error"].as_str().unwrap().contains("wrong key"),
        "{verify}"
    );
    // A server whose --verify-key is not a key does not start.
    let out = server.ws.irhost(&[
        "serve",
        "--verify-key",
        pb.to_str().unwrap(),
        "--token-file",
        pb.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--verify-key"), "{}", stderr(&out));
}

#[test]
fn a_long_run_survives_its_client_and_is_cancelled() {
    let server = Server::start();
    let (status, created) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:slow"], "params": {"sleep_ms": 30000}, "case": "api-slow"}),
    );
    assert_eq!(status, 201, "{created}");
    let run = created["run_id"].as_str().unwrap().to_string();

    // A client reads the first events and goes away.
    {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        write!(
            stream,
            "GET /v1/runs/{run}/events HTTP/1.1\r\nHost: irhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let status = server.wait_for(&run, "a running step", |s| {
        s["targets"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["state"] == "running")
    });
    assert_eq!(status["state"], "running");

    // One run writes a case at a time: a second one is refused (409, naming
    // the run that holds it) and nothing of it is journaled.
    let (status, refused) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:other"], "case": "api-slow"}),
    );
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains(&format!("run {run}")),
        "{refused}"
    );

    let started = Instant::now();
    let (code, answer) = server.post(&format!("/v1/runs/{run}/cancel"), &json!({}));
    assert_eq!(code, 202, "{answer}");
    let status = server.wait_for(&run, "cancellation", |s| s["state"] != "running");
    assert_eq!(status["state"], "cancelled", "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancel took {:?}",
        started.elapsed()
    );
    let target = &status["targets"][0];
    assert_ne!(target["state"], "succeeded", "{target}");
    let isolate = target["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "isolate")
        .unwrap();
    assert_eq!(
        isolate["state"], "skipped",
        "nothing mutates after a cancel: {isolate}"
    );

    // The case journal records the end, then the seal, and still verifies.
    let records = server.ws.journal("api-slow");
    let n = records.len();
    assert!(matches!(
        records[n - 2].event,
        irhost::events::RunEvent::RunFinished { .. }
    ));
    assert!(matches!(
        records[n - 1].event,
        irhost::events::RunEvent::CaseSealed { .. }
    ));
    assert!(
        !records
            .iter()
            .any(|r| r.event.target() == Some("test:other")),
        "the refused run wrote nothing"
    );
    // The case is free again once its run has ended.
    let (status, created) = server.post(
        "/v1/runs",
        &json!({"playbook": "api-test", "targets": ["test:other"], "case": "api-slow"}),
    );
    assert_eq!(status, 201, "{created}");
}
