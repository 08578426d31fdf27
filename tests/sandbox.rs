//! The sandbox holds against hostile plugins: each misbehaviour fails its
//! own call with a clear error while other steps and targets finish; HTTP
//! leaves only for allowed hosts; plugins see no filesystem, sockets or
//! environment; nothing leaks between calls; components are cached.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use irhost::events::{RunEvent, Status};

const HOSTILE: &str = r#"
[playbook]
name = "hostile"

[plugins.hostile]
path = "{hostile}"
limits = { memory_mb = 48, cpu_ms = 300, timeout = "4s", max_output_kb = 1024 }

[plugins.test]
path = "{test}"

[[steps]]
id = "spin"
plugin = "hostile"
action = "misbehave"
with = { mode = "spin" }
on_error = "continue"

[[steps]]
id = "memory"
plugin = "hostile"
action = "misbehave"
with = { mode = "memory" }
on_error = "continue"

[[steps]]
id = "recursion"
plugin = "hostile"
action = "misbehave"
with = { mode = "recursion" }
on_error = "continue"

[[steps]]
id = "http"
plugin = "hostile"
action = "misbehave"
with = { mode = "http", url = "http://example.com/exfiltrate" }
on_error = "continue"

[[steps]]
id = "oversized"
plugin = "hostile"
action = "misbehave"
with = { mode = "oversized", megabytes = 8 }
on_error = "continue"

[[steps]]
id = "stack-smash"
plugin = "hostile"
action = "misbehave"
with = { mode = "stack-smash" }
on_error = "continue"

[[steps]]
id = "panic"
plugin = "hostile"
action = "misbehave"
with = { mode = "panic" }
on_error = "continue"

[[steps]]
id = "abort"
plugin = "hostile"
action = "misbehave"
with = { mode = "trap" }
on_error = "continue"

[[steps]]
id = "sleep"
plugin = "hostile"
action = "misbehave"
with = { mode = "sleep", ms = 60000 }
timeout = "1s"
on_error = "continue"

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"
after = ["spin", "memory", "recursion", "stack-smash", "http", "oversized", "panic", "abort", "sleep"]
"#;

#[test]
fn hostile_plugins_are_contained_with_clear_errors_and_other_work_finishes() {
    let ws = Workspace::new();
    let pb = ws.playbook("hostile.toml", HOSTILE);
    let started = std::time::Instant::now();
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--target",
        "test:b",
        "--case",
        "h",
    ]);
    let elapsed = started.elapsed();
    // on_error = "continue": the targets succeed despite every hostile step failing.
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let records = ws.journal("h");
    for target in ["test:a", "test:b"] {
        let err = |step| step_error(&records, target, step);
        assert!(
            err("spin").contains("CPU limit exceeded"),
            "{}",
            err("spin")
        );
        assert!(
            err("memory").contains("memory limit exceeded"),
            "{}",
            err("memory")
        );
        assert!(
            err("recursion").contains("call stack exhausted"),
            "{}",
            err("recursion")
        );
        assert!(
            err("stack-smash").contains("out-of-bounds memory access"),
            "{}",
            err("stack-smash")
        );
        assert!(err("http").contains("denied"), "{}", err("http"));
        assert!(
            err("oversized").contains("exceeds the limit of 1048576 bytes"),
            "{}",
            err("oversized")
        );
        assert!(err("panic").contains("trapped"), "{}", err("panic"));
        assert!(err("abort").contains("trapped"), "{}", err("abort"));
        assert!(
            err("sleep").contains("timed out after 1s"),
            "{}",
            err("sleep")
        );
        assert!(matches!(
            finished(&records, target, "snapshot"),
            RunEvent::StepFinished {
                status: Status::Succeeded,
                ..
            }
        ));
    }
    // The panic message written to stderr is captured into the journal.
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::PluginLog { level, message, step, .. } if level == "stderr" && step == "panic" && message.contains("panicked on purpose"))));
    // The denied request is journaled with its URL.
    assert!(records.iter().any(|r| matches!(&r.event,
        RunEvent::EgressDenied { url, reason, .. } if url == "http://example.com/exfiltrate" && reason.contains("no allow_hosts"))));
    assert!(
        elapsed < std::time::Duration::from_secs(60),
        "took {elapsed:?}"
    );
}

