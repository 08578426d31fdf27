//! The network file systems an instance can reach from its subnets, for the
//! inventory's shared storage: the EFS mount targets and the FSx file
//! systems in the subnets of the instance's ENIs (aws-sdk-efs, aws-sdk-fsx).
//!
//! - EFS: `DescribeFileSystems` (every file system of the account and
//!   region; the API has no filter by subnet or VPC), then
//!   `DescribeMountTargets` per file system; a mount target in one of the
//!   instance's subnets is one `efs-mount-target` record: `id` the file
//!   system, `endpoints` the mount target's id and its IP addresses,
//!   attributes its subnet, zone, lifecycle state, ENI and security groups.
//! - FSx: `DescribeFileSystems`; a file system with a subnet among the
//!   instance's is one `fsx` record: `endpoints` its DNS name, the private
//!   IPs of its ENIs and the type's own endpoints (Windows' preferred file
//!   server, OpenZFS' endpoint, ONTAP's management endpoint), attributes its
//!   type, storage capacity, lifecycle and security groups.
//! - The mount targets' and file systems' ENIs are read with one EC2
//!   `DescribeNetworkInterfaces` (filtered by id, so a vanished ENI is no
//!   error): their security groups and addresses.
//!
//! `attached_to` holds the target instance only: these are "reachable
//! from" records (the instance has an ENI in the storage's subnet); which
//! other machines mount the file system neither EFS nor FSx says.
//!
//! These reads are optional: a missing permission, a region or partition
//! without the service, or any other failure of them (except throttling,
//! which the engine retries with the whole step) does not fail the
//! enumeration. It is logged (a warning in the journal) and reported in
//! the inventory as a record of kind `unread` (`id` the service,
//! `elasticfilesystem` or `fsx`; attributes `error-kind` and `error`), so
//! that the inventory says what it could not look at; the interfaces are
//! returned as read.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, NetworkInterface as Eni};
use aws_sdk_efs::types::MountTargetDescription;
use aws_sdk_fsx::types::FileSystem as FsxFileSystem;
use irhost_plugin_sdk::prelude::*;
// The smithy error types, the same for every service crate.
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use irhost_plugin_sdk_aws::{Call, Failure, ServiceErrors};

use crate::aws::{param_or, Ec2};

const EFS_ERRORS: ServiceErrors = ServiceErrors {
    service: "EFS",
    not_found: &["FileSystemNotFound", "MountTargetNotFound"],
    throttled: &["ThrottlingException", "TooManyRequestsException"],
    throttled_statuses: &[],
    denied: &[
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "OptInRequired",
    ],
    conflict: &[],
    invalid_input: &["BadRequest", "ValidationException"],
    name_by_status: true,
};

const FSX_ERRORS: ServiceErrors = ServiceErrors {
    service: "FSx",
    not_found: &["FileSystemNotFound"],
    throttled: &["ThrottlingException"],
    throttled_statuses: &[],
    denied: &[
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "OptInRequired",
    ],
    conflict: &[],
    invalid_input: &["BadRequest", "ValidationException"],
    name_by_status: true,
};

/// The EFS mount targets and FSx file systems in the subnets of `enis`,
/// and an `unread` record for each service that could not be read.
pub async fn shared_file_systems(
    ec2: &Ec2,
    target: &Target,
    enis: &[Eni],
) -> Result<Vec<SharedStorage>, PluginError> {
    let subnets: BTreeSet<String> = enis
        .iter()
        .filter_map(|e| e.subnet_id().map(str::to_string))
        .collect();
    if subnets.is_empty() {
        return Ok(Vec::new());
    }
    let clients = Clients::for_ec2(ec2)?;
    let mut out = Vec::new();
    let mount_targets = match clients.efs_mount_targets(&subnets).await {
        Ok(found) => found,
        Err(e) => {
            out.push(unread("elasticfilesystem", "EFS mount targets", target, e)?);
            Vec::new()
        }
    };
    let file_systems = match clients.fsx_file_systems(&subnets).await {
        Ok(found) => found,
        Err(e) => {
            out.push(unread("fsx", "FSx file systems", target, e)?);
            Vec::new()
        }
    };
    let eni_ids: BTreeSet<String> = mount_targets
        .iter()
        .filter_map(|(_, mt)| mt.network_interface_id().map(str::to_string))
        .chain(
            file_systems
                .iter()
                .flat_map(|fs| fs.network_interface_ids().iter().cloned()),
        )
        .collect();
    let storage_enis = match storage_interfaces(ec2, &eni_ids).await {
        Ok(found) => found,
        Err(PluginError::Throttled(t)) => return Err(PluginError::Throttled(t)),
        Err(e) => {
            log::warn(&format!(
                "{}: the ENIs of its shared file systems were not read ({e:?}): no security groups or ENI addresses for them",
                target.id
            ));
            BTreeMap::new()
        }
    };
    out.extend(
        mount_targets
            .iter()
            .map(|(name, mt)| efs_record(target, name.as_deref(), mt, &storage_enis)),
    );
    out.extend(
        file_systems
            .iter()
            .map(|fs| fsx_record(target, &subnets, fs, &storage_enis)),
    );
    log::info(&format!(
        "{}: {} EFS mount target(s), {} FSx file system(s) in its subnets",
        target.id,
        mount_targets.len(),
        file_systems.len()
    ));
    Ok(out)
}

