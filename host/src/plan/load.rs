//! Loading a playbook's plugins: each component read, pinned, compiled
//! (or taken from the cache) and described by the runtime, then bound to
//! its cloud with the binding [`CloudEnv`] returns.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::CloudEnv;
use crate::diagnostics::Diagnostics;
use crate::playbook::{Playbook, PluginSpec};
use crate::runtime::{LoadedPlugin, PluginRuntime, PluginSource, PluginWorld};

/// Load every plugin a playbook declares. Problems (missing file, pinned
/// sha256 mismatch, not a component, describe failing) are diagnostics
/// located at the plugin's `path`. Each plugin is bound to the cloud its
/// playbook entry grants (signer or token, endpoint overrides), never to
/// the one its `describe` claims; a provider plugin granted another cloud
/// than its own is a diagnostic at `cloud`.
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
                if let Some(problem) = grant_mismatch(playbook, name, spec, &plugin) {
                    problems.push(problem);
                    continue;
                }
                let binding = cloud
                    .binding(
                        spec.grant.as_ref(),
                        spec.default_hosts,
                        &plugin.config,
                        spec.evidence_uploads.as_ref(),
                    )
                    .await;
                if let Err(e) = plugin.set_egress(binding.egress(plugin.egress())) {
                    problems.push(playbook.source.diagnostic(
                        spec.path_span.clone(),
                        &format!("plugins.{name}"),
                        format!("{e:#}"),
                        None,
                    ));
                    continue;
                }
                plugin.config = binding.config(&plugin.config);
                if !spec.isolation_keeps.is_empty() {
                    // The grant's word, over anything the config says.
                    if let Some(config) = plugin.config.as_object_mut() {
                        config.insert(
                            "isolation_keeps".into(),
                            serde_json::json!(spec.isolation_keeps),
                        );
                    }
                    plugin.notes.push(format!(
                        "the isolation keeps {} reachable for the agent (isolation_keeps in the grant)",
                        spec.isolation_keeps.join(", ")
                    ));
                }
                plugin.authorizer = binding.authorizer;
                plugin.uploads = binding.uploads;
                plugin.notes = binding.notes;
                if spec.grant.is_none() && is_cloud(&plugin.info.provider) {
                    plugin.notes.push(format!(
                        "plugin `{name}` says it is for `{}`, but the playbook grants it no cloud: its requests leave unsigned, with no token (grant one with `cloud = …`)",
                        plugin.info.provider
                    ));
                }
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

/// A provider plugin granted another cloud than the one it serves.
fn grant_mismatch(
    playbook: &Playbook,
    name: &str,
    spec: &PluginSpec,
    plugin: &LoadedPlugin,
) -> Option<crate::diagnostics::Diagnostic> {
    let grant = spec.grant.as_ref()?;
    let provider = &plugin.info.provider;
    if plugin.world != PluginWorld::Provider || grant.serves_provider(provider) {
        return None;
    }
    Some(playbook.source.diagnostic(
        spec.grant_span.clone(),
        &format!("plugins.{name}.cloud"),
        format!(
            "plugin `{name}` is a provider for `{provider}` targets, but the playbook grants it {grant}"
        ),
        Some(&format!(
            "grant a provider plugin its own cloud (`cloud = {{ {provider} = … }}`), or remove `cloud`"
        )),
    ))
}

/// Whether a `describe` provider names a cloud the host has grants for.
fn is_cloud(provider: &str) -> bool {
    ["aws", "azure"]
        .iter()
        .any(|c| provider == *c || provider.starts_with(&format!("{c}-")))
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
        uploads: None,
        config: spec.config.clone(),
    }
}
