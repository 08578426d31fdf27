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
//! - snapshot: `incremental` (default true), `sas_minutes` (how long the
//!   boot-diagnostics SAS URIs live, default 10); the storage host of those
//!   URIs must be in the playbook's `allow_hosts` for the screenshot and
//!   serial log to be kept ([`bootdiag`]);
//! - isolate: `examiner_cidr` and `examiner_ports` (default [22]);
//! - capture-memory: `memory_tool_url` and `memory_tool_sha256` (or the
//!   `_windows_` pair), `memory_part_mb`, `memory_urls_per_command`,
//!   `memory_timeout_s`, … as the guest SDK's `memory` module reads them;
//!   the playbook's grant names the evidence store (`evidence_uploads`)
//!   ([`memory`]);
//! - stop: `deallocate` (default false: power off, the VM stays
//!   allocated) ([`stop`]).
//!
//! remediate needs the inventory of an `enumerate-interfaces` ancestor;
//! its markers and tags, which release reads when the run has no records,
//! are described in [`remediate`] and [`restore`].

mod arm;
mod bootdiag;
mod contract;
mod inventory;
mod isolate;
mod memory;
mod remediate;
mod restore;
mod seal;
mod shared;
mod snapshot;
mod stop;
mod writes;

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

    fn capture_memory(target: Target, _inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(memory::capture(&arm, &target))
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

    fn remediate(target: Target, inputs: Inputs) -> Result<RemediationRecord, PluginError> {
        let inventory = inputs.inventory()?.ok_or_else(|| {
            PluginError::InvalidInput(
                "remediate needs the inventory of an enumerate-interfaces step among its inputs (put that step in its `after`)"
                    .into(),
            )
        })?;
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(remediate::remediate(&arm, &target, &inventory))
    }

    fn stop(target: Target, _inputs: Inputs) -> Result<StateChange, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(stop::stop(&arm, &target))
    }

    fn seal(target: Target, inputs: Inputs) -> Result<SealRecord, PluginError> {
        let arm = Arm::from_params()?;
        irhost_plugin_sdk::block_on(seal::seal(&arm, &target, &inputs.artifacts()))
    }

    /// The isolation first (the NICs get their NSGs back), then the
    /// remediation (on those NSGs and NICs).
    fn release(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let arm = Arm::from_params()?;
        let isolation = inputs.isolation()?;
        let remediation = inputs.remediation()?;
        irhost_plugin_sdk::block_on(async {
            let mut record = isolate::release(&arm, &target, isolation).await?;
            let (undone, verified) = restore::release(&arm, &target, remediation.as_ref()).await?;
            record.changes.extend(undone);
            record.verified &= verified;
            Ok(record)
        })
    }
}

export_provider!(AzureCompute);
