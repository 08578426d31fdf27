//! Verify throughput: builds a signed case with CUSTODY_BENCH_RECORDS
//! journal records (default 10,000) and CUSTODY_BENCH_MB MiB of artifacts
//! (default 1024, in 1 MiB files), then times `verify_case` against
//! hashing the same bytes with the sha2 crate on one thread and with
//! `sha256sum`. Run: `cargo bench -p irhost --bench custody_verify`.
//! The case is written under CUSTODY_BENCH_DIR (default: a temporary
//! directory, removed at the end).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use irhost::custody::{self, keys::SigningKey};
use irhost::events::RunEvent;
use irhost::journal::CaseJournal;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

fn main() -> anyhow::Result<()> {
    let records = env_or("CUSTODY_BENCH_RECORDS", 10_000);
    let mib = env_or("CUSTODY_BENCH_MB", 1024);
    let tmp = tempfile::tempdir()?;
    let base = std::env::var("CUSTODY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let case_dir = base.join("bench-case");
    let _ = std::fs::remove_dir_all(&case_dir);
    let artifacts = case_dir.join("artifacts");
    std::fs::create_dir_all(&artifacts)?;

    let t = Instant::now();
    let journal = CaseJournal::open(&case_dir, "bench-case")?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let mut buf = vec![0u8; 1 << 20];
    let artifact_every = (records.saturating_sub(2) / mib.max(1)).max(1);
    let mut written = 0u64;
    for i in 0..records.saturating_sub(1) {
        let target = format!("test:t{}", i % 50);
        if written < mib && i % artifact_every == 0 {
            rng.fill(&mut buf[..]);
            let sha = hex::encode(Sha256::digest(&buf));
            std::fs::write(artifacts.join(&sha), &buf)?;
            journal.append(RunEvent::ArtifactRecorded {
                target,
                step: "snapshot".into(),
                kind: "config-dump".into(),
                provider_id: format!("dump-{written}"),
                location: format!("artifacts/{sha}"),
                size: Some(buf.len() as u64),
                sha256: Some(sha),
                stored: true,
                metadata: vec![("volume".into(), format!("vol-{written}"))],
            })?;
            written += 1;
        } else {
            journal.append(RunEvent::PluginLog {
                target,
                step: "snapshot".into(),
                plugin: "test".into(),
                level: "info".into(),
                message: format!("progress line {i} of the benchmark journal"),
            })?;
        }
    }
    let key = SigningKey::generate()?;
    custody::seal_case(&case_dir, "bench-run", &journal, Some(&key), |e| {
        journal.append(e).expect("journal append");
    })?;
    let total_bytes = written << 20;
    println!(
        "built a case of {records} records and {written} artifacts ({} MiB) in {:.1} s",
        total_bytes >> 20,
        t.elapsed().as_secs_f64()
    );

    let public = key.public();
    for round in 1..=3 {
        let t = Instant::now();
        let report = custody::verify::verify_case(&case_dir, Some(&public));
        let secs = t.elapsed().as_secs_f64();
        assert!(report.ok, "{:?}", report.problem);
        assert_eq!(report.records, records);
        println!(
            "verify (round {round}): {secs:.3} s, {:.0} MiB/s of artifacts, {} records, {} artifacts",
            mbps(report.artifact_bytes, secs),
            report.records,
            report.artifacts_checked
        );
    }

    let t = Instant::now();
    let scan = irhost::journal::chain::walk_file(&case_dir.join("journal.jsonl"))
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    println!(
        "journal chain alone: {} records in {:.1} ms",
        scan.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let files: Vec<_> = std::fs::read_dir(&artifacts)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for f in &files {
        hash_file(f)?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "sha2 crate, one thread: {secs:.3} s, {:.0} MiB/s",
        mbps(total_bytes, secs)
    );

    let t = Instant::now();
    let status = std::process::Command::new("sha256sum")
        .args(&files)
        .stdout(std::process::Stdio::null())
        .status();
    let secs = t.elapsed().as_secs_f64();
    match status {
        Ok(s) if s.success() => println!(
            "sha256sum (one process): {secs:.3} s, {:.0} MiB/s",
            mbps(total_bytes, secs)
        ),
        other => println!("sha256sum unavailable: {other:?}"),
    }
    if std::env::var("CUSTODY_BENCH_DIR").is_ok() {
        println!("case left in {}", case_dir.display());
    }
    Ok(())
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
