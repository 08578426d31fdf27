//! Evidence uploads into Azure Storage (Azurite): the host's block-blob
//! store behind the `uploads` interface, with the real hostile component
//! playing the machine (PUTting blocks to the URLs the host minted). Both
//! ways the host signs are run: account-key SASes (`AZURE_STORAGE_KEY`,
//! Azurite over HTTP) and user-delegation SASes from the responder's
//! identity (Azurite over HTTPS with OAuth, a fake Entra issuing the
//! Storage token).

mod common;

use std::path::Path;
use std::process::Command;

use common::azurite::{Azurite, KEY};
use common::net::{FakeAzureIdentity, TestCa};
use common::*;
use irhost::events::{RunEvent, Status};

/// Run the hostile plugin's `mode` (with `data`) against the container
/// `evidence` of `azurite`, with these variables set (and no
/// `AZURE_STORAGE_KEY` or Storage token unless among them).
fn run(
    ws: &Workspace,
    azurite: &Azurite,
    mode: &str,
    data: &str,
    env: &[(&str, &str)],
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
config = {{ mode = "{mode}", data = "{data}", parts = 3 }}

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
        .env("IRHOST_AZURE_CLI", "0")
        .env_remove("AZURE_STORAGE_KEY")
        .env_remove("AZURE_STORAGE_ACCESS_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let records = ws.journal("up");
    (out, records)
}

/// The journal's evidence-upload operations and their URL lifetimes.
fn operations(records: &[irhost::journal::JournalRecord]) -> Vec<(&str, Option<u32>)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::EvidenceUpload {
                operation,
                expires_in_s,
                ..
            } => Some((operation.as_str(), *expires_in_s)),
            _ => None,
        })
        .collect()
}

/// Every file of a case directory, as text.
fn case_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&case_text(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

#[test]
fn a_blob_is_committed_from_the_blocks_of_its_upload_through_write_only_urls() {
    let azurite = Azurite::start();
    azurite.create_container("evidence");
    let data = "IRHOST-MEMORY-IMAGE-".repeat(500);
    let ws = Workspace::new();
    let (out, records) = run(
        &ws,
        &azurite,
        "upload-all",
        &data,
        &[("AZURE_STORAGE_KEY", KEY)],
    );
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
    assert_eq!(
        operations(&records),
        [
            ("begin", None),
            ("part-urls", Some(900)),
            ("complete", None)
        ]
    );

    // Without the account key the host would sign with user delegation
    // keys, which need bearer tokens, which need HTTPS: over plain HTTP the
    // store is unavailable, said at load, and the plugin's uploads are
    // denied.
    let ws = Workspace::new();
    let (out, records) = run(&ws, &azurite, "upload-all", "x", &[]);
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
        RunEvent::PluginLoaded { notes, .. } if notes.iter().any(|n| n.contains("needs the service over https") && n.contains("AZURE_STORAGE_KEY")))));
}

/// Azurite over HTTPS with OAuth, its certificate from a test CA that the
/// host trusts through `SSL_CERT_FILE`; a fake Entra token endpoint for the
/// responder's client secret.
struct DelegationSetup {
    azurite: Azurite,
    identity: FakeAzureIdentity,
    ca_file: tempfile::TempDir,
}

impl DelegationSetup {
    fn start() -> DelegationSetup {
        let ca = TestCa::new();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.issue_pem(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        ca.write_pem(&dir.path().join("ca.pem"));
        let azurite = Azurite::start_with_oauth(
            &dir.path().join("cert.pem"),
            &dir.path().join("key.pem"),
            &dir.path().join("ca.pem"),
        );
        azurite.create_container("evidence");
        DelegationSetup {
            azurite,
            identity: FakeAzureIdentity::start(),
            ca_file: dir,
        }
    }

    /// The responder's environment: a client secret of Entra (the fake),
    /// the test CA, no account key.
    fn run(
        &self,
        ws: &Workspace,
        mode: &str,
        data: &str,
    ) -> (std::process::Output, Vec<irhost::journal::JournalRecord>) {
        let authority = self.identity.endpoint();
        let ca = self.ca_file.path().join("ca.pem");
        run(
            ws,
            &self.azurite,
            mode,
            data,
            &[
                ("AZURE_TENANT_ID", "irhost-tenant"),
                ("AZURE_CLIENT_ID", "irhost-responder"),
                ("AZURE_CLIENT_SECRET", "responder-s3cret"),
                ("AZURE_AUTHORITY_HOST", authority.as_str()),
                ("SSL_CERT_FILE", ca.to_str().unwrap()),
            ],
        )
    }
}

#[test]
fn without_an_account_key_blocks_go_through_user_delegation_sas_urls_of_the_identity() {
    let setup = DelegationSetup::start();
    let azurite = &setup.azurite;
    let data = "IRHOST-DELEGATED-MEMORY-".repeat(400);
    let ws = Workspace::new();
    let (out, records) = setup.run(&ws, "upload-all", &data);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let values = step_values(&records, "test:t1", "upload");
    assert_eq!(
        values["location"],
        format!("{}/evidence/memory/up/t1/memory.raw", azurite.service())
    );
    assert!(azurite.service().starts_with("https://"));
    assert_eq!(values["parts"], 3);
    assert_eq!(values["size"], data.len());
    assert_eq!(
        azurite.blob("evidence", "memory/up/t1/memory.raw").unwrap(),
        data.as_bytes()
    );
    assert_eq!(
        operations(&records),
        [
            ("begin", None),
            ("part-urls", Some(900)),
            ("complete", None)
        ]
    );
    // One Storage token, from the responder's client secret, for the key
    // and the host's own block-list calls; no ARM token was asked for.
    let requests = setup.identity.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].resource.as_deref(),
        Some("https://storage.azure.com/.default")
    );
    assert_eq!(requests[0].client_id.as_deref(), Some("irhost-responder"));
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLoaded { notes, .. } if notes.iter().any(|n| n.contains(
            "(user-delegation SAS from client secret of irhost-responder in tenant irhost-tenant, audience https://storage.azure.com (AzurePublicCloud))"
        )))), "{records:?}");
    // Nothing secret reached the case: no token, no secret, no signature.
    let text = case_text(&ws.cases().join("up"));
    for token in setup.identity.issued_tokens() {
        assert!(!text.contains(&token), "a token is in the case");
    }
    assert!(!text.contains("responder-s3cret"));
    assert!(!text.contains("sig="), "a signature is in the case");
}

