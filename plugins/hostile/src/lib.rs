//! Hostile plugin for sandbox tests: each `mode` parameter misbehaves in one
//! way (spin, memory, recursion, http, oversized, panic, trap, sleep, chatty),
//! or reports what it can reach (probe) and what it remembers (counter)
//! so tests can prove the host contains it. Its `describe` claims the
//! provider its config's `claim_provider` names (`aws`, `aws-sts`,
//! `azure`, anything), to prove the host grants nothing on a claim.

use irhost_plugin_sdk::http::{fetch, Method};
use irhost_plugin_sdk::prelude::*;

use std::sync::atomic::{AtomicU64, Ordering};

struct Hostile;

/// Global state that would leak between calls if instances were reused.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Recursion on the WebAssembly call stack (small frames, no shadow stack).
#[inline(never)]
fn deep(n: u64, limit: u64) -> u64 {
    if n >= limit {
        return n;
    }
    deep(n + 1, limit).rotate_left(3) ^ n
}

/// Recursion with big frames, which exhausts the shadow stack in linear memory.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    let mut local = pad;
    local[(depth % 16) as usize] = depth;
    let below = recurse(std::hint::black_box(depth + 1), std::hint::black_box(local));
    below.wrapping_add(local[3])
}

impl Step for Hostile {
    fn describe() -> PluginInfo {
        // It claims whatever provider its config says (`claim_provider`):
        // the host must not hand it credentials for that.
        let claim: String = irhost_plugin_sdk::param("claim_provider")
            .ok()
            .flatten()
            .unwrap_or_else(|| "any".into());
        // And whichever API actions its config says (`declare`): a claim,
        // which the grant bounds.
        let declare: Vec<String> = irhost_plugin_sdk::param("declare")
            .ok()
            .flatten()
            .unwrap_or_default();
        let declare: Vec<&str> = declare.iter().map(String::as_str).collect();
        PluginInfo::new("hostile", env!("CARGO_PKG_VERSION"), &claim)
            .action("misbehave", Effect::Reads, "misbehave as `mode` says")
            .calls(Effect::Reads, &declare)
            .action(
                "mutate",
                Effect::Mutates,
                "misbehave as `mode` says, declared as changing the target",
            )
            .calls(Effect::Mutates, &declare)
    }

