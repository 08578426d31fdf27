//! The breach protocol's order, checked per step when a plan is built:
//! preservation before mutation (a snapshot before any mutating step; when
//! the playbook captures memory, the capture before `stop`, and before
//! `isolate` unless the isolation keeps the agent reachable), the inventory
//! before `remediate`, and a verb's declared API actions within its
//! plugin's grant.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::grant::agent_services;
use crate::diagnostics::Diagnostic;
use crate::playbook::{Playbook, StepPhase, StepSpec};
use crate::runtime::bindings::ActionInfo;
use crate::runtime::{Action, LoadedPlugin, PluginWorld};

/// Whether the playbook captures memory of `provider`'s targets (a
/// per-target capture-memory step of a provider plugin for it).
pub fn captures_memory(playbook: &Playbook, plugins: &Plugins, provider: Option<&str>) -> bool {
    let Some(provider) = provider else {
        return false;
    };
    playbook.steps.iter().any(|s| {
        s.phase == StepPhase::Target
            && Action::parse(&s.action) == Action::CaptureMemory
            && plugins
                .get(&s.plugin)
                .is_some_and(|p| p.world == PluginWorld::Provider && p.info.provider == provider)
    })
}

type Plugins = BTreeMap<String, Arc<LoadedPlugin>>;

/// One step, with what the plan found among its ancestors.
pub(super) struct StepCheck<'a> {
    pub playbook: &'a Playbook,
    pub plugins: &'a Plugins,
    pub spec: &'a StepSpec,
    pub action: &'a Action,
    pub mutating: bool,
    pub provider: Option<&'a str>,
    pub preserved_by: &'a [usize],
    pub memory_by: &'a [usize],
    pub inventory_by: &'a [usize],
    /// The verb's entry in its plugin's `describe` (none: not supported,
    /// reported elsewhere).
    pub info: Option<&'a ActionInfo>,
}

impl StepCheck<'_> {
    pub fn problems(&self) -> Vec<Diagnostic> {
        let spec = self.spec;
        let mut problems = Vec::new();
        let at_action = |message: String, hint: &str| {
            self.playbook.source.diagnostic(
                spec.action_span.clone(),
                &format!("steps.{}.action", spec.id),
                message,
                Some(hint),
            )
        };
        let per_target = spec.phase == StepPhase::Target;
        if self.mutating && self.preserved_by.is_empty() && !spec.allow_unpreserved && per_target {
            problems.push(at_action(
                format!(
                    "step `{}` mutates the target (`{}`) but no `snapshot` step precedes it: evidence would be changed before it is preserved",
                    spec.id, spec.action
                ),
                "add a snapshot step to its `after` (directly or through another step), or set `allow_unpreserved = true` to accept the loss (it is journaled)",
            ));
        }
        let memory = per_target && captures_memory(self.playbook, self.plugins, self.provider);
        if memory && self.memory_by.is_empty() {
            match self.action {
                Action::Stop if !spec.allow_unpreserved => problems.push(at_action(
                    format!(
                        "step `{}` stops the machine, but the playbook captures its memory and no `capture-memory` step precedes it: the memory would be lost",
                        spec.id
                    ),
                    "add the capture-memory step to its `after` (directly or through another step), or set `allow_unpreserved = true` to accept the loss (it is journaled)",
                )),
                Action::Isolate if !self.keeps_agent_reachable() => {
                    let services = agent_services(self.cloud());
                    problems.push(at_action(
                        format!(
                            "step `{}` isolates the machine before its memory is captured: the capture needs the agent's services ({}), which the isolation cuts",
                            spec.id,
                            services.join(", ")
                        ),
                        &format!(
                            "put the capture-memory step in its `after`, or keep the agent reachable through the isolation: isolation_keeps = [{}] in [plugins.{}.cloud]",
                            services.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "),
                            spec.plugin
                        ),
                    ));
                }
                _ => {}
            }
        }
        if *self.action == Action::Remediate && self.inventory_by.is_empty() && per_target {
            problems.push(at_action(
                format!(
                    "step `{}` remediates from the target's inventory, but no `enumerate-interfaces` step precedes it",
                    spec.id
                ),
                "add the enumerate-interfaces step to its `after` (directly or through another step)",
            ));
        }
        problems.extend(self.ungranted_actions());
        problems
    }

    /// The cloud of the step's plugin grant (`aws`, `azure`), or none.
    fn cloud(&self) -> &'static str {
        self.playbook
            .plugins
            .get(&self.spec.plugin)
            .and_then(|p| p.grant.as_ref())
            .map_or("", |g| g.cloud())
    }

    /// Whether the step's plugin grant keeps every agent service of its
    /// cloud reachable through the isolation.
    fn keeps_agent_reachable(&self) -> bool {
        let Some(plugin) = self.playbook.plugins.get(&self.spec.plugin) else {
            return false;
        };
        let needed = agent_services(self.cloud());
        !needed.is_empty()
            && needed
                .iter()
                .all(|s| plugin.isolation_keeps.iter().any(|k| k == s))
    }

    /// The verb's declared API actions its plugin's grant does not allow:
    /// the run would be refused them at the egress, so the plan says so
    /// first. An action declared `when` a parameter is set counts only when
    /// the step's `with` or the plugin's `config` sets it.
    fn ungranted_actions(&self) -> Vec<Diagnostic> {
        let (Some(info), Some(plugin)) = (self.info, self.playbook.plugins.get(&self.spec.plugin))
        else {
            return Vec::new();
        };
        let Some(grant) = &plugin.grant else {
            return Vec::new();
        };
        // The loaded plugin's config: the playbook's, with what the host
        // set from the grant (`isolation_keeps`, endpoints).
        let config = self.plugins.get(&self.spec.plugin).map(|p| &p.config);
        let set = |key: &str| {
            let nonnull = |v: &serde_json::Value| v.get(key).is_some_and(|x| !x.is_null());
            nonnull(&self.spec.with) || nonnull(&plugin.config) || config.is_some_and(nonnull)
        };
        let missing: Vec<&str> = info
            .api_actions
            .iter()
            .filter(|a| a.when.as_deref().is_none_or(set))
            .filter(|a| !grant.actions().allows(&a.name))
            .map(|a| a.name.as_str())
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        vec![self.playbook.source.diagnostic(
            self.spec.action_span.clone(),
            &format!("steps.{}.action", self.spec.id),
            format!(
                "step `{}` calls {} (declared by plugin `{}` for `{}`), which its grant does not allow",
                self.spec.id,
                missing.join(", "),
                self.spec.plugin,
                self.spec.action
            ),
            Some(&format!(
                "add them to [plugins.{}.cloud] (`irhost plugin inspect` lists every verb's actions), or drop the step",
                self.spec.plugin
            )),
        )]
    }
}