/// The EFS and FSx clients, configured as the EC2 client is (its region,
/// the same `endpoint_url` and `max_attempts` parameters, no credentials).
struct Clients {
    efs: aws_sdk_efs::Client,
    fsx: aws_sdk_fsx::Client,
    retry_after_ms: u64,
}

impl Clients {
    fn for_ec2(ec2: &Ec2) -> Result<Clients, PluginError> {
        let endpoint: Option<String> = irhost_plugin_sdk::param("endpoint_url")?;
        let max_attempts: u32 = param_or("max_attempts", 1)?;
        let config =
            irhost_plugin_sdk_aws::sdk_config(&ec2.region, endpoint.as_deref(), max_attempts);
        Ok(Clients {
            efs: aws_sdk_efs::Client::from_conf(
                aws_sdk_efs::config::Builder::from(&config)
                    .allow_no_auth()
                    .build(),
            ),
            fsx: aws_sdk_fsx::Client::from_conf(
                aws_sdk_fsx::config::Builder::from(&config)
                    .allow_no_auth()
                    .build(),
            ),
            retry_after_ms: ec2.retry_after_ms,
        })
    }

    fn efs_err<E>(&self, operation: &str, error: aws_sdk_efs::error::SdkError<E>) -> PluginError
    where
        E: aws_sdk_efs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        EFS_ERRORS.classify(
            &Call::new(operation, self.retry_after_ms),
            failure_of(&error),
        )
    }

    fn fsx_err<E>(&self, operation: &str, error: aws_sdk_fsx::error::SdkError<E>) -> PluginError
    where
        E: aws_sdk_fsx::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        FSX_ERRORS.classify(
            &Call::new(operation, self.retry_after_ms),
            failure_of(&error),
        )
    }

    /// Every EFS mount target in `subnets`, with its file system's name.
    async fn efs_mount_targets(
        &self,
        subnets: &BTreeSet<String>,
    ) -> Result<Vec<(Option<String>, MountTargetDescription)>, PluginError> {
        let mut file_systems = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .efs
                .describe_file_systems()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| self.efs_err("DescribeFileSystems", e))?;
            file_systems.extend(page.file_systems().iter().map(|fs| {
                (
                    fs.file_system_id().to_string(),
                    fs.name().map(str::to_string),
                )
            }));
            match page.next_marker().filter(|m| !m.is_empty()) {
                Some(next) => marker = Some(next.to_string()),
                None => break,
            }
        }
        let mut found = Vec::new();
        for (id, name) in file_systems {
            let mut marker: Option<String> = None;
            loop {
                let page = match self
                    .efs
                    .describe_mount_targets()
                    .file_system_id(&id)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| self.efs_err("DescribeMountTargets", e))
                {
                    Ok(page) => page,
                    // Deleted since it was listed.
                    Err(PluginError::NotFound(_)) => break,
                    Err(e) => return Err(e),
                };
                found.extend(
                    page.mount_targets()
                        .iter()
                        .filter(|mt| subnets.contains(mt.subnet_id()))
                        .map(|mt| (name.clone(), mt.clone())),
                );
                match page.next_marker().filter(|m| !m.is_empty()) {
                    Some(next) => marker = Some(next.to_string()),
                    None => break,
                }
            }
        }
        Ok(found)
    }

    /// Every FSx file system with a subnet among `subnets`.
    async fn fsx_file_systems(
        &self,
        subnets: &BTreeSet<String>,
    ) -> Result<Vec<FsxFileSystem>, PluginError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .fsx
                .describe_file_systems()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.fsx_err("DescribeFileSystems", e))?;
            found.extend(
                page.file_systems()
                    .iter()
                    .filter(|fs| fs.subnet_ids().iter().any(|s| subnets.contains(s)))
                    .cloned(),
            );
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        Ok(found)
    }
}

