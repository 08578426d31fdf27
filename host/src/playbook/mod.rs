//! TOML playbooks: the file read with spans ([`raw`]), then checked into a
//! [`Playbook`]: every check that needs only the file itself (unknown
//! fields, unknown plugins and steps, duplicate ids, cycles, phases, bad
//! host patterns, durations and pins). Checks that need the plugins'
//! `describe` belong to [`crate::plan`].
//!
//! Every problem is a [`Diagnostic`](crate::diagnostics::Diagnostic)
//! naming file:line:column and the field, with a hint; nothing runs while
//! any exists.

mod checks;
pub mod inputs;
pub mod phase;
mod plugin;
mod raw;
pub mod spec;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

pub use inputs::{InputSpec, InputType, Inputs};
pub use phase::StepPhase;
pub use spec::{OnError, PluginSpec, StepSpec};

use crate::diagnostics::{parse_toml, Diagnostics, SourceMap};
use crate::digest::sha256_hex;
use crate::target::TargetSpec;
use raw::{RawPlaybook, RawStep};

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
    /// What a run may set.
    pub inputs: Inputs,
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
        let raw: RawPlaybook = parse_toml(&source, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();

        let mut plugins = BTreeMap::new();
        for (name, spanned) in raw.plugins {
            let span = spanned.span();
            match plugin::plugin_spec(&source, base, &name, span, spanned.into_inner()) {
                Ok(spec) => {
                    plugins.insert(name, spec);
                }
                Err(mut d) => problems.append(&mut d),
            }
        }

        let raw_steps: Vec<RawStep> = raw.steps.into_iter().map(Spanned::into_inner).collect();
        let steps = steps::step_specs(&source, &raw_steps, &plugins, &mut problems);
        if steps.is_empty() && problems.is_empty() {
            problems.push(source.diagnostic(
                raw.playbook.span(),
                "steps",
                "the playbook has no steps",
                Some("add at least one [[steps]] table"),
            ));
        }
        problems.extend(phase::check_phases(&source, &steps));
        if problems.is_empty() {
            problems.extend(checks::cycle_diagnostic(&source, &steps, &raw_steps));
        }
        let targets = steps::targets(&source, raw.targets, &mut problems);
        let inputs = inputs::from_raw(&source, raw.inputs, &mut problems);

        if !problems.is_empty() {
            problems.sort_by_key(|d| (d.line, d.column));
            return Err(Diagnostics(problems));
        }
        let meta = raw.playbook.into_inner();
        Ok(Playbook {
            name: meta.name.into_inner(),
            description: meta.description,
            sha256: sha256_hex(text.as_bytes()),
            source,
            plugins,
            steps,
            targets,
            inputs,
        })
    }

    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.id == id)
    }
}
