//! Rules for `irhost watch`: which events start which playbook on which
//! targets. A rules file is TOML, checked strictly like a playbook (unknown
//! fields and bad values are diagnostics naming file:line:column).
//!
//! ```toml
//! [watch]                       # optional
//! concurrency = 4               # runs at once
//! dedup_window = "30m"          # after a successful run, ignore the same target this long
//!
//! [[rules]]
//! name = "guardduty-ec2"
//! playbook = "../aws-instance-compromise.toml"   # relative to the rules file
//! case = "gd-{detail.id}"       # case id template: `{dotted.path}` of the event
//! params = { }                  # run parameters (string values are templates too)
//! target = { provider = "aws", id = "detail.resource.instanceDetails.instanceId", region = "detail.region" }
//!
//! [rules.match]                 # every condition must hold
//! "detail-type" = "GuardDuty Finding"                   # equality
//! "detail.type" = { in = ["Backdoor:EC2/C&CActivity.B"] } # one of
//! "detail.resource.resourceType" = { glob = "Inst*" }   # `*` and `?`
//! "detail.severity" = { gte = 7 }                       # gt, gte, lt, lte
//! ```
//!
//! A path is dotted keys (`detail.resource.instanceDetails.instanceId`); a
//! numeric segment indexes an array, and any other segment reaching an array
//! applies to each element (a condition holds when any value satisfies it;
//! a target path yields one target per value).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::conditions::Condition;
use super::event_paths::{lookup, render, scalar_text};
use crate::case_id::CaseId;
use crate::diagnostics::{
    parse_duration, parse_toml, table_to_json, Diagnostic, Diagnostics, SourceMap,
};
use crate::digest::sha256_hex;
use crate::facade::PlaybookPlan;
use crate::target::TargetSpec;

/// Runs at once, when the rules file does not say.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The dedup window, when the rules file does not say.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    watch: Option<RawWatch>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    #[serde(default)]
    concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    dedup_window: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    playbook: Spanned<String>,
    #[serde(rename = "match", default)]
    conditions: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    target: Option<Spanned<RawTarget>>,
    #[serde(default)]
    targets: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    case: Option<Spanned<String>>,
    #[serde(default)]
    params: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: Spanned<String>,
    id: Spanned<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

/// A checked rules file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub file: PathBuf,
    pub sha256: String,
    pub concurrency: usize,
    pub dedup_window: Duration,
    pub rules: Vec<Rule>,
    /// The file's text positions, for diagnostics found later (a rule's
    /// parameters checked against its playbook's inputs).
    pub source: SourceMap,
}

/// One rule: conditions, how to find targets, what to run.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// The playbook, resolved against the rules file's directory.
    pub playbook: PathBuf,
    pub conditions: Vec<(String, Condition)>,
    pub targets: Vec<TargetExtractor>,
    pub case: Option<String>,
    pub params: serde_json::Map<String, Value>,
    /// Where `params` is written (the rule's table when it is not).
    pub params_span: std::ops::Range<usize>,
}

/// Where a rule finds targets in an event.
#[derive(Debug, Clone)]
pub struct TargetExtractor {
    pub provider: String,
    pub id: String,
    pub region: Option<String>,
    pub account: Option<String>,
}

