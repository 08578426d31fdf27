//! TOML playbooks: parsing with spans, and every check that needs only the
//! file itself (unknown fields, unknown plugins and steps, duplicate ids,
//! cycles, bad host patterns, durations and pins). Checks that need the
//! plugins' `describe` live in [`crate::plan`].
//!
//! Every problem is a [`Diagnostic`] naming file:line:column and the field,
//! with a hint; nothing runs while any exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::egress::{EgressPolicy, HostPattern};
use crate::target::TargetSpec;

/// A problem in an input file, located and explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: `{}`: {}",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// A file that could not be read at all (`what`: "playbook", "rules file", ...).
    pub fn unreadable(path: &Path, what: &str, error: &std::io::Error) -> Self {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: "file".into(),
            message: format!("cannot read the {what}: {error}"),
            hint: None,
        }])
    }
}

/// Turns byte offsets of one source text into line:column diagnostics.
#[derive(Debug, Clone)]
pub struct SourceMap {
    file: PathBuf,
    line_starts: Vec<usize>,
    text_len: usize,
}

impl SourceMap {
    pub fn new(file: &Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            file: file.to_path_buf(),
            line_starts,
            text_len: text.len(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text_len);
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.line_starts[line - 1] + 1)
    }

    pub fn diagnostic(
        &self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    playbook: Spanned<RawMeta>,
    #[serde(default)]
    plugins: BTreeMap<String, Spanned<RawPlugin>>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    targets: Option<Spanned<RawTargets>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    path: Spanned<String>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    allow_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<Spanned<u64>>,
    cpu_ms: Option<Spanned<u64>>,
    timeout: Option<Spanned<String>>,
    max_output_kb: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    plugin: Spanned<String>,
    action: Spanned<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    with: toml::Table,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    retries: u32,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    allow_unpreserved: Option<Spanned<bool>>,
    /// `"target"` (default) or `"sealed"`: see [`crate::sealed_phase`].
    #[serde(default)]
    phase: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    #[serde(default)]
    list: Vec<Spanned<String>>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

/// What a step's failure means for its target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The target fails and the step's dependents are skipped.
    #[default]
    Fail,
    /// The failure is journaled, dependents still run and the target can
    /// still succeed. A failed snapshot still blocks mutating steps.
    Continue,
}

/// Per-plugin resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PluginLimits {
    /// Cap on the plugin's linear memory.
    pub memory_bytes: u64,
    /// CPU time the plugin may spend executing WebAssembly per call.
    pub cpu: Duration,
    /// Wall-clock time per call, including time waiting on host I/O.
    pub timeout: Duration,
    /// Cap on the size of one call's output (as JSON).
    pub max_output_bytes: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 256 << 20,
            cpu: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            max_output_bytes: 16 << 20,
        }
    }
}

/// A plugin entry of a playbook.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub path: PathBuf,
    pub path_span: Range<usize>,
    pub sha256: Option<String>,
    pub egress: EgressPolicy,
    pub limits: PluginLimits,
    pub config: serde_json::Value,
}

/// A step of a playbook.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub id: String,
    pub id_span: Range<usize>,
    pub plugin: String,
    pub action: String,
    pub action_span: Range<usize>,
    pub after: Vec<String>,
    pub with: serde_json::Value,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub on_error: OnError,
    pub allow_unpreserved: bool,
    /// Per target (the default), or once after the case is sealed.
    pub phase: StepPhase,
    /// Where `phase` is written (the step's id when it is not).
    pub phase_span: Range<usize>,
    /// Where each `after` entry is written, in order.
    pub after_spans: Vec<Range<usize>>,
}

pub use crate::sealed_phase::StepPhase;

/// A parsed playbook whose structure is valid.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    pub source: SourceMap,
    pub sha256: String,
    pub plugins: BTreeMap<String, PluginSpec>,
    /// Steps in file order.
    pub steps: Vec<StepSpec>,
    pub targets: Vec<TargetSpec>,
}

