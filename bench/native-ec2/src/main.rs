//! Native baseline for the AWS benchmark (issue 3): the EC2 calls of
//! playbooks/aws-instance-compromise.toml (snapshot ∥ enumerate-interfaces →
//! isolate → seal per instance) made by native aws-sdk-ec2 from the host,
//! with the engine's scheduling: targets through a window of `--concurrency`
//! (futures' `buffered`, as the engine does), steps retried on throttling
//! and provider errors with the engine's backoff and the playbook's retries,
//! SDK retries off as in the plugin.
//!
//! Prints one JSON object: wall time, per-Action counts of the requests it
//! sent, step retries and failures. With `--expect FILE` (moto's
//! `/irhost/action-counts` answer for the irhost run of the same fleet) it
//! compares its counts with irhost's and exits 3 on a difference it cannot
//! explain; see `compare`.
//!
//! Usage: native-ec2 --endpoint URL --instances-from SEED.json [--concurrency 16]
//!        [--case bench] [--expect COUNTS.json] [--exact]

mod ec2;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::stream::{self, StreamExt};

use crate::ec2::{ActionCounter, Ec2, Failure};

#[derive(Parser)]
#[command(about = "The AWS playbook's EC2 calls from native aws-sdk-ec2 (benchmark baseline)")]
struct Args {
    /// EC2 endpoint (the moto server).
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// JSON with an `instances` array (ec2_fixture.py seed's output).
    #[arg(long)]
    instances_from: Option<PathBuf>,
    /// Instance ids (in addition to --instances-from).
    instances: Vec<String>,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Case id: names the isolation groups and tags, as `irhost run --case`.
    #[arg(long, default_value = "bench")]
    case: String,
    /// Per-Action counts of the irhost run to compare with (moto's
    /// /irhost/action-counts JSON, optionally with `step_retries`).
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Every Action must match exactly (the concurrency-1 check, where
    /// nothing races); otherwise see `compare`.
    #[arg(long)]
    exact: bool,
    /// A new TCP connection per request (no keep-alive pool), as irhost's
    /// egress does (wasmtime-wasi-http's default_send_request): to measure
    /// what connection reuse is worth.
    #[arg(long)]
    no_connection_reuse: bool,
    /// Trust this PEM CA for an https:// endpoint (the bench's TLS front).
    #[arg(long)]
    ca_bundle: Option<std::path::PathBuf>,
}

/// Retries per step, from playbooks/aws-instance-compromise.toml.
const RETRIES_SNAPSHOT: u32 = 4;
const RETRIES_INTERFACES: u32 = 4;
const RETRIES_ISOLATE: u32 = 4;
const RETRIES_SEAL: u32 = 6;

/// The engine's backoff (host/src/engine.rs `retry_delay`): 200 ms doubling,
/// capped at 30 s, full jitter in [0.5, 1]; a throttle's retry-after is a floor.
fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = Duration::from_millis(200)
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(Duration::from_secs(30));
    let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
    match retry_after {
        Some(after) => after.max(jittered.min(after + after / 10 + Duration::from_millis(1))),
        None => jittered,
    }
}

#[derive(Default)]
struct Stats {
    step_retries: AtomicU64,
}

async fn run_step<T, F, Fut>(
    stats: &Stats,
    step: &str,
    id: &str,
    retries: u32,
    mut f: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let max_attempts = retries + 1;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && attempt < max_attempts => {
                stats.step_retries.fetch_add(1, Ordering::Relaxed);
                let mut reason = e.to_string();
                reason.truncate(reason.floor_char_boundary(160));
                eprintln!("{id} {step}: attempt {attempt} failed, retrying: {reason}");
                tokio::time::sleep(retry_delay(
                    attempt,
                    e.retry_after_ms().map(Duration::from_millis),
                ))
                .await;
                attempt += 1;
            }
            Err(e) => return Err(format!("{step}: {e}")),
        }
    }
}

/// One target: snapshot ∥ enumerate-interfaces, then isolate, then seal.
/// Like the engine, a failed snapshot stops the mutating steps.
async fn run_target(ec2: Arc<Ec2>, stats: Arc<Stats>, case: String, id: String) -> Vec<String> {
    let (snap, inv) = tokio::join!(
        run_step(&stats, "snapshot", &id, RETRIES_SNAPSHOT, || {
            steps::snapshot(&ec2, &case, &id)
        }),
        run_step(&stats, "interfaces", &id, RETRIES_INTERFACES, || {
            steps::enumerate(&ec2, &id)
        }),
    );
    let mut errors = Vec::new();
    let artifacts = match snap {
        Ok(a) => a,
        Err(e) => {
            errors.push(e);
            return errors;
        }
    };
    if let Err(e) = inv {
        errors.push(e);
        return errors;
    }
    if let Err(e) = run_step(&stats, "isolate", &id, RETRIES_ISOLATE, || {
        steps::isolate(&ec2, &case, &id)
    })
    .await
    {
        errors.push(e);
        return errors;
    }
    if let Err(e) = run_step(&stats, "seal", &id, RETRIES_SEAL, || {
        steps::seal(&ec2, &case, &id, &artifacts)
    })
    .await
    {
        errors.push(e);
    }
    errors
}

