//! `irhost doctor`: whether the responder's credentials can do what a
//! playbook needs, per target — who would sign, whether it works, and each
//! granted action — as a table (or JSON lines); exit 1 when something the
//! playbook needs is missing. Run it before the incident.

use std::path::Path;
use std::process::ExitCode;

use super::args::TargetArgs;
use super::plan::collect_targets;
use super::Failure;
use crate::facade::{DoctorVerdict, Host};

pub(super) async fn doctor(
    host: &Host,
    playbook: &Path,
    targets: &TargetArgs,
    json: bool,
) -> Result<ExitCode, Failure> {
    let plan = host.load(playbook).await?;
    let targets = collect_targets(targets, &plan)?;
    let checks = host.doctor(&plan, &targets).await;
    let mut heading = None;
    for check in &checks {
        if json {
            println!("{}", serde_json::to_string(check).unwrap_or_default());
            continue;
        }
        let group = (&check.target, &check.plugin, &check.signer);
        if heading != Some(group) {
            println!(
                "{}  plugin {}  signed by {}",
                check.target, check.plugin, check.signer
            );
            heading = Some(group);
        }
        let verdict = match check.verdict {
            DoctorVerdict::Ok => "ok",
            DoctorVerdict::Missing => "MISSING",
            DoctorVerdict::Unknown => "unknown",
        };
        println!("  {verdict:<8} {:<40} {}", check.check, check.detail);
    }
    let missing = checks
        .iter()
        .filter(|c| c.verdict == DoctorVerdict::Missing)
        .count();
    if !json {
        if checks.is_empty() {
            println!(
                "no plugin of {} is granted a cloud of these targets: nothing to check",
                playbook.display()
            );
        } else if missing == 0 {
            println!(
                "everything the playbook needs is permitted ({} checks)",
                checks.len()
            );
        } else {
            println!(
                "{missing} of {} checks missing: the playbook would fail there",
                checks.len()
            );
        }
    }
    Ok(if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