    fn run(
        _action: &str,
        target: Target,
        params: serde_json::Value,
        _inputs: Vec<StepInput>,
    ) -> Result<StepOutput, PluginError> {
        let mut mode = params.get("mode").and_then(|m| m.as_str()).unwrap_or("ok");
        // `only_targets` confines the misbehaviour to some targets.
        if let Some(only) = params.get("only_targets").and_then(|o| o.as_array()) {
            if !only.iter().any(|t| t.as_str() == Some(target.id.as_str())) {
                mode = "ok";
            }
        }
        match mode {
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => {
                let limit = params
                    .get("limit")
                    .and_then(|m| m.as_u64())
                    .unwrap_or(u64::MAX);
                let depth = deep(0, limit);
                Ok(StepOutput::values(json!({ "depth": depth })))
            }
            "stack-smash" => {
                let depth = recurse(0, [0; 16]);
                Ok(StepOutput::values(json!({ "depth": depth })))
            }
            "http" => {
                let url = params
                    .get("url")
                    .and_then(|u| u.as_str())
                    .unwrap_or("http://example.com/");
                let response = fetch(Method::GET, url, &[], None)?;
                Ok(StepOutput::values(json!({ "status": response.status })))
            }
            "flood" => {
                // `count` requests to `url`, whatever each answer: the
                // host's per-call request and denial-record budgets.
                let url = params
                    .get("url")
                    .and_then(|u| u.as_str())
                    .unwrap_or("http://example.com/");
                let count = params.get("count").and_then(|c| c.as_u64()).unwrap_or(1);
                let (mut denied, mut failed, mut answered) = (0u64, 0u64, 0u64);
                for _ in 0..count {
                    match fetch(Method::GET, url, &[], None) {
                        Ok(_) => answered += 1,
                        Err(PluginError::Denied(_)) => denied += 1,
                        Err(_) => failed += 1,
                    }
                }
                Ok(StepOutput::values(
                    json!({ "denied": denied, "failed": failed, "answered": answered }),
                ))
            }
            "upload" => {
                // POST an EC2 Query body of about `bytes` bytes to `url`.
                let url = params
                    .get("url")
                    .and_then(|u| u.as_str())
                    .unwrap_or("http://example.com/");
                let bytes = params.get("bytes").and_then(|b| b.as_u64()).unwrap_or(0) as usize;
                let mut body = b"Action=DescribeInstances&Version=2016-11-15&Pad=".to_vec();
                body.resize(body.len() + bytes, b'x');
                let response = fetch(
                    Method::POST,
                    url,
                    &[("content-type", "application/x-www-form-urlencoded")],
                    Some(body),
                )?;
                Ok(StepOutput::values(json!({ "status": response.status })))
            }
            "oversized" => {
                let megabytes = params
                    .get("megabytes")
                    .and_then(|m| m.as_u64())
                    .unwrap_or(32);
                let blob = "x".repeat((megabytes as usize) << 20);
                Ok(StepOutput::values(json!({ "blob": blob })))
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "trap" => std::process::abort(),
            "sleep" => {
                let ms = params.get("ms").and_then(|m| m.as_u64()).unwrap_or(60_000);
                irhost_plugin_sdk::sleep(std::time::Duration::from_millis(ms));
                Ok(StepOutput::values(json!({ "slept_ms": ms })))
            }
            "noisy" => {
                // `records` log lines and progress reports: the host's
                // per-call record budgets.
                let records = params.get("records").and_then(|m| m.as_u64()).unwrap_or(3);
                for i in 0..records {
                    irhost_plugin_sdk::log::info(&format!("line {i}"));
                    irhost_plugin_sdk::progress(i, records, "working");
                }
                Ok(StepOutput::values(json!({ "records": records })))
            }
            "chatty" => {
                let lines = params.get("lines").and_then(|m| m.as_u64()).unwrap_or(3);
                for i in 0..lines {
                    println!("stdout line {i}");
                    eprintln!("stderr line {i}");
                }
                Ok(StepOutput::values(json!({ "lines": lines })))
            }
            "probe" => {
                let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                let fs = std::fs::read_dir("/")
                    .map(|d| d.count())
                    .map_err(|e| e.to_string());
                let file = std::fs::read("/etc/passwd")
                    .map(|b| b.len())
                    .map_err(|e| e.to_string());
                let tcp = std::net::TcpStream::connect("127.0.0.1:22")
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                Ok(StepOutput::values(json!({
                    "env": env,
                    "read_dir": format!("{fs:?}"),
                    "read_file": format!("{file:?}"),
                    "tcp": format!("{tcp:?}"),
                })))
            }
            "uploads" => {
                // The evidence-upload interface, misused: a name that climbs
                // out of its key, part URLs for an upload never begun, too
                // many URLs at once, then a plain begin.
                use irhost_plugin_sdk::uploads;
                let text = |r: Result<String, PluginError>| match r {
                    Ok(v) => format!("ok {v}"),
                    Err(e) => format!("{e:?}"),
                };
                let escape =
                    text(uploads::begin("../../other-case/memory.lime").map(|u| u.location));
                let forged = uploads::Upload {
                    id: "upload-1".into(),
                    location: String::new(),
                    part_size: 0,
                    max_parts: 0,
                };
                let unbegun =
                    text(uploads::part_urls(&forged, 1, 1).map(|u| format!("{}", u.len())));
                let began = uploads::begin("memory.lime");
                let flood = match &began {
                    Ok(u) => text(uploads::part_urls(u, 1, 101).map(|u| format!("{}", u.len()))),
                    Err(e) => format!("{e:?}"),
                };
                let minted = match &began {
                    Ok(u) => text(uploads::part_urls(u, 1, 2).map(|urls| {
                        urls.iter()
                            .map(|u| u.url.clone())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })),
                    Err(e) => format!("{e:?}"),
                };
                Ok(StepOutput::values(json!({
                    "escape": escape,
                    "unbegun": unbegun,
                    "begin": text(began.map(|u| u.location)),
                    "flood": flood,
                    "minted": minted,
                })))
            }
            "upload-all" => {
                // The machine's part, played by the plugin: `data` in
                // `parts` parts PUT to the URLs minted for them, then complete.
                use irhost_plugin_sdk::uploads;
                let data = params
                    .get("data")
                    .and_then(|d| d.as_str())
                    .unwrap_or("")
                    .as_bytes()
                    .to_vec();
                let parts = params
                    .get("parts")
                    .and_then(|p| p.as_u64())
                    .unwrap_or(1)
                    .max(1) as usize;
                let upload = uploads::begin("memory.raw")?;
                let urls = uploads::part_urls(&upload, 1, parts as u32)?;
                let size = data.len().div_ceil(parts).max(1);
                for (url, chunk) in urls.iter().zip(data.chunks(size)) {
                    let length = chunk.len().to_string();
                    let mut headers: Vec<(&str, &str)> = url
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    // A stored length, not a chunked body: block stores need it.
                    headers.push(("content-length", &length));
                    let response = fetch(Method::PUT, &url.url, &headers, Some(chunk.to_vec()))?;
                    if response.status >= 300 {
                        return Err(PluginError::Provider(ProviderFailure {
                            code: format!("Part{}", response.status),
                            message: response.text(),
                        }));
                    }
                }
                let object = uploads::complete(&upload)?;
                Ok(StepOutput::values(json!({
                    "location": object.location, "size": object.size, "parts": object.parts,
                    "version": object.version, "etag": object.etag,
                })))
            }
            "counter" => {
                let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(StepOutput::values(
                    json!({ "calls_seen_by_this_instance": calls }),
                ))
            }
            _ => Ok(StepOutput::values(json!({ "mode": mode }))),
        }
    }
}

export_step!(Hostile);
