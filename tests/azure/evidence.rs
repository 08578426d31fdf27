//! The snapshot's screen and console (boot diagnostics, read by SAS from
//! the fake storage account) and the inventory's shared disks.

use irhost::events::RunEvent;

use crate::common::fake_arm::{id_of, FakeArm};
use crate::common::*;
use crate::support::*;

const SNAPSHOT: &str = "[[steps]]\nid = \"snapshot\"\nplugin = \"azure\"\naction = \"snapshot\"\n";

/// An artifact as the journal records it: kind, provider id, sha256, metadata.
type Recorded = (String, String, Option<String>, Vec<(String, String)>);

/// The artifacts recorded for a target.
fn artifacts(records: &[irhost::journal::JournalRecord], target: &str) -> Vec<Recorded> {
    events(records)
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::ArtifactRecorded {
                target: t,
                kind,
                provider_id,
                sha256,
                metadata,
                ..
            } if t == target => Some((
                kind.clone(),
                provider_id.clone(),
                sha256.clone(),
                metadata.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn meta<'a>(metadata: &'a [(String, String)], key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn snapshot_keeps_the_boot_diagnostics_screenshot_and_serial_log() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "screen-1");
    // A screenshot of our own: the bytes must arrive unchanged.
    let mut png = crate::common::fake_arm::SCREENSHOT_PNG.to_vec();
    png.extend((0..4096u32).map(|i| (i * 31 % 251) as u8));
    arm.set_screenshot(&vm, png.clone(), "image/png");
    let (_, serial) = arm.boot_diagnostics_content(&vm);
    let ws = Workspace::new();
    let book = custom(&ws, "screen.toml", SNAPSHOT, allowing_blobs(&arm));
    let out = run_book(&arm, &ws, &book, "IR-AZ-SCREEN", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    let records = ws.journal("IR-AZ-SCREEN");
    let target = format!("azure:{vm}");
    let found = artifacts(&records, &target);
    let shot = found
        .iter()
        .find(|(kind, _, _, m)| kind == "other" && meta(m, "type") == Some("screenshot"))
        .unwrap_or_else(|| panic!("no screenshot artifact: {found:#?}"));
    assert_eq!(meta(&shot.3, "format"), Some("png"));
    assert_eq!(
        artifact_bytes(&ws, "IR-AZ-SCREEN", shot.2.as_deref().unwrap()),
        png
    );
    let log = found
        .iter()
        .find(|(kind, _, _, _)| kind == "console-log")
        .unwrap_or_else(|| panic!("no console log artifact: {found:#?}"));
    assert_eq!(
        artifact_bytes(&ws, "IR-AZ-SCREEN", log.2.as_deref().unwrap()),
        serial
    );
    // The artifacts name the blob, not its SAS.
    for (_, _, _, m) in [shot, log] {
        let source = meta(m, "source").unwrap();
        assert!(
            source.starts_with(&format!("http://{}/bootdiagnostics-", arm.blob_host())),
            "{source}"
        );
        assert!(!source.contains('?'), "{source}");
    }

    // Both blobs were read with a SAS, never with the ARM token.
    let blob_reads: Vec<_> = arm
        .blob_requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(blob_reads.len(), 2, "{blob_reads:#?}");
    for r in &blob_reads {
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.query.contains("sig=") && r.query.contains("sr=b") && r.query.contains("sp=r"));
    }
    assert!(arm.blob_requests().iter().all(|r| !r.authorization));
    assert_eq!(
        calls_to(&arm, "POST", "/retrieveBootDiagnosticsData").len(),
        1
    );
    let journal = std::fs::read_to_string(ws.cases().join("IR-AZ-SCREEN/journal.jsonl")).unwrap();
    assert!(!journal.contains("sig="), "no SAS in the journal");
    let verify = irhost_with(
        &ws,
        &[],
        &["verify", ws.cases().join("IR-AZ-SCREEN").to_str().unwrap()],
    );
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn snapshot_goes_on_without_boot_diagnostics_or_an_allowed_storage_host() {
    let arm = FakeArm::start();
    let off = two_nic_vm(&arm, "dark-1");
    arm.disable_boot_diagnostics(&off);
    let elsewhere = two_nic_vm(&arm, "far-1");
    let ws = Workspace::new();
    // The shipped allow_hosts name Azure's storage, not the fake's.
    let book = custom(&ws, "snapshot.toml", SNAPSHOT, |t| t);
    let out = run_book(&arm, &ws, &book, "IR-AZ-NODIAG", &[&off, &elsewhere]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("IR-AZ-NODIAG");

    let dark = format!("azure:{off}");
    assert!(plugin_logs(&records, &dark)
        .iter()
        .any(|l| l.contains("boot diagnostics are off")));
    let far = format!("azure:{elsewhere}");
    assert!(
        plugin_logs(&records, &far)
            .iter()
            .any(|l| l.contains("allow_hosts do not allow") && l.contains(&arm.blob_host())),
        "{:#?}",
        plugin_logs(&records, &far)
    );
    for target in [&dark, &far] {
        let found = artifacts(&records, target);
        assert!(
            found.iter().all(|(kind, _, _, _)| kind != "console-log"),
            "{found:#?}"
        );
        assert_eq!(
            found
                .iter()
                .filter(|(kind, _, _, _)| kind == "disk-snapshot")
                .count(),
            3
        );
    }
    // Only far-1 asked for SAS URIs; no blob was read with one, and the
    // denied request the journal records carries none.
    let retrieved = calls_to(&arm, "POST", "/retrieveBootDiagnosticsData");
    assert_eq!(retrieved.len(), 1, "{retrieved:?}");
    assert!(retrieved[0].contains("/far-1/"));
    assert!(arm.blob_requests().is_empty(), "{:?}", arm.blob_requests());
    let denied: Vec<String> = events(&records)
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::EgressDenied { url, .. } => Some(url.clone()),
            _ => None,
        })
        .collect();
    assert!(!denied.is_empty());
    assert!(denied.iter().all(|u| !u.contains("sig=")), "{denied:?}");
}

#[test]
fn enumerate_reports_the_vms_shared_disks() {
    let arm = FakeArm::start();
    let vm = two_nic_vm(&arm, "cluster-1");
    let other = two_nic_vm(&arm, "cluster-2");
    let disk = arm.seed_shared_disk(RG, "quorum", 2, &[&vm, &other]);
    let ws = Workspace::new();
    let steps =
        "[[steps]]\nid = \"interfaces\"\nplugin = \"azure\"\naction = \"enumerate-interfaces\"\n";
    let book = custom(&ws, "interfaces.toml", steps, |t| t);
    let out = run_book(&arm, &ws, &book, "IR-AZ-SHARED", &[&vm]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("IR-AZ-SHARED");
    let inventory = step_values(&records, &format!("azure:{vm}"), "interfaces");
    let shared = inventory["shared_storage"].as_array().unwrap();
    assert_eq!(shared.len(), 1, "only the shared disk: {shared:#?}");
    assert_eq!(
        shared[0]["id"].as_str().unwrap().to_ascii_lowercase(),
        disk.to_ascii_lowercase()
    );
    assert_eq!(shared[0]["kind"], "azure-shared-disk");
    assert_eq!(shared[0]["attached_to"], serde_json::json!([vm, other]));
    assert_eq!(shared[0]["endpoints"], serde_json::json!(["lun-2"]));
    assert!(shared[0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a[0] == "max-shares" && a[1] == "2"));
    // Every data disk was read to tell.
    for name in ["cluster-1-data0", "cluster-1-data1", "quorum"] {
        let path = id_of(RG, "Microsoft.Compute/disks", name);
        assert!(
            arm.requests()
                .iter()
                .any(|r| r.method == "GET" && r.path.eq_ignore_ascii_case(&path)),
            "{name}"
        );
    }
}
