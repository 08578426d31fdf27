//! Guest SDK for irhost plugins.
//!
//! A plugin author implements one trait — [`Provider`] for a cloud provider
//! plugin (the `provider` world of `irhost:plugin@0.2.0`), [`Step`] for a
//! custom step (the `step` world) — and calls one export macro,
//! [`export_provider!`] or [`export_step!`]. Every provider verb has a
//! default that answers `unsupported`, so a plugin implements only what it
//! offers; each receives the outputs of the step's ancestors as [`Inputs`].
//! The wit-bindgen details stay in this crate.
//!
//! ```no_run
//! use irhost_plugin_sdk::prelude::*;
//!
//! struct Notify;
//! impl Step for Notify {
//!     fn describe() -> PluginInfo { PluginInfo::new("notify", "0.1.0", "any").action("run", Effect::Reads, "post a message") }
//!     fn run(_action: &str, target: Target, params: serde_json::Value, _inputs: Vec<StepInput>) -> Result<StepOutput, PluginError> {
//!         log::info(&format!("notifying about {}", target.id));
//!         Ok(StepOutput::values(serde_json::json!({"sent": true})))
//!     }
//! }
//! export_step!(Notify);
//! ```
//!
//! Plugins get outbound HTTP over `wasi:http` through [`http`] (built on
//! `wstd`); the host decides which hosts a plugin may reach. [`uploads`]
//! lets the machine itself send large evidence to the store the playbook
//! grants; [`memory`] captures a machine's memory that way, through its own
//! agent.

pub mod http;
mod inputs;
pub mod log;
pub mod memory;
pub mod uploads;

pub use inputs::Inputs;

#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    //! Generated bindings of both worlds; the `step` world reuses the
    //! `provider` world's types so that one set of Rust types serves both.
    pub mod provider {
        wit_bindgen::generate!({
            path: "../../wit/v0.2.0",
            world: "irhost:plugin/provider@0.2.0",
            with: {
                "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
                "wasi:http/types@0.2.12": wasip2::http::types,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
            },
            additional_derives: [serde::Serialize, serde::Deserialize],
            pub_export_macro: true,
            export_macro_name: "__export_provider_world",
            default_bindings_module: "irhost_plugin_sdk::bindings::provider",
        });
    }
    pub mod step {
        wit_bindgen::generate!({
            path: "../../wit/v0.2.0",
            world: "irhost:plugin/step@0.2.0",
            with: {
                "irhost:plugin/types@0.2.0": crate::bindings::provider::irhost::plugin::types,
                "irhost:plugin/host@0.2.0": crate::bindings::provider::irhost::plugin::host,
                "irhost:plugin/uploads@0.2.0": crate::bindings::provider::irhost::plugin::uploads,
                "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
                "wasi:http/types@0.2.12": wasip2::http::types,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
            },
            pub_export_macro: true,
            export_macro_name: "__export_step_world",
            default_bindings_module: "irhost_plugin_sdk::bindings::step",
        });
    }
}

mod types_ext;
pub use types_ext::artifact_digest;

pub use bindings::provider::irhost::plugin::types::{
    ActionInfo, ApiAction, Artifact, ArtifactKind, Direction, Effect, ExposedPort,
    InterfaceInventory, IsolationChange, IsolationRecord, NetworkInterface, PluginError,
    PluginInfo, ProviderFailure, RemediationRecord, Rule, SealRecord, SecurityGroup, SharedStorage,
    SkippedChange, StateChange, StepInput, StepOutput, Target, Throttle,
};
pub use serde_json;
pub use wstd;

use bindings::provider::irhost::plugin::host as wit_host;

/// A cloud provider plugin. Every verb but [`Provider::describe`] defaults
/// to `unsupported`, so a plugin implements the ones it offers. `inputs`
/// are the outputs of the step's ancestors.
pub trait Provider {
    /// Name, version, provider, the verbs it supports (with their effects)
    /// and the cloud API actions each calls.
    fn describe() -> PluginInfo;

    /// (1) Preserve the target's state: disks, configuration, console, screen.
    fn snapshot(target: Target, inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("snapshot", &target))
    }
    /// (2) An image of the machine's memory (kind `memory-image`).
    fn capture_memory(target: Target, inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("capture-memory", &target))
    }
    /// (4) Interfaces, addresses, groups, exposed ports, shared storage.
    fn enumerate_interfaces(
        target: Target,
        inputs: Inputs,
    ) -> Result<InterfaceInventory, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action(
            "enumerate-interfaces",
            &target,
        ))
    }
    fn isolate(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("isolate", &target))
    }
    /// (7) Revoke what the inventory among `inputs` shows open to the world.
    fn remediate(target: Target, inputs: Inputs) -> Result<RemediationRecord, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("remediate", &target))
    }
    /// (3) Stop or hibernate after preservation; never terminate.
    fn stop(target: Target, inputs: Inputs) -> Result<StateChange, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("stop", &target))
    }
    /// (6) Seal the artifacts among `inputs`.
    fn seal(target: Target, inputs: Inputs) -> Result<SealRecord, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("seal", &target))
    }
    /// Undo an isolation and a remediation.
    fn release(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let _ = inputs;
        Err(PluginError::unsupported_action("release", &target))
    }
}

