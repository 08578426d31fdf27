//! Which contract version and world a component implements — decided by
//! the package version of the `irhost:plugin` interfaces it imports, then
//! by wasmtime's type check of its exports — and one call into each.

use wasmtime::Store;

use super::sandbox::SandboxState;
use super::{bindings, contract_v0_1, Action, CallFailure, Invocation, PluginOutput, PluginWorld};

/// The version of the `irhost:plugin` contract a component was built
/// against, read from the package version of the interfaces it imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ContractVersion {
    #[serde(rename = "0.1.0")]
    V0_1,
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }

    /// The contract of a component that imports `imports`: the version of
    /// its `irhost:plugin/…` interfaces. `Ok(None)` when it imports none
    /// (the world then decides by type); an error names a version this
    /// host does not run, or a mix.
    pub fn of_imports(imports: &[String]) -> Result<Option<ContractVersion>, String> {
        let mut versions: Vec<&str> = imports
            .iter()
            .filter_map(|name| name.strip_prefix("irhost:plugin/"))
            .map(|rest| rest.split_once('@').map_or("", |(_, v)| v))
            .collect();
        versions.sort_unstable();
        versions.dedup();
        match versions.as_slice() {
            [] => Ok(None),
            ["0.1.0"] => Ok(Some(ContractVersion::V0_1)),
            ["0.2.0"] => Ok(Some(ContractVersion::V0_2)),
            [one] => Err(format!(
                "it was built against irhost:plugin@{one}; this host runs 0.1.0 and 0.2.0"
            )),
            many => Err(format!(
                "it imports several versions of irhost:plugin ({}); a component is built against one",
                many.join(", ")
            )),
        }
    }
}

pub(super) enum PluginPre {
    Provider(bindings::provider::ProviderPre<SandboxState>),
    Step(bindings::step::StepPre<SandboxState>),
    ProviderV0_1(contract_v0_1::provider::ProviderPre<SandboxState>),
    StepV0_1(contract_v0_1::step::StepPre<SandboxState>),
}

/// The world and contract of a component, decided by wasmtime's type check
/// of its exports against each world of its contract (every contract when
/// it imports none of irhost's interfaces); the errors of each try when
/// none fits.
pub(super) fn typed_pre(
    pre: wasmtime::component::InstancePre<SandboxState>,
    contract: Option<ContractVersion>,
) -> Result<(PluginWorld, ContractVersion, PluginPre), String> {
    let contracts = match contract {
        Some(c) => vec![c],
        None => vec![ContractVersion::V0_2, ContractVersion::V0_1],
    };
    let mut tried = Vec::new();
    for contract in contracts {
        let v = contract.as_str();
        let attempt = match contract {
            ContractVersion::V0_2 => bindings::provider::ProviderPre::new(pre.clone())
                .map(|p| (PluginWorld::Provider, PluginPre::Provider(p)))
                .or_else(|e| {
                    tried.push(format!("provider@{v}: {e}"));
                    bindings::step::StepPre::new(pre.clone())
                        .map(|p| (PluginWorld::Step, PluginPre::Step(p)))
                }),
            ContractVersion::V0_1 => contract_v0_1::provider::ProviderPre::new(pre.clone())
                .map(|p| (PluginWorld::Provider, PluginPre::ProviderV0_1(p)))
                .or_else(|e| {
                    tried.push(format!("provider@{v}: {e}"));
                    contract_v0_1::step::StepPre::new(pre.clone())
                        .map(|p| (PluginWorld::Step, PluginPre::StepV0_1(p)))
                }),
        };
        match attempt {
            Ok((world, pre)) => return Ok((world, contract, pre)),
            Err(e) => tried.push(format!("step@{v}: {e}")),
        }
    }
    Err(tried.join("; "))
}

impl PluginPre {
    /// Instantiate the component in `store` and make the invocation's call.
    pub(super) async fn call(
        &self,
        store: &mut Store<SandboxState>,
        invocation: Invocation,
    ) -> wasmtime::Result<Result<PluginOutput, CallFailure>> {
        let target = &invocation.target;
        let inputs = &invocation.inputs;
        let failed = CallFailure::Plugin;
        Ok(match self {
            PluginPre::Provider(pre) => {
                let plugin = pre.instantiate_async(&mut *store).await?;
                let store = &mut *store;
                match &invocation.action {
                    Action::Describe => Ok(PluginOutput::Info(plugin.call_describe(store).await?)),
                    Action::Snapshot => plugin
                        .call_snapshot(store, target, inputs)
                        .await?
                        .map(PluginOutput::Artifacts)
                        .map_err(failed),
                    Action::CaptureMemory => plugin
                        .call_capture_memory(store, target, inputs)
                        .await?
                        .map(PluginOutput::Artifacts)
                        .map_err(failed),
                    Action::EnumerateInterfaces => plugin
                        .call_enumerate_interfaces(store, target, inputs)
                        .await?
                        .map(PluginOutput::Interfaces)
                        .map_err(failed),
                    Action::Isolate => plugin
                        .call_isolate(store, target, inputs)
                        .await?
                        .map(PluginOutput::Isolation)
                        .map_err(failed),
                    Action::Remediate => plugin
                        .call_remediate(store, target, inputs)
                        .await?
                        .map(PluginOutput::Remediation)
                        .map_err(failed),
                    Action::Stop => plugin
                        .call_stop(store, target, inputs)
                        .await?
                        .map(PluginOutput::State)
                        .map_err(failed),
                    Action::Seal => plugin
                        .call_seal(store, target, inputs)
                        .await?
                        .map(PluginOutput::Seal)
                        .map_err(failed),
                    Action::Release => plugin
                        .call_release(store, target, inputs)
                        .await?
                        .map(PluginOutput::Isolation)
                        .map_err(failed),
                    Action::Custom(other) => Err(CallFailure::Unsupported(format!(
                        "`{other}` is not a provider verb ({})",
                        Action::PROVIDER_VERBS.join(", ")
                    ))),
                }
            }
            PluginPre::Step(pre) => {
                let plugin = pre.instantiate_async(&mut *store).await?;
                if invocation.action == Action::Describe {
                    Ok(PluginOutput::Info(plugin.call_describe(&mut *store).await?))
                } else {
                    let params = invocation.call.params.to_string();
                    plugin
                        .call_run(
                            &mut *store,
                            invocation.action.as_str(),
                            target,
                            &params,
                            inputs,
                        )
                        .await?
                        .map(PluginOutput::Step)
                        .map_err(failed)
                }
            }
            PluginPre::ProviderV0_1(pre) => {
                return contract_v0_1::call_provider(pre, store, &invocation).await
            }
            PluginPre::StepV0_1(pre) => {
                return contract_v0_1::call_step(pre, store, &invocation).await
            }
        })
    }
}
