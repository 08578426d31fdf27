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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::case_id::CaseId;
use crate::diagnostics::{parse_duration, table_to_json, toml_diagnostic, Diagnostics, SourceMap};
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
    params: Option<toml::Table>,
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
}

/// Where a rule finds targets in an event.
#[derive(Debug, Clone)]
pub struct TargetExtractor {
    pub provider: String,
    pub id: String,
    pub region: Option<String>,
    pub account: Option<String>,
}

/// A test on the values at one path; all parts must hold.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    pub eq: Option<Value>,
    pub ne: Option<Value>,
    pub one_of: Option<Vec<Value>>,
    pub not_in: Option<Vec<Value>>,
    pub glob: Option<Vec<String>>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub exists: Option<bool>,
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
    /// use irhost::rules::Rules;
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
        let raw: RawRules =
            toml::from_str(text).map_err(|e| Diagnostics(vec![toml_diagnostic(&source, &e)]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let mut concurrency = DEFAULT_CONCURRENCY;
        let mut dedup_window = DEFAULT_DEDUP_WINDOW;
        if let Some(w) = raw.watch {
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
        }
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
            let prefix = format!("rules.{name}");
            let mut conditions = Vec::new();
            for (field, value) in &raw.conditions {
                match condition(value.get_ref()) {
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
            let mut targets = Vec::new();
            for t in raw.target.into_iter().chain(raw.targets) {
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
            let params = match raw.params.map(|t| table_to_json(&t)) {
                Some(Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            rules.push(Rule {
                name,
                playbook,
                conditions,
                targets,
                case: raw.case.map(Spanned::into_inner),
                params,
            });
        }
        if !problems.is_empty() {
            return Err(Diagnostics(problems));
        }
        Ok(Rules {
            file: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            concurrency,
            dedup_window,
            rules,
        })
    }

    /// The first rule whose conditions all hold.
    pub fn first_match(&self, event: &Value) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(event))
    }
}

fn condition(value: &toml::Value) -> Result<Condition, String> {
    let json = |v: &toml::Value| serde_json::to_value(v).map_err(|e| e.to_string());
    let number = |key: &str, v: &toml::Value| match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) => Ok(*f),
        _ => Err(format!("`{key}` needs a number")),
    };
    let list = |key: &str, v: &toml::Value| match v {
        toml::Value::Array(a) => a.iter().map(json).collect::<Result<Vec<_>, _>>(),
        _ => Err(format!("`{key}` needs a list")),
    };
    let mut c = Condition::default();
    match value {
        toml::Value::Table(table) => {
            if table.is_empty() {
                return Err("an empty condition".into());
            }
            for (key, v) in table {
                match key.as_str() {
                    "eq" => c.eq = Some(json(v)?),
                    "ne" => c.ne = Some(json(v)?),
                    "in" => c.one_of = Some(list(key, v)?),
                    "not_in" => c.not_in = Some(list(key, v)?),
                    "glob" => {
                        c.glob = Some(match v {
                            toml::Value::String(s) => vec![s.clone()],
                            toml::Value::Array(a) => a
                                .iter()
                                .map(|g| g.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                                .ok_or("`glob` needs a string or a list of strings")?,
                            _ => return Err("`glob` needs a string or a list of strings".into()),
                        })
                    }
                    "gt" => c.gt = Some(number(key, v)?),
                    "gte" => c.gte = Some(number(key, v)?),
                    "lt" => c.lt = Some(number(key, v)?),
                    "lte" => c.lte = Some(number(key, v)?),
                    "exists" => c.exists = Some(v.as_bool().ok_or("`exists` needs true or false")?),
                    other => return Err(format!("unknown condition `{other}`")),
                }
            }
        }
        toml::Value::Array(_) => c.one_of = Some(list("in", value)?),
        other => c.eq = Some(json(other)?),
    }
    Ok(c)
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
                spec.account = first(&t.account);
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

impl Condition {
    /// Whether the values found at a path satisfy this condition.
    pub fn holds(&self, values: &[&Value]) -> bool {
        if let Some(exists) = self.exists {
            if exists == values.is_empty() {
                return false;
            }
        }
        let value_tests = self.eq.is_some()
            || self.one_of.is_some()
            || self.glob.is_some()
            || self.gt.is_some()
            || self.gte.is_some()
            || self.lt.is_some()
            || self.lte.is_some();
        if let Some(ne) = &self.ne {
            if values.iter().any(|v| equal(v, ne)) {
                return false;
            }
        }
        if let Some(not_in) = &self.not_in {
            if values.iter().any(|v| not_in.iter().any(|n| equal(v, n))) {
                return false;
            }
        }
        if !value_tests {
            return true;
        }
        values.iter().any(|v| self.value_holds(v))
    }

    fn value_holds(&self, v: &Value) -> bool {
        if let Some(eq) = &self.eq {
            if !equal(v, eq) {
                return false;
            }
        }
        if let Some(set) = &self.one_of {
            if !set.iter().any(|s| equal(v, s)) {
                return false;
            }
        }
        if let Some(globs) = &self.glob {
            let Some(text) = v.as_str() else {
                return false;
            };
            if !globs.iter().any(|g| glob_match(g, text)) {
                return false;
            }
        }
        let bounds = [self.gt, self.gte, self.lt, self.lte];
        if bounds.iter().any(Option::is_some) {
            let Some(n) = as_number(v) else {
                return false;
            };
            if self.gt.is_some_and(|b| n <= b)
                || self.gte.is_some_and(|b| n < b)
                || self.lt.is_some_and(|b| n >= b)
                || self.lte.is_some_and(|b| n > b)
            {
                return false;
            }
        }
        true
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every value at a dotted path (see the module docs).
pub fn lookup<'a>(event: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![event];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            descend(value, segment, &mut next);
        }
        current = next;
    }
    // A path that ends on an array means its elements.
    current
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

fn descend<'a>(value: &'a Value, segment: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(segment) {
                out.push(v);
            }
        }
        Value::Array(items) => match segment.parse::<usize>() {
            Ok(i) => out.extend(items.get(i)),
            Err(_) => {
                for item in items {
                    descend(item, segment, out);
                }
            }
        },
        _ => {}
    }
}