/// A custom step plugin.
pub trait Step {
    /// Name, version and the step's actions (with which mutate the target).
    fn describe() -> PluginInfo;

    /// Run `action` for one target. `params` is the step's `with` table
    /// merged over the plugin's `config`; `inputs` are the outputs of the
    /// steps this one depends on.
    fn run(
        action: &str,
        target: Target,
        params: serde_json::Value,
        inputs: Vec<StepInput>,
    ) -> Result<StepOutput, PluginError>;
}

/// The step's parameters merged over the plugin's `config`.
pub fn params() -> serde_json::Value {
    serde_json::from_str(&wit_host::params()).unwrap_or(serde_json::Value::Null)
}

/// One parameter, decoded into `T`; `Ok(None)` when absent, an
/// invalid-input error naming the parameter when it has the wrong shape.
pub fn param<T: serde::de::DeserializeOwned>(name: &str) -> Result<Option<T>, PluginError> {
    match wit_host::param(name) {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| PluginError::InvalidInput(format!("parameter `{name}`: {e}"))),
    }
}

/// Report progress of a long action.
pub fn progress(done: u64, total: u64, message: &str) {
    wit_host::progress(done, total, message)
}

/// The case this run belongs to.
pub fn case_id() -> String {
    wit_host::case_id()
}

/// 1 for the first attempt of a step, 2 for its first retry, ...
pub fn attempt() -> u32 {
    wit_host::attempt()
}

/// Wait on the host's clock (the call's wall-clock limit still applies).
pub fn sleep(duration: std::time::Duration) {
    block_on(async move {
        wstd::task::sleep(wstd::time::Duration::from(duration)).await;
    })
}

/// Run a future to completion on the plugin's single-threaded WASI reactor.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    wstd::runtime::block_on(future)
}

#[doc(hidden)]
pub struct ProviderAdapter<T>(std::marker::PhantomData<T>);

impl<T: Provider> bindings::provider::Guest for ProviderAdapter<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn snapshot(target: Target, inputs: Vec<StepInput>) -> Result<Vec<Artifact>, PluginError> {
        T::snapshot(target, Inputs::new(inputs))
    }
    fn capture_memory(
        target: Target,
        inputs: Vec<StepInput>,
    ) -> Result<Vec<Artifact>, PluginError> {
        T::capture_memory(target, Inputs::new(inputs))
    }
    fn enumerate_interfaces(
        target: Target,
        inputs: Vec<StepInput>,
    ) -> Result<InterfaceInventory, PluginError> {
        T::enumerate_interfaces(target, Inputs::new(inputs))
    }
    fn isolate(target: Target, inputs: Vec<StepInput>) -> Result<IsolationRecord, PluginError> {
        T::isolate(target, Inputs::new(inputs))
    }
    fn remediate(target: Target, inputs: Vec<StepInput>) -> Result<RemediationRecord, PluginError> {
        T::remediate(target, Inputs::new(inputs))
    }
    fn stop(target: Target, inputs: Vec<StepInput>) -> Result<StateChange, PluginError> {
        T::stop(target, Inputs::new(inputs))
    }
    fn seal(target: Target, inputs: Vec<StepInput>) -> Result<SealRecord, PluginError> {
        T::seal(target, Inputs::new(inputs))
    }
    fn release(target: Target, inputs: Vec<StepInput>) -> Result<IsolationRecord, PluginError> {
        T::release(target, Inputs::new(inputs))
    }
}

#[doc(hidden)]
pub struct StepAdapter<T>(std::marker::PhantomData<T>);

impl<T: Step> bindings::step::Guest for StepAdapter<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn run(
        action: String,
        target: Target,
        params: String,
        inputs: Vec<StepInput>,
    ) -> Result<StepOutput, PluginError> {
        let params = serde_json::from_str(&params)
            .map_err(|e| PluginError::InvalidInput(format!("step parameters: {e}")))?;
        T::run(&action, target, params, inputs)
    }
}

/// Export a [`Provider`] implementation as the plugin's component.
#[macro_export]
macro_rules! export_provider {
    ($plugin:ty) => {
        type __IrhostProviderExport = $crate::ProviderAdapter<$plugin>;
        $crate::bindings::provider::__export_provider_world!(
            __IrhostProviderExport with_types_in $crate::bindings::provider
        );
    };
}

/// Export a [`Step`] implementation as the plugin's component.
#[macro_export]
macro_rules! export_step {
    ($plugin:ty) => {
        type __IrhostStepExport = $crate::StepAdapter<$plugin>;
        $crate::bindings::step::__export_step_world!(
            __IrhostStepExport with_types_in $crate::bindings::step
        );
    };
}

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::{
        export_provider, export_step, log, ActionInfo, ApiAction, Artifact, ArtifactKind,
        Direction, Effect, ExposedPort, Inputs, InterfaceInventory, IsolationChange,
        IsolationRecord, NetworkInterface, PluginError, PluginInfo, Provider, ProviderFailure,
        RemediationRecord, Rule, SealRecord, SecurityGroup, SharedStorage, SkippedChange,
        StateChange, Step, StepInput, StepOutput, Target, Throttle,
    };
    pub use serde_json::{self, json};
}
