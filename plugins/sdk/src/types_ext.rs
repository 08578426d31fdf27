//! Constructors and helpers on the contract's types, so plugins read well.

use crate::{
    ActionInfo, ApiAction, Artifact, ArtifactKind, Effect, PluginError, PluginInfo, StepOutput,
    Target,
};

impl PluginInfo {
    pub fn new(name: &str, version: &str, provider: &str) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            provider: provider.into(),
            actions: Vec::new(),
        }
    }

    /// Add a verb (or a custom step's action) with what it does to the
    /// target.
    pub fn action(mut self, name: &str, effect: Effect, description: &str) -> Self {
        self.actions.push(ActionInfo {
            name: name.into(),
            effect,
            description: description.into(),
            api_actions: Vec::new(),
        });
        self
    }

    /// The last added verb calls these cloud API actions (`ec2:CreateSnapshots`).
    /// The host refuses it any other, and the playbook's grant must allow them.
    pub fn calls(mut self, effect: Effect, names: &[&str]) -> Self {
        self.push_calls(effect, names, None);
        self
    }

    /// The last added verb calls these only when parameter `param` is set.
    pub fn calls_when(mut self, param: &str, effect: Effect, names: &[&str]) -> Self {
        self.push_calls(effect, names, Some(param));
        self
    }

    fn push_calls(&mut self, effect: Effect, names: &[&str], when: Option<&str>) {
        let action = self
            .actions
            .last_mut()
            .expect("`calls` follows the `action` it belongs to");
        action.api_actions.extend(names.iter().map(|n| ApiAction {
            name: n.to_string(),
            effect,
            when: when.map(str::to_string),
        }));
    }
}

impl PluginError {
    pub fn unsupported_action(action: &str, target: &Target) -> Self {
        PluginError::Unsupported(format!(
            "this plugin does not implement `{action}` (target {}:{})",
            target.provider, target.id
        ))
    }
}

impl Artifact {
    /// Evidence that stays with the provider (a snapshot id, say).
    pub fn reference(kind: ArtifactKind, provider_id: &str, location: &str) -> Self {
        Artifact {
            kind,
            provider_id: provider_id.into(),
            location: location.into(),
            size: None,
            sha256: None,
            content: None,
            metadata: Vec::new(),
        }
    }

    /// Evidence whose bytes pass through the host, which stores and hashes them.
    pub fn with_content(kind: ArtifactKind, provider_id: &str, content: Vec<u8>) -> Self {
        Artifact {
            kind,
            provider_id: provider_id.into(),
            location: String::new(),
            size: Some(content.len() as u64),
            sha256: None,
            content: Some(content),
            metadata: Vec::new(),
        }
    }

    pub fn meta(mut self, key: &str, value: &str) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }
}

impl StepOutput {
    pub fn values(values: serde_json::Value) -> Self {
        StepOutput {
            artifacts: Vec::new(),
            values: values.to_string(),
        }
    }

    pub fn with_artifacts(mut self, artifacts: Vec<Artifact>) -> Self {
        self.artifacts.extend(artifacts);
        self
    }
}

impl Target {
    /// A free-form attribute of the target.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The digest a provider's `seal` records: sha256 over the sorted,
/// de-duplicated provider ids of the case's artifacts, each followed by a
/// newline, in lower-case hex. Every cloud plugin computes the same value
/// for the same artifact list, so a seal can be checked across clouds.
pub fn artifact_digest(artifacts: &[Artifact]) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<&str> = artifacts.iter().map(|a| a.provider_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}
