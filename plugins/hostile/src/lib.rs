//! Hostile plugin for sandbox tests: each `mode` parameter misbehaves in one
//! way (spin, memory, recursion, http, oversized, panic, trap, sleep, chatty)
//! so tests can prove the host contains it.

use irhost_plugin_sdk::http::{fetch, Method};
use irhost_plugin_sdk::prelude::*;

struct Hostile;

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
        PluginInfo::new("hostile", env!("CARGO_PKG_VERSION"), "any").action(
            "misbehave",
            false,
            "misbehave as `mode` says",
        )
    }

    fn run(
        _action: &str,
        _target: Target,
        params: serde_json::Value,
        _inputs: Vec<StepInput>,
    ) -> Result<StepOutput, PluginError> {
        let mode = params.get("mode").and_then(|m| m.as_str()).unwrap_or("ok");
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
                irhost_plugin_sdk::block_on(wstd::task::sleep(wstd::time::Duration::from_millis(
                    ms,
                )));
                Ok(StepOutput::values(json!({ "slept_ms": ms })))
            }
            "chatty" => {
                let lines = params.get("lines").and_then(|m| m.as_u64()).unwrap_or(3);
                for i in 0..lines {
                    println!("stdout line {i}");
                    eprintln!("stderr line {i}");
                }
                Ok(StepOutput::values(json!({ "lines": lines })))
            }
            _ => Ok(StepOutput::values(json!({ "mode": mode }))),
        }
    }
}

export_step!(Hostile);