#[test]
fn a_hostile_step_fails_only_its_target() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        r#"
[playbook]
name = "one-bad"

[plugins.hostile]
path = "{hostile}"
limits = { cpu_ms = 200, memory_mb = 32 }

[[steps]]
id = "spin"
plugin = "hostile"
action = "misbehave"
with = { mode = "spin", only_targets = ["b"] }

[[steps]]
id = "bomb"
plugin = "hostile"
action = "misbehave"
with = { mode = "memory", only_targets = ["c"] }

[[steps]]
id = "after"
plugin = "hostile"
action = "misbehave"
after = ["spin", "bomb"]
"#,
    );
    let out = ws.irhost(&[
        "run",
        pb.to_str().unwrap(),
        "--target",
        "test:a",
        "--target",
        "test:b",
        "--target",
        "test:c",
        "--target",
        "test:d",
        "--case",
        "bad",
        "--concurrency",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("2 succeeded, 2 failed"), "{text}");
    assert!(
        text.contains("FAILED test:b") && text.contains("CPU limit exceeded"),
        "{text}"
    );
    assert!(
        text.contains("FAILED test:c") && text.contains("memory limit exceeded"),
        "{text}"
    );
    let records = ws.journal("bad");
    for good in ["test:a", "test:d"] {
        assert!(matches!(
            finished(&records, good, "after"),
            RunEvent::StepFinished {
                status: Status::Succeeded,
                ..
            }
        ));
    }
    assert!(matches!(
        records
            .iter()
            .rev()
            .find(|r| matches!(r.event, RunEvent::RunFinished { .. }))
            .unwrap()
            .event,
        RunEvent::RunFinished {
            succeeded: 2,
            failed: 2,
            ..
        }
    ));
}

/// A one-shot HTTP server on loopback that records request bodies.
fn http_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            // Read headers and body (Content-Length bounded, small).
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&got).to_string());
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, seen)
}

#[test]
fn http_leaves_only_for_allowed_hosts() {
    let (port, seen) = http_sink();
    let ws = Workspace::new();
    let playbook = |allow: &str| {
        format!(
            r#"
[playbook]
name = "notify"

[plugins.test]
path = "{{test}}"

[plugins.notify]
path = "{{notify}}"
allow_hosts = [{allow}]

[[steps]]
id = "snapshot"
plugin = "test"
action = "snapshot"

[[steps]]
id = "notify"
plugin = "notify"
action = "notify"
after = ["snapshot"]
with = {{ url = "http://127.0.0.1:{port}/hook", channel = "ir" }}
"#
        )
    };
    let allowed = ws.playbook("allowed.toml", &playbook(&format!("\"127.0.0.1:{port}\"")));
    let out = ws.irhost(&[
        "run",
        allowed.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "allowed",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = ws.journal("allowed");
    assert_eq!(step_values(&records, "test:a", "notify")["status"], 204);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].starts_with("POST /hook"), "{}", seen[0]);
        assert!(seen[0].contains("\"target\":\"test:a\""), "{}", seen[0]);
    }

    // Same host, other port allowed: denied, journaled, nothing reaches the server.
    let denied = ws.playbook(
        "denied.toml",
        &playbook(&format!(
            "\"127.0.0.1:{}\", \"*.example.com\"",
            port.wrapping_add(1)
        )),
    );
    let out = ws.irhost(&[
        "run",
        denied.to_str().unwrap(),
        "--target",
        "test:a",
        "--case",
        "denied",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let records = ws.journal("denied");
    let error = step_error(&records, "test:a", "notify");
    assert!(error.contains("denied"), "{error}");
    assert!(records.iter().any(|r| matches!(&r.event, RunEvent::EgressDenied { url, .. } if url.contains(&format!(":{port}/hook")))));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the denied request never left"
    );
}

