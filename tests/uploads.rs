//! Evidence uploads into Azure Storage (Azurite): the host's block-blob
//! store behind the `uploads` interface, with the real hostile component
//! playing the machine (PUTting blocks to the URLs the host minted).

mod common;

use std::process::Command;

use common::azurite::{Azurite, KEY};
use common::*;
use irhost::events::{RunEvent, Status};

fn run(
    ws: &Workspace,
    azurite: &Azurite,
    data: &str,
    key: Option<&str>,
) -> (std::process::Output, Vec<irhost::journal::JournalRecord>) {
    let pb = ws.playbook(
        "uploads.toml",
        &format!(
            r#"
[playbook]
name = "uploads"

[plugins.hostile]
path = "{{hostile}}"
allow_hosts = ["127.0.0.1:{port}"]
config = {{ mode = "upload-all", data = "{data}", parts = 3 }}

[plugins.hostile.cloud]
azure = ["Microsoft.Compute/virtualMachines/read"]
evidence_uploads = "{service}/evidence/memory/"

[[steps]]
id = "upload"
plugin = "hostile"
action = "misbehave"
"#,
            port = azurite.port(),
            service = azurite.service()
        ),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_irhost"));
    command
        .args([
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:t1",
            "--case",
            "up",
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env("AZURE_ACCESS_TOKEN", "unused-arm-token")
        .env_remove("AZURE_STORAGE_KEY");
    if let Some(key) = key {
        command.env("AZURE_STORAGE_KEY", key);
    }
    let out = command.output().unwrap();
    let records = ws.journal("up");
    (out, records)
}

#[test]
fn a_blob_is_committed_from_the_blocks_of_its_upload_through_write_only_urls() {
    let azurite = Azurite::start();
    azurite.create_container("evidence");
    let data = "IRHOST-MEMORY-IMAGE-".repeat(500);
    let ws = Workspace::new();
    let (out, records) = run(&ws, &azurite, &data, Some(KEY));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let values = step_values(&records, "test:t1", "upload");
    assert_eq!(
        values["location"],
        format!("{}/evidence/memory/up/t1/memory.raw", azurite.service())
    );
    assert_eq!(values["parts"], 3);
    assert_eq!(values["size"], data.len());
    // What the store holds is exactly what the "machine" sent, in order.
    assert_eq!(
        azurite.blob("evidence", "memory/up/t1/memory.raw").unwrap(),
        data.as_bytes()
    );
    let operations: Vec<(&str, Option<u32>)> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::EvidenceUpload {
                operation,
                expires_in_s,
                ..
            } => Some((operation.as_str(), *expires_in_s)),
            _ => None,
        })
        .collect();
    assert_eq!(
        operations,
        [
            ("begin", None),
            ("part-urls", Some(900)),
            ("complete", None)
        ]
    );

    // Without the account key the store is unavailable: said at load, and
    // the plugin's uploads are denied.
    let ws = Workspace::new();
    let (out, records) = run(&ws, &azurite, "x", None);
    assert_eq!(out.status.code(), Some(1));
    assert!(matches!(
        finished(&records, "test:t1", "upload"),
        RunEvent::StepFinished {
            status: Status::Failed,
            ..
        }
    ));
    assert!(
        step_error(&records, "test:t1", "upload").contains("no evidence uploads"),
        "{records:?}"
    );
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLoaded { notes, .. } if notes.iter().any(|n| n.contains("AZURE_STORAGE_KEY")))));
}
