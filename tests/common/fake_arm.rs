//! A fake Azure Resource Manager for the Azure plugin's tests, serving the
//! official REST examples in `tests/data/azure-rest-examples/` (see the
//! README there for their provenance).
//!
//! It is faithful where irhost depends on ARM's behaviour: bodies are the
//! examples' with ids and names rewritten for the seeded resources; it
//! checks `api-version` per resource type and the bearer token on every
//! request (401 for a missing or placeholder token); snapshot PUT and PATCH
//! answer 202 with `Azure-AsyncOperation` and `Location` headers and the
//! resource stays `Updating` until the operation has been polled to its
//! end; NSG and NIC PUTs answer 201/200 with `Azure-AsyncOperation`; a
//! locked snapshot cannot be deleted (409 ScopeLocked). It keeps state for
//! everything the plugin changes (snapshots, tags, NSGs, the NSG on each NIC,
//! locks) and logs every request, so tests assert on ARM's state, not on
//! what the plugin says it did. Throttling (429 + Retry-After) can be
//! injected per path.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

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
    pub status: u16,
}

struct Operation {
    /// Resource whose provisioningState becomes Succeeded when done.
    resource: String,
    polls_left: u32,
}

#[derive(Default)]
pub struct ArmState {
    /// Resources by lower-cased id.
    pub resources: BTreeMap<String, Value>,
    /// Locks by lower-cased lock id (`{scope}/providers/Microsoft.Authorization/locks/{name}`).
    pub locks: BTreeMap<String, Value>,
    operations: BTreeMap<String, Operation>,
    pub requests: Vec<Logged>,
    /// Throttle the next N requests whose path contains the key.
    pub throttle: Vec<(String, u32)>,
    pub tokens_issued: u32,
    next_op: u64,
    /// How many polls an operation answers InProgress before Succeeded.
    pub op_polls: u32,
}

/// The example files, loaded once.
struct Examples {
    vm: Value,
    instance_view: Value,
    disk: Value,
    nic: Value,
    nsg_get: Value,
    nsg_create: Value,
    subnet: Value,
    public_ip: Value,
    lock: Value,
    power_off: Value,
}

fn example(rel: &str, status: &str) -> Value {
    let path = super::repo_root()
        .join("tests/data/azure-rest-examples")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["responses"][status].clone()
}

fn examples() -> Examples {
    Examples {
        vm: example("compute/VirtualMachine_Get.json", "200")["body"].clone(),
        instance_view: example("compute/VirtualMachine_Get_InstanceView.json", "200")["body"]
            .clone(),
        disk: example("compute/Disk_Get.json", "200")["body"].clone(),
        nic: example("network/NetworkInterfaceGet.json", "200")["body"].clone(),
        nsg_get: example("network/NetworkSecurityGroupGet.json", "200")["body"].clone(),
        nsg_create: example("network/NetworkSecurityGroupCreate.json", "201")["body"].clone(),
        subnet: example("network/SubnetGet.json", "200")["body"].clone(),
        public_ip: example("network/PublicIpAddressGet.json", "200")["body"].clone(),
        lock: example(
            "resources/ManagementLocks_CreateOrUpdateAtResourceLevel.json",
            "201",
        )["body"]
            .clone(),
        power_off: example("compute/VirtualMachine_PowerOff_MinimumSet_Gen.json", "202"),
    }
}

