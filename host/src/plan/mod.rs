//! From a checked [`Playbook`] and its loaded plugins to a [`PlaybookPlan`]:
//! each step's plugin action is checked against the plugin's `describe`,
//! marked mutating or not, and the preservation rule is enforced — a step
//! that mutates a target must have a snapshot step of the same target among
//! its dependencies, unless it says `allow_unpreserved = true`.

use crate::cloud::policy::{least_privilege, GrantedPlugin, LeastPrivilege};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

mod load;
mod phases;
mod targets;

use crate::cloud::CloudEnv;
use crate::diagnostics::Diagnostics;
use crate::playbook::{Playbook, StepPhase, StepSpec};
use crate::runtime::{Action, LoadedPlugin, PluginRuntime, PluginWorld};

pub use load::load_plugins;
pub use targets::TargetsError;

/// Actions that change a target whatever their plugin says.
pub const ALWAYS_MUTATING: &[&str] = &["isolate", "release", "stop", "terminate", "remediate"];

/// The action that preserves a target.
pub const PRESERVATION_ACTION: Action = Action::Snapshot;

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub spec: StepSpec,
    /// The plugin action the step calls.
    pub action: Action,
    pub mutating: bool,
    /// Indices (into [`PlaybookPlan::steps`]) of direct dependencies.
    pub deps: Vec<usize>,
    /// Indices of every step this one transitively depends on.
    pub ancestors: Vec<usize>,
    /// Ancestors that preserve the target (snapshot steps of the same
    /// provider, for a provider step).
    pub preserved_by: Vec<usize>,
    /// For a step of a provider plugin, the provider it serves (`aws`,
    /// `azure`, ...): it runs only on targets of that provider. Custom
    /// steps (`None`) run on every target.
    pub provider: Option<String>,
}

/// A validated playbook: steps in dependency order, ready to run.
pub struct PlaybookPlan {
    pub playbook: Playbook,
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Per-target steps in a topological order (dependencies first).
    pub steps: Vec<PlannedStep>,
    /// Sealed-phase steps (`phase = "sealed"`), in a topological order;
    /// their indices are into this list (see [`crate::playbook::phase`]).
    pub sealed: Vec<PlannedStep>,
}

impl PlaybookPlan {
    /// The IAM policy and Azure role this playbook's grants need.
    pub fn least_privilege(&self) -> LeastPrivilege {
        let granted: Vec<GrantedPlugin> = self
            .playbook
            .plugins
            .values()
            .filter_map(|p| {
                Some(GrantedPlugin {
                    name: &p.name,
                    grant: p.grant.as_ref()?,
                    config: &p.config,
                })
            })
            .collect();
        least_privilege(&self.playbook.name, &granted)
    }

    /// Read a playbook, load its plugins (bound to their clouds by `cloud`)
    /// and check it: everything `validate`, `plan` and `run` do before any
    /// plugin action runs.
    pub async fn load(
        runtime: &PluginRuntime,
        path: &std::path::Path,
        cloud: &CloudEnv,
    ) -> Result<PlaybookPlan, Diagnostics> {
        let playbook = Playbook::load(path)?;
        let plugins = load::load_plugins(runtime, &playbook, cloud).await?;
        PlaybookPlan::build(playbook, plugins)
    }

