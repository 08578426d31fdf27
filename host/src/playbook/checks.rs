//! Checks of a playbook's step graph that need only the file: dependency
//! cycles, and the list of known names a hint offers.

use std::collections::HashMap;

use super::raw::RawStep;
use super::spec::StepSpec;
use crate::diagnostics::{Diagnostic, SourceMap};

pub(super) fn known_list<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}

/// A cycle among steps, as ids in dependency order, first repeated last.
pub(super) fn find_cycle(steps: &[StepSpec]) -> Option<Vec<String>> {
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

/// The first dependency cycle, located at the `after` entry that closes it.
pub(super) fn cycle_diagnostic(
    source: &SourceMap,
    steps: &[StepSpec],
    raw_steps: &[RawStep],
) -> Option<Diagnostic> {
    let cycle = find_cycle(steps)?;
    let step = steps.iter().find(|s| s.id == cycle[0])?;
    let dep_span = raw_steps
        .iter()
        .find(|s| s.id.get_ref() == &step.id)
        .and_then(|s| s.after.iter().find(|d| d.get_ref() == &cycle[1]))
        .map(|d| d.span())
        .unwrap_or(step.id_span.clone());
    Some(source.diagnostic(
        dep_span,
        &format!("steps.{}.after", step.id),
        format!("dependency cycle: {}", cycle.join(" -> ")),
        Some("steps form a DAG; remove one of these `after` entries"),
    ))
}