#[test]
fn a_user_delegation_part_url_writes_its_own_block_and_nothing_else() {
    let setup = DelegationSetup::start();
    let azurite = &setup.azurite;
    // The hostile plugin's `uploads` mode returns two minted URLs of
    // memory.lime as its output (a plugin may show what it was given).
    let ws = Workspace::new();
    let (out, records) = setup.run(&ws, "uploads", "");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let values = step_values(&records, "test:t1", "upload");
    let minted = values["minted"].as_str().unwrap();
    let url = minted
        .strip_prefix("ok ")
        .and_then(|m| m.split(' ').next())
        .unwrap_or_else(|| panic!("{minted}"));
    let blob = format!("{}/evidence/memory/up/t1/memory.lime", azurite.service());
    assert!(
        url.starts_with(&format!("{blob}?comp=block&blockid=")),
        "{url}"
    );
    for field in [
        "&skoid=",
        "&sktid=",
        "&skt=",
        "&ske=",
        "&sks=b&",
        "&sr=b&sp=w&sig=",
    ] {
        assert!(url.contains(field), "{field} is not in {url}");
    }
    let sas = &url[url.find("sv=").unwrap()..];
    let block = &url[url.find("comp=block").unwrap()..url.find("&sv=").unwrap()];

    // The URL does what it was minted for: one block of that blob.
    assert_eq!(azurite.status("PUT", url, Some("block")), 201);
    // Another blob, even next to it, is refused.
    let other = format!(
        "{}/evidence/memory/up/t1/other.lime?{block}&{sas}",
        azurite.service()
    );
    assert_eq!(azurite.status("PUT", &other, Some("block")), 403);
    // Reading the blob or its block list: refused (write only).
    assert_eq!(azurite.status("GET", &format!("{blob}?{sas}"), None), 403);
    assert_eq!(
        azurite.status(
            "GET",
            &format!("{blob}?comp=blocklist&blocklisttype=all&{sas}"),
            None
        ),
        403
    );
    // Widening the permission breaks the signature.
    let widened = url.replace("&sp=w&", "&sp=rw&");
    assert_eq!(azurite.status("PUT", &widened, Some("block")), 403);
    // Another container: refused.
    let elsewhere = url.replace("/evidence/", "/other/");
    assert_eq!(azurite.status("PUT", &elsewhere, Some("block")), 403);
    // Nothing was committed: the blob does not exist.
    assert!(azurite
        .blob("evidence", "memory/up/t1/memory.lime")
        .is_err());
}

/// A JWT-shaped token (unsigned, as Azurite's basic OAuth does not check
/// signatures) with this audience, valid an hour.
fn token_for(audience: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = chrono::Utc::now().timestamp();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(serde_json::json!({"typ": "JWT", "alg": "RS256"})),
        b64(serde_json::json!({
            "aud": audience, "iss": "https://sts.windows.net/irhost-tenant/",
            "iat": now, "nbf": now, "exp": now + 3600,
            "tid": "irhost-tenant", "oid": "00000000-0000-0000-0000-0000000000aa",
        }))
    )
}

#[test]
fn a_token_storage_refuses_fails_the_mint_and_stays_out_of_the_case() {
    let setup = DelegationSetup::start();
    let ca = setup.ca_file.path().join("ca.pem");
    // An ARM token given as the Storage token: Azurite refuses its audience.
    let token = token_for("https://management.core.windows.net/");
    let ws = Workspace::new();
    let (out, records) = run(
        &ws,
        &setup.azurite,
        "upload-all",
        "x",
        &[
            ("AZURE_STORAGE_ACCESS_TOKEN", token.as_str()),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error = step_error(&records, "test:t1", "upload");
    assert!(
        error.contains("Get User Delegation Key")
            && error.contains("with a token of AZURE_STORAGE_ACCESS_TOKEN: 403"),
        "{error}"
    );
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::EvidenceUpload { operation, error: Some(e), .. }
            if operation == "part-urls" && e.contains("generateUserDelegationKey"))));
    // The preset token was used as it is (no token request), and it is
    // nowhere in the case.
    assert!(setup.identity.requests().is_empty());
    assert!(!case_text(&ws.cases().join("up")).contains(&token));

    // The same token for Storage's audience works.
    let ws = Workspace::new();
    let token = token_for("https://storage.azure.com");
    let (out, _) = run(
        &ws,
        &setup.azurite,
        "upload-all",
        "IRHOST",
        &[
            ("AZURE_STORAGE_ACCESS_TOKEN", token.as_str()),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        setup
            .azurite
            .blob("evidence", "memory/up/t1/memory.raw")
            .unwrap(),
        b"IRHOST"
    );
}
