//! The targets of a run, resolved once for every front end: those given,
//! else the playbook's `[targets]`, without duplicates, each served by a
//! provider step of the plan.

use super::PlaybookPlan;
use crate::target::TargetSpec;

/// Why a run has no targets to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetsError {
    /// None were given and the playbook lists none.
    None,
    /// Some target is of a provider no step serves (the message names them).
    Unserved(String),
}

impl PlaybookPlan {
    /// The targets to run on: `given`, or the playbook's `[targets]` when
    /// none are given; duplicates dropped (first kept); refused when empty
    /// or when a provider step would not serve one of them.
    pub fn resolve_targets(&self, given: Vec<TargetSpec>) -> Result<Vec<TargetSpec>, TargetsError> {
        let mut targets = if given.is_empty() {
            self.playbook.targets.clone()
        } else {
            given
        };
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.label()));
        if targets.is_empty() {
            return Err(TargetsError::None);
        }
        self.check_targets(&targets)
            .map_err(TargetsError::Unserved)?;
        Ok(targets)
    }

    /// Refuse targets no provider step serves (before anything runs): a
    /// `gcp:` target given to an AWS playbook would otherwise do nothing
    /// and look done.
    pub fn check_targets(&self, targets: &[TargetSpec]) -> Result<(), String> {
        let providers = self.providers();
        if providers.is_empty() {
            return Ok(());
        }
        let unserved: Vec<String> = targets
            .iter()
            .filter(|t| !providers.contains(&t.provider.as_str()))
            .map(|t| t.label())
            .collect();
        if unserved.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "no step of playbook `{}` handles the target(s) {}: its provider steps are for {}",
                self.playbook.name,
                unserved.join(", "),
                providers.join(", ")
            ))
        }
    }
}
