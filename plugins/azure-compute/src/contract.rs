//! What this plugin declares in `describe`: its verbs, what each does to
//! the VM, and the ARM operations each calls (the host refuses it any
//! other; the playbook's grant must allow them).

use irhost_plugin_sdk::prelude::*;

const VM_READ: &str = "Microsoft.Compute/virtualMachines/read";
const VM_INSTANCE_VIEW: &str = "Microsoft.Compute/virtualMachines/instanceView/read";
const COMPUTE_OPERATIONS: &str = "Microsoft.Compute/locations/operations/read";
const NETWORK_OPERATIONS: &str = "Microsoft.Network/locations/operations/read";
const NETWORK_READ: &[&str] = &[
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/networkSecurityGroups/read",
    "Microsoft.Network/publicIPAddresses/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
];
/// What remediate changes and release changes back: a rule's access and
/// description, an NSG's tags (a description too long to keep beside the
/// marker), a NIC's public IPs and tags.
const REMEDIATION_WRITES: &[&str] = &[
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/networkInterfaces/write",
];

pub fn plugin_info() -> PluginInfo {
    PluginInfo::new("azure-compute", env!("CARGO_PKG_VERSION"), "azure")
        .action(
            "snapshot",
            Effect::Preserves,
            "snapshots of the OS disk and every data disk (incremental), the VM model and its instance view, the boot-diagnostics screenshot and serial log",
        )
        .calls(
            Effect::Reads,
            &[
                VM_READ,
                VM_INSTANCE_VIEW,
                "Microsoft.Compute/snapshots/read",
                COMPUTE_OPERATIONS,
                "Microsoft.Compute/virtualMachines/retrieveBootDiagnosticsData/action",
            ],
        )
        .calls(Effect::Preserves, &["Microsoft.Compute/snapshots/write"])
        .action(
            "capture-memory",
            Effect::Preserves,
            "an image of the VM's memory by a pinned tool (AVML, WinPmem) run through Run Command by the guest agent, uploaded by the VM to the granted evidence container through block URLs minted per part",
        )
        .calls(Effect::Reads, &[VM_READ, VM_INSTANCE_VIEW, COMPUTE_OPERATIONS])
        .calls(
            Effect::Preserves,
            &["Microsoft.Compute/virtualMachines/runCommand/action"],
        )
        .action(
            "enumerate-interfaces",
            Effect::Reads,
            "every NIC with addresses, subnet, VNet, the NSGs on NIC and subnet with their rules, exposed ports, and shared disks",
        )
        .calls(Effect::Reads, &[VM_READ, "Microsoft.Compute/disks/read"])
        .calls(Effect::Reads, NETWORK_READ)
        .action(
            "isolate",
            Effect::Mutates,
            "attach the case's deny-all NSG (flushConnection on) to every NIC, verified; never restarts the VM",
        )
        .calls(Effect::Reads, &[VM_READ, NETWORK_OPERATIONS])
        .calls(Effect::Reads, NETWORK_READ)
        .calls(
            Effect::Mutates,
            &[
                "Microsoft.Network/networkSecurityGroups/write",
                "Microsoft.Network/networkInterfaces/write",
            ],
        )
        .action(
            "remediate",
            Effect::Mutates,
            "deny the world-open inbound rules of the VM's unshared NSGs (marked for release) and dissociate its public IPs (tagged for release), verified",
        )
        .calls(Effect::Reads, &[VM_READ, NETWORK_OPERATIONS])
        .calls(Effect::Reads, NETWORK_READ)
        .calls(Effect::Mutates, REMEDIATION_WRITES)
        .action(
            "stop",
            Effect::Mutates,
            "keep the disks when the VM is deleted (deleteOption Detach), then power off (deallocate only when asked); never deletes",
        )
        .calls(Effect::Reads, &[VM_READ, VM_INSTANCE_VIEW, COMPUTE_OPERATIONS])
        .calls(
            Effect::Mutates,
            &[
                "Microsoft.Compute/virtualMachines/write",
                "Microsoft.Compute/virtualMachines/powerOff/action",
            ],
        )
        .calls_when(
            "deallocate",
            Effect::Mutates,
            &["Microsoft.Compute/virtualMachines/deallocate/action"],
        )
        .action(
            "seal",
            Effect::Preserves,
            "tag the case's snapshots as sealed with the artifact digest and lock them (CanNotDelete)",
        )
        .calls(
            Effect::Reads,
            &[
                "Microsoft.Compute/snapshots/read",
                "Microsoft.Authorization/locks/read",
                COMPUTE_OPERATIONS,
            ],
        )
        .calls(
            Effect::Preserves,
            &[
                "Microsoft.Compute/snapshots/write",
                "Microsoft.Authorization/locks/write",
            ],
        )
        .action(
            "release",
            Effect::Mutates,
            "restore the NSGs recorded by isolate, the rules and public IPs remediate changed (from the records, else the markers and tags)",
        )
        .calls(Effect::Reads, &[VM_READ, NETWORK_OPERATIONS])
        .calls(Effect::Reads, NETWORK_READ)
        .calls(Effect::Mutates, REMEDIATION_WRITES)
}
