//! Credentials and networks as responders have them (#13), with the real
//! `irhost` binary, the real `aws-ec2` component and moto: a role per
//! account (moto's STS and multi-account state), a `role_arn` +
//! `source_profile` profile and its region, instance-role credentials from
//! IMDSv2, a private CA through `AWS_CA_BUNDLE` with pooled keep-alive TLS,
//! an HTTPS proxy and `NO_PROXY`, the one-line credential failure; Azure
//! managed identity (metadata service, App Service) and workload identity;
//! `mfa_serial` profiles; `irhost doctor` against moto's IAM authorization.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::moto::Moto;
use common::net::*;
use common::sink::Sink;
use common::*;
use irhost::events::RunEvent;
use irhost::journal::JournalRecord;
use serde_json::Value;

/// The AWS variables a test's environment starts without.
const AWS_VARS: &[&str] = &[
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CA_BUNDLE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `command` with only `env` of AWS and proxy settings; the shared config
/// and credentials files are the workspace's (absent unless a test writes
/// them), never the machine's.
fn with_env<'c>(command: &'c mut Command, ws: &Workspace, env: &[(&str, &str)]) -> &'c mut Command {
    command
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env("AWS_CONFIG_FILE", ws.path().join("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            ws.path().join("aws-credentials"),
        )
        .env_remove("RUST_LOG")
        .env_remove("IRHOST_SIGNING_KEY");
    for var in AWS_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied())
}

/// The real binary, with [`with_env`].
fn irhost(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
    command.args(args);
    with_env(&mut command, ws, env).output().unwrap()
}

fn shipped_playbook() -> String {
    std::fs::read_to_string(repo_root().join("playbooks/aws-instance-compromise.toml")).unwrap()
}

/// The shipped AWS playbook, written into the workspace with `extra` added
/// to the EC2 plugin's grant.
fn playbook_with_grant(ws: &Workspace, extra: &str) -> String {
    let text = shipped_playbook()
        .replace(
            "../plugins/dist/aws-ec2.wasm",
            plugin("aws-ec2").to_str().unwrap(),
        )
        .replace(
            "[plugins.ec2.cloud]\n",
            &format!("[plugins.ec2.cloud]\n{extra}\n"),
        );
    let path = ws.path().join("aws.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
}

/// The signers the journal names for `target`'s cloud calls.
fn signers(records: &[JournalRecord], target: &str) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::CloudCall {
                target: t, signer, ..
            } if t == target => Some(signer.clone().unwrap_or_default()),
            _ => None,
        })
        .collect();
    out.dedup();
    out
}

fn isolated_in(state: &Value, instance: &str, case: &str) -> bool {
    let groups = state["groups"].as_object().unwrap();
    let iso: Vec<&String> = groups
        .iter()
        .filter(|(_, g)| g["name"] == format!("irhost-isolation-{case}"))
        .map(|(id, _)| id)
        .collect();
    let enis: Vec<&Value> = state["enis"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["instance"] == instance)
        .collect();
    iso.len() == 1
        && !enis.is_empty()
        && enis
            .iter()
            .all(|e| e["groups"] == serde_json::json!([iso[0]]))
}

const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";