/// What an EFS or FSx error says. An error body the JSON protocols cannot
/// read (the XML error page of an emulator or a proxy) still names its
/// `<Code>` and `<Message>`; a 403 that names nothing is a denial.
fn failure_of<E>(error: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut failure = Failure::of(error);
    if failure.code.is_some() {
        return failure;
    }
    let body = error
        .raw_response()
        .and_then(|r| r.body().bytes())
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    if let Some(code) = xml_text(&body, "Code") {
        failure.code = Some(code);
        failure.message = xml_text(&body, "Message").unwrap_or_default();
        failure.transport = None;
    } else if failure.status == Some(403) {
        failure.code = Some("AccessDenied".into());
        failure.message = format!("HTTP 403: {}", cut(&body, 200));
        failure.transport = None;
    }
    failure
}

/// The text of the first `<tag>` element of `xml`.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + end].trim().to_string())
}

/// At most `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// An optional read that failed: logged, and reported as an `unread`
/// record; throttling is returned (the engine retries the step).
fn unread(
    service: &str,
    what: &str,
    target: &Target,
    error: PluginError,
) -> Result<SharedStorage, PluginError> {
    let (kind, message) = match error {
        PluginError::Throttled(t) => return Err(PluginError::Throttled(t)),
        PluginError::NotFound(m) => ("not-found", m),
        PluginError::Denied(m) => ("denied", m),
        PluginError::InvalidInput(m) => ("invalid-input", m),
        PluginError::Conflict(m) => ("conflict", m),
        PluginError::Unsupported(m) => ("unsupported", m),
        PluginError::Provider(p) => ("provider", format!("{}: {}", p.code, p.message)),
    };
    let message = cut(&message, 500);
    log::warn(&format!(
        "{}: {what} not read ({kind}: {message}); the inventory goes on without them",
        target.id
    ));
    Ok(SharedStorage {
        id: service.to_string(),
        kind: "unread".into(),
        attached_to: vec![target.id.clone()],
        endpoints: Vec::new(),
        attributes: vec![
            ("error-kind".into(), kind.to_string()),
            ("error".into(), message),
        ],
    })
}

/// The ENIs of the mount targets and file systems, by id.
async fn storage_interfaces(
    ec2: &Ec2,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, Eni>, PluginError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let by_id = Filter::builder()
        .name("network-interface-id")
        .set_values(Some(ids.iter().cloned().collect()))
        .build();
    let out = ec2
        .client
        .describe_network_interfaces()
        .filters(by_id)
        .send()
        .await
        .map_err(|e| ec2.err("DescribeNetworkInterfaces", e))?;
    Ok(out
        .network_interfaces()
        .iter()
        .filter_map(|eni| {
            eni.network_interface_id()
                .map(|id| (id.to_string(), eni.clone()))
        })
        .collect())
}

/// The security group ids of an ENI, comma-separated.
fn groups_of(eni: &Eni) -> String {
    eni.groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect::<Vec<_>>()
        .join(",")
}

/// The private IPs of an ENI, the primary first.
fn ips_of(eni: &Eni) -> Vec<String> {
    let mut ips: Vec<String> = eni
        .private_ip_address()
        .map(str::to_string)
        .into_iter()
        .collect();
    for a in eni.private_ip_addresses() {
        if let Some(ip) = a.private_ip_address() {
            if !ips.iter().any(|i| i == ip) {
                ips.push(ip.to_string());
            }
        }
    }
    ips
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !value.is_empty() && !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

fn efs_record(
    target: &Target,
    name: Option<&str>,
    mt: &MountTargetDescription,
    enis: &BTreeMap<String, Eni>,
) -> SharedStorage {
    let mut endpoints = vec![mt.mount_target_id().to_string()];
    for ip in [mt.ip_address(), mt.ipv6_address()].into_iter().flatten() {
        push_unique(&mut endpoints, ip);
    }
    let mut attributes: Vec<(String, String)> = vec![
        ("mount-target-id".into(), mt.mount_target_id().to_string()),
        ("subnet".into(), mt.subnet_id().to_string()),
        (
            "lifecycle-state".into(),
            mt.life_cycle_state().as_str().to_string(),
        ),
    ];
    let optional = [
        ("file-system-name", name),
        ("availability-zone", mt.availability_zone_name()),
        ("availability-zone-id", mt.availability_zone_id()),
        ("vpc", mt.vpc_id()),
        ("owner", mt.owner_id()),
        ("network-interface", mt.network_interface_id()),
    ];
    for (key, value) in optional {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            attributes.push((key.into(), value.to_string()));
        }
    }
    if let Some(eni) = mt.network_interface_id().and_then(|id| enis.get(id)) {
        attributes.push(("security-groups".into(), groups_of(eni)));
    }
    SharedStorage {
        id: mt.file_system_id().to_string(),
        kind: "efs-mount-target".into(),
        attached_to: vec![target.id.clone()],
        endpoints,
        attributes,
    }
}

