//! `capture-memory` on Azure: the SDK's [`irhost_plugin_sdk::memory`]
//! sequence (a pinned tool, AVML on Linux or WinPmem on Windows, run by the
//! VM's own guest agent, the image uploaded by the VM as blocks of one blob
//! through the URLs the host mints) over the VM's Run Command action
//! (`POST …/runCommand`, `RunShellScript` / `RunPowerShellScript`).
//!
//! The platform is the OS disk's `osType`; a VM whose instance view shows no
//! guest agent `Ready` is `unsupported` (Run Command needs it). Each command
//! answers 202 with a `Location` (and, on Azure, an `Azure-AsyncOperation`)
//! that is polled, with progress, until its result: the script's standard
//! output and error as `value[]` messages (Windows: `ComponentStatus/StdOut`
//! and `…/StdErr`; Linux: one `ProvisioningState/…` message holding
//! `[stdout]` and `[stderr]`). A `…/failed` status is the command's
//! failure. The action cannot be cancelled: after `memory_timeout_s` the
//! capture fails and the agent ends the script at its own limit (90 min).
//! The command id recorded is the operation's id. Parameters: the SDK
//! module's.

use std::time::{Duration, SystemTime};

use irhost_plugin_sdk::http::{fetch_async, Method};
use irhost_plugin_sdk::memory::{self, AgentCommands, Tool};
use irhost_plugin_sdk::prelude::*;

use crate::arm::{compute, pause, poll_interval, vm_of, Arm, ResourceRef, PLACEHOLDER_TOKEN};
use crate::inventory::get_vm;
use crate::stop::instance_view;

/// The VM's Run Command, one script at a time.
struct RunCommand<'a> {
    arm: &'a Arm,
    vm: &'a ResourceRef,
    command_id: &'static str,
}

impl AgentCommands for RunCommand<'_> {
    async fn run(
        &self,
        lines: Vec<String>,
        what: &str,
        timeout: Duration,
    ) -> Result<(String, String), PluginError> {
        let call = format!("{what} on {} (Run Command)", self.vm.name);
        let mut input = compute::models::RunCommandInput::new(self.command_id.to_string());
        input.script = lines;
        let response = self
            .arm
            .compute
            .virtual_machines_client()
            .run_command(
                &self.vm.resource_group,
                &self.vm.name,
                input,
                &self.vm.subscription,
            )
            .send()
            .await
            .map_err(|e| self.arm.error(&call, e))?;
        let (status, headers, body) = response.into_raw_response().deconstruct();
        let body = body.collect().await.map_err(|e| self.arm.error(&call, e))?;
        let header = |name: &'static str| {
            headers.get_optional_string(&azure_core::headers::HeaderName::from_static(name))
        };
        let (id, result) = match (u16::from(status), header("location")) {
            (200, _) => ("synchronous".to_string(), body.to_vec()),
            (202, Some(location)) => {
                let id = operation_id(&location);
                let result = poll(
                    &call,
                    &location,
                    header("azure-asyncoperation").as_deref(),
                    timeout,
                )
                .await?;
                (id, result)
            }
            (code, _) => {
                return Err(PluginError::Provider(ProviderFailure {
                    code: "UnexpectedRunCommandAnswer".into(),
                    message: format!("{call}: HTTP {code} without an operation to follow"),
                }))
            }
        };
        let result: compute::models::RunCommandResult =
            serde_json::from_slice(&result).map_err(|e| {
                PluginError::Provider(ProviderFailure {
                    code: "UnreadableRunCommandResult".into(),
                    message: format!("{call} ({id}): {e}"),
                })
            })?;
        let output = outcome(&result).map_err(|message| {
            PluginError::Provider(ProviderFailure {
                code: "RunCommandFailed".into(),
                message: format!("{call} ({id}): {message}"),
            })
        })?;
        Ok((id, output))
    }
}

/// The operation's id: the last path segment of its URL.
fn operation_id(url: &str) -> String {
    url.split(['?', '&'])
        .next()
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or("unknown")
        .to_string()
}

