//! What a test starts with: VMs with their disks, NICs, subnets, NSGs and
//! public IPs, built from the examples; security rules, subnet NSGs and
//! shared disks added on top; the boot-diagnostics blobs of each VM.

use serde_json::{json, Value};

use super::blob::Blob;
use super::{examples, id_of, rewrite, rg_id, FakeArm};

/// A NIC to seed.
pub struct NicSpec {
    pub name: String,
    pub vnet: String,
    pub subnet: String,
    pub private_ip: String,
    /// NSG on the NIC (seeded from NetworkSecurityGroupGet: port 80 open).
    pub nsg: Option<String>,
    pub public_ip: Option<String>,
}

/// A VM to seed.
pub struct VmSpec {
    pub name: String,
    pub location: String,
    pub nics: Vec<NicSpec>,
    pub data_disks: usize,
}

/// A 4×3 PNG: what the storage account holds as each VM's screenshot
/// unless a test puts another.
pub const SCREENSHOT_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x06, 0x00, 0x00, 0x00, 0xb4, 0xf4, 0xae,
    0xc6, 0x00, 0x00, 0x00, 0x1c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x38, 0xc1, 0xa0, 0xf1,
    0x1f, 0x19, 0x33, 0x9c, 0x90, 0x03, 0x32, 0x90, 0x30, 0xc3, 0x09, 0x1b, 0x20, 0x03, 0x09, 0x03,
    0x00, 0x5f, 0xd1, 0x18, 0x9d, 0x52, 0xf4, 0x81, 0x9a, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Where a VM's boot-diagnostics blobs live in the storage account, as
/// Azure names them (`bootdiagnostics-<9 chars of the name>-<vmId>/`).
pub fn boot_diagnostics_blobs(vm_name: &str, vm_uid: &str) -> (String, String) {
    let short: String = vm_name.chars().take(9).collect::<String>().to_lowercase();
    let container = format!("/bootdiagnostics-{short}-{vm_uid}");
    (
        format!("{container}/{vm_name}.{vm_uid}.screenshot.bmp"),
        format!("{container}/{vm_name}.{vm_uid}.serialconsole.log"),
    )
}

impl FakeArm {
    /// Seed an NSG from NetworkSecurityGroupGet (rule1 allows port 80 from anywhere).
    pub fn seed_nsg(&self, rg: &str, name: &str, location: &str) -> String {
        let ex = examples();
        let mut nsg = ex.nsg_get.clone();
        rewrite(
            &mut nsg,
            "/subscriptions/subid/resourceGroups/rg1",
            &rg_id(rg),
        );
        rewrite(
            &mut nsg,
            "networkSecurityGroups/testnsg",
            &format!("networkSecurityGroups/{name}"),
        );
        nsg["name"] = json!(name);
        nsg["location"] = json!(location);
        let id = nsg["id"].as_str().unwrap().to_string();
        self.put(nsg);
        id
    }

    /// Add (or replace) a custom rule of an NSG: `properties` as ARM
    /// takes them (access, direction, priority, protocol, prefixes, ports).
    pub fn add_rule(&self, nsg_id: &str, name: &str, properties: Value) {
        let mut rule = examples().rule_create;
        rule["name"] = json!(name);
        rule["id"] = json!(format!("{nsg_id}/securityRules/{name}"));
        let mut props = properties;
        props["provisioningState"] = json!("Succeeded");
        rule["properties"] = props;
        self.edit(nsg_id, |nsg| {
            let rules = nsg["properties"]["securityRules"].as_array_mut().unwrap();
            rules.retain(|r| r["name"] != name);
            rules.push(rule);
        });
    }

    /// Put an NSG on a subnet (seeding the NSG when it does not exist).
    pub fn set_subnet_nsg(&self, rg: &str, vnet: &str, subnet: &str, nsg: &str) -> String {
        let nsg_id = id_of(rg, "Microsoft.Network/networkSecurityGroups", nsg);
        if self.resource(&nsg_id).is_none() {
            self.seed_nsg(rg, nsg, "westus");
        }
        let subnet_id = format!(
            "{}/subnets/{subnet}",
            id_of(rg, "Microsoft.Network/virtualNetworks", vnet)
        );
        self.edit(&subnet_id, |s| {
            s["properties"]["networkSecurityGroup"] = json!({ "id": nsg_id })
        });
        nsg_id
    }

