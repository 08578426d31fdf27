//! Azure compute provider plugin: the incident-response verbs for an Azure
//! VM, with azure_mgmt_compute, azure_mgmt_network and azure_mgmt_resources
//! (locks) inside the component.
//!
//! HTTP leaves through `wasi:http` ([`arm::WasiTransport`]) and the host
//! decides which hosts may be reached. No credential enters the sandbox:
//! the SDK clients carry a placeholder bearer token, which the host replaces
//! with a real ARM token for the ARM endpoint only.
//!
//! Targets: `azure:/subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/virtualMachines/VM`,
//! or `azure:G/VM` with the subscription from `account=` or `subscription_id`.
//!
//! Parameters (step `with` over plugin `config`):
//! - `endpoint_url` (the host passes AZURE_RESOURCE_MANAGER_URL here;
//!   default https://management.azure.com), `subscription_id`;
//! - `poll_ms` (interval when polling long-running operations, default
//!   1000), `operation_timeout_s` (default 600), `retry_after_ms` (what a
//!   throttling answer without Retry-After asks the engine to wait);
//! - snapshot: `incremental` (default true);
//! - isolate: `examiner_cidr` and `examiner_ports` (default [22]).

mod arm;
mod contract;
mod inventory;
mod isolate;
mod seal;
mod snapshot;

use irhost_plugin_sdk::prelude::*;

use crate::arm::Arm;

struct AzureCompute;

impl Provider for AzureCompute {
    fn describe() -> PluginInfo {
        contract::plugin_info()
    }

    fn snapshot(target: Target, _inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(snapshot::snapshot(&arm, &target))
    }

    fn enumerate_interfaces(
        target: Target,
        _inputs: Inputs,
    ) -> Result<InterfaceInventory, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(inventory::enumerate(&arm, &target))
    }

    fn isolate(target: Target, _inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(isolate::isolate(&arm, &target))
    }

    fn seal(target: Target, inputs: Inputs) -> Result<SealRecord, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(seal::seal(&arm, &target, &inputs.artifacts()))
    }

    fn release(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let arm = Arm::from_params()?;
        let previous = inputs.isolation()?;
        irhost_plugin_sdk::block_on(isolate::release(&arm, &target, previous))
    }
}

export_provider!(AzureCompute);
