//! The plan's two phases: the per-target DAG and the sealed steps (run
//! once, on the sealed case), split apart and re-indexed; a sealed step
//! must use a `step`-world plugin.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::PlannedStep;
use crate::diagnostics::{Diagnostic, SourceMap};
use crate::playbook::StepPhase;
use crate::runtime::{LoadedPlugin, PluginWorld};

/// Split planned steps (in topological order, indices into `steps`) into
/// the per-target DAG and the sealed steps, re-indexing each part, and
/// check that sealed steps use `step`-world plugins.
pub(super) fn split(
    steps: Vec<PlannedStep>,
    plugins: &BTreeMap<String, Arc<LoadedPlugin>>,
    source: &SourceMap,
) -> Result<(Vec<PlannedStep>, Vec<PlannedStep>), Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut new_index = vec![0usize; steps.len()];
    let (mut targets, mut sealed) = (0usize, 0usize);
    for (i, s) in steps.iter().enumerate() {
        match s.spec.phase {
            StepPhase::Target => {
                new_index[i] = targets;
                targets += 1;
            }
            StepPhase::Sealed => {
                new_index[i] = sealed;
                sealed += 1;
                let plugin = &plugins[&s.spec.plugin];
                if plugin.world != PluginWorld::Step {
                    problems.push(source.diagnostic(
                        s.spec.phase_span.clone(),
                        &format!("steps.{}.phase", s.spec.id),
                        format!(
                            "step `{}` runs in the sealed phase, which needs a `step`-world plugin; plugin `{}` is a {} plugin",
                            s.spec.id,
                            s.spec.plugin,
                            plugin.world.as_str()
                        ),
                        Some("sealed steps receive the sealed case through the step world's `run`; use a custom step plugin, or drop `phase`"),
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let phase_of: Vec<StepPhase> = steps.iter().map(|s| s.spec.phase).collect();
    let remap = |list: &[usize], phase: StepPhase| -> Vec<usize> {
        list.iter()
            .filter(|&&d| phase_of[d] == phase)
            .map(|&d| new_index[d])
            .collect()
    };
    let mut per_target = Vec::with_capacity(targets);
    let mut once = Vec::with_capacity(sealed);
    for mut s in steps {
        let phase = s.spec.phase;
        s.deps = remap(&s.deps, phase);
        s.ancestors = remap(&s.ancestors, phase);
        s.preserved_by = remap(&s.preserved_by, phase);
        match phase {
            StepPhase::Target => per_target.push(s),
            StepPhase::Sealed => {
                // Not subject to the preservation rule: there is no target
                // to preserve, only the sealed case.
                s.preserved_by.clear();
                once.push(s);
            }
        }
    }
    Ok((per_target, once))
}
