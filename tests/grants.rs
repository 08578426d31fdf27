//! Capability grants: a plugin gets cloud power only from its playbook
//! entry's `cloud = …`, never from what its own `describe` claims. The
//! real `hostile` component claims `aws`, `aws-sts`, `azure` or `aws-a/b`
//! and fetches a URL on a loopback sink that records every request; the
//! responder's environment holds AWS keys and an Azure token.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::sink::Sink;
use common::*;
use irhost::events::{RunEvent, Status};

const KEY_ID: &str = "AKIDHOSTILETEST00001";
const SECRET: &str = "hostile-test-secret-key-do-not-send";
const SESSION: &str = "hostile-test-session-token";
const AZURE_TOKEN: &str = "hostile-test-azure-bearer-token";

/// A playbook of one hostile step that claims `provider` and fetches `url`.
fn playbook(provider: &str, url: &str, allow_hosts: Option<&str>, grant: Option<&str>) -> String {
    let allow = allow_hosts
        .map(|a| format!("allow_hosts = [{a}]\n"))
        .unwrap_or_default();
    let declare = grant.map(declared).unwrap_or_default();
    let grant = grant.map(|g| format!("cloud = {g}\n")).unwrap_or_default();
    format!(
        r#"
[playbook]
name = "grants"

[plugins.hostile]
path = "{{hostile}}"
{allow}{grant}config = {{ claim_provider = "{provider}", mode = "http", url = "{url}"{declare} }}

[[steps]]
id = "fetch"
plugin = "hostile"
action = "misbehave"
"#
    )
}

/// `, declare = […]`: hostile declares (as contract 0.2 asks every verb to)
/// the API actions its grant names, so what the tests see is the grant's
/// decision; a grant that does not parse declares nothing.
fn declared(grant: &str) -> String {
    let Ok(table) = format!("cloud = {grant}").parse::<toml::Table>() else {
        return String::new();
    };
    let cloud = &table["cloud"];
    let names: Vec<String> = match (cloud.get("aws"), cloud.get("azure")) {
        (Some(toml::Value::Array(entries)), _) => entries
            .iter()
            .filter_map(|e| e.as_str())
            .map(|e| {
                if e.contains(':') {
                    e.to_string()
                } else {
                    format!("{e}:*")
                }
            })
            .collect(),
        (_, Some(toml::Value::String(_))) => vec!["*".into()],
        (_, Some(toml::Value::Array(entries))) => entries
            .iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    format!(", declare = {names:?}")
}

/// Run a playbook with the responder's cloud credentials in the environment.
fn run_with_credentials(ws: &Workspace, pb: &std::path::Path, sink: &Sink) -> std::process::Output {
    credentials_command(ws, pb, sink).output().unwrap()
}

/// `irhost run` of a playbook, the responder's cloud credentials in the
/// environment and the sink as the ARM endpoint.
fn credentials_command(ws: &Workspace, pb: &std::path::Path, sink: &Sink) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
    command
        .args([
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:t1",
            "--case",
            "grants",
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", SESSION)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AZURE_ACCESS_TOKEN", AZURE_TOKEN)
        .env(
            "AZURE_RESOURCE_MANAGER_URL",
            format!("http://127.0.0.1:{}", sink.port()),
        )
        .env_remove("IRHOST_SIGNING_KEY");
    command
}

fn assert_no_credentials(requests: &[String]) {
    for head in requests {
        let lower = head.to_ascii_lowercase();
        for secret in [KEY_ID, SESSION, AZURE_TOKEN] {
            assert!(
                !head.contains(secret),
                "the sink received {secret}:\n{head}"
            );
        }
        assert!(
            !lower.contains("authorization:"),
            "signed or authorized:\n{head}"
        );
        assert!(!lower.contains("x-amz-security-token"), "{head}");
    }
}

fn fetch_status(records: &[irhost::journal::JournalRecord]) -> Status {
    records
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::StepFinished { step, status, .. } if step == "fetch" => Some(*status),
            _ => None,
        })
        .expect("the fetch step finished")
}

