//! Helpers of the Azure tests: shipped and custom playbooks pointed at the
//! built component, the real binary run against the fake ARM, a seeded VM,
//! readers of the fake's state.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::fake_arm::{FakeArm, NicSpec, VmSpec};
use crate::common::*;
use irhost::events::RunEvent;
use irhost::journal::JournalRecord;
use serde_json::Value;

pub const RG: &str = "ir-rg";

/// A shipped playbook with absolute plugin paths and a short poll interval
/// (the steps are the shipped ones, unchanged).
pub fn shipped(ws: &Workspace, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("playbooks").join(name)).unwrap();
    let dist = repo_root().join("plugins/dist");
    let text = text.replace("../plugins/dist", dist.to_str().unwrap());
    let text = if text.contains("\nconfig = { memory_tool_url") {
        text.replace(
            "\nconfig = { memory_tool_url",
            "\nconfig = { poll_ms = 20, memory_tool_url",
        )
    } else {
        text.replace(
            &format!("path = \"{}/azure-compute.wasm\"", dist.display()),
            &format!(
                "path = \"{}/azure-compute.wasm\"\nconfig = {{ poll_ms = 20 }}",
                dist.display()
            ),
        )
    };
    let path = ws.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn irhost_with(ws: &Workspace, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_irhost"));
    cmd.args(args)
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env_remove("RUST_LOG")
        .env_remove("IRHOST_SIGNING_KEY");
    for var in [
        "AZURE_ACCESS_TOKEN",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_AUTHORITY_HOST",
        "AZURE_RESOURCE_MANAGER_URL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    plugin("azure-compute");
    cmd.output().unwrap()
}

pub fn run(arm: &FakeArm, ws: &Workspace, playbook: &str, case: &str, vms: &[&str]) -> Output {
    let book = shipped(ws, playbook);
    let mut args = vec![
        "run".to_string(),
        book.to_str().unwrap().into(),
        "--case".into(),
        case.into(),
    ];
    for vm in vms {
        args.push("--target".into());
        args.push(format!("azure:{vm}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    irhost_with(ws, &arm.env(), &args)
}

pub fn two_nic_vm(arm: &FakeArm, name: &str) -> String {
    arm.seed_vm(
        RG,
        &VmSpec {
            name: name.into(),
            location: "westus".into(),
            data_disks: 2,
            nics: vec![
                NicSpec {
                    name: format!("{name}-nic0"),
                    vnet: "ir-vnet".into(),
                    subnet: "web".into(),
                    private_ip: "10.0.1.4".into(),
                    nsg: Some("web-nsg".into()),
                    public_ip: Some("203.0.113.10".into()),
                },
                NicSpec {
                    name: format!("{name}-nic1"),
                    vnet: "ir-vnet".into(),
                    subnet: "backend".into(),
                    private_ip: "10.0.2.4".into(),
                    nsg: None,
                    public_ip: None,
                },
            ],
        },
    )
}

pub fn tag<'a>(resource: &'a Value, key: &str) -> Option<&'a str> {
    resource["tags"][key].as_str()
}

pub fn nsg_of(nic: &Value) -> Option<String> {
    nic["properties"]["networkSecurityGroup"]["id"]
        .as_str()
        .map(str::to_ascii_lowercase)
}

/// Requests that change ARM state.
pub fn changes(arm: &FakeArm) -> Vec<String> {
    arm.requests()
        .into_iter()
        .filter(|r| {
            !["GET", "HEAD"].contains(&r.method.as_str())
                && !r.path.ends_with("/oauth2/v2.0/token")
                // A POST that only reads (it mints read-only SAS URIs).
                && !r.path.ends_with("/retrieveBootDiagnosticsData")
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// A raw HTTP request to the fake (what an operator's tool would send).
pub fn http(arm: &FakeArm, method: &str, path: &str, token: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", arm.port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        arm.port
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// The shipped full protocol without its memory capture (the tests of the
/// other verbs have no memory tool to give it).
pub fn full_protocol_without_memory(ws: &Workspace) -> PathBuf {
    let path = shipped(ws, "azure-full-protocol.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[[steps]]\nid = \"memory\"").unwrap();
    let end = start + text[start..].find("\n\n").unwrap() + 2;
    let text = format!("{}{}", &text[..start], &text[end..])
        .replace("after = [\"memory\", \"snapshot\"", "after = [\"snapshot\"");
    let book = ws.path().join("azure-full-protocol-no-memory.toml");
    std::fs::write(&book, text).unwrap();
    book
}

/// A playbook with the full protocol's plugin and grant
/// (playbooks/azure-full-protocol.toml) and these steps; `edit` changes
/// the rest of the text (a grant entry, allow_hosts).
pub fn custom(ws: &Workspace, name: &str, steps: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let path = shipped(ws, "azure-full-protocol.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let head = &text[..text.find("[[steps]]").unwrap()];
    let book = ws.path().join(name);
    std::fs::write(&book, edit(format!("{head}{steps}"))).unwrap();
    book
}

/// Allow the fake's storage account (the boot-diagnostics blobs) too.
pub fn allowing_blobs(arm: &FakeArm) -> impl Fn(String) -> String {
    let host = arm.blob_host();
    move |text| {
        text.replace(
            "allow_hosts = [\"*.blob.core.windows.net\",",
            &format!("allow_hosts = [\"{host}\", \"*.blob.core.windows.net\","),
        )
    }
}

/// Run a playbook file on VMs with the fake's environment.
pub fn run_book(arm: &FakeArm, ws: &Workspace, book: &Path, case: &str, vms: &[&str]) -> Output {
    run_book_with(arm, ws, book, case, vms, &[])
}

/// [`run_book`] with more environment.
pub fn run_book_with(
    arm: &FakeArm,
    ws: &Workspace,
    book: &Path,
    case: &str,
    vms: &[&str],
    extra: &[(&'static str, String)],
) -> Output {
    let mut env = arm.env();
    env.extend_from_slice(extra);
    let mut args = vec![
        "run".to_string(),
        book.to_str().unwrap().into(),
        "--case".into(),
        case.into(),
    ];
    for vm in vms {
        args.push("--target".into());
        args.push(format!("azure:{vm}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    irhost_with(ws, &env, &args)
}

/// The plugin's log lines for a target.
pub fn plugin_logs(records: &[JournalRecord], target: &str) -> Vec<String> {
    events(records)
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::PluginLog {
                target: t, message, ..
            } if t == target => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// The stored bytes of an artifact of the case.
pub fn artifact_bytes(ws: &Workspace, case: &str, sha256: &str) -> Vec<u8> {
    std::fs::read(ws.cases().join(case).join("artifacts").join(sha256)).unwrap()
}

/// Requests (`METHOD path?query`) whose path contains `part`.
pub fn calls_to(arm: &FakeArm, method: &str, part: &str) -> Vec<String> {
    arm.requests()
        .into_iter()
        .filter(|r| {
            r.method == method
                && r.path
                    .to_ascii_lowercase()
                    .contains(&part.to_ascii_lowercase())
        })
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}
