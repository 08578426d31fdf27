//! What this plugin declares in `describe`: its verbs, what each does to
//! the instance, and the EC2, SSM, EFS and FSx API actions each calls (the host refuses it
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
                "ec2:GetConsoleScreenshot",
            ],
        )
        .calls(Effect::Preserves, &["ec2:CreateSnapshots", "ec2:CreateTags"])
        .action(
            "capture-memory",
            Effect::Preserves,
            "an image of the instance's memory by a pinned tool (AVML, WinPmem) run through SSM Run Command, uploaded by the instance to the granted evidence bucket through URLs minted per part",
        )
        .calls(
            Effect::Reads,
            &[
                "ssm:DescribeInstanceInformation",
                "ssm:DescribeDocument",
                "ssm:GetCommandInvocation",
            ],
        )
        .calls(Effect::Preserves, &["ssm:SendCommand", "ssm:CancelCommand"])
        .action(
            "enumerate-interfaces",
            Effect::Reads,
            "every ENI with addresses, Elastic IPs, subnet, VPC, security-group rules and exposed ports; shared storage: multi-attach EBS volumes, EFS mount targets and FSx file systems in its subnets",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(
            Effect::Reads,
            &[
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeVolumes",
                "elasticfilesystem:DescribeFileSystems",
                "elasticfilesystem:DescribeMountTargets",
                "fsx:DescribeFileSystems",
            ],
        )
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
        .calls_when(
            "isolation_keeps",
            Effect::Reads,
            &["ec2:DescribeVpcEndpoints", "ec2:DescribePrefixLists"],
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
            "remediate",
            Effect::Mutates,
            "revoke world-open ingress on the instance's original security groups no other machine uses, dissociate its Elastic IPs; each change tagged for release",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(
            Effect::Reads,
            &["ec2:DescribeSecurityGroups", "ec2:DescribeAddresses"],
        )
        .calls(
            Effect::Mutates,
            &[
                "ec2:RevokeSecurityGroupIngress",
                "ec2:DisassociateAddress",
                "ec2:CreateTags",
            ],
        )
        .action(
            "stop",
            Effect::Mutates,
            "StopInstances (hibernating when asked and supported), never terminate; volumes kept on termination; the state before recorded",
        )
        .calls(Effect::Reads, &["ec2:DescribeInstances"])
        .calls(
            Effect::Mutates,
            &["ec2:ModifyInstanceAttribute", "ec2:StopInstances"],
        )
        .action(
            "release",
            Effect::Mutates,
            "restore the security groups recorded by isolate, and what remediate revoked (from its tags)",
        )
        .calls(Effect::Reads, LOOKUP)
        .calls(
            Effect::Reads,
            &["ec2:DescribeSecurityGroups", "ec2:DescribeAddresses"],
        )
        .calls(
            Effect::Mutates,
            &[
                "ec2:ModifyNetworkInterfaceAttribute",
                "ec2:DeleteTags",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:AssociateAddress",
            ],
        )
}
