//! The VM guest agent's Run Command (`POST …/virtualMachines/VM/runCommand`,
//! VirtualMachine_RunCommand.json): a model of the agent that runs the
//! scripts for real.
//!
//! The POST answers 202 with a `Location` only (Compute's form,
//! …/locations/L/operations/ID?monitor=true, as the example gives it). A
//! `RunShellScript` script runs as the Linux agent runs it: its lines
//! written to `script.sh` in a fresh directory and run by `/bin/bash` there,
//! in its own process group, stdin closed, stdout and stderr to files,
//! with none of the test's environment (only PATH and HOME, so no
//! credential and no proxy reaches it). The operation stays InProgress
//! (202) until the script exits; then the Location answers 200 with the
//! result in the Linux agent's shape, one `ProvisioningState/succeeded`
//! message `Enable succeeded: \n[stdout]\n…\n[stderr]\n…` (or
//! `ProvisioningState/failed`, `Enable failed: failed to execute command:
//! command terminated with exit status=N`), each part cut to its last 4096
//! bytes as Azure does. `RunPowerShellScript` is recorded but not run
//! (there is no PowerShell here): its result is the example's two
//! messages (StdOut, StdErr) with empty text.
//!
//! As on Azure: one Run Command at a time per VM (409 Conflict while one
//! runs), none on a VM that is not running (409 OperationNotAllowed), and
//! none without a guest agent (the VMs in `ArmState::agentless`: 409
//! VMAgentStatusCommunicationError; their instance view has no `vmAgent`).
//! Every script received is kept in `ArmState::run_commands`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::routes::Req;
use super::{arm_error, AppState, ArmState, Done};

/// Azure keeps the last 4096 bytes of each stream.
const OUTPUT_LIMIT: usize = 4096;

/// One Run Command as the fake received it.
#[derive(Debug)]
pub struct RunCommandRecord {
    /// The VM's id, lower-cased.
    pub vm: String,
    pub command_id: String,
    pub script: Vec<String>,
    /// The operation that follows it.
    pub operation: String,
    /// The exit status, once it ended (`None` while it runs; PowerShell
    /// scripts, not run, end at once with 0).
    pub exit: Option<i32>,
    pub(crate) child: Option<Child>,
    pub(crate) dir: Option<tempfile::TempDir>,
}

impl RunCommandRecord {
    fn path(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join(name))
    }

    /// The exit status once the script has ended.
    pub fn exit_status(&mut self) -> Option<i32> {
        self.ended();
        self.exit
    }

    /// Whether the script has ended (reaping it when it just did).
    fn ended(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status.code().unwrap_or(137));
                true
            }
            Ok(None) => false,
            Err(_) => {
                self.exit = Some(1);
                true
            }
        }
    }

    /// The result body, in the shape the agent of its platform gives.
    fn result(&self, app: &AppState) -> Value {
        let read = |name: &str| {
            let text = self
                .path(name)
                .and_then(|p| std::fs::read(p).ok())
                .unwrap_or_default();
            let start = text.len().saturating_sub(OUTPUT_LIMIT);
            String::from_utf8_lossy(&text[start..]).into_owned()
        };
        if self.command_id != "RunShellScript" {
            let mut body = app.examples.run_command.clone();
            if let Some(values) = body["value"].as_array_mut() {
                for value in values {
                    value["message"] = json!("");
                }
            }
            return body;
        }
        let (stdout, stderr) = (read("stdout"), read("stderr"));
        let exit = self.exit.unwrap_or(1);
        let (code, head) = if exit == 0 {
            (
                "ProvisioningState/succeeded",
                "Enable succeeded: ".to_string(),
            )
        } else {
            (
                "ProvisioningState/failed",
                format!("Enable failed: failed to execute command: command terminated with exit status={exit}"),
            )
        };
        json!({ "value": [{
            "code": code,
            "level": if exit == 0 { "Info" } else { "Error" },
            "displayStatus": if exit == 0 { "Provisioning succeeded" } else { "Provisioning failed" },
            "message": format!("{head}\n[stdout]\n{stdout}\n[stderr]\n{stderr}"),
        }]})
    }
}

impl Drop for RunCommandRecord {
    fn drop(&mut self) {
        let running = self.exit.is_none();
        if let Some(child) = self.child.as_mut() {
            // A script still running: its whole process group, as the
            // agent kills it.
            if running {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// POST runCommand: start the script, answer 202 with the Location.
pub(crate) fn start(state: &mut ArmState, req: &Req) -> Response {
    let body = match req.json() {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let Some(command_id) = body["commandId"].as_str().map(str::to_string) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Required parameter 'commandId' is missing (null).",
        );
    };
    if !matches!(
        command_id.as_str(),
        "RunShellScript" | "RunPowerShellScript"
    ) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            &format!("The value '{command_id}' of parameter 'commandId' is not a known command."),
        );
    }
    let script: Vec<String> = body["script"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let vm = req.id_lower.clone();
    if state.agentless.contains(&vm) {
        return arm_error(
            StatusCode::CONFLICT,
            "VMAgentStatusCommunicationError",
            "VM has reported a failure when processing extension 'RunCommand'. The VM agent is not ready.",
        );
    }
    if state.power_of(&vm) != "running" {
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            "Cannot invoke run command on the VM since it is not running.",
        );
    }
    let busy = state
        .run_commands
        .iter_mut()
        .any(|r| r.vm == vm && !r.ended());
    if busy {
        return arm_error(
            StatusCode::CONFLICT,
            "Conflict",
            "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
        );
    }
    let location = state.location_of(&vm);
    let (status, _) = state.new_op(&vm, Done::RunCommand, "Microsoft.Compute", &location, req);
    let operation = status
        .split('?')
        .next()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let mut record = RunCommandRecord {
        vm,
        command_id: command_id.clone(),
        script,
        operation,
        exit: None,
        child: None,
        dir: None,
    };
    if command_id == "RunShellScript" {
        if let Err(e) = run_script(&mut record) {
            return arm_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e);
        }
    } else {
        record.exit = Some(0);
    }
    state.run_commands.push(record);
    let mut response = StatusCode::ACCEPTED.into_response();
    super::add_headers(
        &mut response,
        &[("location", format!("{status}&monitor=true"))],
    );
    response
}

fn run_script(record: &mut RunCommandRecord) -> Result<(), String> {
    use std::os::unix::process::CommandExt as _;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut text = record.script.join("\n");
    text.push('\n');
    std::fs::write(dir.path().join("script.sh"), text).map_err(|e| e.to_string())?;
    let file = |name: &str| std::fs::File::create(dir.path().join(name)).map_err(|e| e.to_string());
    let child = Command::new("/bin/bash")
        .arg("script.sh")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(file("stdout")?)
        .stderr(file("stderr")?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("bash: {e}"))?;
    record.child = Some(child);
    record.dir = Some(dir);
    Ok(())
}

/// The operation of a Run Command: `None` while its script runs, else the
/// result body.
pub(crate) fn result(app: &AppState, state: &mut ArmState, operation: &str) -> Option<Value> {
    let record = state
        .run_commands
        .iter_mut()
        .find(|r| r.operation == operation)?;
    if !record.ended() {
        return None;
    }
    Some(record.result(app))
}