#[test]
fn a_step_claiming_a_cloud_gets_none_of_its_power() {
    for provider in ["aws", "aws-sts", "azure", "aws-a/b"] {
        let sink = Sink::start();
        let ws = Workspace::new();
        let allow = format!("\"127.0.0.1:{}\"", sink.port());
        let pb = ws.playbook(
            "claim.toml",
            &playbook(provider, &sink.url(), Some(&allow), None),
        );
        let out = run_with_credentials(&ws, &pb, &sink);
        assert_eq!(out.status.code(), Some(0), "{provider}: {}", stderr(&out));
        let records = ws.journal("grants");
        assert_eq!(fetch_status(&records), Status::Succeeded, "{provider}");
        let requests = sink.requests();
        assert_eq!(requests.len(), 1, "{provider}: {requests:?}");
        assert_no_credentials(&requests);
        // Its allowed hosts are the playbook's, nothing added for the claim.
        let loaded = records
            .iter()
            .find_map(|r| match &r.event {
                RunEvent::PluginLoaded { allow_hosts, .. } => Some(allow_hosts.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(loaded.len(), 1, "{provider}: {loaded:?}");
    }
}

#[test]
fn a_claim_with_no_allow_hosts_gets_no_default_endpoints() {
    // Without a grant, `aws-sts` and no allow_hosts gets nothing: the STS
    // endpoint (where GetSessionToken would hand out real keys) is denied.
    let sink = Sink::start();
    let ws = Workspace::new();
    let pb = ws.playbook(
        "sts.toml",
        &playbook(
            "aws-sts",
            "https://sts.us-east-1.amazonaws.com/?Action=GetSessionToken",
            None,
            None,
        ),
    );
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = ws.journal("grants");
    assert_eq!(fetch_status(&records), Status::Failed);
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::EgressDenied { url, .. } if url.contains("sts.us-east-1.amazonaws.com"))));
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLoaded { allow_hosts, .. } if allow_hosts.is_empty())));
}

#[test]
fn a_granted_plugin_is_signed_only_at_its_services_endpoints() {
    // Granted EC2, and allowed to reach the sink: the sink gets the
    // request, unsigned (it is not an EC2 endpoint of AWS).
    let sink = Sink::start();
    let ws = Workspace::new();
    let allow = format!("\"127.0.0.1:{}\"", sink.port());
    let pb = ws.playbook(
        "granted.toml",
        &playbook(
            "any",
            &sink.url(),
            Some(&allow),
            Some("{ aws = [\"ec2\"] }"),
        ),
    );
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_no_credentials(&requests);
    let records = ws.journal("grants");
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLoaded { notes, .. } if notes.iter().any(|n| n.contains("only over HTTPS to the AWS endpoints of the granted services (ec2)")))));

    // Granted Azure: the token goes only to the environment's ARM endpoint.
    // Here the sink is that endpoint, so it gets the token; a grant is what
    // hands it out.
    let sink = Sink::start();
    let ws = Workspace::new();
    let pb = ws.playbook(
        "arm.toml",
        &playbook(
            "any",
            &sink.url(),
            Some("\"localhost:1\""),
            Some("{ azure = \"arm\" }"),
        ),
    );
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].contains(AZURE_TOKEN), "{requests:?}");
}