#[test]
fn one_run_isolates_instances_in_two_accounts_each_with_its_own_role() {
    let moto = Moto::start();
    let a = moto.fixture_in(ACCOUNT_A, &["seed", "multi-eni"])["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let b = moto.fixture_in(ACCOUNT_B, &["seed", "multi-eni"])["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = Workspace::new();
    let endpoint = moto.endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "responder"),
        ("AWS_SECRET_ACCESS_KEY", "responder-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let target_a = format!("aws:{ACCOUNT_A}/us-east-1/{a}");
    let target_b = format!("arn:aws:ec2:us-east-1:{ACCOUNT_B}:instance/{b}");

    // With the base identity only (moto's default account), neither
    // instance exists: only the right account's credentials find them.
    let base = playbook_with_grant(&ws, "");
    let out = irhost(
        &ws,
        &[
            "run", &base, "--case", "base", "--target", &target_a, "--target", &target_b,
        ],
        &env,
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    for (account, instance) in [(ACCOUNT_A, &a), (ACCOUNT_B, &b)] {
        let state = moto.fixture_in(account, &["state"]);
        assert!(!isolated_in(&state, instance, "base"));
    }

    let role = playbook_with_grant(
        &ws,
        r#"assume_role = "arn:aws:iam::{account}:role/IRResponder"
external_id = "ir-2026"
duration = "1h""#,
    );
    let out = irhost(
        &ws,
        &[
            "run", &role, "--case", "roles", "--target", &target_a, "--target", &target_b,
        ],
        &env,
    );
    ok(&out);
    for (account, instance) in [(ACCOUNT_A, &a), (ACCOUNT_B, &b)] {
        let state = moto.fixture_in(account, &["state"]);
        assert!(isolated_in(&state, instance, "roles"), "{account}: {state}");
    }
    // The journal says which role signed each target's calls.
    let records = ws.journal("roles");
    for (account, instance) in [(ACCOUNT_A, &a), (ACCOUNT_B, &b)] {
        let signed = signers(&records, &format!("aws:{instance}"));
        assert_eq!(
            signed,
            [format!(
                "role arn:aws:iam::{account}:role/IRResponder (session irhost-roles)"
            )],
            "{instance}"
        );
    }
    let journal = std::fs::read_to_string(ws.cases().join("roles/journal.jsonl")).unwrap();
    assert!(!journal.contains("responder-secret"));
}

#[test]
fn a_role_arn_profile_signs_with_the_assumed_role_in_the_profiles_region() {
    let moto = Moto::start();
    let account = "333333333333";
    let seeded = moto.fixture_with(
        &[
            ("IRHOST_FIXTURE_ACCOUNT", account),
            ("IRHOST_FIXTURE_REGION", "eu-west-1"),
        ],
        &["seed", "multi-eni"],
    );
    let instance = seeded["instance"].as_str().unwrap();
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("aws-config"),
        format!(
            "[profile ir]\nrole_arn = arn:aws:iam::{account}:role/IRResponder\nsource_profile = base\nregion = eu-west-1\n\n[profile base]\nregion = us-east-1\n"
        ),
    )
    .unwrap();
    std::fs::write(
        ws.path().join("aws-credentials"),
        "[base]\naws_access_key_id = AKIABASEEXAMPLE\naws_secret_access_key = base-secret\n",
    )
    .unwrap();
    let endpoint = moto.endpoint();
    let pb = playbook_with_grant(&ws, "");
    let out = irhost(
        &ws,
        &[
            "run",
            &pb,
            "--case",
            "profile",
            "--target",
            &format!("aws:{instance}"),
        ],
        &[
            ("AWS_PROFILE", "ir"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    ok(&out);
    let state = moto.fixture_with(
        &[
            ("IRHOST_FIXTURE_ACCOUNT", account),
            ("IRHOST_FIXTURE_REGION", "eu-west-1"),
        ],
        &["state"],
    );
    assert!(isolated_in(&state, instance, "profile"), "{state}");
    let records = ws.journal("profile");
    let signed = signers(&records, &format!("aws:{instance}"));
    assert_eq!(signed.len(), 1, "{signed:?}");
    // moto's STS issues temporary keys (ASIA…), not the base profile's key.
    assert!(
        signed[0].starts_with("default chain (access key ASIA"),
        "{signed:?}"
    );
    let journal = std::fs::read_to_string(ws.cases().join("profile/journal.jsonl")).unwrap();
    assert!(
        journal.contains("default region eu-west-1"),
        "region from the profile"
    );
}

#[test]
fn instance_role_credentials_come_from_imdsv2() {
    let moto = Moto::start();
    let seeded = moto.seed("multi-eni");
    let instance = seeded["instance"].as_str().unwrap();
    let imds = FakeImds::start(
        "ASIAIMDSEXAMPLE",
        "imds-secret",
        "imds-session",
        "us-east-1",
    );
    let ws = Workspace::new();
    let pb = playbook_with_grant(&ws, "");
    let (endpoint, imds_endpoint) = (moto.endpoint(), imds.endpoint());
    let out = irhost(
        &ws,
        &[
            "run",
            &pb,
            "--case",
            "imds",
            "--target",
            &format!("aws:{instance}"),
        ],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_endpoint.as_str()),
        ],
    );
    ok(&out);
    assert!(isolated_in(&moto.state(), instance, "imds"));
    assert!(imds.token_requests() >= 1);
    // Credentials are fetched once and cached, not per request.
    assert_eq!(imds.credential_requests(), 1, "{:?}", imds.requests());
    let records = ws.journal("imds");
    assert_eq!(
        signers(&records, &format!("aws:{instance}")),
        ["default chain (access key ASIAIMDSEXAMPLE)"]
    );
}

#[test]
fn no_credentials_is_one_line_naming_what_was_tried_and_what_to_set() {
    let moto = Moto::start();
    let instance = moto.seed("stopped")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = Workspace::new();
    let pb = playbook_with_grant(&ws, "");
    let endpoint = moto.endpoint();
    let out = irhost(
        &ws,
        &[
            "run",
            &pb,
            "--case",
            "nocreds",
            "--target",
            &format!("aws:{instance}"),
        ],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let line = text
        .lines()
        .find(|l| l.contains("no AWS credentials"))
        .unwrap_or_else(|| panic!("no credential line in:\n{text}"));
    for part in [
        "tried: environment variables",
        "profile `default`",
        "IMDSv2",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(!line.contains("{ "), "no Debug dump: {line}");
    let records = ws.journal("nocreds");
    assert!(step_error(&records, &format!("aws:{instance}"), "snapshot")
        .starts_with("the host could not authorize the plugin's request: no AWS credentials"));
}

/// Seed `n` instances and run the shipped playbook on them through a TLS
/// front with a private CA, at `concurrency`.
fn run_over_tls(moto: &Moto, ws: &Workspace, front: &TlsFront, ca: &Path, n: usize) -> Output {
    let ids = moto.seed(&format!("fleet:{n}"));
    let mut args = vec![
        "run".to_string(),
        playbook_with_grant(ws, ""),
        "--case".into(),
        "tls".into(),
        "--concurrency".into(),
        "2".into(),
    ];
    for id in ids["instances"].as_array().unwrap() {
        args.push("--target".into());
        args.push(format!("aws:{}", id.as_str().unwrap()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let url = front.url();
    irhost(
        ws,
        &args,
        &[
            ("AWS_ENDPOINT_URL", url.as_str()),
            ("AWS_CA_BUNDLE", ca.to_str().unwrap()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    )
}

#[test]
fn over_tls_with_a_private_ca_connections_are_pooled_per_host() {
    let moto = Moto::start();
    let ca = TestCa::new();
    let ws = Workspace::new();
    let ca_path = ws.path().join("ca.pem");
    ca.write_pem(&ca_path);
    let front = TlsFront::start(&moto.endpoint(), &ca);
    let out = run_over_tls(&moto, &ws, &front, &ca_path, 4);
    ok(&out);
    let requests = front.requests();
    assert!(requests >= 40, "the run went through the front: {requests}");
    // Keep-alive and a pool per plugin and host: at most as many
    // handshakes as requests the run makes at once (concurrency 2 × the
    // playbook's two parallel steps), not one per request.
    assert!(
        front.handshakes() <= 4,
        "{} handshakes for {requests} requests",
        front.handshakes()
    );
    let state = moto.state();
    let isolated = state["instances"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|i| isolated_in(&state, i, "tls"))
        .count();
    assert_eq!(isolated, 4);

    // Without the CA the same endpoint is refused at the handshake.
    let ws = Workspace::new();
    let out = irhost(
        &ws,
        &[
            "run",
            &playbook_with_grant(&ws, ""),
            "--case",
            "untrusted",
            "--target",
            "aws:i-0000000000000000a",
        ],
        &[
            ("AWS_ENDPOINT_URL", front.url().as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert!(!out.status.success());
    let records = ws.journal("untrusted");
    let calls: Vec<&RunEvent> = records
        .iter()
        .map(|r| &r.event)
        .filter(|e| matches!(e, RunEvent::CloudCall { .. }))
        .collect();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|e| matches!(e, RunEvent::CloudCall { status: None, error: Some(e), .. } if e.contains("certificate"))),
        "{calls:?}"
    );
}

#[test]
fn an_unreadable_ca_bundle_is_an_error_naming_it() {
    let ws = Workspace::new();
    let pb = playbook_with_grant(&ws, "");
    let out = irhost(
        &ws,
        &["validate", &pb],
        &[
            ("AWS_CA_BUNDLE", "/nonexistent/corp-ca.pem"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("AWS_CA_BUNDLE=/nonexistent/corp-ca.pem: cannot read it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn https_proxy_carries_the_run_and_no_proxy_bypasses_it() {
    let moto = Moto::start();
    let instance = moto.seed("multi-eni")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = TestCa::new();
    let ws = Workspace::new();
    let ca_path = ws.path().join("ca.pem");
    ca.write_pem(&ca_path);
    // The real EC2 name, reachable only through the proxy (which routes it
    // to the TLS front before moto): no endpoint override, so the name is
    // the one the allow list and the signer see.
    let ec2 = "ec2.us-east-1.amazonaws.com";
    let front = TlsFront::with_names(&moto.endpoint(), &ca, &[ec2, "localhost"]);
    let proxy = ConnectProxy::with_auth("ir", "proxy-secret");
    proxy.route(
        &format!("{ec2}:443"),
        &format!("127.0.0.1:{}", front.port()),
    );
    let proxy_url = proxy.url().replace("http://", "http://ir:proxy-secret@");
    let pb = playbook_with_grant(&ws, "");
    let out = irhost(
        &ws,
        &[
            "run",
            &pb,
            "--case",
            "proxied",
            "--target",
            &format!("aws:{instance}"),
        ],
        &[
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("AWS_CA_BUNDLE", ca_path.to_str().unwrap()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    ok(&out);
    assert!(isolated_in(&moto.state(), &instance, "proxied"));
    // EC2 for everything, and the optional EFS/FSx reads of
    // enumerate-interfaces (their endpoints the proxy does not serve: the
    // inventory records them unread).
    let connects = proxy.connects();
    let granted = [
        format!("{ec2}:443"),
        "elasticfilesystem.us-east-1.amazonaws.com:443".to_string(),
        "fsx.us-east-1.amazonaws.com:443".to_string(),
    ];
    assert!(
        connects.contains(&granted[0]) && connects.iter().all(|c| granted.contains(c)),
        "{connects:?}"
    );
    assert!(
        connects.len() <= 16,
        "pooled through the tunnel: {}",
        connects.len()
    );
    assert_eq!(proxy.rejected(), 0, "the proxy's credentials were sent");
    let journal = std::fs::read_to_string(ws.cases().join("proxied/journal.jsonl")).unwrap();
    assert!(!journal.contains("proxy-secret"));

    // NO_PROXY: the endpoint is reached directly, the proxy sees nothing.
    let before = proxy.connects().len();
    let ws = Workspace::new();
    let pb = playbook_with_grant(&ws, "");
    let url = front.url();
    let out = irhost(
        &ws,
        &[
            "run",
            &pb,
            "--case",
            "direct",
            "--target",
            &format!("aws:{instance}"),
        ],
        &[
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "localhost"),
            ("AWS_ENDPOINT_URL", url.as_str()),
            ("AWS_CA_BUNDLE", ca_path.to_str().unwrap()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    ok(&out);
    assert_eq!(proxy.connects().len(), before);
}

/// A hostile step granted ARM, fetching `arm_url` (the sink standing in
/// for ARM), run with `env` as the responder's Azure identity.
fn run_arm_fetch(ws: &Workspace, sink: &Sink, env: &[(&str, &str)]) -> Output {
    run_arm_fetch_with(ws, sink, env, "", "test:t1")
}

/// [`run_arm_fetch`] with more of the grant (`tenants = …`) and a target.
fn run_arm_fetch_with(
    ws: &Workspace,
    sink: &Sink,
    env: &[(&str, &str)],
    grant: &str,
    target: &str,
) -> Output {
    let pb = ws.playbook(
        "arm.toml",
        &format!(
            r#"
[playbook]
name = "arm-identity"

[plugins.hostile]
path = "{{hostile}}"
allow_hosts = ["localhost:1"]
config = {{ claim_provider = "any", mode = "http", url = "{}", declare = ["*"] }}

[plugins.hostile.cloud]
azure = "arm"
{grant}

[[steps]]
id = "fetch"
plugin = "hostile"
action = "misbehave"
"#,
            sink.url()
        ),
    );
    let arm = format!("http://127.0.0.1:{}", sink.port());
    let mut all: Vec<(&str, &str)> = vec![
        ("AZURE_RESOURCE_MANAGER_URL", arm.as_str()),
        ("IRHOST_AZURE_CLI", "0"),
    ];
    all.extend_from_slice(env);
    irhost(
        ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            target,
            "--case",
            "arm",
        ],
        &all,
    )
}

/// The one request the sink saw carries exactly the token the identity
/// endpoint issued.
fn assert_bearer_from(sink: &Sink, identity: &FakeAzureIdentity) {
    let issued = identity.issued_tokens();
    assert_eq!(issued.len(), 1, "{:?}", identity.requests());
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {}", issued[0]).to_ascii_lowercase()),
        "{requests:?}"
    );
}

#[test]
fn azure_managed_identity_from_the_metadata_service_for_the_clouds_audience() {
    let identity = FakeAzureIdentity::start();
    let sink = Sink::start();
    let ws = Workspace::new();
    let endpoint = format!("{}/metadata/identity/oauth2/token", identity.endpoint());
    let out = run_arm_fetch(&ws, &sink, &[("MSI_ENDPOINT", endpoint.as_str())]);
    ok(&out);
    assert_bearer_from(&sink, &identity);
    let asked = identity.requests();
    assert_eq!(asked[0].endpoint, AzureTokenEndpoint::Imds);
    // The audience is public Azure's, not the ARM URL (the sink's).
    assert_eq!(
        asked[0].resource.as_deref(),
        Some("https://management.core.windows.net/")
    );
}

#[test]
fn azure_app_service_identity_sends_its_header() {
    let identity = FakeAzureIdentity::start();
    let sink = Sink::start();
    let ws = Workspace::new();
    let endpoint = identity.identity_endpoint();
    let out = run_arm_fetch(
        &ws,
        &sink,
        &[
            ("IDENTITY_ENDPOINT", endpoint.as_str()),
            ("IDENTITY_HEADER", identity.identity_header()),
            ("AZURE_CLOUD", "AzureUSGovernment"),
        ],
    );
    ok(&out);
    assert_bearer_from(&sink, &identity);
    let asked = identity.requests();
    assert_eq!(asked[0].endpoint, AzureTokenEndpoint::AppService);
    assert_eq!(
        asked[0].resource.as_deref(),
        Some("https://management.core.usgovcloudapi.net/")
    );
}

#[test]
fn azure_workload_identity_sends_the_federated_token_as_assertion() {
    let identity = FakeAzureIdentity::start();
    let sink = Sink::start();
    let ws = Workspace::new();
    let token_file = ws.path().join("azure-identity-token");
    let assertion =
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aXI6aXJob3N0In0.c2lnbmF0dXJl";
    std::fs::write(&token_file, format!("{assertion}\n")).unwrap();
    let authority = identity.endpoint();
    let out = run_arm_fetch(
        &ws,
        &sink,
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-00000000c11e"),
            ("AZURE_TENANT_ID", "00000000-0000-0000-0000-0000000000aa"),
            ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ],
    );
    ok(&out);
    assert_bearer_from(&sink, &identity);
    let asked = &identity.requests()[0];
    assert_eq!(asked.endpoint, AzureTokenEndpoint::Entra);
    assert_eq!(
        asked.tenant.as_deref(),
        Some("00000000-0000-0000-0000-0000000000aa")
    );
    assert_eq!(
        asked.credential,
        Some(AzureClientCredential::Assertion(assertion.to_string()))
    );
    assert_eq!(
        asked.resource.as_deref(),
        Some("https://management.core.windows.net//.default")
    );
}

#[test]
fn doctor_says_what_a_restricted_identity_may_not_do() {
    let moto = Moto::launch_with(&["--iam-auth"]);
    let instance = moto.seed("multi-eni")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let user = |name: &str, actions: &[&str]| {
        let mut args = vec!["iam-user", name];
        args.extend_from_slice(actions);
        moto.fixture(&args)
    };
    let readonly = user("ir-readonly", &["ec2:Describe*", "sts:GetCallerIdentity"]);
    let full = user("ir-full", &["ec2:*", "sts:GetCallerIdentity"]);
    moto.enforce_iam();
    let ws = Workspace::new();
    let pb = playbook_with_grant(&ws, "");
    let endpoint = moto.endpoint();
    let doctor = |keys: &Value| {
        irhost(
            &ws,
            &["doctor", &pb, "--target", &format!("aws:{instance}")],
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", keys["access_key_id"].as_str().unwrap()),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    keys["secret_access_key"].as_str().unwrap(),
                ),
                ("AWS_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        )
    };
    let row = |text: &str, action: &str| -> String {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(action))
            .unwrap_or_else(|| panic!("no row for {action}:\n{text}"))
            .to_string()
    };

    let out = doctor(&readonly);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(row(&text, "credentials").starts_with("  ok"), "{text}");
    assert!(
        row(&text, "ec2:DescribeInstances").starts_with("  ok"),
        "{text}"
    );
    for denied in [
        "ec2:CreateSnapshots",
        "ec2:CreateTags",
        "ec2:ModifyInstanceAttribute",
    ] {
        assert!(
            row(&text, denied).starts_with("  MISSING"),
            "{denied}: {text}"
        );
    }

    let out = doctor(&full);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        row(&text, "ec2:CreateSnapshots").starts_with("  ok"),
        "{text}"
    );
    // Nothing was changed: the dry runs made no snapshot.
    let state = moto.fixture_with(
        &[
            (
                "IRHOST_FIXTURE_KEY_ID",
                full["access_key_id"].as_str().unwrap(),
            ),
            (
                "IRHOST_FIXTURE_SECRET",
                full["secret_access_key"].as_str().unwrap(),
            ),
        ],
        &["state"],
    );
    let volumes = &state["instances"][&instance]["volumes"];
    let of_instance = state["snapshots"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| {
            volumes
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["volume"] == s["volume"])
        })
        .count();
    assert_eq!(of_instance, 0, "a dry run made a snapshot");

    // No credentials at all: one line, exit 1.
    let out = irhost(
        &ws,
        &["doctor", &pb, "--target", &format!("aws:{instance}")],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        row(&stdout(&out), "credentials").contains("no AWS credentials"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_mfa_profile_asks_for_the_code_on_a_terminal_and_refuses_off_one() {
    let moto = Moto::start();
    let account = "444444444444";
    let instance = moto.fixture_in(account, &["seed", "multi-eni"])["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = Workspace::new();
    let serial = "arn:aws:iam::123456789012:mfa/responder";
    std::fs::write(
        ws.path().join("aws-config"),
        format!("[profile mfa]\nrole_arn = arn:aws:iam::{account}:role/IRResponder\nsource_profile = base\nmfa_serial = {serial}\nregion = us-east-1\n"),
    )
    .unwrap();
    std::fs::write(
        ws.path().join("aws-credentials"),
        "[base]\naws_access_key_id = AKIABASEEXAMPLE\naws_secret_access_key = base-secret\n",
    )
    .unwrap();
    let pb = playbook_with_grant(&ws, "");
    let target = format!("aws:{instance}");
    let endpoint = moto.endpoint();
    let env = [
        ("AWS_PROFILE", "mfa"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let bin = env!("CARGO_BIN_EXE_irhost");

    // Off a terminal (a new session has none): refused, saying what to do.
    let mut command = Command::new("setsid");
    command
        .arg("-w")
        .arg(bin)
        .args(["run", &pb, "--case", "no-tty", "--target", &target]);
    let out = with_env(&mut command, &ws, &env).output().unwrap();
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains(&format!("profile `mfa` needs an MFA code (mfa_serial = {serial}) and irhost is not on a terminal")),
        "{text}"
    );
    assert!(!isolated_in(
        &moto.fixture_in(account, &["state"]),
        &instance,
        "no-tty"
    ));

    // On a terminal (script(1) gives it one): the code typed is used.
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-c"])
        .arg(format!("{bin} run {pb} --case tty --target {target}"))
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped());
    let mut child = with_env(&mut command, &ws, &env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Typed at once: the terminal keeps it until irhost asks. stdin stays
    // open until irhost is done (script(1) ends the session at its EOF).
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"123456\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(&format!("MFA code for {serial} (profile mfa): ")),
        "{text}"
    );
    assert!(isolated_in(
        &moto.fixture_in(account, &["state"]),
        &instance,
        "tty"
    ));
}

#[test]
fn one_process_makes_https_plugin_requests_sts_calls_and_azure_token_fetches() {
    // One TLS stack: a plugin's HTTPS request to EC2, the host's STS call
    // (the grant's role) and its Azure token fetch, all over TLS with the
    // test CA, in one irhost process.
    let moto = Moto::start();
    let account = "555555555555";
    let instance = moto.fixture_in(account, &["seed", "multi-eni"])["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = TestCa::new();
    let ws = Workspace::new();
    let ca_path = ws.path().join("ca.pem");
    ca.write_pem(&ca_path);
    let aws_front = TlsFront::start(&moto.endpoint(), &ca);
    let identity = FakeAzureIdentity::start();
    let entra_front = TlsFront::start(&identity.endpoint(), &ca);
    let sink = Sink::start();
    let text = shipped_playbook()
        .replace(
            "../plugins/dist/aws-ec2.wasm",
            plugin("aws-ec2").to_str().unwrap(),
        )
        .replace(
            "[plugins.ec2.cloud]\n",
            "[plugins.ec2.cloud]\nassume_role = \"arn:aws:iam::{account}:role/IRResponder\"\n",
        );
    let text = format!(
        "{text}\n[plugins.hostile]\npath = \"{}\"\nallow_hosts = [\"localhost:1\"]\ncloud = {{ azure = \"arm\" }}\nconfig = {{ claim_provider = \"any\", mode = \"http\", url = \"{}\", declare = [\"*\"] }}\n\n[[steps]]\nid = \"arm\"\nplugin = \"hostile\"\naction = \"misbehave\"\n",
        plugin("hostile").display(),
        sink.url()
    );
    let pb = ws.path().join("both.toml");
    std::fs::write(&pb, text).unwrap();
    let (aws_url, authority, arm) = (
        aws_front.url(),
        entra_front.url(),
        format!("http://127.0.0.1:{}", sink.port()),
    );
    let out = irhost(
        &ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--case",
            "one-stack",
            "--target",
            &format!("aws:{account}/us-east-1/{instance}"),
        ],
        &[
            ("AWS_ENDPOINT_URL", aws_url.as_str()),
            ("AWS_CA_BUNDLE", ca_path.to_str().unwrap()),
            ("AWS_ACCESS_KEY_ID", "responder"),
            ("AWS_SECRET_ACCESS_KEY", "responder-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AZURE_AUTHORITY_HOST", authority.as_str()),
            ("AZURE_TENANT_ID", "00000000-0000-0000-0000-0000000000aa"),
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-00000000c11e"),
            ("AZURE_CLIENT_SECRET", "azure-secret"),
            ("AZURE_RESOURCE_MANAGER_URL", arm.as_str()),
        ],
    );
    ok(&out);
    assert!(
        aws_front
            .request_lines()
            .iter()
            .any(|l| l.starts_with("POST /")),
        "STS and EC2 went over TLS"
    );
    assert!(isolated_in(
        &moto.fixture_in(account, &["state"]),
        &instance,
        "one-stack"
    ));
    assert_eq!(
        entra_front.requests(),
        1,
        "the token was fetched over TLS, once"
    );
    assert_bearer_from(&sink, &identity);
}

#[test]
fn an_azure_target_takes_its_subscriptions_tenant_where_the_grant_says() {
    let identity = FakeAzureIdentity::start();
    let sink = Sink::start();
    let ws = Workspace::new();
    let sub = "11111111-2222-3333-4444-555555555555";
    let tenant = "99999999-8888-7777-6666-555555555555";
    let authority = identity.endpoint();
    let out = run_arm_fetch_with(
        &ws,
        &sink,
        &[
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-00000000c11e"),
            ("AZURE_CLIENT_SECRET", "azure-secret"),
            ("AZURE_TENANT_ID", "00000000-0000-0000-0000-0000000000aa"),
            ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ],
        &format!("tenants = {{ \"{sub}\" = \"{tenant}\" }}"),
        &format!("azure:/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"),
    );
    ok(&out);
    assert_bearer_from(&sink, &identity);
    assert_eq!(identity.requests()[0].tenant.as_deref(), Some(tenant));
}

#[test]
fn bad_role_settings_are_located_diagnostics_and_nothing_runs() {
    for (extra, field, says) in [
        (
            r#"assume_role = "arn:aws:iam::1234:role/IR""#,
            "plugins.ec2.cloud.assume_role",
            "12 digits",
        ),
        (
            r#"assume_role = "arn:aws:iam::{account}:user/IR""#,
            "plugins.ec2.cloud.assume_role",
            "not an IAM role ARN",
        ),
        (
            "assume_role = \"arn:aws:iam::{account}:role/IR\"\nduration = \"1m\"",
            "plugins.ec2.cloud.duration",
            "15m to 12h",
        ),
        (
            r#"external_id = "ir-2026""#,
            "plugins.ec2.cloud.external_id",
            "a setting of assume_role",
        ),
        (
            r#"tenants = { "x" = "y" }"#,
            "plugins.ec2.cloud.tenants",
            "for Azure grants",
        ),
    ] {
        let ws = Workspace::new();
        let pb = playbook_with_grant(&ws, extra);
        let out = irhost(&ws, &["validate", &pb], &[("AWS_REGION", "us-east-1")]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
        assert!(err.contains(field) && err.contains(says), "{extra}: {err}");
        // The lines of `extra`, right after the grant's table header.
        let text = std::fs::read_to_string(&pb).unwrap();
        let header = text
            .lines()
            .position(|l| l == "[plugins.ec2.cloud]")
            .unwrap()
            + 1;
        let lines: Vec<String> = (1..=extra.lines().count())
            .map(|n| format!("aws.toml:{}:", header + n))
            .collect();
        assert!(
            lines.iter().any(|l| err.contains(l.as_str())),
            "located at one of {lines:?}: {err}"
        );
    }
}
