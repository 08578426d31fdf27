//! `irhost run`: a playbook against targets, its records shown as they
//! are written, then the case's summary.

use std::process::ExitCode;

use futures::StreamExt;

use super::args::RunArgs;
use super::display::{print_summary, RunDisplay};
use super::plan::{collect_targets, print_plan};
use super::{exit_code, Failure};
use crate::custody;
use crate::facade::{CaseLockError, Host, RunOptions};

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
    let run = host.start(plan, targets, options).map_err(|e| match e {
        CaseLockError::Held { .. } => Failure::Invalid(e.to_string()),
        CaseLockError::Io(_) => Failure::Runtime(e.to_string()),
    })?;
    let display = RunDisplay::new(args.json, run_targets);
    let mut events = run.events();
    while let Some(record) = events.next().await {
        display.show(&record);
    }
    let summary = run
        .wait()
        .await
        .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    display.finish();
    if !args.json {
        print_summary(&summary);
    }
    Ok(exit_code(summary.all_succeeded()))
}