#[test]
fn bad_grants_are_diagnostics_with_file_line_and_field() {
    let ws = Workspace::new();
    let cases: [(&str, &str, &str); 8] = [
        (
            "{ aws = [\"ec2:Terminate Instances\"] }",
            "plugins.hostile.cloud.aws",
            "is not an AWS action",
        ),
        (
            "{ azure = [\"virtualMachines/read\"] }",
            "plugins.hostile.cloud.azure",
            "is not an ARM operation",
        ),
        (
            "{ aws = [\"a/b\"] }",
            "plugins.hostile.cloud.aws",
            "`a/b` is not an AWS service",
        ),
        (
            "{ aws = [\"ec2\", \"ec3\"] }",
            "plugins.hostile.cloud.aws",
            "`ec3` is not an AWS service",
        ),
        (
            "{ aws = [] }",
            "plugins.hostile.cloud.aws",
            "names the actions",
        ),
        (
            "{ azure = \"graph\" }",
            "plugins.hostile.cloud.azure",
            "`graph` is not an Azure scope",
        ),
        (
            "{ aws = [\"ec2\"], azure = \"arm\" }",
            "plugins.hostile.cloud",
            "one cloud",
        ),
        ("{ gcp = [\"compute\"] }", "gcp", "unknown field"),
    ];
    for (grant, field, says) in cases {
        let text = playbook("any", "http://127.0.0.1:1/", Some(""), Some(grant));
        let pb = ws.playbook("bad.toml", &text);
        let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{grant}: {}", stdout(&out));
        let err = stderr(&out);
        let line = text.lines().position(|l| l.starts_with("cloud =")).unwrap() + 1;
        assert!(err.contains(&format!("bad.toml:{line}:")), "{grant}: {err}");
        assert!(err.contains(&format!("`{field}`")), "{grant}: {err}");
        assert!(err.contains(says), "{grant}: {err}");
    }
    // A provider plugin granted another cloud than its own.
    let text = std::fs::read_to_string(repo_root().join("playbooks/aws-instance-compromise.toml"))
        .unwrap()
        .replace(
            "../plugins/dist",
            repo_root().join("plugins/dist").to_str().unwrap(),
        );
    // The shipped grant is a `[plugins.ec2.cloud]` table: swap it for Azure.
    let start = text.find("\n[plugins.ec2.cloud]").unwrap() + 1;
    let end = start + text[start..].find("]\n\n").unwrap() + 2;
    let text = format!(
        "{}cloud = {{ azure = \"arm\" }}\n{}",
        &text[..start],
        &text[end..]
    );
    let pb = ws.playbook("mismatch.toml", &text);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    let line = text.lines().position(|l| l.starts_with("cloud =")).unwrap() + 1;
    assert!(
        err.contains(&format!("mismatch.toml:{line}:")) && err.contains("`plugins.ec2.cloud`"),
        "{err}"
    );
    assert!(err.contains("provider for `aws` targets"), "{err}");
}

#[test]
fn a_name_resolving_to_loopback_is_refused_unless_it_is_the_environments_endpoint() {
    // `localhost` allowed by name: the connector resolves it, finds only
    // loopback addresses and refuses; the denial is journaled and nothing
    // reaches the sink.
    let sink = Sink::start();
    let ws = Workspace::new();
    let url = format!("http://localhost:{}/collect", sink.port());
    let allow = format!("\"localhost:{}\"", sink.port());
    let pb = ws.playbook("name.toml", &playbook("any", &url, Some(&allow), None));
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = ws.journal("grants");
    assert_eq!(fetch_status(&records), Status::Failed);
    assert!(
        records.iter().any(|r| matches!(&r.event,
            RunEvent::EgressDenied { url, reason, .. }
                if url.contains("localhost") && reason.contains("127.0.0.1 (loopback)"))),
        "{records:#?}"
    );
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());

    // The same name as the environment's endpoint (`AWS_ENDPOINT_URL`, a
    // local emulator) is reached, and signed: the grant names EC2 and the
    // responder named the endpoint.
    let ws = Workspace::new();
    let pb = ws.playbook(
        "endpoint.toml",
        &playbook(
            "any",
            &format!("{url}?Action=DescribeInstances"),
            None,
            Some("{ aws = [\"ec2\"] }"),
        ),
    );
    let out = credentials_command(&ws, &pb, &sink)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://localhost:{}", sink.port()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].contains(KEY_ID), "{requests:?}");

    // The address itself, allowed as a literal, is reached (unsigned: no
    // grant).
    let ws = Workspace::new();
    let allow = format!("\"127.0.0.1:{}\"", sink.port());
    let pb = ws.playbook(
        "literal.toml",
        &playbook("any", &sink.url(), Some(&allow), None),
    );
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sink.requests().len(), 2);
}

/// `openssl s_server` on a loopback port with a self-signed certificate
/// made here, for 127.0.0.1.
struct SelfSignedServer {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl SelfSignedServer {
    fn start() -> SelfSignedServer {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", stderr(&made));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        SelfSignedServer {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for SelfSignedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_connector_verifies_tls_certificates() {
    // An allowed HTTPS host whose certificate no trusted root signed: the
    // request fails in the TLS handshake, the step fails, nothing is sent.
    let server = SelfSignedServer::start();
    let sink = Sink::start();
    let ws = Workspace::new();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let allow = format!("\"https://127.0.0.1:{}\"", server.port);
    let pb = ws.playbook("tls.toml", &playbook("any", &url, Some(&allow), None));
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = ws.journal("grants");
    assert_eq!(fetch_status(&records), Status::Failed);
    let error = records
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::StepFinished { error, .. } => error.clone(),
            _ => None,
        })
        .unwrap_or_default();
    assert!(error.to_ascii_lowercase().contains("tls"), "{error}");
}