/// Poll a Run Command until its result (the body of its `Location` once
/// it answers 200), with progress; when ARM also gave an
/// `Azure-AsyncOperation`, its status is followed and the result read from
/// the `Location` at the end.
async fn poll(
    call: &str,
    location: &str,
    status_url: Option<&str>,
    timeout: Duration,
) -> Result<Vec<u8>, PluginError> {
    let started = SystemTime::now();
    let auth = format!("Bearer {PLACEHOLDER_TOKEN}");
    let headers = [("authorization", auth.as_str())];
    let mut delay = poll_interval()?;
    loop {
        pause(delay).await;
        let elapsed = started.elapsed().unwrap_or_default();
        if elapsed > timeout {
            return Err(PluginError::Provider(ProviderFailure {
                code: "CommandTimedOut".into(),
                message: format!(
                    "{call} did not finish in {}s (Run Command cannot be cancelled: the VM agent ends it at its own limit)",
                    timeout.as_secs()
                ),
            }));
        }
        irhost_plugin_sdk::progress(elapsed.as_secs(), timeout.as_secs(), call);
        let url = status_url.unwrap_or(location);
        let fetched = fetch_async(Method::GET, url, &headers, None).await?;
        delay = fetched
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(poll_interval()?);
        match (fetched.status, status_url.is_some()) {
            (202 | 429, _) => continue,
            (200, false) => return Ok(fetched.body),
            (200, true) => {
                let body: serde_json::Value =
                    serde_json::from_slice(&fetched.body).unwrap_or_default();
                match body["status"].as_str().unwrap_or("") {
                    "Succeeded" => {
                        let result = fetch_async(Method::GET, location, &headers, None).await?;
                        if result.status == 200 {
                            return Ok(result.body);
                        }
                        return Err(PluginError::Provider(ProviderFailure {
                            code: "OperationFailed".into(),
                            message: format!(
                                "{call}: its result answered HTTP {}: {}",
                                result.status,
                                result.text()
                            ),
                        }));
                    }
                    "Failed" | "Canceled" | "Cancelled" => {
                        return Err(PluginError::Provider(ProviderFailure {
                            code: "OperationFailed".into(),
                            message: format!("{call}: the operation ended {}", body["status"]),
                        }))
                    }
                    _ => continue,
                }
            }
            (status, _) => {
                return Err(PluginError::Provider(ProviderFailure {
                    code: "OperationFailed".into(),
                    message: format!("{call}: polling answered HTTP {status}: {}", fetched.text()),
                }))
            }
        }
    }
}

/// The script's output from a Run Command result, or why it failed: a
/// status whose code ends in `/failed` (the Linux agent's `Enable failed:
/// … exit status=N`), with what the script wrote.
fn outcome(result: &compute::models::RunCommandResult) -> Result<String, String> {
    let mut output = String::new();
    for status in &result.value {
        let code = status.code.as_deref().unwrap_or_default();
        let message = status.message.as_deref().unwrap_or_default();
        if code.to_ascii_lowercase().ends_with("/failed") {
            return Err(format!("{code}: {}", message.trim()));
        }
        if !code.contains("StdErr") {
            output.push_str(message);
            output.push('\n');
        }
    }
    Ok(output)
}

/// Whether the instance view shows the guest agent ready.
fn agent_ready(view: &compute::models::VirtualMachineInstanceView) -> bool {
    view.vm_agent.as_ref().is_some_and(|agent| {
        agent
            .statuses
            .iter()
            .any(|s| s.display_status.as_deref() == Some("Ready"))
    })
}

pub async fn capture(arm: &Arm, target: &Target) -> Result<Vec<Artifact>, PluginError> {
    let vm_ref = vm_of(target)?;
    let vm = get_vm(arm, &vm_ref).await?;
    let windows = vm
        .properties
        .as_ref()
        .and_then(|p| p.storage_profile.as_ref())
        .and_then(|s| s.os_disk.as_ref())
        .and_then(|d| d.os_type.as_ref())
        .is_some_and(|t| *t == compute::models::os_disk::OsType::Windows);
    if !agent_ready(&instance_view(arm, &vm_ref).await?) {
        return Err(PluginError::Unsupported(format!(
            "{}: its instance view shows no guest agent Ready: its memory cannot be captured without one (Run Command needs the agent)",
            vm_ref.name
        )));
    }
    let tool = Tool::from_params(windows)?;
    let command_id = if windows {
        "RunPowerShellScript"
    } else {
        "RunShellScript"
    };
    let agent = RunCommand {
        arm,
        vm: &vm_ref,
        command_id,
    };
    let artifact = memory::capture(&agent, &crate::arm::vm_id(&vm_ref), &tool)
        .await?
        .meta("platform", if windows { "Windows" } else { "Linux" })
        .meta("command", command_id);
    Ok(vec![artifact])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: &str, message: &str) -> compute::models::InstanceViewStatus {
        serde_json::from_value(serde_json::json!({ "code": code, "message": message })).unwrap()
    }

    #[test]
    fn both_result_shapes_are_read_and_a_failure_is_one() {
        let windows = compute::models::RunCommandResult {
            value: vec![
                status("ComponentStatus/StdOut/succeeded", "IRHOST-UPLOADED 1-2"),
                status("ComponentStatus/StdErr/succeeded", "noise"),
            ],
        };
        assert_eq!(outcome(&windows).unwrap().trim(), "IRHOST-UPLOADED 1-2");
        let linux = compute::models::RunCommandResult {
            value: vec![status(
                "ProvisioningState/succeeded",
                "Enable succeeded: \n[stdout]\nIRHOST-UPLOADED 1-2\n\n[stderr]\n",
            )],
        };
        assert!(memory::uploaded(&outcome(&linux).unwrap(), 1, 2));
        let failed = compute::models::RunCommandResult {
            value: vec![status(
                "ProvisioningState/failed",
                "Enable failed: failed to execute command: command terminated with exit status=97\n[stdout]\n\n[stderr]\nIRHOST-ERROR tool hash mismatch\n",
            )],
        };
        let error = outcome(&failed).unwrap_err();
        assert!(
            error.contains("exit status=97") && error.contains("hash mismatch"),
            "{error}"
        );
        assert_eq!(
            operation_id("https://m/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/abc-1?monitor=true&api-version=2024-07-01"),
            "abc-1"
        );
    }
}