#[test]
fn plugins_see_no_filesystem_sockets_or_environment_and_no_state_between_calls() {
    let ws = Workspace::new();
    let pb = ws.playbook(
        "pb.toml",
        r#"
[playbook]
name = "probe"

[plugins.hostile]
path = "{hostile}"

[[steps]]
id = "probe"
plugin = "hostile"
action = "misbehave"
with = { mode = "probe" }

[[steps]]
id = "count1"
plugin = "hostile"
action = "misbehave"
with = { mode = "counter" }

[[steps]]
id = "count2"
plugin = "hostile"
action = "misbehave"
after = ["count1"]
with = { mode = "counter" }
"#,
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_irhost"))
        .args([
            "run",
            pb.to_str().unwrap(),
            "--target",
            "test:a",
            "--target",
            "test:b",
            "--target",
            "test:c",
            "--case",
            "p",
        ])
        .current_dir(ws.path())
        .env("IRHOST_CASES_DIR", ws.cases())
        .env("IRHOST_CACHE_DIR", shared_cache())
        .env("SECRET_TOKEN", "must-not-leak")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records = ws.journal("p");
    for target in ["test:a", "test:b", "test:c"] {
        let probe = step_values(&records, target, "probe");
        assert_eq!(probe["env"], serde_json::json!([]), "{probe}");
        assert!(
            probe["read_dir"].as_str().unwrap().starts_with("Err"),
            "{probe}"
        );
        assert!(
            probe["read_file"].as_str().unwrap().starts_with("Err"),
            "{probe}"
        );
        assert!(probe["tcp"].as_str().unwrap().starts_with("Err"), "{probe}");
        // A fresh instance per (step, target): the static counter starts over.
        for step in ["count1", "count2"] {
            assert_eq!(
                step_values(&records, target, step)["calls_seen_by_this_instance"],
                1
            );
        }
    }
}

#[test]
fn the_component_cache_is_keyed_by_content_and_reused() {
    use irhost::runtime::{CacheOutcome, PluginRuntime, PluginSource, RuntimeConfig};
    let cache = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let source = PluginSource {
        name: "test".into(),
        path: plugin("test-provider"),
        sha256: None,
        limits: Default::default(),
        egress: Default::default(),
        authorizer: None,
        uploads: None,
        config: serde_json::json!({}),
    };
    let load = |source: PluginSource| {
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            pool_instances: 8,
            ..RuntimeConfig::default()
        })
        .unwrap();
        rt.block_on(runtime.load(source)).unwrap().cache
    };
    assert_eq!(load(source.clone()), CacheOutcome::Compiled);
    assert_eq!(load(source.clone()), CacheOutcome::Hit);
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("components"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "one entry, no temp files left behind");
    // A different component gets its own entry.
    let other = PluginSource {
        path: plugin("hostile"),
        ..source
    };
    assert_eq!(load(other), CacheOutcome::Compiled);
}

#[test]
fn a_tampered_cache_entry_is_recompiled_by_the_binary_not_loaded() {
    // The binary with its cache and its key (IRHOST_CACHE_KEY) apart.
    let cache = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("cache.key");
    let inspect = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_irhost"))
            .args(["plugin", "inspect", "--json"])
            .arg(plugin("test-provider"))
            .env("IRHOST_CACHE_DIR", cache.path())
            .env("IRHOST_CACHE_KEY", &key)
            .env("RUST_LOG", "irhost=warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(value["world"], "provider");
        stderr(&out)
    };
    inspect();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is the owner's only");
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("components"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one file per component, the key not in it"
    );
    let entry = &entries[0];
    let good = std::fs::read(entry).unwrap();
    assert!(good.starts_with(b"IRHOSTC1"));
    let mut bad = good.clone();
    let at = good.len() / 2;
    bad[at] ^= 0xff;
    std::fs::write(entry, &bad).unwrap();
    let said = inspect();
    assert!(said.contains("failed authentication"), "{said}");
    let rewritten = std::fs::read(entry).unwrap();
    assert_ne!(rewritten, bad, "the entry is rewritten");
    assert!(
        !inspect().contains("failed authentication"),
        "and then used"
    );
}