/// The journal's cloud-call records: (action, resource, status).
fn cloud_calls(
    records: &[irhost::journal::JournalRecord],
) -> Vec<(String, Option<String>, Option<u16>)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::CloudCall {
                action,
                resource,
                status,
                ..
            } => Some((action.clone(), resource.clone(), *status)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_granted_plugin_may_call_only_the_listed_actions() {
    // Granted ec2:DescribeInstances, the environment's endpoint (a local
    // emulator) is the sink. TerminateInstances is denied before signing:
    // nothing reaches the sink, the journal says which action and why.
    let sink = Sink::start();
    let grant = "{ aws = [\"ec2:DescribeInstances\", \"ec2:Describe*\"] }";
    let run = |action: &str| {
        let ws = Workspace::new();
        let url = format!(
            "http://127.0.0.1:{}/?Action={action}&Version=2016-11-15&InstanceId.1=i-0abc",
            sink.port()
        );
        let pb = ws.playbook("actions.toml", &playbook("any", &url, None, Some(grant)));
        let out = credentials_command(&ws, &pb, &sink)
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", sink.port()),
            )
            .output()
            .unwrap();
        (out, ws.journal("grants"))
    };
    let (out, records) = run("TerminateInstances");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(fetch_status(&records), Status::Failed);
    assert!(
        records.iter().any(|r| matches!(&r.event,
            RunEvent::EgressDenied { reason, .. }
                if reason.contains("ec2:TerminateInstances is not in the plugin's grant"))),
        "{records:#?}"
    );
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());
    assert!(cloud_calls(&records).is_empty());

    // A listed action is signed, sent, and lands in the journal as a
    // cloud call with its resource and status.
    let (out, records) = run("DescribeInstances");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].contains(KEY_ID), "signed: {requests:?}");
    assert_eq!(
        cloud_calls(&records),
        vec![(
            "ec2:DescribeInstances".to_string(),
            Some("i-0abc".to_string()),
            Some(200)
        )]
    );
}

#[test]
fn an_azure_grant_authorizes_only_its_arm_operations() {
    // The sink is the environment's ARM endpoint; the grant lists NSG reads
    // only, so a VM read gets no token and is not sent.
    let sink = Sink::start();
    let vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1";
    let run = |grant: &str| {
        let ws = Workspace::new();
        let url = format!(
            "http://127.0.0.1:{}{vm}?api-version=2024-03-01",
            sink.port()
        );
        let pb = ws.playbook(
            "arm.toml",
            &playbook("any", &url, Some("\"localhost:1\""), Some(grant)),
        );
        let out = run_with_credentials(&ws, &pb, &sink);
        (out, ws.journal("grants"))
    };
    let (out, records) = run("{ azure = [\"Microsoft.Network/networkSecurityGroups/read\"] }");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        records.iter().any(|r| matches!(&r.event,
            RunEvent::EgressDenied { reason, .. }
                if reason.contains("Microsoft.Compute/virtualMachines/read is not in the plugin's grant"))),
        "{records:#?}"
    );
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());

    let (out, records) = run("{ azure = [\"Microsoft.Compute/virtualMachines/read\"] }");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].contains(AZURE_TOKEN));
    assert_eq!(
        cloud_calls(&records),
        vec![(
            "Microsoft.Compute/virtualMachines/read".to_string(),
            Some(vm.to_string()),
            Some(200)
        )]
    );
}

/// A playbook of one hostile step flooding `url` with `count` requests.
fn flood_playbook(url: &str, count: u64, allow: &str) -> String {
    format!(
        r#"
[playbook]
name = "flood"

[plugins.hostile]
path = "{{hostile}}"
allow_hosts = [{allow}]
limits = {{ timeout = "110s", cpu_ms = 60000 }}
config = {{ mode = "flood", url = "{url}", count = {count} }}

[[steps]]
id = "fetch"
plugin = "hostile"
action = "misbehave"
"#
    )
}

