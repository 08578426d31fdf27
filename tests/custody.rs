//! Chain of custody with the real binary: keygen, signed and unsigned
//! seals, `verify` on untouched, tampered and exported cases, `case show`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use irhost::events::RunEvent;

const PLAYBOOK: &str = r#"
[playbook]
name = "custody-test"

[plugins.test]
path = "{test}"
config = { volumes = 2, interfaces = 1 }

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
"#;

/// Run the binary; (exit code, stdout + stderr).
fn run(ws: &Workspace, args: &[&str]) -> (i32, String) {
    let out = ws.irhost(args);
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

fn keygen(ws: &Workspace, name: &str) -> (PathBuf, PathBuf) {
    let prefix = ws.path().join(name);
    let (code, out) = run(ws, &["keygen", "-o", prefix.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("fingerprint: "), "{out}");
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// A signed case `c1` of two runs (two seals), and the key pair.
fn signed_case(ws: &Workspace) -> (PathBuf, PathBuf, PathBuf) {
    let (private, public) = keygen(ws, "k");
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    for targets in [["test:a", "test:b"], ["test:c", "test:d"]] {
        let (code, out) = run(
            ws,
            &[
                "run",
                pb.to_str().unwrap(),
                "--target",
                targets[0],
                "--target",
                targets[1],
                "--case",
                "c1",
                "--signing-key",
                private.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("signed by key"), "{out}");
    }
    (ws.cases().join("c1"), private, public)
}

fn verify(ws: &Workspace, dir: &Path, key: Option<&Path>) -> (i32, String) {
    let mut args = vec!["verify", dir.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--key", k.to_str().unwrap()]);
    }
    run(ws, &args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of `case` with `tamper` applied.
fn tampered(case: &Path, tamper: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("c1");
    copy_dir(case, &copy);
    tamper(&copy);
    (dir, copy)
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn journal_lines(case: &Path) -> Vec<String> {
    std::fs::read_to_string(case.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(case: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(case.join("journal.jsonl"), text).unwrap();
}

fn assert_fails(out: &(i32, String), expect: &[&str]) {
    assert_eq!(out.0, 1, "expected exit 1: {}", out.1);
    assert!(out.1.contains("FAILED"), "{}", out.1);
    for e in expect {
        assert!(out.1.contains(e), "expected {e:?} in: {}", out.1);
    }
}

#[test]
fn keygen_writes_a_private_key_0600_and_refuses_to_overwrite() {
    let ws = Workspace::new();
    let (private, public) = keygen(&ws, "k");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&private)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(&public)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    let (code, out) = run(
        &ws,
        &["keygen", "-o", ws.path().join("k").to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("refusing to overwrite"), "{out}");
}

#[test]
fn an_untouched_signed_case_verifies_with_and_without_the_pinned_key() {
    let ws = Workspace::new();
    let (case, _, public) = signed_case(&ws);
    assert!(case.join("manifest.json").is_file());
    assert!(case.join("manifest.sig").is_file());
    let manifests: Vec<_> = std::fs::read_dir(case.join("manifests")).unwrap().collect();
    assert_eq!(manifests.len(), 4, "two seals, .json + .sig each");

    let (code, out) = verify(&ws, &case, Some(&public));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("signed by the pinned key"), "{out}");
    assert!(out.contains("2 manifest(s)"), "{out}");

    let (code, out) = verify(&ws, &case, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOT pinned"), "{out}");
    assert!(out.contains("key not pinned"), "{out}");

    let (code, out) = run(&ws, &["verify", case.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["signed"], true);
    assert_eq!(report["artifacts_checked"], 4, "one config dump per target");

    // The journal says who sealed, with which key, and the manifest covers
    // the seal record itself.
    let records = ws.journal("c1");
    let last = records.last().unwrap();
    assert!(
        matches!(
            &last.event,
            RunEvent::CaseSealed {
                signed: true,
                key_fingerprint: Some(_),
                ..
            }
        ),
        "{:?}",
        last.event
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["journal"]["records"], records.len() as u64);
    let dumps: Vec<_> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "config-dump")
        .collect();
    assert_eq!(dumps.len(), 4);
    for a in dumps {
        assert_eq!(a["step"], "snapshot");
        assert_eq!(a["stored"], true);
        let sha = a["sha256"].as_str().unwrap();
        let bytes = std::fs::read(case.join("artifacts").join(sha)).unwrap();
        assert_eq!(a["size"], bytes.len() as u64);
    }
}

#[test]
fn every_tampered_journal_record_is_named() {
    let ws = Workspace::new();
    let (case, _, public) = signed_case(&ws);
    let lines = journal_lines(&case);
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        let at = offset + line.len() / 2;
        offset += line.len() + 1;
        let (_d, copy) = tampered(&case, |c| flip(&c.join("journal.jsonl"), at));
        let out = verify(&ws, &copy, Some(&public));
        assert_fails(&out, &[&format!("record {}: ", i + 1)]);
        assert!(
            out.1.contains("hash mismatch") || out.1.contains("malformed"),
            "record {}: {}",
            i + 1,
            out.1
        );
    }
    // A changed value that keeps the JSON valid is a hash mismatch.
    let (_d, copy) = tampered(&case, |c| {
        let mut l = journal_lines(c);
        l[3] = l[3].replacen("test:", "tesT:", 1);
        write_lines(c, &l);
    });
    assert_fails(&verify(&ws, &copy, None), &["record 4: hash mismatch"]);
}

#[test]
fn deleted_reordered_and_truncated_records_are_named() {
    let ws = Workspace::new();
    let (case, _, public) = signed_case(&ws);
    let lines = journal_lines(&case);

    let (_d, copy) = tampered(&case, |c| {
        let mut l = lines.clone();
        l.remove(5);
        write_lines(c, &l);
    });
    assert_fails(&verify(&ws, &copy, Some(&public)), &["record 6: deleted"]);

    let (_d, copy) = tampered(&case, |c| {
        let mut l = lines.clone();
        l.swap(7, 8);
        write_lines(c, &l);
    });
    assert_fails(&verify(&ws, &copy, Some(&public)), &["record 8: reordered"]);

    // Whole records cut off the end: only the manifest can tell.
    let (_d, copy) = tampered(&case, |c| write_lines(c, &lines[..lines.len() - 3]));
    assert_fails(
        &verify(&ws, &copy, Some(&public)),
        &["journal.jsonl: truncated"],
    );

    // Cut in the middle of a line.
    let (_d, copy) = tampered(&case, |c| {
        let text = std::fs::read(c.join("journal.jsonl")).unwrap();
        std::fs::write(c.join("journal.jsonl"), &text[..text.len() - 40]).unwrap();
    });
    assert_fails(
        &verify(&ws, &copy, Some(&public)),
        &[&format!("record {}: truncated", lines.len())],
    );
}

#[test]
fn a_torn_last_line_is_never_valid_until_a_run_cuts_it_off_with_a_repair_record() {
    let ws = Workspace::new();
    let (case, private, public) = signed_case(&ws);
    let n = journal_lines(&case).len();
    // A crash while appending: part of the next record, no newline.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(case.join("journal.jsonl"))
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        format!(r#"{{"seq":{n},"time":"2026-01-01T00:00:00Z","case":"c1","prev":"ab"#).as_bytes(),
    )
    .unwrap();
    drop(file);
    let out = verify(&ws, &case, Some(&public));
    assert_fails(&out, &[&format!("record {}: truncated", n + 1), "torn"]);
    let (code, json) = run(&ws, &["verify", case.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["problem"]["kind"], "truncated");
    assert_eq!(report["problem"]["record"], n as u64 + 1);

    let pb = ws.playbook("pb2.toml", PLAYBOOK);
    let (code, out) = run(
        &ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:z",
            "--case",
            "c1",
            "--signing-key",
            private.to_str().unwrap(),
        ],
    );
    // A run on the case cuts the torn line off (a `repair` record, the
    // bytes kept), continues the chain, and the case verifies again; the
    // earlier seal still covers its records.
    assert_eq!(code, 0, "{out}");
    let records = ws_journal(&case);
    match &records[n].event {
        RunEvent::Repair {
            records_kept,
            saved_as,
            ..
        } => {
            assert_eq!(*records_kept, n as u64);
            assert!(std::fs::read_to_string(saved_as)
                .unwrap()
                .starts_with(&format!("{{\"seq\":{n},")));
        }
        other => panic!("{other:?}"),
    }
    let (code, out) = verify(&ws, &case, Some(&public));
    assert_eq!(code, 0, "{out}");
    // A journal broken before its last line is still refused.
    let text = std::fs::read_to_string(case.join("journal.jsonl")).unwrap();
    std::fs::write(
        case.join("journal.jsonl"),
        text.replacen("\"seq\":1,", "\"seq\":7,", 1) + "{\"torn",
    )
    .unwrap();
    let (code, out) = run(
        &ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:z",
            "--case",
            "c1",
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("refusing to append"), "{out}");
}

fn ws_journal(case: &std::path::Path) -> Vec<irhost::journal::JournalRecord> {
    irhost::journal::read_records(&case.join("journal.jsonl")).unwrap()
}

#[test]
fn tampered_artifacts_are_named() {
    let ws = Workspace::new();
    let (case, _, public) = signed_case(&ws);
    let mut names: Vec<String> = std::fs::read_dir(case.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4);
    for name in &names {
        let path = format!("artifacts/{name}");
        let (_d, copy) = tampered(&case, |c| flip(&c.join(&path), 10));
        assert_fails(
            &verify(&ws, &copy, Some(&public)),
            &[&format!("artifact {name}: hash mismatch"), "config-dump"],
        );
        let (_d, copy) = tampered(&case, |c| std::fs::remove_file(c.join(&path)).unwrap());
        assert_fails(
            &verify(&ws, &copy, Some(&public)),
            &[&format!("artifact {name}: missing file")],
        );
        let (_d, copy) = tampered(&case, |c| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(c.join(&path))
                .unwrap();
            std::io::Write::write_all(&mut f, b"x").unwrap();
        });
        assert_fails(
            &verify(&ws, &copy, Some(&public)),
            &[&format!("artifact {name}: size mismatch")],
        );
    }
}

#[test]
fn tampered_manifests_and_signatures_are_bad_signatures() {
    let ws = Workspace::new();
    let (case, _, public) = signed_case(&ws);
    let len = std::fs::metadata(case.join("manifest.json")).unwrap().len() as usize;
    let mut positions: Vec<usize> = (0..len).step_by(53).collect();
    positions.push(len - 2);
    for at in positions {
        let (_d, copy) = tampered(&case, |c| flip(&c.join("manifest.json"), at));
        for key in [Some(public.as_path()), None] {
            assert_fails(&verify(&ws, &copy, key), &["manifest.json: bad signature"]);
        }
    }
    for at in [0, 1, 63, 64, 127] {
        let (_d, copy) = tampered(&case, |c| flip(&c.join("manifest.sig"), at));
        for key in [Some(public.as_path()), None] {
            let out = verify(&ws, &copy, key);
            assert_fails(&out, &["bad signature"]);
        }
    }
    // An earlier seal is checked too.
    let first = std::fs::read_dir(case.join("manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .min()
        .unwrap();
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let (_d, copy) = tampered(&case, |c| flip(&c.join("manifests").join(&name), 100));
    assert_fails(
        &verify(&ws, &copy, Some(&public)),
        &[&format!("manifests/{name}: bad signature")],
    );
    // Downgrading the case to unsigned (rewriting the manifest, deleting the
    // signature) contradicts the journal's seal record.
    let (_d, copy) = tampered(&case, |c| {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.join("manifest.json")).unwrap()).unwrap();
        m["signature"] = serde_json::Value::Null;
        let bytes = serde_json::to_vec_pretty(&m).unwrap();
        std::fs::write(c.join("manifest.json"), &bytes).unwrap();
        std::fs::remove_file(c.join("manifest.sig")).unwrap();
    });
    assert_fails(
        &verify(&ws, &copy, None),
        &["manifest does not match the journal"],
    );
    assert_fails(&verify(&ws, &copy, Some(&public)), &["unsigned"]);
    // No manifest at all.
    let (_d, copy) = tampered(&case, |c| {
        std::fs::remove_file(c.join("manifest.json")).unwrap()
    });
    assert_fails(&verify(&ws, &copy, None), &["manifest.json: missing file"]);
}

#[test]
fn a_different_key_fails_as_wrong_key() {
    let ws = Workspace::new();
    let (case, _, _) = signed_case(&ws);
    let (_, other) = keygen(&ws, "other");
    assert_fails(
        &verify(&ws, &case, Some(&other)),
        &["manifest.json: wrong key"],
    );
}

#[test]
fn an_unsigned_case_verifies_its_chain_and_says_unsigned() {
    let ws = Workspace::new();
    let pb = ws.playbook("pb.toml", PLAYBOOK);
    let (code, out) = run(
        &ws,
        &[
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:a",
            "--case",
            "u1",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("UNSIGNED"), "{out}");
    let case = ws.cases().join("u1");
    assert!(case.join("manifest.json").is_file());
    assert!(!case.join("manifest.sig").exists());
    let records = ws.journal("u1");
    assert!(records.iter().any(|r| matches!(
        &r.event,
        RunEvent::CaseSealed { signed: false, note: Some(n), .. } if n.contains("UNSIGNED")
    )));
    let (code, out) = verify(&ws, &case, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK") && out.contains("UNSIGNED"), "{out}");
    // The chain is still checked.
    let (_d, copy) = tampered(&case, |c| {
        let mut l = journal_lines(c);
        l.swap(2, 3);
        write_lines(c, &l);
    });
    assert_fails(&verify(&ws, &copy, None), &["record 3: reordered"]);
    // A pinned key demands a signature.
    let (_, public) = keygen(&ws, "k");
    assert_fails(&verify(&ws, &case, Some(&public)), &["unsigned"]);
}

#[test]
fn an_exported_bundle_verifies_once_unpacked() {
    let ws = Workspace::new();
    let (case, _, public) = signed_case(&ws);
    let tar = ws.path().join("bundle.tar");
    let (code, out) = run(
        &ws,
        &[
            "case",
            "export",
            case.to_str().unwrap(),
            "-o",
            tar.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sha256 of the bundle"), "{out}");
    let unpacked = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .unwrap();
    assert!(status.success());
    let dir = unpacked.path().join("c1");
    let (code, out) = verify(&ws, &dir, Some(&public));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signed by the pinned key"), "{out}");
    // A broken case is not exported.
    let (_d, copy) = tampered(&case, |c| {
        let name = std::fs::read_dir(c.join("artifacts"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        flip(&name, 0);
    });
    let (code, out) = run(
        &ws,
        &[
            "case",
            "export",
            copy.to_str().unwrap(),
            "-o",
            ws.path().join("bad.tar").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify"), "{out}");
    assert!(!ws.path().join("bad.tar").exists());
}

#[test]
fn case_show_is_a_timeline_per_target() {
    let ws = Workspace::new();
    let (case, _, _) = signed_case(&ws);
    let (code, out) = run(&ws, &["case", "show", case.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for expect in [
        "case c1",
        "target test:a (succeeded)",
        "target test:d (succeeded)",
        "snapshot: started test.snapshot (test-provider 0.1.0, sha256 ",
        "isolate: started test.isolate",
        "MUTATES the target",
        "snapshot: succeeded in ",
        "artifact config-dump a-description",
        "signed by key",
        "plugin test: test-provider",
    ] {
        assert!(out.contains(expect), "expected {expect:?} in:\n{out}");
    }
    let (code, out) = run(&ws, &["case", "show", case.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let t: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["targets"].as_array().unwrap().len(), 4);
    assert_eq!(t["runs"].as_array().unwrap().len(), 2);
    assert_eq!(t["seals"].as_array().unwrap().len(), 2);
}
