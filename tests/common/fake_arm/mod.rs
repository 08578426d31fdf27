//! A fake Azure Resource Manager for the Azure plugin's tests, serving the
//! official REST examples in `tests/data/azure-rest-examples/` (see the
//! README there for their provenance), and a fake blob service for the
//! boot-diagnostics SAS URIs it hands out.
//!
//! It is faithful where irhost depends on ARM's behaviour: bodies are the
//! examples' with ids and names rewritten for the seeded resources; it
//! checks `api-version` per resource type and the bearer token on every
//! request (401 for a missing or placeholder token); snapshot PUT and PATCH
//! answer 202 with `Azure-AsyncOperation` and `Location` headers and the
//! resource stays `Updating` until the operation has been polled to its
//! end; NSG, security rule, NIC and VM PATCH writes answer 200/201 with
//! `Azure-AsyncOperation`; powerOff and deallocate answer 202 with a
//! `Location` only (as their examples do), the VM `stopping` /
//! `deallocating` until it is polled to the end; a locked snapshot cannot
//! be deleted (409 ScopeLocked). It keeps state for everything the plugin
//! changes (snapshots, tags, NSGs and their rules, the NSG and public IPs
//! on each NIC, disks' delete options, power states, locks), computes the
//! read-only back references ARM returns (an NSG's `networkInterfaces` and
//! `subnets`, a subnet's `ipConfigurations`, a public IP's
//! `ipConfiguration`) and logs every request, so tests assert on ARM's
//! state, not on what the plugin says it did. Throttling (429 +
//! Retry-After) can be injected per path.
//!
//! Modules: [`routes`] (authentication, api-versions, operations, locks,
//! dispatch), [`compute`] (VMs, snapshots), [`network`] (NSGs, rules, NICs,
//! subnets), [`blob`] (the storage account behind boot diagnostics),
//! [`run_command`] (the guest agent's Run Command, scripts run for real),
//! [`seed`] (resources a test starts with).
#![allow(dead_code)]

mod blob;
mod compute;
mod network;
mod routes;
mod run_command;
mod seed;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

// Not every test crate that includes `common` seeds VMs.
#[allow(unused_imports)]
pub use blob::{Blob, BlobRequest};
#[allow(unused_imports)]
pub use run_command::RunCommandRecord;
#[allow(unused_imports)]
pub use seed::{NicSpec, VmSpec, SCREENSHOT_PNG};

/// The api-versions ARM accepts per resource type (lower-cased): the
/// examples' and the ones irhost's SDK packages send.
const API_VERSIONS: &[(&str, &[&str])] = &[
    (
        "microsoft.compute/virtualmachines",
        &["2024-07-01", "2025-04-01"],
    ),
    ("microsoft.compute/disks", &["2024-03-02", "2025-01-02"]),
    ("microsoft.compute/snapshots", &["2024-03-02", "2025-01-02"]),
    (
        "microsoft.compute/locations",
        &["2024-03-02", "2024-07-01", "2025-01-02", "2025-04-01"],
    ),
    (
        "microsoft.network/networkinterfaces",
        &["2024-03-01", "2024-07-01"],
    ),
    (
        "microsoft.network/networksecuritygroups",
        &["2024-03-01", "2024-07-01"],
    ),
    (
        "microsoft.network/virtualnetworks",
        &["2024-03-01", "2024-07-01"],
    ),
    (
        "microsoft.network/publicipaddresses",
        &["2024-03-01", "2024-07-01"],
    ),
    ("microsoft.network/locations", &["2024-03-01", "2024-07-01"]),
    ("microsoft.authorization/locks", &["2020-05-01"]),
];

pub const SUBSCRIPTION: &str = "00000000-1111-2222-3333-444444444444";
pub const TENANT: &str = "irhost-test-tenant";
pub const CLIENT_ID: &str = "irhost-test-client";
pub const CLIENT_SECRET: &str = "irhost-test-secret";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub api_version: Option<String>,
    /// The whole query string (`api-version=…&skipShutdown=false`).
    pub query: String,
    pub status: u16,
}

/// What finishing an operation does to ARM's state.
#[derive(Debug, Clone)]
pub(crate) enum Done {
    /// The resource's provisioningState becomes Succeeded.
    Provisioned,
    /// That, and the named security rule's of the NSG.
    Rule(String),
    /// The VM reaches this power state (`stopped`, `deallocated`).
    Power(String),
    /// A Run Command: done when its script has ended.
    RunCommand,
}

pub(crate) struct Operation {
    /// The resource the operation acts on (lower-cased id).
    pub resource: String,
    pub polls_left: u32,
    pub done: Done,
}