/// Replace every string in `value` equal to or containing `from` by `to`.
fn rewrite(value: &mut Value, from: &str, to: &str) {
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

pub struct FakeArm {
    pub state: Arc<Mutex<ArmState>>,
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    token: String,
}

impl FakeArm {
    /// Start on 127.0.0.1 with a free port. Bearer tokens are issued by its
    /// own `/{tenant}/oauth2/v2.0/token` to CLIENT_ID / CLIENT_SECRET.
    pub fn start() -> FakeArm {
        let token = format!("arm-token-{}", std::process::id());
        let state = Arc::new(Mutex::new(ArmState {
            op_polls: 1,
            ..Default::default()
        }));
        let app_state = AppState {
            state: state.clone(),
            examples: Arc::new(examples()),
            token: token.clone(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(app_state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        FakeArm {
            state,
            port,
            shutdown: Some(tx),
            thread: Some(thread),
            token,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

    /// Put a resource as ARM would return it.
    pub fn put(&self, body: Value) {
        let id = body["id"].as_str().unwrap().to_ascii_lowercase();
        self.with_state(|s| s.resources.insert(id, body));
    }

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

    /// Seed a VM with its disks, NICs, subnets and public IPs.
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

        // Subnets, public IPs and NICs.
        let mut nic_refs = Vec::new();
        for (i, nic_spec) in spec.nics.iter().enumerate() {
            let vnet_id = id_of(rg, "Microsoft.Network/virtualNetworks", &nic_spec.vnet);
            let subnet_id = format!("{vnet_id}/subnets/{}", nic_spec.subnet);
            if self.resource(&subnet_id).is_none() {
                let mut subnet = ex.subnet.clone();
                subnet["id"] = json!(subnet_id);
                subnet["name"] = json!(nic_spec.subnet);
                self.put(subnet);
            }
            let nic_id = id_of(rg, "Microsoft.Network/networkInterfaces", &nic_spec.name);
            let mut nic = ex.nic.clone();
            rewrite(
                &mut nic,
                "/subscriptions/subid/resourceGroups/rg1",
                &rg_id(rg),
            );
            rewrite(
                &mut nic,
                "networkInterfaces/test-nic",
                &format!("networkInterfaces/{}", nic_spec.name),
            );
            nic["name"] = json!(nic_spec.name);
            nic["location"] = json!(spec.location);
            let props = nic["properties"].as_object_mut().unwrap();
            let mut config = props["ipConfigurations"][0].clone();
            config["properties"]["privateIPAddress"] = json!(nic_spec.private_ip);
            config["properties"]["subnet"] = json!({ "id": subnet_id });
            match &nic_spec.public_ip {
                Some(address) => {
                    let pip_name = format!("{}-ip", nic_spec.name);
                    let pip_id = id_of(rg, "Microsoft.Network/publicIPAddresses", &pip_name);
                    let mut pip = ex.public_ip.clone();
                    pip["id"] = json!(pip_id);
                    pip["name"] = json!(pip_name);
                    pip["location"] = json!(spec.location);
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
            props.insert("primary".into(), json!(i == 0));
            props.insert("virtualMachine".into(), json!({ "id": vm_id }));
            match &nic_spec.nsg {
                Some(nsg) => {
                    let nsg_id = id_of(rg, "Microsoft.Network/networkSecurityGroups", nsg);
                    if self.resource(&nsg_id).is_none() {
                        self.seed_nsg(rg, nsg, &spec.location);
                    }
                    props.insert("networkSecurityGroup".into(), json!({ "id": nsg_id }));
                }
                None => {
                    props.remove("networkSecurityGroup");
                }
            }
            self.put(nic);
            nic_refs.push(json!({ "id": nic_id, "properties": { "primary": i == 0 } }));
        }

        // The VM from VirtualMachine_Get.
        let mut vm = ex.vm.clone();
        vm["id"] = json!(vm_id);
        vm["name"] = json!(spec.name);
        vm["location"] = json!(spec.location);
        let storage = &mut vm["properties"]["storageProfile"];
        storage["osDisk"]["name"] = json!(os_name);
        storage["osDisk"]["managedDisk"]["id"] = json!(disk_id(&os_name));
        let template = storage["dataDisks"][0].clone();
        let data: Vec<Value> = data_names
            .iter()
            .enumerate()
            .map(|(lun, name)| {
                let mut d = template.clone();
                d["lun"] = json!(lun);
                d["name"] = json!(name);
                d["managedDisk"]["id"] = json!(disk_id(name));
                d
            })
            .collect();
        storage["dataDisks"] = json!(data);
        vm["properties"]["networkProfile"] = json!({ "networkInterfaces": nic_refs });
        self.put(vm);
        vm_id
    }

    /// Answer the next `count` requests whose path contains `path_part` with 429.
    pub fn throttle(&self, path_part: &str, count: u32) {
        self.with_state(|s| s.throttle.push((path_part.to_ascii_lowercase(), count)));
    }
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct AppState {
    state: Arc<Mutex<ArmState>>,
    examples: Arc<Examples>,
    token: String,
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// A request body as JSON, or ARM's 400 for content it cannot read.
fn json_body(body: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &e.to_string(),
        ))
    })
}

fn json_response(status: StatusCode, body: Value, headers: &[(&str, String)]) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

async fn handle(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let api_version = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned())
    });
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let response = route(
        &app,
        &method,
        &path,
        api_version.as_deref(),
        &headers,
        &body,
        &base,
    );
    app.state.lock().unwrap().requests.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        api_version,
        status: response.status().as_u16(),
    });
    response
}

