//! Microsoft.Compute in the fake ARM: VMs (GET, the instance view with
//! the VM's power state, PATCH of disks' delete options and tags, powerOff
//! and deallocate as long-running operations, retrieveBootDiagnosticsData
//! minting SAS URIs on the fake storage account, runCommand (in
//! [`super::run_command`])) and snapshots (list, GET,
//! PUT and PATCH as long-running operations, DELETE refused under a lock).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::routes::Req;
use super::seed::boot_diagnostics_blobs;
use super::{arm_error, json_response, not_found, AppState, ArmState, Done};

pub(crate) fn route(app: &AppState, state: &mut ArmState, req: &Req) -> Option<Response> {
    let response = match (
        req.namespace_type.as_str(),
        req.name,
        req.action.as_deref(),
        req.method,
    ) {
        ("microsoft.compute/snapshots", None, None, &Method::GET) => list_snapshots(state, req),
        ("microsoft.compute/snapshots", Some(name), None, _) => snapshot(state, req, name),
        ("microsoft.compute/virtualmachines", Some(name), action, method) => {
            if !state.resources.contains_key(&req.id_lower) {
                return Some(not_found("Microsoft.Compute/virtualMachines", name, req.rg));
            }
            match (action, method) {
                (Some("instanceview"), &Method::GET) => instance_view(app, state, req),
                (None, &Method::PATCH) => patch_vm(state, req),
                (Some("poweroff"), &Method::POST) => power(state, req, "stopping", "stopped"),
                (Some("deallocate"), &Method::POST) => {
                    power(state, req, "deallocating", "deallocated")
                }
                (Some("retrievebootdiagnosticsdata"), &Method::POST) => {
                    boot_diagnostics(app, state, req)
                }
                (Some("runcommand"), &Method::POST) => super::run_command::start(state, req),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(response)
}

fn list_snapshots(state: &ArmState, req: &Req) -> Response {
    let prefix = format!(
        "/subscriptions/{}/resourcegroups/{}/providers/microsoft.compute/snapshots/",
        req.lower_segments[1], req.lower_segments[3]
    );
    let value: Vec<Value> = state
        .resources
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| v.clone())
        .collect();
    json_response(StatusCode::OK, json!({ "value": value }), &[])
}

/// The example's instance view with the VM's power state.
fn instance_view(app: &AppState, state: &ArmState, req: &Req) -> Response {
    let power = state.power_of(&req.id_lower);
    let mut view = app.examples.instance_view.clone();
    if state.agentless.contains(&req.id_lower) {
        if let Some(view) = view.as_object_mut() {
            view.remove("vmAgent");
        }
    }
    if let Some(statuses) = view["statuses"].as_array_mut() {
        for status in statuses.iter_mut() {
            if status["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("PowerState/"))
            {
                status["code"] = json!(format!("PowerState/{power}"));
                status["displayStatus"] = json!(format!("VM {power}"));
            }
        }
    }
    json_response(StatusCode::OK, view, &[])
}

/// PATCH a VM: tags, and the storage profile's disks (`osDisk` fields
/// merged; `dataDisks` is the whole list, as ARM takes it: a listed LUN is
/// merged, `toBeDetached` or an unlisted LUN is detached).
fn patch_vm(state: &mut ArmState, req: &Req) -> Response {
    let request = match req.json() {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut vm = state.resources[&req.id_lower].clone();
    if let Some(tags) = request.get("tags") {
        vm["tags"] = tags.clone();
    }
    let storage = &request["properties"]["storageProfile"];
    if let Some(os) = storage.get("osDisk").and_then(Value::as_object) {
        for (k, v) in os {
            vm["properties"]["storageProfile"]["osDisk"][k] = v.clone();
        }
    }
    let mut detached = Vec::new();
    if let Some(wanted) = storage.get("dataDisks").and_then(Value::as_array) {
        let current = vm["properties"]["storageProfile"]["dataDisks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut disks = Vec::new();
        for w in wanted {
            let Some(existing) = current.iter().find(|d| d["lun"] == w["lun"]) else {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    &format!("Data disk with LUN {} is not attached to the VM; attaching disks is not served by the fake ARM.", w["lun"]),
                );
            };
            let mut disk = existing.clone();
            for (k, v) in w.as_object().into_iter().flatten() {
                disk[k] = v.clone();
            }
            if disk["toBeDetached"] == true {
                detached.push(disk);
            } else {
                disks.push(disk);
            }
        }
        for d in &current {
            if !disks.iter().any(|x| x["lun"] == d["lun"])
                && !detached.iter().any(|x| x["lun"] == d["lun"])
            {
                detached.push(d.clone());
            }
        }
        vm["properties"]["storageProfile"]["dataDisks"] = json!(disks);
    }
    for disk in detached {
        if let Some(id) = disk["managedDisk"]["id"].as_str() {
            if let Some(d) = state.resources.get_mut(&id.to_ascii_lowercase()) {
                d.as_object_mut().unwrap().remove("managedBy");
            }
        }
    }
    vm["properties"]["provisioningState"] = json!("Updating");
    state.resources.insert(req.id_lower.clone(), vm.clone());
    let mut headers =
        state.async_headers(&req.id_lower, Done::Provisioned, "Microsoft.Compute", req);
    headers.truncate(1);
    json_response(StatusCode::OK, vm, &headers)
}

/// powerOff / deallocate: 202 with a `Location` only, as their examples
/// answer (Compute's form: …/locations/L/operations/ID?monitor=true); the
/// VM is `transient` until the operation is polled to its end. A VM
/// already there answers 200 with no body (the examples' 200); powerOff of
/// a deallocated VM is a 409, as the 2024-07-01 spec describes it.
fn power(state: &mut ArmState, req: &Req, transient: &str, end: &str) -> Response {
    if let Some(skip) = req.param("skipShutdown") {
        if skip != "true" && skip != "false" {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                &format!("The value '{skip}' of parameter 'skipShutdown' is not a boolean."),
            );
        }
    }
    let now = state.power_of(&req.id_lower);
    if end == "stopped" && (now == "deallocated" || now == "deallocating") {
        // As the powerOff spec says: not allowed once deallocated.
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            &format!(
                "Operation 'powerOff' is not allowed on VM '{}' since the VM is deallocated or marked to be deallocated.",
                req.name.unwrap_or_default()
            ),
        );
    }
    if now == end {
        return StatusCode::OK.into_response();
    }
    state.power.insert(req.id_lower.clone(), transient.into());
    let location = state.location_of(&req.id_lower);
    let (status, _) = state.new_op(
        &req.id_lower,
        Done::Power(end.into()),
        "Microsoft.Compute",
        &location,
        req,
    );
    let mut response = StatusCode::ACCEPTED.into_response();
    super::add_headers(
        &mut response,
        &[("location", format!("{status}&monitor=true"))],
    );
    response
}

/// SAS URIs for the VM's screenshot and serial log on the fake storage
/// account, in the example's shape. With boot diagnostics off, a 409
/// (the fake's choice: no example shows this answer).
fn boot_diagnostics(app: &AppState, state: &mut ArmState, req: &Req) -> Response {
    let minutes: i64 = match req.param("sasUriExpirationTimeInMinutes") {
        None => 120,
        Some(text) => match text.parse() {
            Ok(m) if (1..=1440).contains(&m) => m,
            _ => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    "sasUriExpirationTimeInMinutes must be between 1 and 1440.",
                )
            }
        },
    };
    let vm = &state.resources[&req.id_lower];
    if vm["properties"]["diagnosticsProfile"]["bootDiagnostics"]["enabled"] != true {
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            "Boot diagnostics is not enabled for this virtual machine.",
        );
    }
    let (screenshot, serial) = boot_diagnostics_blobs(
        vm["name"].as_str().unwrap_or_default(),
        vm["properties"]["vmId"].as_str().unwrap_or_default(),
    );
    let mut body = app.examples.boot_diagnostics.clone();
    for (field, path) in [
        ("consoleScreenshotBlobUri", screenshot),
        ("serialConsoleLogBlobUri", serial),
    ] {
        match state.mint_sas(&path, minutes) {
            Some(sas) => body[field] = json!(format!("{}{path}?{sas}", app.blob_base)),
            None => {
                body.as_object_mut().unwrap().remove(field);
            }
        }
    }
    json_response(StatusCode::OK, body, &[])
}

