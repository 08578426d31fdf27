//! Loading a playbook's plugins: each component read, pinned, compiled
//! (or taken from the cache) and described by the runtime, then bound to
//! its cloud with the binding [`CloudEnv`] returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::CloudEnv;
use crate::diagnostics::Diagnostics;
use crate::playbook::{Playbook, PluginSpec};
use crate::runtime::{LoadedPlugin, PluginRuntime, PluginSource};

/// Load every plugin a playbook declares. Problems (missing file, pinned
/// sha256 mismatch, not a component, describe failing) are diagnostics
/// located at the plugin's `path`. Cloud plugins are bound to their cloud
/// (signer, endpoint overrides) by `cloud`.
pub async fn load_plugins(
    runtime: &PluginRuntime,
    playbook: &Playbook,
    cloud: &CloudEnv,
) -> Result<BTreeMap<String, Arc<LoadedPlugin>>, Diagnostics> {
    let mut loaded = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in &playbook.plugins {
        match runtime.load(plugin_source(spec)).await {
            Ok(mut plugin) => {
                let binding = cloud.binding(&plugin.info.provider, &plugin.egress, &plugin.config);
                plugin.egress = Arc::new(binding.egress(&plugin.egress));
                plugin.config = binding.config(&plugin.config);
                plugin.authorizer = binding.authorizer;
                plugin.notes = binding.notes;
                loaded.insert(name.clone(), Arc::new(plugin));
            }
            Err(e) => problems.push(playbook.source.diagnostic(
                spec.path_span.clone(),
                &format!("plugins.{name}.path"),
                format!("{e:#}"),
                Some("build plugins with `cargo build --release --target wasm32-wasip2`, and update `sha256` when a plugin changes"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(problems))
    }
}

/// Build a [`PluginSource`] from a playbook's plugin entry.
fn plugin_source(spec: &PluginSpec) -> PluginSource {
    PluginSource {
        name: spec.name.clone(),
        path: spec.path.clone(),
        sha256: spec.sha256.clone(),
        limits: spec.limits,
        egress: spec.egress.clone(),
        authorizer: None,
        config: spec.config.clone(),
    }
}