impl Rules {
    /// Read and check a rules file.
    pub fn load(path: &Path) -> Result<Rules, Diagnostics> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostics::unreadable(path, "rules file", &e))?;
        Rules::parse(path, &text)
    }

    /// Check a rules file given as text; `path` names it in diagnostics and
    /// anchors relative playbook paths.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # std::fs::write(dir.path().join("pb.toml"), "").unwrap();
    /// use irhost::watch::rules::Rules;
    ///
    /// let rules = Rules::parse(&dir.path().join("rules.toml"), r#"
    ///     [[rules]]
    ///     name = "edr"
    ///     playbook = "pb.toml"
    ///     target = { provider = "test", id = "alert.host" }
    ///     [rules.match]
    ///     "alert.score" = { gte = 7 }
    /// "#).unwrap();
    /// let event = serde_json::json!({"alert": {"score": 9, "host": "web-1"}});
    /// let rule = rules.first_match(&event).unwrap();
    /// assert_eq!(rule.targets(&event)[0].label(), "test:web-1");
    /// assert!(rules.first_match(&serde_json::json!({"alert": {"score": 3}})).is_none());
    /// ```
    pub fn parse(path: &Path, text: &str) -> Result<Rules, Diagnostics> {
        let source = SourceMap::new(path, text);
        let raw: RawRules = parse_toml(&source, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let (concurrency, dedup_window) = watch_settings(&source, raw.watch, &mut problems);
        if raw.rules.is_empty() {
            problems.push(source.diagnostic(
                0..0,
                "rules",
                "no [[rules]]: nothing would ever match",
                Some("add a [[rules]] table"),
            ));
        }
        let mut rules = Vec::new();
        let mut names = std::collections::HashSet::new();
        for spanned in raw.rules {
            let span = spanned.span();
            let raw = spanned.into_inner();
            let name = raw.name.get_ref().clone();
            if !names.insert(name.clone()) {
                problems.push(source.diagnostic(
                    raw.name.span(),
                    "rules.name",
                    format!("duplicate rule name `{name}`"),
                    None,
                ));
            }
            rules.push(rule(&source, base, name, span, raw, &mut problems));
        }
        if !problems.is_empty() {
            return Err(Diagnostics(problems));
        }
        Ok(Rules {
            file: path.to_path_buf(),
            sha256: sha256_hex(text.as_bytes()),
            concurrency,
            dedup_window,
            rules,
            source,
        })
    }

    /// The first rule whose conditions all hold.
    pub fn first_match(&self, event: &Value) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(event))
    }
}

/// `[watch]`: concurrency and dedup window, defaults where absent.
fn watch_settings(
    source: &SourceMap,
    watch: Option<RawWatch>,
    problems: &mut Vec<Diagnostic>,
) -> (usize, Duration) {
    let mut concurrency = DEFAULT_CONCURRENCY;
    let mut dedup_window = DEFAULT_DEDUP_WINDOW;
    let Some(w) = watch else {
        return (concurrency, dedup_window);
    };
    if let Some(c) = w.concurrency {
        if *c.get_ref() == 0 {
            problems.push(source.diagnostic(
                c.span(),
                "watch.concurrency",
                "must be at least 1",
                None,
            ));
        }
        concurrency = (*c.get_ref()).max(1);
    }
    if let Some(d) = w.dedup_window {
        match parse_duration(d.get_ref()) {
            Ok(d) => dedup_window = d,
            Err(e) => problems.push(source.diagnostic(
                d.span(),
                "watch.dedup_window",
                e,
                Some("a duration such as \"30m\" or \"0s\""),
            )),
        }
    }
    (concurrency, dedup_window)
}

