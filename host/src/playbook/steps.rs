//! A playbook's `[[steps]]` and `[targets]`, each checked where it is
//! written: ids, plugins, `after`, timeouts, phases; target strings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use toml::Spanned;

use super::checks::known_list;
use super::phase::{StepPhase, PHASE_HINT};
use super::raw::{RawStep, RawTargets};
use super::spec::{PluginSpec, StepSpec};
use crate::diagnostics::{parse_duration, table_to_json, Diagnostic, SourceMap};
use crate::target::TargetSpec;

/// Check every step, in file order.
pub(super) fn step_specs(
    source: &SourceMap,
    raw_steps: &[RawStep],
    plugins: &BTreeMap<String, PluginSpec>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<StepSpec> {
    let mut steps: Vec<StepSpec> = Vec::new();
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    let known_ids: HashSet<&str> = raw_steps.iter().map(|s| s.id.get_ref().as_str()).collect();
    for step in raw_steps {
        let id = step.id.get_ref().clone();
        check_id(source, step, &id, &seen, problems);
        seen.insert(id.clone(), step.id.span());
        let plugin = step.plugin.get_ref();
        if !plugins.contains_key(plugin)
            && !problems
                .iter()
                .any(|d| d.field == format!("plugins.{plugin}"))
        {
            problems.push(source.diagnostic(
                step.plugin.span(),
                &format!("steps.{id}.plugin"),
                format!("unknown plugin `{plugin}`"),
                Some(&known_list(
                    "declared plugins",
                    plugins.keys().map(String::as_str),
                )),
            ));
        }
        check_after(source, step, &id, &known_ids, problems);
        steps.push(StepSpec {
            id: id.clone(),
            id_span: step.id.span(),
            plugin: plugin.clone(),
            action: step.action.get_ref().clone(),
            action_span: step.action.span(),
            after: step.after.iter().map(|d| d.get_ref().clone()).collect(),
            with: table_to_json(&step.with),
            timeout: timeout(source, step, &id, problems),
            retries: retries(source, step, &id, problems),
            on_error: step.on_error,
            allow_unpreserved: step
                .allow_unpreserved
                .as_ref()
                .is_some_and(|a| *a.get_ref()),
            phase: phase(source, step, &id, problems),
            phase_span: step
                .phase
                .as_ref()
                .map_or_else(|| step.id.span(), |p| p.span()),
            after_spans: step.after.iter().map(|d| d.span()).collect(),
        });
    }
    steps
}

fn check_id(
    source: &SourceMap,
    step: &RawStep,
    id: &str,
    seen: &HashMap<String, Range<usize>>,
    problems: &mut Vec<Diagnostic>,
) {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(source.diagnostic(
            step.id.span(),
            "steps.id",
            format!("step id `{id}` must be non-empty letters, digits, `-` or `_`"),
            None,
        ));
    }
    if let Some(first) = seen.get(id) {
        let (line, _) = source.position(first.start);
        problems.push(source.diagnostic(
            step.id.span(),
            "steps.id",
            format!("duplicate step id `{id}`"),
            Some(&format!(
                "it is first used on line {line}; step ids must be unique"
            )),
        ));
    }
}

fn check_after(
    source: &SourceMap,
    step: &RawStep,
    id: &str,
    known_ids: &HashSet<&str>,
    problems: &mut Vec<Diagnostic>,
) {
    for dep in &step.after {
        if !known_ids.contains(dep.get_ref().as_str()) {
            problems.push(source.diagnostic(
                dep.span(),
                &format!("steps.{id}.after"),
                format!("unknown step `{}`", dep.get_ref()),
                Some(&known_list("step ids", known_ids.iter().copied())),
            ));
        } else if dep.get_ref() == id {
            problems.push(source.diagnostic(
                dep.span(),
                &format!("steps.{id}.after"),
                format!("step `{id}` depends on itself"),
                None,
            ));
        }
    }
}

fn timeout(
    source: &SourceMap,
    step: &RawStep,
    id: &str,
    problems: &mut Vec<Diagnostic>,
) -> Option<std::time::Duration> {
    let t = step.timeout.as_ref()?;
    match parse_duration(t.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(source.diagnostic(
                t.span(),
                &format!("steps.{id}.timeout"),
                e,
                Some("write a duration such as \"30s\", \"2m\" or \"500ms\""),
            ));
            None
        }
    }
}

/// A step's retries: at most [`MAX_RETRIES`].
fn retries(source: &SourceMap, step: &RawStep, id: &str, problems: &mut Vec<Diagnostic>) -> u32 {
    let Some(r) = step.retries.as_ref() else {
        return 0;
    };
    if *r.get_ref() > MAX_RETRIES {
        problems.push(source.diagnostic(
            r.span(),
            &format!("steps.{id}.retries"),
            format!(
                "{} retries is more than the limit of {MAX_RETRIES}",
                r.get_ref()
            ),
            Some("a step that fails ten times will not succeed on the eleventh: fix the cause"),
        ));
        return MAX_RETRIES;
    }
    *r.get_ref()
}

/// The most retries a step may ask for.
pub const MAX_RETRIES: u32 = 10;

fn phase(
    source: &SourceMap,
    step: &RawStep,
    id: &str,
    problems: &mut Vec<Diagnostic>,
) -> StepPhase {
    let Some(p) = &step.phase else {
        return StepPhase::Target;
    };
    match StepPhase::parse(p.get_ref()) {
        Ok(phase) => phase,
        Err(e) => {
            problems.push(source.diagnostic(
                p.span(),
                &format!("steps.{id}.phase"),
                e,
                Some(PHASE_HINT),
            ));
            StepPhase::Target
        }
    }
}

/// The playbook's `[targets]`, with its default region and account.
pub(super) fn targets(
    source: &SourceMap,
    raw: Option<Spanned<RawTargets>>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<TargetSpec> {
    let mut targets = Vec::new();
    let Some(raw_targets) = raw else {
        return targets;
    };
    let raw_targets = raw_targets.into_inner();
    for entry in &raw_targets.list {
        match TargetSpec::parse(entry.get_ref()) {
            Ok(mut t) => {
                if t.region.is_none() {
                    t.region = raw_targets.region.clone();
                }
                if let (None, Some(account)) = (&t.account, &raw_targets.account) {
                    if let Err(e) = t.set_account(account) {
                        problems.push(source.diagnostic(entry.span(), "targets.account", e, None));
                    }
                }
                targets.push(t);
            }
            Err(e) => problems.push(source.diagnostic(
                entry.span(),
                "targets.list",
                e,
                Some("targets look like \"aws:i-0abc\" or \"test:web-1\""),
            )),
        }
    }
    targets
}