fn fsx_record(
    target: &Target,
    subnets: &BTreeSet<String>,
    fs: &FsxFileSystem,
    enis: &BTreeMap<String, Eni>,
) -> SharedStorage {
    let mut endpoints = Vec::new();
    if let Some(dns) = fs.dns_name() {
        push_unique(&mut endpoints, dns);
    }
    let mut groups: Vec<String> = Vec::new();
    for id in fs.network_interface_ids() {
        if let Some(eni) = enis.get(id) {
            for ip in ips_of(eni) {
                push_unique(&mut endpoints, &ip);
            }
            for g in eni.groups().iter().filter_map(|g| g.group_id()) {
                push_unique(&mut groups, g);
            }
        }
    }
    let mut attributes: Vec<(String, String)> = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            attributes.push((key.to_string(), value));
        }
    };
    put(
        "file-system-type",
        fs.file_system_type().map(|t| t.as_str().to_string()),
    );
    put(
        "storage-capacity-gib",
        fs.storage_capacity().map(|c| c.to_string()),
    );
    put(
        "storage-type",
        fs.storage_type().map(|t| t.as_str().to_string()),
    );
    put("lifecycle", fs.lifecycle().map(|l| l.as_str().to_string()));
    put("vpc", fs.vpc_id().map(str::to_string));
    put("subnets", Some(fs.subnet_ids().join(",")));
    put(
        "subnets-of-target",
        Some(
            fs.subnet_ids()
                .iter()
                .filter(|s| subnets.contains(*s))
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
        ),
    );
    put(
        "network-interfaces",
        Some(fs.network_interface_ids().join(",")),
    );
    put("security-groups", Some(groups.join(",")));
    put("owner", fs.owner_id().map(str::to_string));
    put("arn", fs.resource_arn().map(str::to_string));
    if let Some(w) = fs.windows_configuration() {
        put(
            "deployment-type",
            w.deployment_type().map(|d| d.as_str().to_string()),
        );
        put(
            "active-directory",
            w.active_directory_id().map(str::to_string),
        );
        put(
            "remote-administration-endpoint",
            w.remote_administration_endpoint().map(str::to_string),
        );
        if let Some(ip) = w.preferred_file_server_ip() {
            push_unique(&mut endpoints, ip);
        }
    }
    if let Some(l) = fs.lustre_configuration() {
        put(
            "deployment-type",
            l.deployment_type().map(|d| d.as_str().to_string()),
        );
        put("mount-name", l.mount_name().map(str::to_string));
    }
    if let Some(z) = fs.open_zfs_configuration() {
        put(
            "deployment-type",
            z.deployment_type().map(|d| d.as_str().to_string()),
        );
        if let Some(ip) = z.endpoint_ip_address() {
            push_unique(&mut endpoints, ip);
        }
    }
    if let Some(o) = fs.ontap_configuration() {
        put(
            "deployment-type",
            o.deployment_type().map(|d| d.as_str().to_string()),
        );
        if let Some(m) = o.endpoints().and_then(|e| e.management()) {
            if let Some(dns) = m.dns_name() {
                push_unique(&mut endpoints, dns);
            }
            for ip in m.ip_addresses() {
                push_unique(&mut endpoints, ip);
            }
        }
    }
    SharedStorage {
        id: fs.file_system_id().unwrap_or_default().to_string(),
        kind: "fsx".into(),
        attached_to: vec![target.id.clone()],
        endpoints,
        attributes,
    }
}