impl Playbook {
    /// Read and check a playbook file.
    pub fn load(path: &Path) -> Result<Playbook, Diagnostics> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostics::unreadable(path, "playbook", &e))?;
        Playbook::parse(path, &text)
    }

    /// Check a playbook given as text; `path` names it in diagnostics and
    /// anchors relative plugin paths.
    pub fn parse(path: &Path, text: &str) -> Result<Playbook, Diagnostics> {
        let source = SourceMap::new(path, text);
        let raw: RawPlaybook =
            toml::from_str(text).map_err(|e| Diagnostics(vec![toml_diagnostic(&source, &e)]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();

        let mut plugins = BTreeMap::new();
        for (name, spanned) in raw.plugins {
            let span = spanned.span();
            let raw_plugin = spanned.into_inner();
            match plugin_spec(&source, base, &name, span, raw_plugin) {
                Ok(spec) => {
                    plugins.insert(name, spec);
                }
                Err(mut d) => problems.append(&mut d),
            }
        }

        let mut steps: Vec<StepSpec> = Vec::new();
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let raw_steps: Vec<RawStep> = raw.steps.into_iter().map(Spanned::into_inner).collect();
        let known_ids: HashSet<&str> = raw_steps.iter().map(|s| s.id.get_ref().as_str()).collect();
        for step in &raw_steps {
            let id = step.id.get_ref().clone();
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
            if let Some(first) = seen.get(&id) {
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
            for dep in &step.after {
                if !known_ids.contains(dep.get_ref().as_str()) {
                    problems.push(source.diagnostic(
                        dep.span(),
                        &format!("steps.{id}.after"),
                        format!("unknown step `{}`", dep.get_ref()),
                        Some(&known_list("step ids", known_ids.iter().copied())),
                    ));
                } else if dep.get_ref() == &id {
                    problems.push(source.diagnostic(
                        dep.span(),
                        &format!("steps.{id}.after"),
                        format!("step `{id}` depends on itself"),
                        None,
                    ));
                }
            }
            let timeout = match &step.timeout {
                Some(t) => match parse_duration(t.get_ref()) {
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
                },
                None => None,
            };
            steps.push(StepSpec {
                id: id.clone(),
                id_span: step.id.span(),
                plugin: plugin.clone(),
                action: step.action.get_ref().clone(),
                action_span: step.action.span(),
                after: step.after.iter().map(|d| d.get_ref().clone()).collect(),
                with: table_to_json(&step.with),
                timeout,
                retries: step.retries,
                on_error: step.on_error,
                allow_unpreserved: step
                    .allow_unpreserved
                    .as_ref()
                    .is_some_and(|a| *a.get_ref()),
                phase: match &step.phase {
                    None => StepPhase::Target,
                    Some(p) => match StepPhase::parse(p.get_ref()) {
                        Ok(phase) => phase,
                        Err(e) => {
                            problems.push(source.diagnostic(
                                p.span(),
                                &format!("steps.{id}.phase"),
                                e,
                                Some(crate::sealed_phase::PHASE_HINT),
                            ));
                            StepPhase::Target
                        }
                    },
                },
                phase_span: step
                    .phase
                    .as_ref()
                    .map_or_else(|| step.id.span(), |p| p.span()),
                after_spans: step.after.iter().map(|d| d.span()).collect(),
            });
        }
        if steps.is_empty() && problems.is_empty() {
            problems.push(source.diagnostic(
                raw.playbook.span(),
                "steps",
                "the playbook has no steps",
                Some("add at least one [[steps]] table"),
            ));
        }
        problems.extend(crate::sealed_phase::check_phases(&source, &steps));
        if problems.is_empty() {
            if let Some(cycle) = find_cycle(&steps) {
                let step = steps
                    .iter()
                    .find(|s| s.id == cycle[0])
                    .expect("cycle member exists");
                let dep_span = raw_steps
                    .iter()
                    .find(|s| s.id.get_ref() == &step.id)
                    .and_then(|s| s.after.iter().find(|d| d.get_ref() == &cycle[1]))
                    .map(|d| d.span())
                    .unwrap_or(step.id_span.clone());
                problems.push(source.diagnostic(
                    dep_span,
                    &format!("steps.{}.after", step.id),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                    Some("steps form a DAG; remove one of these `after` entries"),
                ));
            }
        }

        let mut targets = Vec::new();
        if let Some(raw_targets) = raw.targets {
            let raw_targets = raw_targets.into_inner();
            for entry in &raw_targets.list {
                match TargetSpec::parse(entry.get_ref()) {
                    Ok(mut t) => {
                        if t.region.is_none() {
                            t.region = raw_targets.region.clone();
                        }
                        if t.account.is_none() {
                            t.account = raw_targets.account.clone();
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
        }

        if !problems.is_empty() {
            problems.sort_by_key(|d| (d.line, d.column));
            return Err(Diagnostics(problems));
        }
        let meta = raw.playbook.into_inner();
        Ok(Playbook {
            name: meta.name.into_inner(),
            description: meta.description,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            source,
            plugins,
            steps,
            targets,
        })
    }

    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.id == id)
    }
}

fn known_list<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}

fn plugin_spec(
    source: &SourceMap,
    base: &Path,
    name: &str,
    span: Range<usize>,
    raw: RawPlugin,
) -> Result<PluginSpec, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let field = |f: &str| format!("plugins.{name}.{f}");
    let sha256 = raw.sha256.as_ref().and_then(|s| {
        let value = s.get_ref().to_ascii_lowercase();
        if value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()) {
            Some(value)
        } else {
            problems.push(source.diagnostic(
                s.span(),
                &field("sha256"),
                "not a sha256 (64 hex digits)",
                Some("`sha256sum plugin.wasm` prints it"),
            ));
            None
        }
    });
    let mut egress = EgressPolicy::default();
    for host in &raw.allow_hosts {
        match HostPattern::parse(host.get_ref()) {
            Ok(p) => egress.allow(p),
            Err(e) => problems.push(source.diagnostic(
                host.span(),
                &field("allow_hosts"),
                format!("`{}`: {e}", host.get_ref()),
                Some("use `host`, `host:port`, `*.example.com`, optionally with `https://`"),
            )),
        }
    }
    let mut limits = PluginLimits::default();
    if let Some(raw_limits) = &raw.limits {
        let l = raw_limits.get_ref();
        if let Some(m) = &l.memory_mb {
            if *m.get_ref() == 0 || *m.get_ref() > 4096 {
                problems.push(source.diagnostic(
                    m.span(),
                    &field("limits.memory_mb"),
                    "must be between 1 and 4096",
                    None,
                ));
            }
            limits.memory_bytes = m.get_ref() << 20;
        }
        if let Some(c) = &l.cpu_ms {
            if *c.get_ref() == 0 {
                problems.push(source.diagnostic(
                    c.span(),
                    &field("limits.cpu_ms"),
                    "must be at least 1",
                    None,
                ));
            }
            limits.cpu = Duration::from_millis(*c.get_ref());
        }
        if let Some(t) = &l.timeout {
            match parse_duration(t.get_ref()) {
                Ok(d) => limits.timeout = d,
                Err(e) => problems.push(source.diagnostic(
                    t.span(),
                    &field("limits.timeout"),
                    e,
                    Some("write a duration such as \"30s\", \"2m\" or \"500ms\""),
                )),
            }
        }
        if let Some(o) = &l.max_output_kb {
            limits.max_output_bytes = o.get_ref() << 10;
        }
    }
    if raw.path.get_ref().trim().is_empty() {
        problems.push(source.diagnostic(
            raw.path.span(),
            &field("path"),
            "empty plugin path",
            None,
        ));
    }
    let _ = span;
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PluginSpec {
        name: name.to_string(),
        path: base.join(raw.path.get_ref()),
        path_span: raw.path.span(),
        sha256,
        egress,
        limits,
        config: table_to_json(&raw.config),
    })
}

