//! AWS EC2 provider plugin: the incident-response verbs for an EC2 instance,
//! with aws-sdk-ec2 inside the component.
//!
//! The SDK runs on wstd: HTTP goes out through `wasi:http` (aws-smithy-wasm's
//! client) and the host decides which hosts may be reached. No credentials
//! enter the sandbox: requests leave unsigned and the host signs them with
//! SigV4 at its egress boundary.
//!
//! Parameters (step `with` over plugin `config`):
//! - `region` (when the target has none; default us-east-1), `endpoint_url`
//!   (the host passes AWS_ENDPOINT_URL here);
//! - `max_attempts` (SDK attempts per call, default 3), `retry_after_ms`
//!   (what a throttling answer asks the engine to wait, default 2000);
//! - isolate: `examiner_cidr` and `examiner_ports` (default [22]);
//!   `isolation_keeps` (set by the host from the grant: [`agent_reach`]);
//! - seal: `forensic_account` (12-digit account to share the snapshots with);
//! - stop: `hibernate`, `stop_wait_s`;
//! - capture-memory: `memory_tool_url`, `memory_tool_sha256` and the others
//!   [`memory`] lists.

#![recursion_limit = "256"]

mod agent_reach;
mod aws;
mod contract;
mod describe;
mod filesystems;
mod inventory;
mod isolate;
mod memory;
mod remediate;
mod seal;
mod snapshot;
mod stop;

use irhost_plugin_sdk::prelude::*;

use crate::aws::Ec2;

struct AwsEc2;

impl Provider for AwsEc2 {
    fn describe() -> PluginInfo {
        contract::plugin_info()
    }

    fn snapshot(target: Target, _inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(snapshot::snapshot(&ec2, &target))
    }

    fn enumerate_interfaces(
        target: Target,
        _inputs: Inputs,
    ) -> Result<InterfaceInventory, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(inventory::enumerate(&ec2, &target))
    }

    fn isolate(target: Target, _inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(isolate::isolate(&ec2, &target))
    }

    fn seal(target: Target, inputs: Inputs) -> Result<SealRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(seal::seal(&ec2, &target, &inputs.artifacts()))
    }

    fn capture_memory(target: Target, _inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        irhost_plugin_sdk::block_on(memory::capture(&target))
    }

    fn remediate(target: Target, inputs: Inputs) -> Result<RemediationRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(remediate::remediate(&ec2, &target, &inputs))
    }

    fn stop(target: Target, _inputs: Inputs) -> Result<StateChange, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(stop::stop(&ec2, &target))
    }

    /// The isolation undone, then the remediation (from the tags on the
    /// instance's groups, now its own again, and those the run recorded).
    fn release(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        let previous = inputs.isolation()?;
        let recorded = inputs.remediation()?;
        irhost_plugin_sdk::block_on(async {
            let mut record = isolate::release(&ec2, &target, previous).await?;
            let instance = ec2.instance(&target.id).await?;
            let mut groups: std::collections::BTreeSet<String> = ec2
                .interfaces(&instance)
                .await?
                .iter()
                .flat_map(|eni| {
                    eni.groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_string))
                })
                .collect();
            for change in recorded.iter().flat_map(|r| r.changes.iter()) {
                if change.resource_id.starts_with("sg-") {
                    groups.insert(change.resource_id.clone());
                }
            }
            let case = irhost_plugin_sdk::case_id();
            record
                .changes
                .extend(remediate::undo(&ec2, &target.id, &case, groups).await?);
            Ok(record)
        })
    }
}

export_provider!(AwsEc2);