    /// Seed a VM with its disks, NICs, subnets and public IPs. The OS disk
    /// and data disk 0 are deleted with the VM (`deleteOption: Delete`, the
    /// portal's default), the other data disks detached (`Detach`); boot
    /// diagnostics are on, with a screenshot and a serial log in the
    /// storage account.
    pub fn seed_vm(&self, rg: &str, spec: &VmSpec) -> String {
        let ex = examples();
        let vm_id = id_of(rg, "Microsoft.Compute/virtualMachines", &spec.name);
        let disk_id = |n: &str| id_of(rg, "Microsoft.Compute/disks", n);

        // Disks from Disk_Get, managed by the VM.
        let os_name = format!("{}-osdisk", spec.name);
        let data_names: Vec<String> = (0..spec.data_disks)
            .map(|i| format!("{}-data{i}", spec.name))
            .collect();
        for name in std::iter::once(&os_name).chain(data_names.iter()) {
            let mut disk = ex.disk.clone();
            disk["id"] = json!(disk_id(name));
            disk["name"] = json!(name);
            disk["location"] = json!(spec.location);
            disk["managedBy"] = json!(vm_id);
            self.put(disk);
        }

        let nic_refs: Vec<Value> = spec
            .nics
            .iter()
            .enumerate()
            .map(|(i, nic)| self.seed_nic(rg, &spec.location, &vm_id, nic, i == 0))
            .collect();

        // The VM from VirtualMachine_Get.
        let mut vm = ex.vm.clone();
        vm["id"] = json!(vm_id);
        vm["name"] = json!(spec.name);
        vm["location"] = json!(spec.location);
        // A stable vmId per VM id (FNV-1a), in the example's format.
        let hash = vm_id
            .to_ascii_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let uid = format!("0f47b100-583c-48e3-a4c0-{:012x}", hash & 0xffff_ffff_ffff);
        vm["properties"]["vmId"] = json!(uid);
        let storage = &mut vm["properties"]["storageProfile"];
        storage["osDisk"]["name"] = json!(os_name);
        storage["osDisk"]["managedDisk"]["id"] = json!(disk_id(&os_name));
        storage["osDisk"]["deleteOption"] = json!("Delete");
        let template = storage["dataDisks"][0].clone();
        let data: Vec<Value> = data_names
            .iter()
            .enumerate()
            .map(|(lun, name)| {
                let mut d = template.clone();
                d["lun"] = json!(lun);
                d["name"] = json!(name);
                d["managedDisk"]["id"] = json!(disk_id(name));
                d["deleteOption"] = json!(if lun == 0 { "Delete" } else { "Detach" });
                d
            })
            .collect();
        storage["dataDisks"] = json!(data);
        vm["properties"]["networkProfile"] = json!({ "networkInterfaces": nic_refs });
        self.put(vm);

        let (screenshot, serial) = boot_diagnostics_blobs(&spec.name, &uid);
        let log = format!(
            "[    0.000000] Linux version 6.8.0-azure (buildd@lcy02-amd64-008)\n[    1.204311] systemd[1]: Hostname set to <{}>.\n",
            spec.name
        );
        self.with_state(|s| {
            s.blobs
                .insert(screenshot, Blob::new(SCREENSHOT_PNG.to_vec(), "image/png"));
            s.blobs
                .insert(serial, Blob::new(log.into_bytes(), "text/plain"));
        });
        vm_id
    }

