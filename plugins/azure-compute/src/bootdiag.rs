//! The snapshot's screen and console: the VM's boot-diagnostics
//! screenshot (kind `other`, metadata `type=screenshot` and the image
//! `format` read from its bytes: Azure names the blob `.bmp`, whatever it
//! holds) and serial console log (kind `console-log`).
//!
//! retrieveBootDiagnosticsData hands out read-only SAS URIs for both blobs
//! (`sas_minutes`, default 10); each is fetched from its storage host,
//! which the playbook's `allow_hosts` must allow (the ARM token never goes
//! there: the host attaches it to the ARM endpoint only). Nothing here ever
//! fails the snapshot: boot diagnostics off, a host not allowed, a blob
//! that cannot be read are each said in the journal, and the snapshot goes
//! on. The SAS query (a credential) is never logged nor recorded: the
//! artifacts name the blob without it, and the host is first asked with a
//! HEAD of the bare blob URL, so that a denial (which the journal records
//! with its URL) never carries the SAS.

use irhost_plugin_sdk::http::{fetch_async, Method};
use irhost_plugin_sdk::prelude::*;

use crate::arm::{compute, param_or, Arm, ResourceRef};

/// The screenshot and serial log of the VM, as far as they can be read.
pub async fn capture(
    arm: &Arm,
    vm_ref: &ResourceRef,
    vm: &compute::models::VirtualMachine,
    source_vm: &str,
) -> Result<Vec<Artifact>, PluginError> {
    let enabled = vm
        .properties
        .as_ref()
        .and_then(|p| p.diagnostics_profile.as_ref())
        .and_then(|d| d.boot_diagnostics.as_ref())
        .and_then(|b| b.enabled)
        .unwrap_or(false);
    if !enabled {
        log::warn(&format!(
            "{}: boot diagnostics are off; no screenshot or serial console log to preserve",
            vm_ref.name
        ));
        return Ok(Vec::new());
    }
    let minutes: i32 = param_or("sas_minutes", 10)?;
    let what = format!("retrieve boot diagnostics data of {}", vm_ref.name);
    let uris = match crate::arm_call!(
        arm,
        what,
        arm.compute
            .virtual_machines_client()
            .retrieve_boot_diagnostics_data(
                &vm_ref.resource_group,
                &vm_ref.name,
                &vm_ref.subscription
            )
            .sas_uri_expiration_time_in_minutes(minutes)
    ) {
        Ok(uris) => uris,
        Err(e) => {
            log::warn(&format!(
                "{what} failed ({}); the snapshot goes on without the screenshot and serial log",
                describe(&e)
            ));
            return Ok(Vec::new());
        }
    };
    let mut artifacts = Vec::new();
    if let Some(uri) = uris.console_screenshot_blob_uri.as_deref() {
        if let Some(bytes) = fetch_blob(&vm_ref.name, "screenshot", uri).await {
            let format = image_format(&bytes);
            artifacts.push(
                Artifact::with_content(
                    ArtifactKind::Other,
                    &format!("{source_vm}#bootDiagnostics/screenshot"),
                    bytes,
                )
                .meta("type", "screenshot")
                .meta("format", format)
                .meta("source", &without_query(uri))
                .meta("vm", source_vm),
            );
        }
    } else {
        log::warn(&format!(
            "{}: boot diagnostics have no screenshot",
            vm_ref.name
        ));
    }
    if let Some(uri) = uris.serial_console_log_blob_uri.as_deref() {
        if let Some(bytes) = fetch_blob(&vm_ref.name, "serial console log", uri).await {
            artifacts.push(
                Artifact::with_content(
                    ArtifactKind::ConsoleLog,
                    &format!("{source_vm}#bootDiagnostics/serialConsoleLog"),
                    bytes,
                )
                .meta("type", "serial-console-log")
                .meta("source", &without_query(uri))
                .meta("vm", source_vm),
            );
        }
    } else {
        log::warn(&format!(
            "{}: boot diagnostics have no serial console log",
            vm_ref.name
        ));
    }
    Ok(artifacts)
}

/// GET a blob by its SAS URI; none (said in the journal) when it cannot be read.
async fn fetch_blob(vm: &str, what: &str, uri: &str) -> Option<Vec<u8>> {
    let blob = without_query(uri);
    let host = host_of(uri);
    // Ask first without the SAS: a denied request is journaled with its
    // URL, and the SAS must not land in the journal.
    if let Err(PluginError::Denied(_)) = fetch_async(Method::HEAD, &blob, &[], None).await {
        log::warn(&format!(
            "{vm}: the boot-diagnostics {what} is on {host}, which the plugin's allow_hosts do not allow; not preserved (add {host} to allow_hosts to keep it)"
        ));
        return None;
    }
    match fetch_async(Method::GET, uri, &[("x-ms-version", "2022-11-02")], None).await {
        Ok(r) if r.status == 200 => Some(r.body),
        Ok(r) => {
            let code = r.header("x-ms-error-code").unwrap_or("").to_string();
            log::warn(&format!(
                "{vm}: the boot-diagnostics {what} ({blob}) answered {} {code}; not preserved",
                r.status
            ));
            None
        }
        Err(e) => {
            log::warn(&format!(
                "{vm}: reading the boot-diagnostics {what} ({blob}) failed ({}); not preserved",
                describe(&e)
            ));
            None
        }
    }
}

fn describe(e: &PluginError) -> String {
    match e {
        PluginError::NotFound(m)
        | PluginError::Denied(m)
        | PluginError::InvalidInput(m)
        | PluginError::Conflict(m)
        | PluginError::Unsupported(m) => m.clone(),
        PluginError::Throttled(t) => t.message.clone(),
        PluginError::Provider(p) => format!("{}: {}", p.code, p.message),
    }
}

/// A URL without its query (where a SAS carries its signature).
pub fn without_query(uri: &str) -> String {
    uri.split_once('?').map_or(uri, |(u, _)| u).to_string()
}

fn host_of(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// The image format by its signature.
pub fn image_format(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.starts_with(b"BM") {
        "bmp"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "jpeg"
    } else {
        "unknown"
    }
}