/// Actions of the case-wide group setup (find or create the isolation and
/// untrack groups, bring them to their rules). Concurrent targets race for
/// it, so how many of these calls a run makes depends on timing, in irhost
/// and here alike.
const RACY: &[&str] = &[
    "CreateSecurityGroup",
    "DescribeSecurityGroups",
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
];

/// Compare our counts with irhost's. `--exact`: every Action must match.
/// Otherwise, every Action outside the racy group setup must match, unless
/// one side retried steps (a retried step repeats its calls; moto 5.2's
/// DescribeSnapshots sometimes fails with a 500 under concurrent tagging),
/// in which case the difference is reported, not fatal.
fn compare(
    ours: &BTreeMap<String, u64>,
    expect: &serde_json::Value,
    exact: bool,
    our_retries: u64,
) -> Result<Vec<String>, Vec<String>> {
    let theirs: BTreeMap<String, u64> = expect["actions"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let their_retries = expect["step_retries"].as_u64().unwrap_or(0);
    let mut fatal = Vec::new();
    let mut notes = Vec::new();
    let actions: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for action in actions {
        let (a, b) = (
            ours.get(action).copied().unwrap_or(0),
            theirs.get(action).copied().unwrap_or(0),
        );
        if a == b {
            continue;
        }
        let line = format!("{action}: native {a}, irhost {b}");
        if exact {
            fatal.push(line);
        } else if RACY.contains(&action.as_str()) {
            notes.push(format!("{line} (case-wide group setup race)"));
        } else if our_retries + their_retries > 0 {
            notes.push(format!(
                "{line} (step retries: native {our_retries}, irhost {their_retries})"
            ));
        } else {
            fatal.push(line);
        }
    }
    if fatal.is_empty() {
        Ok(notes)
    } else {
        fatal.extend(notes);
        Err(fatal)
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut ids = args.instances.clone();
    if let Some(path) = &args.instances_from {
        let seed: serde_json::Value = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )?;
        ids.extend(
            seed["instances"]
                .as_array()
                .context("no `instances` array")?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    if ids.is_empty() {
        bail!("no instances (--instances-from SEED.json or ids)");
    }
    let expect: Option<serde_json::Value> = match &args.expect {
        Some(p) => Some(serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )?),
        None => None,
    };

    let counter = ActionCounter::default();
    let ec2 = Arc::new(Ec2::new(
        &args.endpoint,
        &args.region,
        counter.clone(),
        !args.no_connection_reuse,
        args.ca_bundle
            .as_ref()
            .map(std::fs::read)
            .transpose()
            .context("--ca-bundle")?,
    ));
    let stats = Arc::new(Stats::default());
    let n = ids.len();

    let start = Instant::now();
    let outcomes: Vec<(String, Vec<String>)> = stream::iter(ids)
        .map(|id| {
            let (ec2, stats, case) = (ec2.clone(), stats.clone(), args.case.clone());
            async move {
                let errors = match tokio::spawn(run_target(ec2, stats, case, id.clone())).await {
                    Ok(errors) => errors,
                    Err(e) => vec![format!("internal error: {e}")],
                };
                (id, errors)
            }
        })
        .buffered(args.concurrency.max(1))
        .collect()
        .await;
    let wall = start.elapsed();

    let counts = counter.snapshot();
    let total: u64 = counts.values().sum();
    let failures: Vec<serde_json::Value> = outcomes
        .iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(id, e)| serde_json::json!({ "instance": id, "errors": e }))
        .collect();
    let step_retries = stats.step_retries.load(Ordering::Relaxed);
    let comparison = expect
        .as_ref()
        .map(|e| compare(&counts, e, args.exact, step_retries));
    let report = serde_json::json!({
        "instances": n,
        "concurrency": args.concurrency,
        "connection_reuse": !args.no_connection_reuse,
        "wall_seconds": wall.as_secs_f64(),
        "actions": counts,
        "total": total,
        "calls_per_instance": total as f64 / n as f64,
        "step_retries": step_retries,
        "failed_targets": failures.len(),
        "failures": failures,
        "counts_match": comparison.as_ref().map(|c| c.is_ok()),
        "count_notes": match &comparison {
            Some(Ok(notes)) | Some(Err(notes)) => notes.clone(),
            None => Vec::new(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !failures.is_empty() {
        bail!("{} of {n} targets failed", failures.len());
    }
    if let Some(Err(diff)) = comparison {
        eprintln!("\n*** EC2 CALL COUNTS DIFFER FROM THE IRHOST RUN ***");
        for line in &diff {
            eprintln!("  {line}");
        }
        eprintln!(
            "The native baseline does not make the same calls: its wall time is not comparable."
        );
        std::process::exit(3);
    }
    Ok(())
}
