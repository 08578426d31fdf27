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
        PluginInfo::new("aws-ec2", env!("CARGO_PKG_VERSION"), "aws")
            .action(
                "snapshot",
                false,
                "crash-consistent snapshots of every EBS volume, the instance description and its console output",
            )
            .action(
                "enumerate-interfaces",
                false,
                "every ENI with addresses, Elastic IPs, subnet, VPC, security-group rules and exposed ports",
            )
            .action(
                "isolate",
                true,
                "per-ENI move to the case's isolation group (through an allow-all group to cut tracked connections), termination protection, volumes kept on termination",
            )
            .action(
                "seal",
                false,
                "tag the case's snapshots as sealed with the artifact digest; share them with a forensic account",
            )
            .action(
                "release",
                true,
                "restore the security groups recorded by isolate",
            )
    }

    fn snapshot(target: Target) -> Result<Vec<Artifact>, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(snapshot::snapshot(&ec2, &target))
    }

    fn enumerate_interfaces(target: Target) -> Result<InterfaceInventory, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(inventory::enumerate(&ec2, &target))
    }

    fn isolate(target: Target) -> Result<IsolationRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(isolate::isolate(&ec2, &target))
    }

    fn seal(target: Target, artifacts: Vec<Artifact>) -> Result<SealRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(seal::seal(&ec2, &target, &artifacts))
    }

    fn release(
        target: Target,
        previous: Option<IsolationRecord>,
    ) -> Result<IsolationRecord, PluginError> {
        let ec2 = Ec2::for_target(&target)?;
        irhost_plugin_sdk::block_on(isolate::release(&ec2, &target, previous))
    }
}

export_provider!(AwsEc2);
