//! `irhost validate` and `irhost plan`: a playbook checked and laid out
//! per target, nothing run; and the targets of a run from the command line.

use std::path::Path;
use std::process::ExitCode;

use super::args::TargetArgs;
use super::Failure;
use crate::facade::{Host, PlaybookPlan, TargetsError};
use crate::target::TargetSpec;

/// `irhost validate`: load and check the playbook and its plugins.
pub(super) async fn validate(
    host: &Host,
    playbook: &Path,
    json: bool,
) -> Result<ExitCode, Failure> {
    let plan = host.load(playbook).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"valid": true, "plan": plan.describe()})
        );
    } else {
        println!(
            "{}: valid ({} steps, {} plugins)",
            playbook.display(),
            plan.steps.len() + plan.sealed.len(),
            plan.plugins.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `irhost plan`: the DAG per target and which steps mutate.
pub(super) async fn plan(
    host: &Host,
    playbook: &Path,
    targets: &TargetArgs,
    json: bool,
) -> Result<ExitCode, Failure> {
    let plan = host.load(playbook).await?;
    let targets = collect_targets(targets, &plan)?;
    print_plan(&plan, &targets, json);
    Ok(ExitCode::SUCCESS)
}

/// `irhost plan --policy`: the IAM policy and Azure role the playbook's
/// grants need, as JSON on stdout.
pub(super) async fn policy(host: &Host, playbook: &Path) -> Result<ExitCode, Failure> {
    let plan = host.load(playbook).await?;
    let documents = plan.least_privilege();
    println!(
        "{}",
        serde_json::to_string_pretty(&documents.to_json()).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// The targets of `--target` and `--targets FILE`, resolved by the plan
/// (the playbook's `[targets]` when none are given).
pub(super) fn collect_targets(
    args: &TargetArgs,
    plan: &PlaybookPlan,
) -> Result<Vec<TargetSpec>, Failure> {
    let mut targets = Vec::new();
    for text in &args.targets {
        targets
            .push(TargetSpec::parse(text).map_err(|e| Failure::Invalid(format!("--target: {e}")))?);
    }
    if let Some(file) = &args.targets_file {
        targets.extend(TargetSpec::load_file(file)?);
    }
    plan.resolve_targets(targets).map_err(|e| match e {
        TargetsError::None => Failure::Invalid(format!(
            "{}: no targets: give --target provider:id, --targets FILE, or a [targets] list in the playbook",
            plan.playbook.source.file().display()
        )),
        TargetsError::Unserved(message) => Failure::Invalid(message),
    })
}

pub(super) fn print_plan(plan: &PlaybookPlan, targets: &[TargetSpec], json: bool) {
    if json {
        let mut value = plan.describe();
        value["targets"] =
            serde_json::json!(targets.iter().map(TargetSpec::label).collect::<Vec<_>>());
        println!("{value}");
        return;
    }
    println!(
        "playbook {} ({} steps)",
        plan.playbook.name,
        plan.steps.len()
    );
    let levels = plan.levels();
    for target in targets {
        println!("target {}", target.label());
        // The protocol's order: steps of one level run at once (∥).
        let mut by_level: Vec<Vec<&str>> = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            if !plan.applies(i, &target.provider) {
                continue;
            }
            if by_level.len() <= levels[i] {
                by_level.resize(levels[i] + 1, Vec::new());
            }
            by_level[levels[i]].push(&step.spec.id);
        }
        let order: Vec<String> = by_level
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| l.join(" ∥ "))
            .collect();
        println!("  order: {}", order.join(" → "));
        let applicable = plan
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| plan.applies(*i, &target.provider));
        for (_, step) in applicable {
            let after = if step.spec.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", step.spec.after.join(", "))
            };
            let flag = if step.mutating {
                if step.spec.allow_unpreserved && step.preserved_by.is_empty() {
                    "  MUTATES (unpreserved, allowed)"
                } else {
                    "  MUTATES"
                }
            } else {
                ""
            };
            println!(
                "  {:<24} {}.{}{after}{flag}",
                step.spec.id, step.spec.plugin, step.spec.action
            );
        }
    }
    if !plan.sealed.is_empty() {
        println!("once, after the case is sealed (target case:<case-id>, inputs: the sealed case)");
        for step in &plan.sealed {
            let after = if step.spec.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", step.spec.after.join(", "))
            };
            println!(
                "  {:<24} {}.{}{after}",
                step.spec.id, step.spec.plugin, step.spec.action
            );
        }
    }
}
