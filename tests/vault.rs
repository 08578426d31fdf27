//! The S3 evidence vault end to end: the real `irhost` binary runs a
//! playbook whose sealed-phase step (`plugins/s3-evidence-vault`, aws-sdk-s3
//! inside the component, requests signed by the host) stores the sealed
//! case in moto's S3 with Object Lock; the objects are read back with boto3
//! (`tests/moto/s3_fixture.py`). Also: sealed-phase diagnostics, a missing
//! bucket, and the memory check before the call.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use common::moto::Moto;
use common::*;
use irhost::events::{RunEvent, Status};
use irhost::journal::JournalRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};

const RETENTION_DAYS: u64 = 30;

/// The S3 actions the shipped vault playbook grants: the tests run the
/// vault with exactly that list, so a vault that starts calling another
/// action fails here.
fn shipped_vault_grant() -> String {
    let text =
        std::fs::read_to_string(repo_root().join("playbooks/aws-instance-compromise-vault.toml"))
            .unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc["plugins"]["vault"]["cloud"]["aws"].to_string()
}

fn playbook(bucket: &str, vault_memory_mb: u32) -> String {
    let grant = shipped_vault_grant();
    format!(
        r#"
[playbook]
name = "vault-test"

[plugins.test]
path = "{{test}}"
config = {{ volumes = 2, interfaces = 1 }}

[plugins.vault]
path = "{{vault}}"
cloud = {{ aws = {grant} }}
limits = {{ memory_mb = {vault_memory_mb}, timeout = "60s" }}
config = {{ bucket = "{bucket}", retention_days = {RETENTION_DAYS} }}

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"

[[steps]]
id = "interfaces"
plugin = "test"
action = "enumerate-interfaces"

[[steps]]
id = "vault"
plugin = "vault"
action = "store"
phase = "sealed"
"#
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn b64(hex_digest: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_digest).unwrap())
}

fn keygen(ws: &Workspace) -> (PathBuf, PathBuf) {
    let prefix = ws.path().join("team");
    let out = ws.irhost(&["keygen", "-o", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// The manifests the journal's `case_sealed` records name, in order.
fn seals(records: &[JournalRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::CaseSealed { manifest, .. } => Some(manifest.clone()),
            _ => None,
        })
        .collect()
}

/// The vault's `artifact_recorded` records: (provider_id, metadata).
fn receipts(records: &[JournalRecord], case: &str) -> Vec<(String, HashMap<String, String>)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::ArtifactRecorded {
                target,
                step,
                kind,
                provider_id,
                metadata,
                stored,
                ..
            } if target == &format!("case:{case}") && step == "vault" => {
                assert_eq!(kind, "object-version");
                assert!(!stored, "receipts are references");
                Some((provider_id.clone(), metadata.iter().cloned().collect()))
            }
            _ => None,
        })
        .collect()
}

/// The first `n` lines of the journal, as bytes.
fn journal_prefix(case_dir: &Path, n: usize) -> Vec<u8> {
    let bytes = std::fs::read(case_dir.join("journal.jsonl")).unwrap();
    let mut end = 0;
    for _ in 0..n {
        end += bytes[end..].iter().position(|&b| b == b'\n').unwrap() + 1;
    }
    bytes[..end].to_vec()
}

