//! What this plugin declares in `describe`: its verbs, what each does to
//! the instance, and the EC2 API actions each calls (the host refuses it
//! any other; the playbook's grant must allow them).

use irhost_plugin_sdk::prelude::*;

/// What every verb reads first: the instance and its interfaces.
const LOOKUP: &[&str] = &["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces"];

pub fn plugin_info() -> PluginInfo {
    PluginInfo::new("aws-ec2", env!("CARGO_PKG_VERSION"), "aws")
        .action(
            "snapshot",
            Effect::Preserves,
            "crash-consistent snapshots of every EBS volume, the instance description and its console output",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(
            Effect::Reads,
            &[
                "ec2:DescribeInstanceAttribute",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeSnapshots",
                "ec2:GetConsoleOutput",
            ],
        )
        .calls(Effect::Preserves, &["ec2:CreateSnapshots", "ec2:CreateTags"])
        .action(
            "enumerate-interfaces",
            Effect::Reads,
            "every ENI with addresses, Elastic IPs, subnet, VPC, security-group rules and exposed ports",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(Effect::Reads, &["ec2:DescribeSecurityGroups"])
        .action(
            "isolate",
            Effect::Mutates,
            "per-ENI move to the case's isolation group (through an allow-all group to cut tracked connections), termination protection, volumes kept on termination",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(
            Effect::Reads,
            &["ec2:DescribeSecurityGroups", "ec2:DescribeInstanceAttribute"],
        )
        .calls(
            Effect::Mutates,
            &[
                "ec2:CreateSecurityGroup",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:AuthorizeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:RevokeSecurityGroupEgress",
                "ec2:ModifyNetworkInterfaceAttribute",
                "ec2:ModifyInstanceAttribute",
                "ec2:CreateTags",
            ],
        )
        .action(
            "seal",
            Effect::Preserves,
            "tag the case's snapshots as sealed with the artifact digest; share them with a forensic account",
        )
        .calls(Effect::Reads, &["ec2:DescribeSnapshots"])
        .calls(Effect::Preserves, &["ec2:CreateTags"])
        .calls_when(
            "forensic_account",
            Effect::Preserves,
            &["ec2:ModifySnapshotAttribute"],
        )
        .action(
            "release",
            Effect::Mutates,
            "restore the security groups recorded by isolate",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(Effect::Reads, &["ec2:DescribeSecurityGroups"])
        .calls(
            Effect::Mutates,
            &["ec2:ModifyNetworkInterfaceAttribute", "ec2:DeleteTags"],
        )
}