fn snapshot(state: &mut ArmState, req: &Req, snap_name: &str) -> Response {
    let id = format!(
        "{}/providers/Microsoft.Compute/snapshots/{snap_name}",
        &req.path[..req.lower.find("/providers/").unwrap()]
    );
    let id_lower = req.id_lower.clone();
    match *req.method {
        Method::GET => match state.resources.get(&id_lower) {
            Some(r) => json_response(StatusCode::OK, r.clone(), &[]),
            None => not_found("Microsoft.Compute/snapshots", snap_name, req.rg),
        },
        Method::PUT => {
            let request = match req.json() {
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
                let is_os_disk = disk["managedBy"].as_str().is_some_and(|vm| {
                    state
                        .resources
                        .get(&vm.to_ascii_lowercase())
                        .is_some_and(|v| {
                            v["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
                                .as_str()
                                .is_some_and(|d| d.eq_ignore_ascii_case(&source))
                        })
                });
                if is_os_disk {
                    props.insert("osType".into(), json!(os));
                }
            }
            state.resources.insert(id_lower.clone(), snap.clone());
            let (status, result) = state.new_op(
                &id_lower,
                Done::Provisioned,
                "Microsoft.Compute",
                &location,
                req,
            );
            json_response(
                StatusCode::ACCEPTED,
                snap,
                &[("azure-asyncoperation", status), ("location", result)],
            )
        }
        Method::PATCH => {
            let request = match req.json() {
                Ok(v) => v,
                Err(r) => return *r,
            };
            let Some(snap) = state.resources.get_mut(&id_lower) else {
                return not_found("Microsoft.Compute/snapshots", snap_name, req.rg);
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
            let headers =
                state.async_headers(&id_lower, Done::Provisioned, "Microsoft.Compute", req);
            json_response(StatusCode::ACCEPTED, body, &headers)
        }
        Method::DELETE => {
            let rg_lower = format!(
                "/subscriptions/{}/resourcegroups/{}",
                req.lower_segments[1], req.lower_segments[3]
            );
            let locked: Vec<String> = state
                .locks
                .iter()
                .filter(|(k, _)| {
                    k.starts_with(&format!("{id_lower}/providers/"))
                        || k.starts_with(&format!("{rg_lower}/providers/microsoft.authorization/"))
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