    /// A NIC of a VM with its subnet and public IP; its reference for the
    /// VM's network profile.
    fn seed_nic(
        &self,
        rg: &str,
        location: &str,
        vm_id: &str,
        spec: &NicSpec,
        primary: bool,
    ) -> Value {
        let ex = examples();
        let vnet_id = id_of(rg, "Microsoft.Network/virtualNetworks", &spec.vnet);
        let subnet_id = format!("{vnet_id}/subnets/{}", spec.subnet);
        if self.resource(&subnet_id).is_none() {
            let mut subnet = ex.subnet.clone();
            subnet["id"] = json!(subnet_id);
            subnet["name"] = json!(spec.subnet);
            self.put(subnet);
        }
        let nic_id = id_of(rg, "Microsoft.Network/networkInterfaces", &spec.name);
        let mut nic = ex.nic.clone();
        rewrite(
            &mut nic,
            "/subscriptions/subid/resourceGroups/rg1",
            &rg_id(rg),
        );
        rewrite(
            &mut nic,
            "networkInterfaces/test-nic",
            &format!("networkInterfaces/{}", spec.name),
        );
        nic["name"] = json!(spec.name);
        nic["location"] = json!(location);
        let props = nic["properties"].as_object_mut().unwrap();
        let mut config = props["ipConfigurations"][0].clone();
        config["properties"]["privateIPAddress"] = json!(spec.private_ip);
        config["properties"]["subnet"] = json!({ "id": subnet_id });
        match &spec.public_ip {
            Some(address) => {
                let pip_name = format!("{}-ip", spec.name);
                let pip_id = id_of(rg, "Microsoft.Network/publicIPAddresses", &pip_name);
                let mut pip = ex.public_ip.clone();
                pip["id"] = json!(pip_id);
                pip["name"] = json!(pip_name);
                pip["location"] = json!(location);
                pip["properties"]["ipAddress"] = json!(address);
                pip["properties"]["ipConfiguration"] = json!({ "id": config["id"].clone() });
                self.put(pip);
                config["properties"]["publicIPAddress"] = json!({ "id": pip_id });
            }
            None => {
                config["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("publicIPAddress");
            }
        }
        props.insert("ipConfigurations".into(), json!([config]));
        props.insert("primary".into(), json!(primary));
        props.insert("virtualMachine".into(), json!({ "id": vm_id }));
        match &spec.nsg {
            Some(nsg) => {
                let nsg_id = id_of(rg, "Microsoft.Network/networkSecurityGroups", nsg);
                if self.resource(&nsg_id).is_none() {
                    self.seed_nsg(rg, nsg, location);
                }
                props.insert("networkSecurityGroup".into(), json!({ "id": nsg_id }));
            }
            None => {
                props.remove("networkSecurityGroup");
            }
        }
        self.put(nic);
        json!({ "id": nic_id, "properties": { "primary": primary } })
    }

    /// A shared disk (Disk_Get with `maxShares`) attached to every VM of
    /// `vms` at the next free LUN; ARM lists them in `managedByExtended`.
    pub fn seed_shared_disk(&self, rg: &str, name: &str, max_shares: u32, vms: &[&str]) -> String {
        let id = id_of(rg, "Microsoft.Compute/disks", name);
        let mut disk = examples().disk;
        disk["id"] = json!(id);
        disk["name"] = json!(name);
        disk["managedBy"] = json!(vms[0]);
        disk["managedByExtended"] = json!(vms);
        disk["sku"] = json!({ "name": "Premium_LRS" });
        disk["properties"]["maxShares"] = json!(max_shares);
        disk["properties"]["diskSizeGB"] = json!(256);
        disk["properties"].as_object_mut().unwrap().remove("osType");
        self.put(disk);
        for vm in vms {
            self.edit(vm, |vm| {
                let disks = vm["properties"]["storageProfile"]["dataDisks"]
                    .as_array_mut()
                    .unwrap();
                let lun = disks
                    .iter()
                    .filter_map(|d| d["lun"].as_u64())
                    .max()
                    .map_or(0, |l| l + 1);
                disks.push(json!({
                    "lun": lun,
                    "name": name,
                    "createOption": "Attach",
                    "caching": "None",
                    "managedDisk": { "storageAccountType": "Premium_LRS", "id": id },
                    "deleteOption": "Detach",
                    "diskSizeGB": 256
                }));
            });
        }
        id
    }

    /// Turn boot diagnostics off on a VM (its model says so, and
    /// retrieveBootDiagnosticsData is refused).
    pub fn disable_boot_diagnostics(&self, vm_id: &str) {
        self.edit(vm_id, |vm| {
            vm["properties"]["diagnosticsProfile"] =
                json!({ "bootDiagnostics": { "enabled": false } })
        });
    }

    /// The bytes the storage account serves as a VM's screenshot and serial log.
    pub fn boot_diagnostics_content(&self, vm_id: &str) -> (Vec<u8>, Vec<u8>) {
        let vm = self.resource(vm_id).unwrap();
        let (screenshot, serial) = boot_diagnostics_blobs(
            vm["name"].as_str().unwrap(),
            vm["properties"]["vmId"].as_str().unwrap(),
        );
        self.with_state(|s| {
            (
                s.blobs[&screenshot].bytes.clone(),
                s.blobs[&serial].bytes.clone(),
            )
        })
    }

    /// Replace a VM's screenshot.
    pub fn set_screenshot(&self, vm_id: &str, bytes: Vec<u8>, content_type: &str) {
        let vm = self.resource(vm_id).unwrap();
        let (screenshot, _) = boot_diagnostics_blobs(
            vm["name"].as_str().unwrap(),
            vm["properties"]["vmId"].as_str().unwrap(),
        );
        self.with_state(|s| s.blobs.insert(screenshot, Blob::new(bytes, content_type)));
    }
}