    /// Check the playbook's steps against its loaded plugins.
    pub fn build(
        playbook: Playbook,
        plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    ) -> Result<PlaybookPlan, Diagnostics> {
        let src = &playbook.source;
        let mut problems = Vec::new();
        let order = topological_order(&playbook.steps);
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(pos, &i)| (playbook.steps[i].id.as_str(), pos))
            .collect();
        let mut steps: Vec<PlannedStep> = Vec::with_capacity(order.len());
        for &i in &order {
            let spec = playbook.steps[i].clone();
            let plugin = &plugins[&spec.plugin];
            let field = format!("steps.{}.action", spec.id);
            let action = plugin.action(&spec.action);
            if action.is_none() {
                let supported: Vec<&str> = plugin
                    .info
                    .actions
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                problems.push(src.diagnostic(
                    spec.action_span.clone(),
                    &field,
                    format!(
                        "plugin `{}` ({} world) does not support action `{}`",
                        spec.plugin,
                        plugin.world.as_str(),
                        spec.action
                    ),
                    Some(&format!("its describe lists: {}", supported.join(", "))),
                ));
            }
            let provider =
                (plugin.world == PluginWorld::Provider).then(|| plugin.info.provider.clone());
            let mutating = action.is_some_and(|a| a.mutating)
                || ALWAYS_MUTATING.contains(&spec.action.as_str());
            let deps: Vec<usize> = spec.after.iter().map(|d| position[d.as_str()]).collect();
            let mut ancestors: Vec<usize> = Vec::new();
            for &d in &deps {
                ancestors.push(d);
                ancestors.extend(steps[d].ancestors.iter().copied());
            }
            ancestors.sort_unstable();
            ancestors.dedup();
            let preserved_by: Vec<usize> = ancestors
                .iter()
                .copied()
                .filter(|&a| {
                    steps[a].action == PRESERVATION_ACTION
                        && steps[a].provider.is_some()
                        && (provider.is_none() || steps[a].provider == provider)
                })
                .collect();
            let preservation_applies = spec.phase == StepPhase::Target;
            if mutating
                && preserved_by.is_empty()
                && !spec.allow_unpreserved
                && preservation_applies
            {
                problems.push(src.diagnostic(
                    spec.action_span.clone(),
                    &field,
                    format!(
                        "step `{}` mutates the target (`{}`) but no `snapshot` step precedes it: evidence would be changed before it is preserved",
                        spec.id, spec.action
                    ),
                    Some("add a snapshot step to its `after` (directly or through another step), or set `allow_unpreserved = true` to accept the loss (it is journaled)"),
                ));
            }
            steps.push(PlannedStep {
                action: Action::parse(&spec.action),
                spec,
                mutating,
                deps,
                ancestors,
                preserved_by,
                provider,
            });
        }
        if !problems.is_empty() {
            return Err(Diagnostics(problems));
        }
        let (steps, sealed) = phases::split(steps, &plugins, src).map_err(Diagnostics)?;
        Ok(PlaybookPlan {
            playbook,
            plugins,
            steps,
            sealed,
        })
    }

    /// Whether step `index` runs on targets of `provider`.
    pub fn applies(&self, index: usize, provider: &str) -> bool {
        self.steps[index]
            .provider
            .as_deref()
            .is_none_or(|p| p == provider)
    }

    /// The providers this playbook's provider steps serve, sorted.
    pub fn providers(&self) -> Vec<&str> {
        let mut providers: Vec<&str> = self
            .steps
            .iter()
            .filter_map(|s| s.provider.as_deref())
            .collect();
        providers.sort_unstable();
        providers.dedup();
        providers
    }

    /// The plan as data (for `irhost plan --json` and the run journal).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "playbook": self.playbook.name,
            "steps": self.steps.iter().chain(&self.sealed).map(|s| serde_json::json!({
                "id": s.spec.id,
                "phase": s.spec.phase,
                "plugin": s.spec.plugin,
                "action": s.spec.action,
                "after": s.spec.after,
                "mutating": s.mutating,
                "provider": s.provider,
                "preserved_by": s.preserved_by.iter().map(|&p| &self.steps[p].spec.id).collect::<Vec<_>>(),
                "allow_unpreserved": s.spec.allow_unpreserved,
                "retries": s.spec.retries,
                "on_error": s.spec.on_error,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Kahn's algorithm, stable in file order. The playbook has no cycles.
fn topological_order(steps: &[StepSpec]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut remaining: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for d in &s.after {
            dependents[index[d.as_str()]].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..steps.len()).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                ready.insert(j);
            }
        }
    }
    order
}