/// Parse "30s", "2m", "500ms", "1h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration: {e}"))
}

pub(crate) fn table_to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}

pub(crate) fn toml_diagnostic(source: &SourceMap, error: &toml::de::Error) -> Diagnostic {
    let message = error.message().trim().to_string();
    let span = error.span().unwrap_or(0..0);
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .unwrap_or("syntax")
        .to_string();
    let hint = if message.starts_with("unknown field") {
        Some("remove it or fix its spelling; the fields this table accepts are listed above")
    } else if message.starts_with("missing field") {
        Some("this table needs that field")
    } else {
        Some("see the playbook format in README.md")
    };
    source.diagnostic(span, &field, message, hint)
}

/// A cycle among steps, as ids in dependency order, first repeated last.
fn find_cycle(steps: &[StepSpec]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut marks = vec![Mark::New; steps.len()];
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        steps: &[StepSpec],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Active;
        stack.push(i);
        for dep in &steps[i].after {
            let Some(&j) = index.get(dep.as_str()) else {
                continue;
            };
            match marks[j] {
                Mark::Active => {
                    let start = stack.iter().position(|&k| k == j).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..]
                        .iter()
                        .map(|&k| steps[k].id.clone())
                        .collect();
                    cycle.push(steps[j].id.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(j, steps, index, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    for i in 0..steps.len() {
        if marks[i] == Mark::New {
            if let Some(c) = visit(i, steps, &index, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[playbook]
name = "demo"

[plugins.test]
path = "t.wasm"
allow_hosts = ["127.0.0.1:8080"]
limits = { memory_mb = 64, timeout = "5s" }

[[steps]]
id = "snap"
plugin = "test"
action = "snapshot"

[[steps]]
id = "iso"
plugin = "test"
action = "isolate"
after = ["snap"]
timeout = "30s"
retries = 2
"#;

    fn parse(text: &str) -> Result<Playbook, Diagnostics> {
        Playbook::parse(Path::new("pb/demo.toml"), text)
    }

    fn first(text: &str) -> Diagnostic {
        parse(text).unwrap_err().0.remove(0)
    }

    #[test]
    fn a_good_playbook_parses_with_its_limits_and_relative_paths() {
        let pb = parse(GOOD).unwrap();
        assert_eq!(pb.steps.len(), 2);
        assert_eq!(pb.plugins["test"].path, Path::new("pb/t.wasm"));
        assert_eq!(pb.plugins["test"].limits.memory_bytes, 64 << 20);
        assert_eq!(pb.plugins["test"].limits.timeout, Duration::from_secs(5));
        assert_eq!(
            pb.step("iso").unwrap().timeout,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn unknown_field_names_line_column_and_field() {
        let d = first(&GOOD.replace("retries = 2", "retries = 2\nretry = 3"));
        assert_eq!((d.line, d.field.as_str()), (22, "retry"));
        assert!(d.message.contains("unknown field"), "{d}");
        assert!(d.to_string().starts_with("pb/demo.toml:22:1:"), "{d}");
    }

    #[test]
    fn syntax_error_is_located() {
        let d = first("[playbook]\nname = \"x\"\n[[steps]\n");
        assert_eq!(d.line, 3);
    }

    #[test]
    fn unknown_plugin_and_step_are_reported_at_their_value() {
        let d = first(&GOOD.replace(
            "plugin = \"test\"\naction = \"isolate\"",
            "plugin = \"nope\"\naction = \"isolate\"",
        ));
        assert_eq!((d.line, d.column), (17, 10));
        assert!(d.message.contains("unknown plugin `nope`"));
        assert!(d.hint.unwrap().contains("test"));
        let d = first(&GOOD.replace("after = [\"snap\"]", "after = [\"snp\"]"));
        assert_eq!(d.line, 19);
        assert!(d.message.contains("unknown step `snp`"));
    }

    #[test]
    fn cycles_are_reported_with_their_path() {
        let text = GOOD.replace(
            "action = \"snapshot\"",
            "action = \"snapshot\"\nafter = [\"iso\"]",
        );
        let d = first(&text);
        assert!(d.message.contains("dependency cycle"), "{d}");
        assert!(d.message.contains("snap") && d.message.contains("iso"));
    }

    #[test]
    fn sealed_steps_depend_only_on_sealed_steps() {
        let sealed = format!("{GOOD}\n[[steps]]\nid = \"vault\"\nplugin = \"test\"\naction = \"store\"\nphase = \"sealed\"\n");
        let pb = parse(&sealed).unwrap();
        assert_eq!(pb.step("vault").unwrap().phase, StepPhase::Sealed);
        assert_eq!(pb.step("snap").unwrap().phase, StepPhase::Target);
        let d = first(&sealed.replace(
            "phase = \"sealed\"",
            "phase = \"sealed\"\nafter = [\"iso\"]",
        ));
        assert_eq!((d.line, d.field.as_str()), (28, "steps.vault.after"));
        assert!(d.message.contains("per-target step"), "{d}");
        let d = first(&sealed.replace("after = [\"snap\"]", "after = [\"vault\"]"));
        assert_eq!((d.line, d.field.as_str()), (19, "steps.iso.after"));
        let d = first(&sealed.replace("\"sealed\"", "\"soon\""));
        assert_eq!((d.line, d.field.as_str()), (27, "steps.vault.phase"));
    }

    #[test]
    fn duplicate_ids_and_bad_values_are_all_reported() {
        let text = GOOD
            .replace("id = \"iso\"", "id = \"snap\"")
            .replace("\"5s\"", "\"soon\"");
        let all = parse(&text).unwrap_err().0;
        assert!(all.iter().any(|d| d.message.contains("duplicate step id")));
        assert!(all.iter().any(|d| d.field == "plugins.test.limits.timeout"));
    }
}