#[derive(Default)]
pub struct ArmState {
    /// Resources by lower-cased id.
    pub resources: BTreeMap<String, Value>,
    /// Locks by lower-cased lock id (`{scope}/providers/Microsoft.Authorization/locks/{name}`).
    pub locks: BTreeMap<String, Value>,
    pub(crate) operations: BTreeMap<String, Operation>,
    pub requests: Vec<Logged>,
    /// Throttle the next N requests whose path contains the key.
    pub throttle: Vec<(String, u32)>,
    pub tokens_issued: u32,
    pub(crate) next_op: u64,
    /// How many polls an operation answers InProgress before Succeeded.
    pub op_polls: u32,
    /// Power state per VM (lower-cased id): `running` unless a test or a
    /// power action changed it.
    pub power: BTreeMap<String, String>,
    /// Blobs of the fake storage account, by path (`/container/name`).
    pub blobs: BTreeMap<String, Blob>,
    /// Requests to the fake storage account.
    pub blob_requests: Vec<BlobRequest>,
    /// Every Run Command received, in order.
    pub run_commands: Vec<RunCommandRecord>,
    /// VMs without a guest agent (lower-cased ids).
    pub agentless: std::collections::BTreeSet<String>,
}

impl ArmState {
    /// The power state of a VM.
    pub fn power_of(&self, vm_id: &str) -> String {
        self.power
            .get(&vm_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| "running".into())
    }
}

/// The example files, loaded once.
pub(crate) struct Examples {
    pub vm: Value,
    pub instance_view: Value,
    pub disk: Value,
    pub nic: Value,
    pub nsg_get: Value,
    pub nsg_create: Value,
    pub rule_create: Value,
    pub subnet: Value,
    pub public_ip: Value,
    pub lock: Value,
    pub power_off: Value,
    pub deallocate: Value,
    pub boot_diagnostics: Value,
    pub run_command: Value,
}

fn example(rel: &str, status: &str) -> Value {
    let path = super::repo_root()
        .join("tests/data/azure-rest-examples")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["responses"][status].clone()
}

pub(crate) fn examples() -> Examples {
    Examples {
        vm: example("compute/VirtualMachine_Get.json", "200")["body"].clone(),
        instance_view: example("compute/VirtualMachine_Get_InstanceView.json", "200")["body"]
            .clone(),
        disk: example("compute/Disk_Get.json", "200")["body"].clone(),
        nic: example("network/NetworkInterfaceGet.json", "200")["body"].clone(),
        nsg_get: example("network/NetworkSecurityGroupGet.json", "200")["body"].clone(),
        nsg_create: example("network/NetworkSecurityGroupCreate.json", "201")["body"].clone(),
        rule_create: example("network/NetworkSecurityGroupRuleCreate.json", "201")["body"].clone(),
        subnet: example("network/SubnetGet.json", "200")["body"].clone(),
        public_ip: example("network/PublicIpAddressGet.json", "200")["body"].clone(),
        lock: example(
            "resources/ManagementLocks_CreateOrUpdateAtResourceLevel.json",
            "201",
        )["body"]
            .clone(),
        power_off: example("compute/VirtualMachine_PowerOff_MinimumSet_Gen.json", "202"),
        deallocate: example(
            "compute/VirtualMachine_Deallocate_MinimumSet_Gen.json",
            "202",
        ),
        boot_diagnostics: example(
            "compute/VirtualMachine_RetrieveBootDiagnosticsData.json",
            "200",
        )["body"]
            .clone(),
        run_command: example("compute/VirtualMachine_RunCommand.json", "200")["body"].clone(),
    }
}

/// Replace every string in `value` equal to or containing `from` by `to`.
pub(crate) fn rewrite(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite(v, from, to)),
        _ => {}
    }
}

pub fn rg_id(rg: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}")
}

pub fn id_of(rg: &str, kind: &str, name: &str) -> String {
    format!("{}/providers/{kind}/{name}", rg_id(rg))
}

pub struct FakeArm {
    pub state: Arc<Mutex<ArmState>>,
    pub port: u16,
    /// The port of the fake storage account (boot-diagnostics blobs).
    pub blob_port: u16,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    token: String,
}

