//! When a step runs ([`StepPhase`]): per target (the default), or once
//! per run in the sealed phase, after every target has finished and the
//! case is sealed, on the sealed case itself. Checks that need only the
//! file: a sealed step depends only on sealed steps, and no per-target step
//! depends on a sealed one.

use super::spec::StepSpec;
use crate::diagnostics::{Diagnostic, SourceMap};

/// When a step runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// For each target, in the per-target DAG (the default).
    #[default]
    Target,
    /// Once per run, after the case is sealed, on the sealed case.
    Sealed,
}

impl StepPhase {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "target" => Ok(StepPhase::Target),
            "sealed" => Ok(StepPhase::Sealed),
            other => Err(format!("unknown phase `{other}`")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StepPhase::Target => "target",
            StepPhase::Sealed => "sealed",
        }
    }
}

/// The hint of a bad `phase`.
pub const PHASE_HINT: &str = "`phase` is \"target\" (the default: the step runs for each target) or \"sealed\" (once per run, after the case is sealed, with the sealed case as its inputs)";

/// File-level checks of phases: a sealed step's `after` names only sealed
/// steps, and a per-target step's only per-target steps. Unknown step ids
/// are reported elsewhere.
pub fn check_phases(source: &SourceMap, steps: &[StepSpec]) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for step in steps {
        for (dep, span) in step.after.iter().zip(&step.after_spans) {
            let Some(other) = steps.iter().find(|s| &s.id == dep) else {
                continue;
            };
            match (step.phase, other.phase) {
                (StepPhase::Sealed, StepPhase::Target) => problems.push(source.diagnostic(
                    span.clone(),
                    &format!("steps.{}.after", step.id),
                    format!(
                        "step `{}` runs in the sealed phase (once, after every target has finished and the case is sealed) and cannot depend on `{dep}`, a per-target step",
                        step.id
                    ),
                    Some("remove it from `after`: a sealed step already receives the whole sealed case (every step's artifacts, the journal and the manifest); or give `{dep}` `phase = \"sealed\"` too"),
                )),
                (StepPhase::Target, StepPhase::Sealed) => problems.push(source.diagnostic(
                    span.clone(),
                    &format!("steps.{}.after", step.id),
                    format!(
                        "per-target step `{}` cannot depend on `{dep}`, which runs in the sealed phase, after every target has finished",
                        step.id
                    ),
                    Some(PHASE_HINT),
                )),
                _ => {}
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_name_themselves() {
        assert_eq!(StepPhase::parse("sealed"), Ok(StepPhase::Sealed));
        assert_eq!(StepPhase::parse("target"), Ok(StepPhase::Target));
        assert!(StepPhase::parse("after").unwrap_err().contains("`after`"));
        assert_eq!(StepPhase::Sealed.as_str(), "sealed");
    }
}