fn run_vault(moto: &Moto, ws: &Workspace, pb: &Path, case: &str, key: &Path) -> (i32, String) {
    let out = moto.irhost(
        ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:web-1",
            "--target",
            "test:db-1",
            "--case",
            case,
            "--signing-key",
            key.to_str().unwrap(),
        ],
    );
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn the_sealed_case_is_locked_in_the_vault_and_still_verifies() {
    let moto = Moto::start();
    let created = moto.s3(&["create-bucket", "evidence"]);
    assert_eq!(created["object_lock"], "Enabled", "{created}");
    let ws = Workspace::new();
    let (key, public) = keygen(&ws);
    let pb = ws.playbook("vault.toml", &playbook("evidence", 128));

    let before = now();
    let started = std::time::Instant::now();
    let (code, out) = run_vault(&moto, &ws, &pb, "IR-V1", &key);
    let elapsed = started.elapsed();
    let after = now();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok     case:IR-V1"), "{out}");
    assert!(out.contains("sealed phase: 1 step(s) succeeded"), "{out}");
    eprintln!("run with the vault step: {elapsed:?}");

    let case_dir = ws.cases().join("IR-V1");
    let records = ws.journal("IR-V1");
    let seal_names = seals(&records);
    assert_eq!(seal_names.len(), 2, "one seal before the vault, one after");
    let vaulted = &seal_names[0];
    match finished(&records, "case:IR-V1", "vault") {
        RunEvent::StepFinished {
            status,
            duration_ms,
            ..
        } => {
            assert_eq!(*status, Status::Succeeded);
            eprintln!("vault step: {duration_ms} ms");
        }
        _ => unreachable!(),
    }
    // The vault step ran after the first seal and before the second.
    let first_seal = position(&records, |e| matches!(e, RunEvent::CaseSealed { .. }));
    let vault_start = position(
        &records,
        |e| matches!(e, RunEvent::StepStarted { step, .. } if step == "vault"),
    );
    assert!(first_seal < vault_start);

    // What the vault must hold: the manifest it was given (N), its .sig, the
    // journal's first N records, every stored artifact of manifest N.
    let manifest_bytes = std::fs::read(case_dir.join(vaulted)).unwrap();
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let n = manifest["journal"]["records"].as_u64().unwrap() as usize;
    let sig = vaulted.replace(".json", ".sig");
    let mut expected: Vec<(String, String)> = vec![
        (
            format!("cases/IR-V1/{vaulted}"),
            sha256_hex(&manifest_bytes),
        ),
        (
            format!("cases/IR-V1/{sig}"),
            sha256_hex(&std::fs::read(case_dir.join(&sig)).unwrap()),
        ),
        (
            format!("cases/IR-V1/journal/{n:08}.jsonl"),
            sha256_hex(&journal_prefix(&case_dir, n)),
        ),
    ];
    let stored: Vec<&Value> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["stored"] == true)
        .collect();
    assert!(
        stored.len() >= 2,
        "the snapshot stored artifacts: {manifest}"
    );
    for a in &stored {
        let sha = a["sha256"].as_str().unwrap();
        let local = std::fs::read(case_dir.join(a["location"].as_str().unwrap())).unwrap();
        assert_eq!(sha256_hex(&local), sha);
        let key = format!("cases/IR-V1/artifacts/{sha}");
        if !expected.iter().any(|(k, _)| k == &key) {
            expected.push((key, sha.to_string()));
        }
    }

    let objects = moto.s3(&["objects", "evidence", "cases/IR-V1/"]);
    let objects = objects.as_object().unwrap();
    assert_eq!(
        objects.len(),
        expected.len(),
        "exactly the sealed case is in the bucket: {:?}",
        objects.keys().collect::<Vec<_>>()
    );
    let journal_receipts = receipts(&records, "IR-V1");
    assert_eq!(journal_receipts.len(), expected.len());
    for (key, sha) in &expected {
        let versions = objects[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(versions.len(), 1, "{key}");
        let v = &versions[0];
        assert_eq!(v["sha256"], sha.as_str(), "{key}: the bytes in S3");
        assert_eq!(v["checksum_sha256"], b64(sha), "{key}: S3's checksum");
        assert_eq!(v["lock_mode"], "COMPLIANCE", "{key}");
        let until = v["retain_until_epoch"].as_u64().unwrap();
        let days = RETENTION_DAYS * 86_400;
        assert!(
            until >= before + days && until <= after + days,
            "{key}: retain until {} not {RETENTION_DAYS} days after the run",
            v["retain_until"]
        );
        // The journal records the version S3 holds.
        let version = v["version_id"].as_str().unwrap();
        let (provider_id, meta) = journal_receipts
            .iter()
            .find(|(_, m)| m.get("key") == Some(key))
            .unwrap_or_else(|| panic!("no receipt for {key}"));
        assert_eq!(
            provider_id,
            &format!("s3://evidence/{key}?versionId={version}")
        );
        assert_eq!(meta["version_id"], version);
        assert_eq!(meta["checksum_sha256"], b64(sha));
        assert_eq!(meta["lock_mode"], "COMPLIANCE");
        assert_eq!(meta["reused"], "false");
    }

    // The final seal covers the receipts, and the case verifies with the key.
    let latest: Value =
        serde_json::from_slice(&std::fs::read(case_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        latest["journal"]["records"].as_u64().unwrap() as usize,
        records.len()
    );
    let sealed_receipts = latest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "object-version")
        .count();
    assert_eq!(sealed_receipts, expected.len());
    let verify = ws.irhost(&[
        "verify",
        case_dir.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    let show = ws.irhost(&["case", "show", case_dir.to_str().unwrap()]);
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(stdout(&show).contains("case:IR-V1"), "{}", stdout(&show));

    // S3 refuses to delete a locked version.
    let manifest_key = format!("cases/IR-V1/{vaulted}");
    let version = objects[&manifest_key][0]["version_id"].as_str().unwrap();
    let deleted = moto.s3(&["delete-version", "evidence", &manifest_key, version]);
    assert_eq!(deleted["deleted"], false, "{deleted}");
    assert_eq!(deleted["error"], "AccessDenied", "{deleted}");

    // A second run on the same case: the artifacts (same bytes, same keys)
    // are reused, not uploaded again; the new seal and journal are new keys.
    let (code, out) = run_vault(&moto, &ws, &pb, "IR-V1", &key);
    assert_eq!(code, 0, "{out}");
    let records = ws.journal("IR-V1");
    let values = match records
        .iter()
        .rev()
        .find(|r| matches!(&r.event, RunEvent::StepFinished { step, .. } if step == "vault"))
        .map(|r| &r.event)
    {
        Some(RunEvent::StepFinished {
            status: Status::Succeeded,
            output: Some(o),
            ..
        }) => o["values"].clone(),
        other => panic!("second vault step: {other:?}"),
    };
    let artifact_keys: Vec<&String> = expected
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains("/artifacts/"))
        .collect();
    assert_eq!(
        values["reused"].as_u64().unwrap() as usize,
        artifact_keys.len(),
        "{values}"
    );
    let objects = moto.s3(&["objects", "evidence", "cases/IR-V1/"]);
    for key in artifact_keys {
        assert_eq!(
            objects[key.as_str()].as_array().unwrap().len(),
            1,
            "{key} was not uploaded twice"
        );
    }
    let verify = ws.irhost(&[
        "verify",
        case_dir.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

#[test]
fn a_missing_bucket_fails_the_run_and_the_case_still_verifies() {
    let moto = Moto::start();
    let ws = Workspace::new();
    let (key, public) = keygen(&ws);
    let pb = ws.playbook("vault.toml", &playbook("no-such-bucket", 128));
    let (code, out) = run_vault(&moto, &ws, &pb, "IR-V2", &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED case:IR-V2"), "{out}");
    assert!(out.contains("sealed phase FAILED"), "{out}");
    assert!(out.contains("no-such-bucket does not exist"), "{out}");

    let records = ws.journal("IR-V2");
    // The per-target work is all there and succeeded.
    for target in ["test:web-1", "test:db-1"] {
        for step in ["snapshot", "interfaces"] {
            match finished(&records, target, step) {
                RunEvent::StepFinished { status, .. } => assert_eq!(*status, Status::Succeeded),
                _ => unreachable!(),
            }
        }
    }
    let error = step_error(&records, "case:IR-V2", "vault");
    assert!(error.starts_with("not found:"), "{error}");
    assert!(
        records.iter().any(|r| matches!(&r.event,
            RunEvent::TargetFinished { target, status: Status::Failed, failed_steps, .. }
                if target == "case:IR-V2" && failed_steps == &vec!["vault".to_string()])),
        "the case target failed"
    );
    // Sealed twice, the last seal covering every record, failure included.
    assert_eq!(seals(&records).len(), 2);
    assert!(matches!(
        records.last().unwrap().event,
        RunEvent::CaseSealed { .. }
    ));
    let case_dir = ws.cases().join("IR-V2");
    let latest: Value =
        serde_json::from_slice(&std::fs::read(case_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        latest["journal"]["records"].as_u64().unwrap() as usize,
        records.len()
    );
    let verify = ws.irhost(&[
        "verify",
        case_dir.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

#[test]
fn a_case_too_big_for_the_plugin_memory_fails_before_the_call() {
    // 32 MiB cannot hold the case plus the headroom the host requires: the
    // step fails with the figures, without calling (or trapping) the plugin.
    let ws = Workspace::new();
    let pb = ws.playbook("vault.toml", &playbook("evidence", 32));
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:web-1",
        "--case",
        "IR-V3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let records = ws.journal("IR-V3");
    let error = step_error(&records, "case:IR-V3", "vault");
    assert!(
        error.contains("over its limit of 32 MiB") && error.contains("raise `limits.memory_mb`"),
        "{error}"
    );
    assert!(
        !records.iter().any(|r| matches!(&r.event,
            RunEvent::StepStarted { step, .. } if step == "vault")),
        "the plugin was not called"
    );
    let verify = ws.irhost(&["verify", ws.cases().join("IR-V3").to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

/// The line (1-based) of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].lines().count() + 1
}

#[test]
fn sealed_phase_mistakes_are_diagnosed_with_file_line_and_field() {
    let ws = Workspace::new();
    // A sealed step that depends on a per-target step.
    let text = playbook("evidence", 128).replace(
        "phase = \"sealed\"",
        "phase = \"sealed\"\nafter = [\"snapshot\"]",
    );
    let pb = ws.playbook("after.toml", &text);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    let line = line_of(&text, "after = [\"snapshot\"]");
    assert!(
        err.contains(&format!("after.toml:{line}:")) && err.contains("`steps.vault.after`"),
        "{err}"
    );
    assert!(err.contains("per-target step"), "{err}");

    // A per-target step that depends on a sealed one.
    let text = playbook("evidence", 128).replace(
        "action = \"enumerate-interfaces\"",
        "action = \"enumerate-interfaces\"\nafter = [\"vault\"]",
    );
    let pb = ws.playbook("reverse.toml", &text);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = line_of(&text, "after = [\"vault\"]");
    assert!(
        err.contains(&format!("reverse.toml:{line}:")) && err.contains("`steps.interfaces.after`"),
        "{err}"
    );

    // An unknown phase.
    let text = playbook("evidence", 128).replace("phase = \"sealed\"", "phase = \"later\"");
    let pb = ws.playbook("phase.toml", &text);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = line_of(&text, "phase = \"later\"");
    assert!(
        err.contains(&format!("phase.toml:{line}:"))
            && err.contains("`steps.vault.phase`")
            && err.contains("unknown phase `later`"),
        "{err}"
    );

    // A provider plugin in the sealed phase.
    let text = playbook("evidence", 128).replace(
        "action = \"enumerate-interfaces\"",
        "action = \"enumerate-interfaces\"\nphase = \"sealed\"",
    );
    let pb = ws.playbook("world.toml", &text);
    let out = ws.irhost(&["validate", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = line_of(&text, "action = \"enumerate-interfaces\"") + 1;
    assert!(
        err.contains(&format!("world.toml:{line}:"))
            && err.contains("`steps.interfaces.phase`")
            && err.contains("`step`-world plugin"),
        "{err}"
    );

    // The good playbook validates and plans the vault once, after the seal.
    let pb = ws.playbook("good.toml", &playbook("evidence", 128));
    let out = ws.irhost(&["plan", pb.to_str().unwrap(), "--target", "test:web-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.contains("once, after the case is sealed"), "{plan}");
    assert!(plan.contains("vault.store"), "{plan}");
}

#[test]
fn the_shipped_playbook_isolates_an_ec2_instance_then_vaults_the_case() {
    let moto = Moto::start();
    let seeded = moto.seed("multi-eni");
    let iid = seeded["instance"].as_str().unwrap();
    moto.s3(&["create-bucket", "ir-evidence-vault"]);
    let ws = Workspace::new();
    let pb = repo_root().join("playbooks/aws-instance-compromise-vault.toml");
    let target = format!("aws:{iid}");
    let out = moto.irhost(
        &ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            &target,
            "--case",
            "IR-AWS",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let records = ws.journal("IR-AWS");
    for step in ["snapshot", "isolate", "seal"] {
        match finished(&records, &target, step) {
            RunEvent::StepFinished { status, .. } => assert_eq!(*status, Status::Succeeded),
            _ => unreachable!(),
        }
    }
    let values = step_values(&records, "case:IR-AWS", "vault");
    let objects = moto.s3(&["objects", "ir-evidence-vault", "cases/IR-AWS/"]);
    let objects = objects.as_object().unwrap();
    assert_eq!(values["objects"].as_u64().unwrap() as usize, objects.len());
    // The config dump and console log the snapshot stored, the manifest
    // (unsigned: no .sig) and the journal, each locked.
    let vaulted = &seals(&records)[0];
    assert!(objects.contains_key(&format!("cases/IR-AWS/{vaulted}")));
    assert!(!objects.contains_key(&format!(
        "cases/IR-AWS/{}",
        vaulted.replace(".json", ".sig")
    )));
    let artifacts = objects.keys().filter(|k| k.contains("/artifacts/")).count();
    assert!(artifacts >= 2, "{:?}", objects.keys().collect::<Vec<_>>());
    for (key, versions) in objects {
        assert_eq!(versions[0]["lock_mode"], "COMPLIANCE", "{key}");
        assert_eq!(
            versions[0]["checksum_sha256"],
            b64(versions[0]["sha256"].as_str().unwrap())
        );
    }
    let verify = ws.irhost(&["verify", ws.cases().join("IR-AWS").to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

#[test]
fn s3_slowdown_is_throttling_retried_by_the_engine_and_the_retry_reuses_objects() {
    // Two PutObject calls succeed, the next two answer 503 SlowDown: the
    // vault reports `throttled`, the engine waits and retries the step, and
    // the retries reuse what the first attempt already stored.
    let moto = Moto::launch_with(&["--s3-slowdown", "2:2"]);
    moto.s3(&["create-bucket", "evidence"]);
    let ws = Workspace::new();
    let (key, _) = keygen(&ws);
    let text = playbook("evidence", 128)
        .replace(
            "retention_days = 30 }",
            "retention_days = 30, retry_after_ms = 50 }",
        )
        .replace("phase = \"sealed\"", "phase = \"sealed\"\nretries = 3");
    let pb = ws.playbook("vault.toml", &text);
    let (code, out) = run_vault(&moto, &ws, &pb, "IR-V4", &key);
    assert_eq!(code, 0, "{out}");
    let records = ws.journal("IR-V4");
    let retries: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            RunEvent::StepRetrying { step, reason, .. } if step == "vault" => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    for reason in &retries {
        assert!(
            reason.starts_with("throttled (retry after 50 ms)"),
            "{reason}"
        );
        assert!(reason.contains("reduce your request rate"), "{reason}");
    }
    match finished(&records, "case:IR-V4", "vault") {
        RunEvent::StepFinished {
            status, attempts, ..
        } => {
            assert_eq!(*status, Status::Succeeded);
            assert_eq!(*attempts, 3);
        }
        _ => unreachable!(),
    }
    let values = step_values(&records, "case:IR-V4", "vault");
    assert_eq!(values["reused"], 2, "{values}");
    let objects = moto.s3(&["objects", "evidence", "cases/IR-V4/"]);
    let objects = objects.as_object().unwrap();
    assert_eq!(values["objects"].as_u64().unwrap() as usize, objects.len());
    for (key, versions) in objects {
        assert_eq!(versions.as_array().unwrap().len(), 1, "{key}: one version");
    }
}
