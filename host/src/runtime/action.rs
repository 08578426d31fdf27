//! The actions a plugin call can perform: the provider world's verbs and
//! `describe`, or a custom step's own action name.

use std::fmt;

/// What one call asks a plugin to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Describe,
    Snapshot,
    EnumerateInterfaces,
    Isolate,
    Seal,
    Release,
    /// A custom step's action (the `step` world's `run`), or a name no
    /// provider verb has.
    Custom(String),
}

impl Action {
    /// The action named `name` in a playbook or a plugin's `describe`.
    pub fn parse(name: &str) -> Action {
        match name {
            "describe" => Action::Describe,
            "snapshot" => Action::Snapshot,
            "enumerate-interfaces" => Action::EnumerateInterfaces,
            "isolate" => Action::Isolate,
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
            Action::EnumerateInterfaces => "enumerate-interfaces",
            Action::Isolate => "isolate",
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
        for name in [
            "describe",
            "snapshot",
            "enumerate-interfaces",
            "isolate",
            "seal",
            "release",
            "notify",
        ] {
            assert_eq!(Action::parse(name).as_str(), name);
        }
        assert_eq!(Action::parse("notify"), Action::Custom("notify".into()));
    }
}
