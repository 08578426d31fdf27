//! Journal durability: what each policy costs. Appends
//! JOURNAL_BENCH_RECORDS records (default 5,000) to a fresh journal under
//! JOURNAL_BENCH_DIR (default: a temporary directory in the system's temp
//! dir, removed at the end) from JOURNAL_BENCH_WRITERS threads (default 1,
//! then 16), once with a sync per record and once with group commit
//! (64 records or 10 ms), and prints records/s and the p50/p99 append
//! latency. Run: `cargo bench -p irhost --bench journal`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use irhost::events::RunEvent;
use irhost::journal::{CaseJournal, Durability};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(policy: Durability, records: u64, writers: u64) -> anyhow::Result<()> {
    let base = match std::env::var_os("JOURNAL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let journal = Arc::new(CaseJournal::open_with(base.path(), "bench", policy)?);
    let started = Instant::now();
    let per_writer = records / writers;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let journal = journal.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut latencies = Vec::with_capacity(per_writer as usize);
                for n in 0..per_writer {
                    let t = Instant::now();
                    journal.append(RunEvent::TargetStarted {
                        target: format!("test:w{w}-{n}"),
                    })?;
                    latencies.push(t.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.join().expect("writer")?);
    }
    drop(journal); // the last group is synced
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "{:<28} writers {writers:>2}: {:>8.0} records/s, append p50 {:>7.1} µs, p99 {:>8.1} µs ({} records in {:.2} s)",
        format!("{policy:?}"),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        latencies.len(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let records = env_or("JOURNAL_BENCH_RECORDS", 5_000);
    let writers: Vec<u64> = match std::env::var("JOURNAL_BENCH_WRITERS") {
        Ok(w) => vec![w.parse()?],
        Err(_) => vec![1, 16],
    };
    for w in writers {
        for policy in [Durability::EveryRecord, Durability::default()] {
            run(policy, records, w)?;
        }
    }
    Ok(())
}
