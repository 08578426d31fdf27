//! The outputs of a step's ancestors, as a provider verb receives them,
//! with typed readers for what the host's verbs produce.

use serde::de::DeserializeOwned;

use crate::{
    Artifact, InterfaceInventory, IsolationRecord, PluginError, RemediationRecord, StateChange,
    StepInput,
};

/// The outputs of the step's ancestors, nearest last.
#[derive(Debug, Clone, Default)]
pub struct Inputs(Vec<StepInput>);

impl Inputs {
    pub fn new(inputs: Vec<StepInput>) -> Self {
        Inputs(inputs)
    }

    pub fn all(&self) -> &[StepInput] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<StepInput> {
        self.0
    }

    /// Every artifact of every ancestor.
    pub fn artifacts(&self) -> Vec<Artifact> {
        self.0
            .iter()
            .flat_map(|i| i.artifacts.iter().cloned())
            .collect()
    }

    /// The values of the nearest ancestor that ran `action`, decoded; an
    /// `invalid-input` error when they do not have the expected shape.
    pub fn values_of<T: DeserializeOwned>(&self, action: &str) -> Result<Option<T>, PluginError> {
        let Some(input) = self.0.iter().rev().find(|i| i.action == action) else {
            return Ok(None);
        };
        serde_json::from_str(&input.values).map(Some).map_err(|e| {
            PluginError::InvalidInput(format!(
                "the output of step `{}` ({action}) is not what {action} returns: {e}",
                input.step
            ))
        })
    }

    /// The inventory of the nearest `enumerate-interfaces` ancestor.
    pub fn inventory(&self) -> Result<Option<InterfaceInventory>, PluginError> {
        self.values_of("enumerate-interfaces")
    }

    /// The record of the nearest `isolate` ancestor.
    pub fn isolation(&self) -> Result<Option<IsolationRecord>, PluginError> {
        self.values_of("isolate")
    }

    /// The record of the nearest `remediate` ancestor.
    pub fn remediation(&self) -> Result<Option<RemediationRecord>, PluginError> {
        self.values_of("remediate")
    }

    /// The record of the nearest `stop` ancestor.
    pub fn state_change(&self) -> Result<Option<StateChange>, PluginError> {
        self.values_of("stop")
    }
}