/// One `[[rules]]` entry, checked.
fn rule(
    source: &SourceMap,
    base: &Path,
    name: String,
    span: std::ops::Range<usize>,
    raw: RawRule,
    problems: &mut Vec<Diagnostic>,
) -> Rule {
    let prefix = format!("rules.{name}");
    let params_span = raw.params.as_ref().map_or(span.clone(), |p| p.span());
    let mut conditions = Vec::new();
    for (field, value) in &raw.conditions {
        match Condition::parse(value.get_ref()) {
            Ok(c) => conditions.push((field.clone(), c)),
            Err(e) => problems.push(source.diagnostic(
                value.span(),
                &format!("{prefix}.match.{field}"),
                e,
                Some("a value (equality), a list (one of), or a table of eq, ne, in, not_in, glob, gt, gte, lt, lte, exists"),
            )),
        }
    }
    if conditions.is_empty() {
        problems.push(source.diagnostic(
            span.clone(),
            &format!("{prefix}.match"),
            "the rule has no conditions: it would match every event",
            Some("add a [rules.match] table"),
        ));
    }
    let targets = target_extractors(
        source,
        &prefix,
        raw.target.into_iter().chain(raw.targets),
        problems,
    );
    if targets.is_empty() {
        problems.push(source.diagnostic(
            span,
            &format!("{prefix}.target"),
            "the rule names no target",
            Some("target = { provider = \"aws\", id = \"detail.resource.instanceDetails.instanceId\" }"),
        ));
    }
    let playbook = base.join(raw.playbook.get_ref());
    if !playbook.is_file() {
        problems.push(source.diagnostic(
            raw.playbook.span(),
            &format!("{prefix}.playbook"),
            format!("{} does not exist", playbook.display()),
            Some("paths are relative to the rules file"),
        ));
    }
    let params = match raw.params.map(|t| table_to_json(t.get_ref())) {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    Rule {
        name,
        playbook,
        conditions,
        targets,
        case: raw.case.map(Spanned::into_inner),
        params,
        params_span,
    }
}

fn target_extractors(
    source: &SourceMap,
    prefix: &str,
    raw: impl Iterator<Item = Spanned<RawTarget>>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<TargetExtractor> {
    let mut targets = Vec::new();
    for t in raw {
        let t_span = t.span();
        let t = t.into_inner();
        if let Err(e) = TargetSpec::parse(&format!("{}:x", t.provider.get_ref())) {
            problems.push(source.diagnostic(
                t.provider.span(),
                &format!("{prefix}.target.provider"),
                e,
                None,
            ));
        }
        if t.id.get_ref().trim().is_empty() {
            problems.push(source.diagnostic(
                t_span,
                &format!("{prefix}.target.id"),
                "empty path",
                Some("the dotted path of the target id in the event"),
            ));
        }
        targets.push(TargetExtractor {
            provider: t.provider.into_inner(),
            id: t.id.into_inner(),
            region: t.region,
            account: t.account,
        });
    }
    targets
}

impl Rule {
    pub fn matches(&self, event: &Value) -> bool {
        self.conditions
            .iter()
            .all(|(path, c)| c.holds(&lookup(event, path)))
    }

    /// The targets this rule names in `event` (deduplicated, in order).
    pub fn targets(&self, event: &Value) -> Vec<TargetSpec> {
        let mut out: Vec<TargetSpec> = Vec::new();
        for t in &self.targets {
            let first = |path: &Option<String>| {
                path.as_ref()
                    .and_then(|p| lookup(event, p).into_iter().find_map(scalar_text))
            };
            for id in lookup(event, &t.id).into_iter().filter_map(scalar_text) {
                let Ok(mut spec) = TargetSpec::parse(&format!("{}:{id}", t.provider)) else {
                    continue;
                };
                spec.region = first(&t.region);
                if let Some(account) = first(&t.account) {
                    if let Err(e) = spec.set_account(&account) {
                        // Not a run against a role the event chose.
                        tracing::warn!(target = %spec.label(), error = %e, "event names a bad account: target skipped");
                        continue;
                    }
                }
                if !out.iter().any(|o| o.label() == spec.label()) {
                    out.push(spec);
                }
            }
        }
        out
    }

    /// The case id for `event`, when the rule has a template.
    pub fn case_id(&self, event: &Value, first_target: Option<&TargetSpec>) -> Option<CaseId> {
        let template = self.case.as_ref()?;
        Some(CaseId::sanitize(&render(template, event, first_target)))
    }

    /// The run parameters for `event` (string values are templates).
    pub fn params(
        &self,
        event: &Value,
        first_target: Option<&TargetSpec>,
    ) -> serde_json::Map<String, Value> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => Value::String(render(s, event, first_target)),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// A rule's parameters must be inputs its playbook declares: a run may set
/// nothing else.
pub(super) fn undeclared_params(
    rules: &Rules,
    plans: &HashMap<PathBuf, Arc<PlaybookPlan>>,
) -> Result<(), Diagnostics> {
    let mut problems = Vec::new();
    for rule in &rules.rules {
        let inputs = &plans[&rule.playbook].playbook.inputs;
        for name in rule.params.keys().filter(|n| !inputs.0.contains_key(*n)) {
            let declared: Vec<&str> = inputs.0.keys().map(String::as_str).collect();
            problems.push(rules.source.diagnostic(
                rule.params_span.clone(),
                &format!("rules.{}.params.{name}", rule.name),
                format!(
                    "`{name}` is not an input of {}: a run may set only the playbook's [inputs] ({})",
                    rule.playbook.display(),
                    if declared.is_empty() { "it declares none".to_string() } else { declared.join(", ") }
                ),
                Some("declare it under [inputs] in the playbook, or remove it from the rule"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(problems))
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