fn route(
    app: &AppState,
    method: &Method,
    path: &str,
    api_version: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    base: &str,
) -> Response {
    let lower = path.to_ascii_lowercase();
    // The token endpoint (client-credentials flow).
    if lower.ends_with("/oauth2/v2.0/token") && method == Method::POST {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            && lower.starts_with(&format!("/{}/", TENANT.to_ascii_lowercase()));
        if !ok {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({ "error": "invalid_client" }),
                &[],
            );
        }
        app.state.lock().unwrap().tokens_issued += 1;
        return json_response(
            StatusCode::OK,
            json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": app.token }),
            &[],
        );
    }

    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", app.token) {
        let message = if bearer.is_empty() {
            "Authentication failed. The 'Authorization' header is missing.".to_string()
        } else {
            "Authentication failed. The access token is not valid.".to_string()
        };
        return arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", &message);
    }

    // Resource type, for the api-version check.
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let lower_segments: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let kind = resource_type(&lower_segments);
    let Some(version) = api_version else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    if let Some(kind) = &kind {
        if let Some((_, versions)) = API_VERSIONS.iter().find(|(k, _)| k == kind) {
            if !versions.contains(&version) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidApiVersionParameter",
                    &format!(
                        "The api-version '{version}' is invalid. The supported versions are '{}'.",
                        versions.join(",")
                    ),
                );
            }
        }
    }

    // Injected throttling.
    {
        let mut state = app.state.lock().unwrap();
        if let Some(entry) = state
            .throttle
            .iter_mut()
            .find(|(p, n)| *n > 0 && lower.contains(p.as_str()))
        {
            entry.1 -= 1;
            let mut r = arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled.",
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            return r;
        }
    }

    let mut state = app.state.lock().unwrap();
    let ex = &app.examples;

    // Operation status (Azure-AsyncOperation): .../locations/L/operations/ID
    // answers 200 with a JSON status; operation results (Location):
    // .../locations/L/operationResults/ID answers 202 while running, then 200.
    if lower_segments.len() == 8
        && lower_segments[2] == "providers"
        && (lower_segments[6] == "operations" || lower_segments[6] == "operationresults")
    {
        let by_status = lower_segments[6] == "operations";
        let id = lower_segments[7].clone();
        let Some(op) = state.operations.get_mut(&id) else {
            return arm_error(
                StatusCode::NOT_FOUND,
                "OperationNotFound",
                "The operation was not found.",
            );
        };
        if op.polls_left > 0 {
            op.polls_left -= 1;
            return if by_status {
                json_response(
                    StatusCode::OK,
                    json!({ "name": id, "status": "InProgress" }),
                    &[],
                )
            } else {
                StatusCode::ACCEPTED.into_response()
            };
        }
        let resource = op.resource.clone();
        if let Some(r) = state.resources.get_mut(&resource) {
            r["properties"]["provisioningState"] = json!("Succeeded");
        }
        return if by_status {
            json_response(
                StatusCode::OK,
                json!({ "name": id, "status": "Succeeded" }),
                &[],
            )
        } else {
            let body = state
                .resources
                .get(&resource)
                .cloned()
                .unwrap_or(Value::Null);
            json_response(StatusCode::OK, body, &[])
        };
    }

    // Locks: {scope}/providers/Microsoft.Authorization/locks[/{name}]
    if let Some(i) = lower.find("/providers/microsoft.authorization/locks") {
        let scope = lower[..i].to_string();
        let rest = &path[i + "/providers/microsoft.authorization/locks".len()..];
        let name = rest.trim_start_matches('/');
        if name.is_empty() {
            if method != Method::GET {
                return arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "");
            }
            let prefix = format!("{scope}/providers/microsoft.authorization/locks/");
            let value: Vec<Value> = state
                .locks
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect();
            return json_response(StatusCode::OK, json!({ "value": value }), &[]);
        }
        if !state.resources.contains_key(&scope) {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("The resource '{scope}' was not found."),
            );
        }
        let key = format!(
            "{scope}/providers/microsoft.authorization/locks/{}",
            name.to_ascii_lowercase()
        );
        return match *method {
            Method::PUT => {
                let request = match json_body(body) {
                    Ok(v) => v,
                    Err(r) => return *r,
                };
                let level = request["properties"]["level"].as_str().unwrap_or("");
                if !["CanNotDelete", "ReadOnly"].contains(&level) {
                    return arm_error(
                        StatusCode::BAD_REQUEST,
                        "LockLevelInvalid",
                        "The lock level must be CanNotDelete or ReadOnly.",
                    );
                }
                let mut lock = ex.lock.clone();
                lock["id"] = json!(format!(
                    "{}/providers/Microsoft.Authorization/locks/{name}",
                    &path[..i]
                ));
                lock["name"] = json!(name);
                lock["properties"] = request["properties"].clone();
                let existed = state.locks.insert(key, lock.clone()).is_some();
                json_response(
                    if existed {
                        StatusCode::OK
                    } else {
                        StatusCode::CREATED
                    },
                    lock,
                    &[],
                )
            }
            Method::GET => match state.locks.get(&key) {
                Some(l) => json_response(StatusCode::OK, l.clone(), &[]),
                None => arm_error(
                    StatusCode::NOT_FOUND,
                    "LockNotFound",
                    "The lock was not found.",
                ),
            },
            Method::DELETE => {
                state.locks.remove(&key);
                StatusCode::OK.into_response()
            }
            _ => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", ""),
        };
    }

    // Resource-group scoped resources.
    if lower_segments.len() < 6
        || lower_segments[0] != "subscriptions"
        || lower_segments[2] != "resourcegroups"
        || lower_segments[4] != "providers"
    {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No route for {path}"),
        );
    }
    let rg = segments[3];
    let namespace_type = format!(
        "{}/{}",
        lower_segments[5],
        lower_segments.get(6).cloned().unwrap_or_default()
    );
    let name = segments.get(7).copied();
    let action = lower_segments.get(8).cloned();
    let id_lower = if lower_segments.len() >= 8 {
        format!("/{}", lower_segments[..8].join("/"))
    } else {
        String::new()
    };
    let exact_lower = lower.trim_end_matches('/').to_string();
    let location_of = |state: &ArmState, id: &str| {
        state
            .resources
            .get(id)
            .and_then(|r| r["location"].as_str().map(str::to_string))
            .unwrap_or_else(|| "westus".into())
    };
    let new_op = |state: &mut ArmState,
                  resource: &str,
                  ns: &str,
                  location: &str,
                  version: &str|
     -> Vec<(&'static str, String)> {
        state.next_op += 1;
        let op_id = format!("op-{:06}", state.next_op);
        let polls = state.op_polls;
        state.operations.insert(
            op_id.clone(),
            Operation {
                resource: resource.to_string(),
                polls_left: polls,
            },
        );
        let loc = location.to_ascii_lowercase().replace(' ', "");
        let op_url = |kind: &str| {
            format!("{base}/subscriptions/{SUBSCRIPTION}/providers/{ns}/locations/{loc}/{kind}/{op_id}?api-version={version}")
        };
        vec![
            ("azure-asyncoperation", op_url("operations")),
            ("location", op_url("operationResults")),
        ]
    };

    match (namespace_type.as_str(), name, action.as_deref()) {
        // Snapshots in a resource group.
        ("microsoft.compute/snapshots", None, None) if *method == Method::GET => {
            let prefix = format!(
                "/subscriptions/{}/resourcegroups/{}/providers/microsoft.compute/snapshots/",
                lower_segments[1], lower_segments[3]
            );
            let value: Vec<Value> = state
                .resources
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect();
            json_response(StatusCode::OK, json!({ "value": value }), &[])
        }
        ("microsoft.compute/virtualmachines", Some(_), Some("instanceview"))
            if *method == Method::GET =>
        {
            if !state.resources.contains_key(&id_lower) {
                return not_found(&namespace_type, name.unwrap_or(""), rg);
            }
            json_response(StatusCode::OK, ex.instance_view.clone(), &[])
        }
        ("microsoft.compute/virtualmachines", Some(_), Some(verb)) if *method == Method::POST => {
            // Power actions: never expected from irhost; served as the example does, and logged.
            let _ = verb;
            json_response(
                StatusCode::ACCEPTED,
                ex.power_off.get("body").cloned().unwrap_or(Value::Null),
                &[],
            )
        }
        ("microsoft.compute/snapshots", Some(snap_name), None) => {
            let id = format!(
                "{}/providers/Microsoft.Compute/snapshots/{snap_name}",
                &path[..path.to_ascii_lowercase().find("/providers/").unwrap()]
            );
            match *method {
                Method::GET => match state.resources.get(&id_lower) {
                    Some(r) => json_response(StatusCode::OK, r.clone(), &[]),
                    None => not_found("Microsoft.Compute/snapshots", snap_name, rg),
                },
                Method::PUT => {
                    let request = match json_body(body) {
                        Ok(v) => v,
                        Err(r) => return *r,
                    };
                    let source = request["properties"]["creationData"]["sourceResourceId"]
                        .as_str()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    let source = if source.starts_with('/') {
                        source
                    } else {
                        format!("/{source}")
                    };
                    let Some(disk) = state.resources.get(&source).cloned() else {
                        return arm_error(
                            StatusCode::NOT_FOUND,
                            "NotFound",
                            &format!("Resource {source} not found."),
                        );
                    };
                    let location = request["location"].as_str().unwrap_or("").to_string();
                    let mut snap = json!({
                        "id": id,
                        "name": snap_name,
                        "type": "Microsoft.Compute/snapshots",
                        "location": location,
                        "tags": request["tags"].clone(),
                        "sku": { "name": "Standard_LRS", "tier": "Standard" },
                        "properties": request["properties"].clone(),
                    });
                    let props = snap["properties"].as_object_mut().unwrap();
                    props.insert("provisioningState".into(), json!("Updating"));
                    props.insert(
                        "diskSizeGB".into(),
                        disk["properties"]["diskSizeGB"].clone(),
                    );
                    props.insert("timeCreated".into(), json!(chrono::Utc::now().to_rfc3339()));
                    props.insert(
                        "uniqueId".into(),
                        json!(format!("{:032x}", state.next_op + 1)),
                    );
                    props.insert("diskState".into(), json!("Unattached"));
                    if let Some(os) = disk["properties"]["osType"].as_str() {
                        if disk["managedBy"].as_str().is_some_and(|vm| {
                            state
                                .resources
                                .get(&vm.to_ascii_lowercase())
                                .is_some_and(|v| {
                                    v["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
                                        .as_str()
                                        .is_some_and(|d| d.eq_ignore_ascii_case(&source))
                                })
                        }) {
                            props.insert("osType".into(), json!(os));
                        }
                    }
                    state.resources.insert(id_lower.clone(), snap.clone());
                    let headers = new_op(
                        &mut state,
                        &id_lower,
                        "Microsoft.Compute",
                        &location,
                        version,
                    );
                    json_response(StatusCode::ACCEPTED, snap, &headers)
                }
                Method::PATCH => {
                    let request = match json_body(body) {
                        Ok(v) => v,
                        Err(r) => return *r,
                    };
                    let Some(snap) = state.resources.get_mut(&id_lower) else {
                        return not_found("Microsoft.Compute/snapshots", snap_name, rg);
                    };
                    if let Some(tags) = request.get("tags") {
                        snap["tags"] = tags.clone();
                    }
                    if let Some(props) = request.get("properties").and_then(|p| p.as_object()) {
                        for (k, v) in props {
                            snap["properties"][k] = v.clone();
                        }
                    }
                    snap["properties"]["provisioningState"] = json!("Updating");
                    let body = snap.clone();
                    let location = location_of(&state, &id_lower);
                    let headers = new_op(
                        &mut state,
                        &id_lower,
                        "Microsoft.Compute",
                        &location,
                        version,
                    );
                    json_response(StatusCode::ACCEPTED, body, &headers)
                }
                Method::DELETE => {
                    let locked: Vec<String> = state
                        .locks
                        .iter()
                        .filter(|(k, _)| {
                            k.starts_with(&format!("{id_lower}/providers/"))
                                || k.starts_with(&format!(
                                    "{}/providers/microsoft.authorization/",
                                    rg_lower(&lower_segments)
                                ))
                        })
                        .map(|(_, v)| v["id"].as_str().unwrap_or("").to_string())
                        .collect();
                    if !locked.is_empty() {
                        return arm_error(
                            StatusCode::CONFLICT,
                            "ScopeLocked",
                            &format!("The scope '{id}' cannot perform delete operation because following scope(s) are locked: '{}'. Please remove the lock and try again.", locked.join("', '")),
                        );
                    }
                    match state.resources.remove(&id_lower) {
                        Some(_) => StatusCode::OK.into_response(),
                        None => StatusCode::NO_CONTENT.into_response(),
                    }
                }
                _ => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", ""),
            }
        }
        ("microsoft.network/networksecuritygroups", Some(nsg_name), None)
            if *method == Method::PUT =>
        {
            let request = match json_body(body) {
                Ok(v) => v,
                Err(r) => return *r,
            };
            let id = format!(
                "{}/providers/Microsoft.Network/networkSecurityGroups/{nsg_name}",
                &path[..lower.find("/providers/").unwrap()]
            );
            let mut nsg = ex.nsg_create.clone();
            rewrite(&mut nsg, "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/testnsg", &id);
            nsg["name"] = json!(nsg_name);
            nsg["location"] = request["location"].clone();
            if let Some(tags) = request.get("tags") {
                nsg["tags"] = tags.clone();
            }
            let mut rules = Vec::new();
            for rule in request["properties"]["securityRules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let rule_name = rule["name"].as_str().unwrap_or("").to_string();
                let mut r = rule.clone();
                r["id"] = json!(format!("{id}/securityRules/{rule_name}"));
                r["properties"]["provisioningState"] = json!("Succeeded");
                rules.push(r);
            }
            nsg["properties"]["securityRules"] = json!(rules);
            nsg["properties"]["flushConnection"] = json!(request["properties"]["flushConnection"]
                .as_bool()
                .unwrap_or(false));
            nsg["properties"]["provisioningState"] = json!("Updating");
            let existed = state
                .resources
                .insert(id_lower.clone(), nsg.clone())
                .is_some();
            let location = nsg["location"].as_str().unwrap_or("westus").to_string();
            let headers = new_op(
                &mut state,
                &id_lower,
                "Microsoft.Network",
                &location,
                version,
            );
            json_response(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                nsg,
                &headers,
            )
        }
        ("microsoft.network/networkinterfaces", Some(nic_name), None) if *method == Method::PUT => {
            let request = match json_body(body) {
                Ok(v) => v,
                Err(r) => return *r,
            };
            let Some(existing) = state.resources.get(&id_lower).cloned() else {
                return not_found("Microsoft.Network/networkInterfaces", nic_name, rg);
            };
            let mut nic = existing.clone();
            if let Some(tags) = request.get("tags") {
                nic["tags"] = tags.clone();
            }
            match request["properties"]
                .get("networkSecurityGroup")
                .and_then(|n| n["id"].as_str())
            {
                Some(nsg_id) => {
                    if !state.resources.contains_key(&nsg_id.to_ascii_lowercase()) {
                        return arm_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidResourceReference",
                            &format!(
                                "Resource {nsg_id} referenced by resource {} was not found.",
                                existing["id"].as_str().unwrap_or("")
                            ),
                        );
                    }
                    nic["properties"]["networkSecurityGroup"] = json!({ "id": nsg_id });
                }
                None => {
                    nic["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("networkSecurityGroup");
                }
            }
            if let Some(configs) = request["properties"].get("ipConfigurations") {
                if configs.as_array().is_none_or(|c| c.is_empty()) {
                    return arm_error(
                        StatusCode::BAD_REQUEST,
                        "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                        "A network interface must have at least one IP configuration.",
                    );
                }
            }
            nic["properties"]["provisioningState"] = json!("Updating");
            state.resources.insert(id_lower.clone(), nic.clone());
            let location = nic["location"].as_str().unwrap_or("westus").to_string();
            let headers = new_op(
                &mut state,
                &id_lower,
                "Microsoft.Network",
                &location,
                version,
            );
            json_response(StatusCode::OK, nic, &headers)
        }
        (_, Some(_), _) if *method == Method::GET => {
            let key = if action.is_some() {
                exact_lower.clone()
            } else {
                id_lower.clone()
            };
            match state.resources.get(&key) {
                Some(r) => json_response(StatusCode::OK, r.clone(), &[]),
                None => not_found(&namespace_type, name.unwrap_or(""), rg),
            }
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} {path} is not served by the fake ARM"),
        ),
    }
}

fn rg_lower(segments: &[String]) -> String {
    format!(
        "/subscriptions/{}/resourcegroups/{}",
        segments[1], segments[3]
    )
}

fn not_found(kind: &str, name: &str, rg: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

/// `namespace/type` of a request path (lower-cased), for the api-version check.
fn resource_type(segments: &[String]) -> Option<String> {
    if let Some(i) = segments.iter().rposition(|s| s == "providers") {
        let ns = segments.get(i + 1)?;
        let kind = segments.get(i + 2)?;
        return Some(format!("{ns}/{kind}"));
    }
    None
}

/// Whether the examples directory is present (it is part of the repository).
pub fn examples_present() -> bool {
    Path::new(&super::repo_root().join("tests/data/azure-rest-examples/README.md")).exists()
}