fn step_output(records: &[irhost::journal::JournalRecord]) -> serde_json::Value {
    records
        .iter()
        .find_map(|r| match &r.event {
            RunEvent::StepFinished { output, .. } => output.clone(),
            _ => None,
        })
        .expect("the step has an output")["values"]
        .clone()
}

#[test]
fn denials_of_one_call_are_journaled_up_to_a_budget_then_summarised() {
    // 1,200 denied requests: 1,000 records, then one summary of the other 200.
    let sink = Sink::start();
    let ws = Workspace::new();
    let pb = ws.playbook(
        "flood.toml",
        &flood_playbook("http://192.0.2.1/x", 1200, ""),
    );
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = ws.journal("grants");
    let denials: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::EgressDenied { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(denials.len(), 1001, "{:?}", denials.last());
    assert!(
        denials[1000].contains("200 further denials of this call were counted, not journaled"),
        "{}",
        denials[1000]
    );
    assert_eq!(step_output(&records)["denied"], 1200);
}

#[test]
fn one_call_makes_at_most_ten_thousand_requests() {
    // An allowed loopback port nobody listens on: each request fails fast;
    // past 10,000 each is denied, and says why.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = Sink::start();
    let ws = Workspace::new();
    let pb = ws.playbook(
        "flood.toml",
        &flood_playbook(
            &format!("http://127.0.0.1:{port}/x"),
            10_010,
            &format!("\"127.0.0.1:{port}\""),
        ),
    );
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = ws.journal("grants");
    let output = step_output(&records);
    assert_eq!(output["denied"], 10, "{output}");
    assert_eq!(output["failed"], 10_000, "{output}");
    let budget_denials = records
        .iter()
        .filter(|r| {
            matches!(&r.event,
            RunEvent::EgressDenied { reason, .. } if reason.contains("more than 10000 requests"))
        })
        .count();
    assert_eq!(budget_denials, 10);
}

#[test]
fn a_body_the_host_buffers_to_sign_counts_against_the_plugin_memory() {
    // The plugin holds a 40 MB body in its 64 MiB and asks the host to sign
    // it: buffering another 40 MB would pass the limit, so the call fails and
    // nothing is sent. 1 MB fits and is signed.
    let sink = Sink::start();
    let run = |bytes: u64| {
        let ws = Workspace::new();
        let text = format!(
            r#"
[playbook]
name = "upload"

[plugins.hostile]
path = "{{hostile}}"
cloud = {{ aws = ["ec2:DescribeInstances"] }}
limits = {{ memory_mb = 64, timeout = "60s" }}
config = {{ mode = "upload", url = "http://127.0.0.1:{port}/", bytes = {bytes}, declare = ["ec2:DescribeInstances"] }}

[[steps]]
id = "fetch"
plugin = "hostile"
action = "misbehave"
"#,
            port = sink.port()
        );
        let pb = ws.playbook("upload.toml", &text);
        let out = credentials_command(&ws, &pb, &sink)
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", sink.port()),
            )
            .output()
            .unwrap();
        (out, ws.journal("grants"))
    };
    let (out, records) = run(40 << 20);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(fetch_status(&records), Status::Failed);
    let journal = format!("{records:?}");
    assert!(
        journal.contains("does not fit the plugin's memory limit of 67108864 bytes"),
        "{journal}"
    );
    assert!(sink.requests().is_empty());

    let (out, _) = run(1 << 20);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = sink.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].contains(KEY_ID));
}

