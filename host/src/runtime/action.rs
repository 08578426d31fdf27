//! The actions a plugin call can perform: the provider world's verbs and
//! `describe`, or a custom step's own action name; and what the host itself
//! knows of each verb's effect, whatever a plugin declares.

use std::fmt;

/// What one call asks a plugin to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Describe,
    Snapshot,
    CaptureMemory,
    EnumerateInterfaces,
    Isolate,
    Remediate,
    Stop,
    Seal,
    Release,
    /// A custom step's action (the `step` world's `run`), or a name no
    /// provider verb has.
    Custom(String),
}

impl Action {
    /// The provider world's verbs (0.2.0), in the breach protocol's order.
    pub const PROVIDER_VERBS: [&'static str; 8] = [
        "snapshot",
        "capture-memory",
        "enumerate-interfaces",
        "isolate",
        "remediate",
        "stop",
        "seal",
        "release",
    ];

    /// Whether the host treats the action as mutating the target whatever
    /// its plugin declares: the verbs that change a machine, and the names
    /// a custom step could use for the same.
    pub fn always_mutates(&self) -> bool {
        match self {
            Action::Isolate | Action::Remediate | Action::Stop | Action::Release => true,
            Action::Custom(name) => ["terminate", "delete"].contains(&name.as_str()),
            _ => false,
        }
    }

    /// Whether a successful call preserves the target's evidence (what a
    /// mutating step must come after).
    pub fn preserves(&self) -> bool {
        matches!(self, Action::Snapshot | Action::CaptureMemory)
    }

    /// The action named `name` in a playbook or a plugin's `describe`.
    pub fn parse(name: &str) -> Action {
        match name {
            "describe" => Action::Describe,
            "snapshot" => Action::Snapshot,
            "capture-memory" => Action::CaptureMemory,
            "enumerate-interfaces" => Action::EnumerateInterfaces,
            "isolate" => Action::Isolate,
            "remediate" => Action::Remediate,
            "stop" => Action::Stop,
            "seal" => Action::Seal,
            "release" => Action::Release,
            other => Action::Custom(other.to_string()),
        }
    }

    /// The name as playbooks, `describe` and journals write it.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Describe => "describe",
            Action::Snapshot => "snapshot",
            Action::CaptureMemory => "capture-memory",
            Action::EnumerateInterfaces => "enumerate-interfaces",
            Action::Isolate => "isolate",
            Action::Remediate => "remediate",
            Action::Stop => "stop",
            Action::Seal => "seal",
            Action::Release => "release",
            Action::Custom(name) => name,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in Action::PROVIDER_VERBS
            .into_iter()
            .chain(["describe", "notify"])
        {
            assert_eq!(Action::parse(name).as_str(), name);
        }
        assert_eq!(Action::parse("notify"), Action::Custom("notify".into()));
        assert!(Action::parse("stop").always_mutates());
        assert!(Action::parse("capture-memory").preserves());
        assert!(!Action::parse("enumerate-interfaces").preserves());
    }
}
