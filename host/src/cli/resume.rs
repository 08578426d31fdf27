//! `irhost resume CASE`: continue a case after a crash. The case's last
//! run is read from its journal (playbook, targets, parameters); the
//! playbook must be the same file (its sha256); the steps the journal shows
//! done for it are not run again, the others run (plugins are idempotent),
//! the case is sealed again and its sealed phase runs on the new seal. A
//! torn last line is cut off when the journal is opened (a `repair` record).

use std::process::ExitCode;
use std::sync::Arc;

use super::args::ResumeArgs;
use super::run::{follow, start_failure};
use super::Failure;
use crate::custody;
use crate::facade::{read_progress, Host, RunOptions};

pub(super) async fn resume(host: &Host, args: &ResumeArgs) -> Result<ExitCode, Failure> {
    let signing_key = args
        .signing_key
        .as_ref()
        .map(|path| custody::keys::SigningKey::load(path))
        .transpose()
        .map_err(|e| Failure::Invalid(format!("--signing-key: {e:#}")))?;
    let case_dir = args.cases_dir.join(&args.case);
    let progress = read_progress(&case_dir).map_err(Failure::Invalid)?;
    let playbook = args
        .playbook
        .clone()
        .unwrap_or_else(|| progress.playbook.clone().into());
    let plan = host.load(&playbook).await?;
    if plan.playbook.sha256 != progress.playbook_sha256 {
        return Err(Failure::Invalid(format!(
            "{}: this playbook is not the one case {} ran (sha256 {}, the journal's {}): resume continues the same playbook; run the new one with `irhost run`",
            playbook.display(),
            args.case,
            plan.playbook.sha256,
            progress.playbook_sha256
        )));
    }
    let concurrency = args.concurrency.unwrap_or(progress.concurrency);
    let mut options = RunOptions::new(Some(args.case.clone()), args.cases_dir.clone(), concurrency);
    options.signing_key = signing_key;
    options.params = progress.params.clone();
    let targets = progress.targets.clone();
    if !args.json {
        println!(
            "resuming case {} on {} target(s): {} step(s) the journal shows done will not run again",
            args.case,
            targets.len(),
            progress.done.len()
        );
    }
    options.resumed = Some(Arc::new(progress.done));
    let count = targets.len();
    let run = host.start(plan, targets, options).map_err(start_failure)?;
    follow(run, args.json, count).await
}
