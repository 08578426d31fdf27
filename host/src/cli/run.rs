//! `irhost run`: a playbook against targets, its records shown as they
//! are written, then the case's summary.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;

use super::args::RunArgs;
use super::display::{print_summary, RunDisplay};
use super::plan::{collect_targets, print_plan};
use super::{exit_code, Failure};
use crate::custody;
use crate::facade::{CaseLockError, Host, RunHandle, RunOptions, StartError};

pub(super) async fn run(host: &Host, args: &RunArgs) -> Result<ExitCode, Failure> {
    let signing_key = args
        .signing_key
        .as_ref()
        .map(|path| custody::keys::SigningKey::load(path))
        .transpose()
        .map_err(|e| Failure::Invalid(format!("--signing-key: {e:#}")))?;
    let plan = host.load(&args.playbook).await?;
    let targets = collect_targets(&args.targets, &plan)?;
    let run_targets = targets.len();
    if args.dry_run {
        print_plan(&plan, &targets, args.json);
        return Ok(ExitCode::SUCCESS);
    }
    let mut options = RunOptions::new(args.case.clone(), args.cases_dir.clone(), args.concurrency);
    options.signing_key = signing_key;
    options.params = params(&args.params)?;
    let run = host.start(plan, targets, options).map_err(start_failure)?;
    follow(run, args.json, run_targets).await
}

/// How long the plugin calls in flight may go on after Ctrl-C before they
/// are cancelled.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Show a started run's records as they are written, then its summary.
/// Ctrl-C once drains the run (no new step; the calls in flight get
/// [`DRAIN_GRACE`], then are cancelled), seals the case and exits 130 with
/// how to resume it; twice exits at once (the journal stays whole: a torn
/// line is cut off when the case is opened again).
pub(super) async fn follow(
    run: RunHandle,
    json: bool,
    targets: usize,
) -> Result<ExitCode, Failure> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let on_signal = {
        let (run, interrupted) = (run.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            interrupted.store(true, Ordering::SeqCst);
            run.drain();
            eprintln!(
                "interrupted: finishing the steps in flight (at most {}s), then sealing case {}; Ctrl-C again to stop at once",
                DRAIN_GRACE.as_secs(),
                run.case_id()
            );
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_GRACE) => run.cancel(),
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("stopped at once; continue with `irhost resume {}`", run.case_id());
                    std::process::exit(130);
                }
            }
            // Past the grace: a second Ctrl-C still stops at once.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        })
    };
    let display = RunDisplay::new(json, targets);
    let mut events = run.events();
    while let Some(record) = events.next().await {
        display.show(&record);
    }
    let summary = run
        .wait()
        .await
        .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    on_signal.abort();
    display.finish();
    if !json {
        print_summary(&summary);
    }
    if interrupted.load(Ordering::SeqCst) {
        eprintln!(
            "interrupted: case {} is sealed; continue it with `irhost resume {}`",
            summary.case_id, summary.case_id
        );
        return Ok(ExitCode::from(130));
    }
    Ok(exit_code(summary.all_succeeded()))
}

/// Why a run did not start, as a failure of the command.
pub(super) fn start_failure(e: StartError) -> Failure {
    match e {
        StartError::Params(_) | StartError::Case(CaseLockError::Held { .. }) => {
            Failure::Invalid(e.to_string())
        }
        StartError::Case(CaseLockError::Io(_)) => Failure::Runtime(e.to_string()),
    }
}

/// `--param NAME=VALUE` as run parameters (typed by the playbook's inputs
/// when the run starts).
fn params(given: &[String]) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
    let mut params = serde_json::Map::new();
    for text in given {
        let Some((name, value)) = text.split_once('=') else {
            return Err(Failure::Invalid(format!(
                "--param {text}: write NAME=VALUE (NAME one of the playbook's [inputs])"
            )));
        };
        params.insert(
            name.trim().to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    Ok(params)
}