/// `*` matches any run of characters, `?` any one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Replace `{dotted.path}` with the event's value there; `{target.id}`,
/// `{target.provider}` and `{target}` name the first target. Unknown
/// paths become `unknown`.
pub fn render(template: &str, event: &Value, target: Option<&TargetSpec>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = after[..close].trim();
        let value = match (key, target) {
            ("target", Some(t)) => Some(t.label()),
            ("target.id", Some(t)) => Some(t.id.clone()),
            ("target.provider", Some(t)) => Some(t.provider.clone()),
            _ => lookup(event, key).into_iter().find_map(scalar_text),
        };
        out.push_str(value.as_deref().unwrap_or("unknown"));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = r#"
[watch]
concurrency = 2
dedup_window = "10m"

[[rules]]
name = "gd"
playbook = "rules.toml"
case = "gd-{detail.id}"
target = { provider = "aws", id = "detail.resource.instanceDetails.instanceId", region = "region" }

[rules.match]
"detail-type" = "GuardDuty Finding"
"detail.type" = { glob = ["UnauthorizedAccess:EC2/*", "Backdoor:EC2/*"] }
"detail.severity" = { gte = 7 }
"detail.resource.resourceType" = ["Instance"]
"#;

    fn rules(text: &str) -> Result<Rules, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, text).unwrap();
        Rules::load(&path)
    }

    fn finding(severity: f64, kind: &str) -> Value {
        json!({
            "detail-type": "GuardDuty Finding",
            "region": "us-east-1",
            "detail": {
                "id": "abc/def",
                "type": kind,
                "severity": severity,
                "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-1"}}
            }
        })
    }

    #[test]
    fn guardduty_style_rule_matches_and_extracts() {
        let r = rules(RULES).unwrap();
        assert_eq!(r.concurrency, 2);
        assert_eq!(r.dedup_window, Duration::from_secs(600));
        let hit = finding(8.0, "UnauthorizedAccess:EC2/SSHBruteForce");
        let rule = r.first_match(&hit).unwrap();
        let targets = rule.targets(&hit);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].label(), "aws:i-1");
        assert_eq!(targets[0].region.as_deref(), Some("us-east-1"));
        assert_eq!(
            rule.case_id(&hit, targets.first()).unwrap().as_str(),
            "gd-abc-def"
        );
        assert!(r
            .first_match(&finding(5.0, "Backdoor:EC2/C&CActivity.B"))
            .is_none());
        assert!(r
            .first_match(&finding(9.0, "Recon:IAMUser/TorIPCaller"))
            .is_none());
    }

    #[test]
    fn unknown_fields_and_bad_conditions_are_located() {
        let e = rules(&RULES.replace("concurrency = 2", "concurency = 2")).unwrap_err();
        let d = &e.0[0];
        assert_eq!((d.line, d.field.as_str()), (3, "concurency"), "{e}");
        let e = rules(&RULES.replace("{ gte = 7 }", "{ atleast = 7 }")).unwrap_err();
        assert!(e.to_string().contains("unknown condition `atleast`"), "{e}");
        assert!(e.to_string().contains("rules.toml:15:21"), "{e}");
    }

    #[test]
    fn paths_fan_out_over_arrays_and_globs_match() {
        let v = json!({"a": [{"b": 1}, {"b": 2}], "c": ["x", "y"]});
        assert_eq!(lookup(&v, "a.b"), vec![&json!(1), &json!(2)]);
        assert_eq!(lookup(&v, "a.1.b"), vec![&json!(2)]);
        assert_eq!(lookup(&v, "c"), vec![&json!("x"), &json!("y")]);
        assert!(glob_match("Backdoor:EC2/*", "Backdoor:EC2/C&CActivity.B"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "abcd"));
        assert_eq!(CaseId::sanitize("../x y").as_str(), "x-y");
        assert!(!CaseId::is_valid("../etc"));
    }
}
