//! From a checked [`Playbook`] and its loaded plugins to a [`PlaybookPlan`]:
//! each step's plugin action is checked against the plugin's `describe`
//! (and the API actions that verb declares against the plugin's grant),
//! marked mutating or not, and the breach protocol's order is enforced
//! ([`rules`]): a step that mutates a target comes after a snapshot of it;
//! when the playbook captures memory, `stop` comes after the capture and so
//! does `isolate` (unless its grant keeps the agent reachable); `remediate`
//! comes after the inventory it works from.

use crate::cloud::policy::{least_privilege, GrantedPlugin, LeastPrivilege};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

mod load;
mod phases;
mod rules;
mod targets;

use crate::cloud::CloudEnv;
use crate::diagnostics::Diagnostics;
use crate::playbook::{Playbook, StepSpec};
use crate::runtime::bindings::Effect;
use crate::runtime::{Action, LoadedPlugin, PluginRuntime, PluginWorld};

pub use load::load_plugins;
pub use targets::TargetsError;

/// The action that preserves a target's disks and configuration, which a
/// mutating step must come after.
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
    /// For `stop` in a playbook that captures memory: the capture-memory
    /// ancestors, one of which must have succeeded.
    pub memory_preserved_by: Vec<usize>,
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
            let action_kind = Action::parse(&spec.action);
            let mutating =
                action.is_some_and(|a| a.effect == Effect::Mutates) || action_kind.always_mutates();
            let deps: Vec<usize> = spec.after.iter().map(|d| position[d.as_str()]).collect();
            let mut ancestors: Vec<usize> = Vec::new();
            for &d in &deps {
                ancestors.push(d);
                ancestors.extend(steps[d].ancestors.iter().copied());
            }
            ancestors.sort_unstable();
            ancestors.dedup();
            let of_provider = |wanted: Action| -> Vec<usize> {
                ancestors
                    .iter()
                    .copied()
                    .filter(|&a| {
                        steps[a].action == wanted
                            && steps[a].provider.is_some()
                            && (provider.is_none() || steps[a].provider == provider)
                    })
                    .collect()
            };
            let preserved_by = of_provider(PRESERVATION_ACTION);
            let memory_by = of_provider(Action::CaptureMemory);
            let inventory_by = of_provider(Action::EnumerateInterfaces);
            let check = rules::StepCheck {
                playbook: &playbook,
                plugins: &plugins,
                spec: &spec,
                action: &action_kind,
                mutating,
                provider: provider.as_deref(),
                preserved_by: &preserved_by,
                memory_by: &memory_by,
                inventory_by: &inventory_by,
                info: action,
            };
            problems.extend(check.problems());
            let memory_preserved_by = if action_kind == Action::Stop
                && rules::captures_memory(&playbook, &plugins, provider.as_deref())
            {
                memory_by.clone()
            } else {
                Vec::new()
            };
            steps.push(PlannedStep {
                action: action_kind,
                spec,
                mutating,
                deps,
                ancestors,
                preserved_by,
                memory_preserved_by,
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

    /// Each per-target step's level in the DAG: 0 for a step after none,
    /// else one more than its deepest dependency (steps of one level may
    /// run at once on a target).
    pub fn levels(&self) -> Vec<usize> {
        let mut levels: Vec<usize> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let level = step.deps.iter().map(|&d| levels[d] + 1).max().unwrap_or(0);
            levels.push(level);
        }
        levels
    }

    /// The most steps of one target that may run at once: the widest level.
    pub fn width(&self) -> usize {
        let mut per_level: Vec<usize> = Vec::new();
        for level in self.levels() {
            if per_level.len() <= level {
                per_level.resize(level + 1, 0);
            }
            per_level[level] += 1;
        }
        per_level.into_iter().max().unwrap_or(1).max(1)
    }

    /// The plan as data (for `irhost plan --json` and the run journal).
    pub fn describe(&self) -> serde_json::Value {
        let levels = self.levels();
        serde_json::json!({
            "playbook": self.playbook.name,
            "steps": self.steps.iter().chain(&self.sealed).enumerate().map(|(i, s)| serde_json::json!({
                "level": levels.get(i),
                "id": s.spec.id,
                "phase": s.spec.phase,
                "plugin": s.spec.plugin,
                "action": s.spec.action,
                "after": s.spec.after,
                "mutating": s.mutating,
                "provider": s.provider,
                "preserved_by": s.preserved_by.iter().map(|&p| &self.steps[p].spec.id).collect::<Vec<_>>(),
                "memory_preserved_by": s.memory_preserved_by.iter().map(|&p| &self.steps[p].spec.id).collect::<Vec<_>>(),
                "api_actions": self.plugins.get(&s.spec.plugin).and_then(|p| p.action(&s.spec.action)).map(|a| a.api_actions.iter().map(|x| serde_json::json!({"name": x.name, "effect": x.effect.as_str(), "when": x.when})).collect::<Vec<_>>()).unwrap_or_default(),
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
