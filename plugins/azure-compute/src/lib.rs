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
mod inventory;
mod isolate;
mod seal;
mod snapshot;

use irhost_plugin_sdk::prelude::*;

use crate::arm::Arm;

struct AzureCompute;

impl Provider for AzureCompute {
    fn describe() -> PluginInfo {
        PluginInfo::new("azure-compute", env!("CARGO_PKG_VERSION"), "azure")
            .action(
                "snapshot",
                false,
                "snapshots of the OS disk and every data disk (incremental), the VM model and its instance view",
            )
            .action(
                "enumerate-interfaces",
                false,
                "every NIC with addresses, subnet, VNet, the NSGs on NIC and subnet with their rules, and exposed ports",
            )
            .action(
                "isolate",
                true,
                "attach the case's deny-all NSG (flushConnection on) to every NIC, verified; never restarts the VM",
            )
            .action(
                "seal",
                false,
                "tag the case's snapshots as sealed with the artifact digest and lock them (CanNotDelete)",
            )
            .action("release", true, "restore the NSGs recorded by isolate")
    }

    fn snapshot(target: Target) -> Result<Vec<Artifact>, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(snapshot::snapshot(&arm, &target))
    }

    fn enumerate_interfaces(target: Target) -> Result<InterfaceInventory, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(inventory::enumerate(&arm, &target))
    }

    fn isolate(target: Target) -> Result<IsolationRecord, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(isolate::isolate(&arm, &target))
    }

    fn seal(target: Target, artifacts: Vec<Artifact>) -> Result<SealRecord, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(seal::seal(&arm, &target, &artifacts))
    }

    fn release(
        target: Target,
        previous: Option<IsolationRecord>,
    ) -> Result<IsolationRecord, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(isolate::release(&arm, &target, previous))
    }
}

export_provider!(AzureCompute);