#[test]
fn log_and_progress_records_of_one_call_are_budgeted() {
    // 1,500 log lines and 1,500 progress reports: 1,000 of each, and one
    // summary for each.
    let sink = Sink::start();
    let ws = Workspace::new();
    let text = r#"
[playbook]
name = "noisy"

[plugins.hostile]
path = "{hostile}"
allow_hosts = []
config = { mode = "noisy", records = 1500 }

[[steps]]
id = "fetch"
plugin = "hostile"
action = "misbehave"
"#;
    let pb = ws.playbook("noisy.toml", text);
    let out = run_with_credentials(&ws, &pb, &sink);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = ws.journal("grants");
    let logs: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::PluginLog { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    let progress = records
        .iter()
        .filter(|r| matches!(r.event, RunEvent::PluginProgress { .. }))
        .count();
    assert_eq!(progress, 1000);
    assert_eq!(logs.iter().filter(|m| m.starts_with("line ")).count(), 1000);
    assert_eq!(
        logs.iter()
            .filter(|m| m.contains("budget of 1000 records per call reached"))
            .count(),
        2,
        "{:?}",
        &logs[logs.len().saturating_sub(3)..]
    );
}

#[test]
fn no_mutating_step_runs_once_a_journal_write_failed() {
    // The case directory is on a 48 KiB tmpfs (this test mounts one: it
    // needs root, as scripts/test has on the project's machines). The
    // snapshot's 300 artifact records fill it, so journal writes fail; the
    // mutating step after it must not run: its request never reaches the
    // sink, and the run fails naming the journal.
    let sink = Sink::start();
    let ws = Workspace::new();
    let cases = ws.path().join("small-cases");
    std::fs::create_dir_all(&cases).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48k", "tmpfs"])
        .arg(&cases)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "this test mounts a small tmpfs for the case directory and needs root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(cases.clone());
    let text = format!(
        r#"
[playbook]
name = "journal-full"

[plugins.test]
path = "{{test}}"
config = {{ volumes = 300, interfaces = 1 }}

[plugins.hostile]
path = "{{hostile}}"
allow_hosts = ["127.0.0.1:{port}"]
config = {{ mode = "http", url = "{url}" }}

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"

[[steps]]
id = "change"
plugin = "hostile"
action = "mutate"
after = ["snapshot"]
"#,
        port = sink.port(),
        url = sink.url()
    );
    let pb = ws.playbook("full.toml", &text);
    let out = credentials_command(&ws, &pb, &sink)
        .env("IRHOST_CASES_DIR", &cases)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the case journal could not be written"),
        "{}",
        stderr(&out)
    );
    assert!(
        sink.requests().is_empty(),
        "the mutating step ran: {:?}",
        sink.requests()
    );
}

#[test]
fn a_verb_may_call_only_what_it_declared_within_its_grant() {
    // The grant allows TerminateInstances, but the verb declared only
    // DescribeInstances (contract 0.2): the call is refused before it
    // leaves, and the journal says the declaration is why.
    let sink = Sink::start();
    let grant = "{ aws = [\"ec2:DescribeInstances\", \"ec2:TerminateInstances\"] }";
    let ws = Workspace::new();
    let url = format!(
        "http://127.0.0.1:{}/?Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0abc",
        sink.port()
    );
    let text = playbook("any", &url, None, Some(grant)).replace(
        "declare = [\"ec2:DescribeInstances\", \"ec2:TerminateInstances\"]",
        "declare = [\"ec2:DescribeInstances\"]",
    );
    assert!(
        text.contains("declare = [\"ec2:DescribeInstances\"]"),
        "{text}"
    );
    let pb = ws.playbook("declared.toml", &text);
    let out = credentials_command(&ws, &pb, &sink)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", sink.port()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let records = ws.journal("grants");
    assert!(
        records.iter().any(|r| matches!(&r.event,
            RunEvent::EgressDenied { reason, .. }
                if reason.contains("ec2:TerminateInstances is not among the API actions `misbehave` declares (ec2:DescribeInstances)"))),
        "{records:#?}"
    );
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());

    // A declaration the grant does not cover is a plan error, at the step.
    let text = playbook(
        "any",
        &url,
        None,
        Some("{ aws = [\"ec2:DescribeInstances\"] }"),
    )
    .replace(
        "declare = [\"ec2:DescribeInstances\"]",
        "declare = [\"ec2:DescribeInstances\", \"ec2:TerminateInstances\"]",
    );
    let pb = ws.playbook("overclaim.toml", &text);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("steps.fetch.action"), "{err}");
    assert!(
        err.contains("calls ec2:TerminateInstances (declared by plugin `hostile` for `misbehave`), which its grant does not allow"),
        "{err}"
    );
}
