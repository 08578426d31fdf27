//! What this plugin declares in `describe`: its verbs, what each does to
//! the VM, and the ARM operations each calls (the host refuses it any
//! other; the playbook's grant must allow them).

use irhost_plugin_sdk::prelude::*;

const VM_READ: &str = "Microsoft.Compute/virtualMachines/read";
const NETWORK_READ: &[&str] = &[
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/networkSecurityGroups/read",
    "Microsoft.Network/publicIPAddresses/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
];

pub fn plugin_info() -> PluginInfo {
    PluginInfo::new("azure-compute", env!("CARGO_PKG_VERSION"), "azure")
        .action(
            "snapshot",
            Effect::Preserves,
            "snapshots of the OS disk and every data disk (incremental), the VM model and its instance view",
        )
        .calls(
            Effect::Reads,
            &[
                VM_READ,
                "Microsoft.Compute/virtualMachines/instanceView/read",
                "Microsoft.Compute/snapshots/read",
                "Microsoft.Compute/locations/operations/read",
            ],
        )
        .calls(Effect::Preserves, &["Microsoft.Compute/snapshots/write"])
        .action(
            "enumerate-interfaces",
            Effect::Reads,
            "every NIC with addresses, subnet, VNet, the NSGs on NIC and subnet with their rules, and exposed ports",
        )
        .calls(Effect::Reads, &[VM_READ])
        .calls(Effect::Reads, NETWORK_READ)
        .action(
            "isolate",
            Effect::Mutates,
            "attach the case's deny-all NSG (flushConnection on) to every NIC, verified; never restarts the VM",
        )
        .calls(Effect::Reads, &[VM_READ, "Microsoft.Network/locations/operations/read"])
        .calls(Effect::Reads, NETWORK_READ)
        .calls(
            Effect::Mutates,
            &[
                "Microsoft.Network/networkSecurityGroups/write",
                "Microsoft.Network/networkInterfaces/write",
            ],
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
                "Microsoft.Compute/locations/operations/read",
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
            "restore the NSGs recorded by isolate",
        )
        .calls(Effect::Reads, &[VM_READ, "Microsoft.Network/locations/operations/read"])
        .calls(Effect::Reads, NETWORK_READ)
        .calls(Effect::Mutates, &["Microsoft.Network/networkInterfaces/write"])
}