impl FakeArm {
    /// Start on 127.0.0.1 with a free port (and the storage account on
    /// another). Bearer tokens are issued by its own
    /// `/{tenant}/oauth2/v2.0/token` to CLIENT_ID / CLIENT_SECRET.
    pub fn start() -> FakeArm {
        let token = format!("arm-token-{}", std::process::id());
        let state = Arc::new(Mutex::new(ArmState {
            op_polls: 1,
            ..Default::default()
        }));
        let bind = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        };
        let (arm_listener, blob_listener) = (bind(), bind());
        let port = arm_listener.local_addr().unwrap().port();
        let blob_port = blob_listener.local_addr().unwrap().port();
        let app_state = AppState {
            state: state.clone(),
            examples: Arc::new(examples()),
            token: token.clone(),
            blob_base: format!("http://127.0.0.1:{blob_port}"),
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let serve = |listener: std::net::TcpListener, app: axum::Router| {
                    let mut rx = rx.clone();
                    async move {
                        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                        axum::serve(listener, app)
                            .with_graceful_shutdown(async move {
                                let _ = rx.wait_for(|stop| *stop).await;
                            })
                            .await
                            .unwrap();
                    }
                };
                let arm = axum::Router::new()
                    .fallback(handle)
                    .with_state(app_state.clone());
                let storage = axum::Router::new()
                    .fallback(blob::handle)
                    .with_state(app_state);
                tokio::join!(serve(arm_listener, arm), serve(blob_listener, storage));
            });
        });
        FakeArm {
            state,
            port,
            blob_port,
            shutdown: Some(tx),
            thread: Some(thread),
            token,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The storage account's endpoint, as an `allow_hosts` entry names it.
    pub fn blob_host(&self) -> String {
        format!("127.0.0.1:{}", self.blob_port)
    }

    /// Environment for the irhost process: the fake as ARM endpoint and as
    /// token authority, with client credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_RESOURCE_MANAGER_URL", self.url()),
            ("AZURE_AUTHORITY_HOST", self.url()),
            ("AZURE_TENANT_ID", TENANT.into()),
            ("AZURE_CLIENT_ID", CLIENT_ID.into()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()),
        ]
    }

    pub fn with_state<T>(&self, f: impl FnOnce(&mut ArmState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn resource(&self, id: &str) -> Option<Value> {
        self.with_state(|s| s.resources.get(&id.to_ascii_lowercase()).cloned())
    }

    /// Resources whose id contains `/providers/{kind}/` in a resource group.
    pub fn resources_of(&self, rg: &str, kind: &str) -> Vec<Value> {
        let prefix = format!("{}/providers/{}/", rg_id(rg), kind).to_ascii_lowercase();
        self.with_state(|s| {
            s.resources
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    pub fn locks_on(&self, resource_id: &str) -> Vec<Value> {
        let prefix = format!(
            "{}/providers/microsoft.authorization/locks/",
            resource_id.to_ascii_lowercase()
        );
        self.with_state(|s| {
            s.locks
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.with_state(|s| s.requests.clone())
    }

    pub fn blob_requests(&self) -> Vec<BlobRequest> {
        self.with_state(|s| s.blob_requests.clone())
    }

    /// The power state of a VM (`running`, `stopped`, `deallocated`, …).
    pub fn power(&self, vm_id: &str) -> String {
        self.with_state(|s| s.power_of(vm_id))
    }

    pub fn set_power(&self, vm_id: &str, state: &str) {
        self.with_state(|s| s.power.insert(vm_id.to_ascii_lowercase(), state.into()));
    }

    /// Put a resource as ARM would return it.
    pub fn put(&self, body: Value) {
        let id = body["id"].as_str().unwrap().to_ascii_lowercase();
        self.with_state(|s| s.resources.insert(id, body));
    }

    /// Change a stored resource in place.
    pub fn edit(&self, id: &str, f: impl FnOnce(&mut Value)) {
        self.with_state(|s| f(s.resources.get_mut(&id.to_ascii_lowercase()).unwrap()));
    }

    /// Set the OS type of a VM's OS disk (`Linux`, `Windows`; the
    /// example's VM is Windows).
    pub fn set_os_type(&self, vm_id: &str, os: &str) {
        self.edit(vm_id, |vm| {
            vm["properties"]["storageProfile"]["osDisk"]["osType"] = json!(os)
        });
    }

    /// Take the guest agent off a VM: no `vmAgent` in its instance view,
    /// Run Command refused.
    pub fn remove_agent(&self, vm_id: &str) {
        self.with_state(|s| s.agentless.insert(vm_id.to_ascii_lowercase()));
    }

    /// The Run Commands received: command id, script lines and exit status
    /// (`None` while running).
    pub fn run_commands(&self) -> Vec<(String, Vec<String>, Option<i32>)> {
        self.with_state(|s| {
            s.run_commands
                .iter_mut()
                .map(|r| {
                    let exit = r.exit_status();
                    (r.command_id.clone(), r.script.clone(), exit)
                })
                .collect()
        })
    }

    /// Answer the next `count` requests whose path contains `path_part` with 429.
    pub fn throttle(&self, path_part: &str, count: u32) {
        self.with_state(|s| s.throttle.push((path_part.to_ascii_lowercase(), count)));
    }
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub state: Arc<Mutex<ArmState>>,
    pub examples: Arc<Examples>,
    pub token: String,
    /// `http://127.0.0.1:PORT` of the storage account.
    pub blob_base: String,
}

pub(crate) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// A request body as JSON, or ARM's 400 for content it cannot read.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &e.to_string(),
        ))
    })
}

pub(crate) fn json_response(
    status: StatusCode,
    body: Value,
    headers: &[(&str, String)],
) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    add_headers(&mut response, headers);
    response
}

pub(crate) fn add_headers(response: &mut Response, headers: &[(&str, String)]) {
    for (name, value) in headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
}

pub(crate) fn not_found(kind: &str, name: &str, rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

async fn handle(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let api_version = params
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.clone());
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let response = routes::route(
        &app,
        routes::Incoming {
            method: &method,
            path: &path,
            params: &params,
            headers: &headers,
            body: &body,
            base: &base,
        },
    );
    app.state.lock().unwrap().requests.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        api_version,
        query,
        status: response.status().as_u16(),
    });
    response
}

/// Whether the examples directory is present (it is part of the repository).
pub fn examples_present() -> bool {
    Path::new(&super::repo_root().join("tests/data/azure-rest-examples/README.md")).exists()
}
