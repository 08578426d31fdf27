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
//! - seal: `forensic_account` (12-digit account to share the snapshots with).

#![recursion_limit = "256"]

mod aws;
mod contract;
mod describe;
mod inventory;
mod isolate;
mod seal;
mod snapshot;

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

    fn release(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        let previous = inputs.isolation()?;
        irhost_plugin_sdk::block_on(isolate::release(&ec2, &target, previous))
    }
}

export_provider!(AwsEc2);
