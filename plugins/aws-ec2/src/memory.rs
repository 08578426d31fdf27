//! `capture-memory`: an image of the instance's memory, taken by a pinned
//! tool (AVML on Linux, WinPmem on Windows) that SSM Run Command runs on
//! the instance, uploaded by the instance itself to the evidence store the
//! playbook grants (the `uploads` interface: the host mints a URL per part
//! of that one object, each for a short time). No credential reaches the
//! instance or this plugin.
//!
//! One command captures (download the tool, check its sha256 before running
//! it, write the image, report its size and sha256); then one command per
//! batch of parts uploads them to the URLs minted for that batch (SendCommand
//! parameters are size-limited); the host completes the upload from the
//! parts S3 received. Each command is polled with `GetCommandInvocation`
//! (progress reported) and cancelled on timeout. An instance SSM does not
//! manage (`DescribeInstanceInformation` does not list it) is `unsupported`.
//!
//! Parameters: `memory_tool_url` and `memory_tool_sha256` (Linux), or
//! `memory_tool_windows_url` and `memory_tool_windows_sha256`;
//! `memory_tool_args` (before the output file); `memory_workdir` (default
//! `/var/tmp`, `C:\Windows\Temp`); `memory_part_mb` (default 64, at least
//! the store's minimum); `memory_urls_per_command` (default 16);
//! `memory_timeout_s` (default 3600); `memory_poll_ms` (default 2000).

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter};
use aws_sdk_ssm::Client;
use irhost_plugin_sdk::prelude::*;
use irhost_plugin_sdk::uploads;
use irhost_plugin_sdk_aws::{Call, ServiceErrors};

use crate::aws::param_or;

const SSM_ERRORS: ServiceErrors = ServiceErrors {
    service: "SSM",
    not_found: &[
        "InvalidInstanceId",
        "InvocationDoesNotExist",
        "InvalidCommandId",
    ],
    throttled: &["ThrottlingException", "TooManyUpdates"],
    throttled_statuses: &[],
    denied: &["AccessDeniedException", "UnrecognizedClientException"],
    conflict: &["InvalidInstanceInformationFilterValue"],
    invalid_input: &["InvalidParameters", "InvalidDocument"],
    name_by_status: false,
};

/// The tool and how it is run, per platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub url: String,
    pub sha256: String,
    pub args: String,
    pub windows: bool,
    pub workdir: String,
}

impl Tool {
    fn from_params(windows: bool) -> Result<Tool, PluginError> {
        let (url_key, sha_key) = if windows {
            ("memory_tool_windows_url", "memory_tool_windows_sha256")
        } else {
            ("memory_tool_url", "memory_tool_sha256")
        };
        let url: String = irhost_plugin_sdk::param(url_key)?.ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "capture-memory needs `{url_key}`: the pinned memory tool's URL"
            ))
        })?;
        let sha256: String = irhost_plugin_sdk::param(sha_key)?.ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "capture-memory needs `{sha_key}`: the tool's sha256, checked before it runs"
            ))
        })?;
        let sha256 = sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(PluginError::InvalidInput(format!(
                "`{sha_key}` is not a sha256"
            )));
        }
        let args: String = param_or("memory_tool_args", String::new())?;
        let default_dir = if windows {
            "C:\\Windows\\Temp"
        } else {
            "/var/tmp"
        };
        let workdir: String = param_or("memory_workdir", default_dir.to_string())?;
        for (name, value) in [
            (url_key, &url),
            ("memory_tool_args", &args),
            ("memory_workdir", &workdir),
        ] {
            if !shell_safe(value) {
                return Err(PluginError::InvalidInput(format!(
                    "`{name}` may not contain quotes, `$`, backquotes, newlines or `;`"
                )));
            }
        }
        Ok(Tool {
            url,
            sha256,
            args,
            windows,
            workdir,
        })
    }
}

/// Text that can stand inside single quotes in sh and PowerShell.
fn shell_safe(text: &str) -> bool {
    !text
        .chars()
        .any(|c| matches!(c, '\'' | '"' | '`' | '$' | '\n' | '\r' | ';' | '\0'))
}

/// The capture command's lines.
pub fn capture_script(tool: &Tool, dir: &str) -> Vec<String> {
    if tool.windows {
        return vec![
            "$ErrorActionPreference = 'Stop'".into(),
            format!("New-Item -ItemType Directory -Force -Path '{dir}' | Out-Null"),
            format!("Set-Location '{dir}'"),
            format!("Invoke-WebRequest -UseBasicParsing -Uri '{}' -OutFile tool.exe", tool.url),
            format!(
                "if ((Get-FileHash -Algorithm SHA256 tool.exe).Hash.ToLower() -ne '{}') {{ Write-Error 'IRHOST-ERROR tool hash mismatch'; exit 97 }}",
                tool.sha256
            ),
            format!("& .\\tool.exe {} memory.raw", tool.args),
            "$size = (Get-Item memory.raw).Length".into(),
            "$sum = (Get-FileHash -Algorithm SHA256 memory.raw).Hash.ToLower()".into(),
            format!("Write-Output \"IRHOST-CAPTURED size=$size sha256=$sum tool_sha256={}\"", tool.sha256),
        ];
    }
    vec![
        "set -eu".into(),
        "umask 077".into(),
        format!("mkdir -p '{dir}'"),
        format!("cd '{dir}'"),
        format!("curl -fsSL --retry 3 -o tool '{}'", tool.url),
        format!(
            "echo '{}  tool' | sha256sum -c - >/dev/null || {{ echo 'IRHOST-ERROR tool hash mismatch' >&2; exit 97; }}",
            tool.sha256
        ),
        "chmod 0700 tool".into(),
        format!("./tool {} memory.lime", tool.args).replace("  ", " "),
        "size=$(stat -c %s memory.lime)".into(),
        "sum=$(sha256sum memory.lime | cut -d' ' -f1)".into(),
        format!("echo \"IRHOST-CAPTURED size=$size sha256=$sum tool_sha256={}\"", tool.sha256),
    ]
}

/// The lines of one upload command: each part's bytes PUT to its URL; the
/// last batch removes the image from the instance.
pub fn upload_script(
    tool: &Tool,
    dir: &str,
    part_size: u64,
    urls: &[uploads::PartUrl],
    last: bool,
) -> Result<Vec<String>, PluginError> {
    if let Some(bad) = urls
        .iter()
        .find(|u| !shell_safe(&u.url) || u.method != "PUT")
    {
        return Err(PluginError::Provider(ProviderFailure {
            code: "UnusableUploadUrl".into(),
            message: format!(
                "part {}: the store's URL cannot be passed to the instance",
                bad.part
            ),
        }));
    }
    let mut lines = Vec::new();
    if tool.windows {
        lines.push("$ErrorActionPreference = 'Stop'".into());
        lines.push(format!("Set-Location '{dir}'"));
        lines.push(format!(
            "function Send-Part($n, $url) {{ $fs = [System.IO.File]::OpenRead('memory.raw'); try {{ $fs.Seek(($n - 1) * {part_size}, 'Begin') | Out-Null; $buf = New-Object byte[] {part_size}; $read = $fs.Read($buf, 0, {part_size}); $body = $buf[0..($read - 1)]; Invoke-WebRequest -UseBasicParsing -Method Put -Uri $url -Body $body -ContentType 'application/octet-stream' | Out-Null }} finally {{ $fs.Close() }} }}"
        ));
        for u in urls {
            lines.push(format!("Send-Part {} '{}'", u.part, u.url));
        }
        if last {
            lines.push("Set-Location \\".into());
            lines.push(format!("Remove-Item -Recurse -Force '{dir}'"));
        }
    } else {
        lines.push("set -eu".into());
        lines.push(format!("cd '{dir}'"));
        lines.push(format!(
            "part() {{ dd if=memory.lime bs={part_size} skip=$(($1 - 1)) count=1 2>/dev/null | curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @- -o /dev/null \"$2\"; }}"
        ));
        for u in urls {
            lines.push(format!("part {} '{}'", u.part, u.url));
        }
        if last {
            lines.push("cd /".into());
            lines.push(format!("rm -rf '{dir}'"));
        }
    }
    let (first, end) = (
        urls.first().map_or(0, |u| u.part),
        urls.last().map_or(0, |u| u.part),
    );
    lines.push(if tool.windows {
        format!("Write-Output 'IRHOST-UPLOADED {first}-{end}'")
    } else {
        format!("echo 'IRHOST-UPLOADED {first}-{end}'")
    });
    Ok(lines)
}

/// What the capture command reported: size and sha256 of the image.
pub fn captured(output: &str) -> Option<(u64, String)> {
    let line = output.lines().find(|l| l.starts_with("IRHOST-CAPTURED "))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let size = field("size")?.parse().ok()?;
    let sha = field("sha256")?;
    (sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit())).then_some((size, sha))
}

struct Ssm {
    client: Client,
    retry_after_ms: u64,
}

impl Ssm {
    fn for_target(target: &Target) -> Result<Ssm, PluginError> {
        let region = match target.region.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => param_or("region", "us-east-1".to_string())?,
        };
        let endpoint: Option<String> = irhost_plugin_sdk::param("endpoint_url")?;
        let max_attempts: u32 = param_or("max_attempts", 1)?;
        let sdk_config =
            irhost_plugin_sdk_aws::sdk_config(&region, endpoint.as_deref(), max_attempts);
        let config = aws_sdk_ssm::config::Builder::from(&sdk_config)
            .allow_no_auth()
            .build();
        Ok(Ssm {
            client: Client::from_conf(config),
            retry_after_ms: param_or("retry_after_ms", 2000)?,
        })
    }

    fn err<E>(&self, operation: &str, error: aws_sdk_ssm::error::SdkError<E>) -> PluginError
    where
        E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        SSM_ERRORS.map(&Call::new(operation, self.retry_after_ms), error)
    }

    /// The agent's platform (`Linux`, `Windows`, …), or `unsupported`.
    async fn platform(&self, id: &str) -> Result<String, PluginError> {
        let out = self
            .client
            .describe_instance_information()
            .filters(
                InstanceInformationStringFilter::builder()
                    .key("InstanceIds")
                    .values(id)
                    .build()
                    .map_err(|e| PluginError::InvalidInput(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| self.err("DescribeInstanceInformation", e))?;
        out.instance_information_list()
            .iter()
            .find(|i| i.instance_id() == Some(id))
            .map(|i| i.platform_type().map(|p| p.as_str().to_string()).unwrap_or_else(|| "Linux".into()))
            .ok_or_else(|| {
                PluginError::Unsupported(format!(
                    "{id} has no SSM agent online (DescribeInstanceInformation does not list it): its memory cannot be captured without one"
                ))
            })
    }

    /// The document's content hash, as SSM reports it.
    async fn document_hash(&self, name: &str) -> Option<String> {
        let out = self
            .client
            .describe_document()
            .name(name)
            .send()
            .await
            .ok()?;
        out.document()?.hash().map(str::to_string)
    }

    /// Run `lines` on the instance and wait for the outcome; the command id
    /// and its standard output.
    async fn run(
        &self,
        id: &str,
        document: &str,
        lines: Vec<String>,
        what: &str,
        timeout: Duration,
    ) -> Result<(String, String), PluginError> {
        let out = self
            .client
            .send_command()
            .instance_ids(id)
            .document_name(document)
            .comment(format!("irhost {} {what}", irhost_plugin_sdk::case_id()))
            .timeout_seconds(600)
            .parameters("commands", lines)
            .parameters(
                "executionTimeout",
                vec![timeout.as_secs().max(5).to_string()],
            )
            .send()
            .await
            .map_err(|e| self.err("SendCommand", e))?;
        let command = out
            .command()
            .and_then(|c| c.command_id())
            .ok_or_else(|| {
                PluginError::Provider(ProviderFailure {
                    code: "NoCommandId".into(),
                    message: "SendCommand returned no command id".into(),
                })
            })?
            .to_string();
        let poll = Duration::from_millis(param_or("memory_poll_ms", 2000)?);
        let started = Instant::now();
        loop {
            wstd::task::sleep(wstd::time::Duration::from(poll)).await;
            let elapsed = started.elapsed();
            if elapsed > timeout {
                let _ = self
                    .client
                    .cancel_command()
                    .command_id(&command)
                    .instance_ids(id)
                    .send()
                    .await;
                return Err(PluginError::Provider(ProviderFailure {
                    code: "CommandTimedOut".into(),
                    message: format!(
                        "{what} on {id} ({command}) did not finish in {}s: cancelled",
                        timeout.as_secs()
                    ),
                }));
            }
            let invocation = match self
                .client
                .get_command_invocation()
                .command_id(&command)
                .instance_id(id)
                .send()
                .await
            {
                Ok(i) => i,
                Err(e) => match self.err("GetCommandInvocation", e) {
                    // Right after SendCommand, AWS may not know the invocation yet.
                    PluginError::NotFound(_) if elapsed < Duration::from_secs(30) => continue,
                    e => return Err(e),
                },
            };
            let status = invocation
                .status()
                .cloned()
                .unwrap_or(CommandInvocationStatus::Pending);
            irhost_plugin_sdk::progress(
                elapsed.as_secs(),
                timeout.as_secs(),
                &format!("{what}: {}", status.as_str()),
            );
            match status {
                CommandInvocationStatus::Success => {
                    return Ok((
                        command,
                        invocation
                            .standard_output_content()
                            .unwrap_or_default()
                            .to_string(),
                    ))
                }
                CommandInvocationStatus::Pending
                | CommandInvocationStatus::InProgress
                | CommandInvocationStatus::Delayed => {}
                other => {
                    return Err(PluginError::Provider(ProviderFailure {
                        code: format!("Command{}", other.as_str()),
                        message: format!(
                            "{what} on {id} ({command}) ended {} (exit {}): {}",
                            other.as_str(),
                            invocation.response_code(),
                            invocation
                                .standard_error_content()
                                .unwrap_or_default()
                                .trim()
                        ),
                    }))
                }
            }
        }
    }
}

pub async fn capture(target: &Target) -> Result<Vec<Artifact>, PluginError> {
    let id = target.id.as_str();
    let ssm = Ssm::for_target(target)?;
    let platform = ssm.platform(id).await?;
    let windows = platform.eq_ignore_ascii_case("windows");
    let tool = Tool::from_params(windows)?;
    let document = if windows {
        "AWS-RunPowerShellScript"
    } else {
        "AWS-RunShellScript"
    };
    let separator = if windows { "\\" } else { "/" };
    let dir = format!(
        "{}{separator}irhost-{}",
        tool.workdir.trim_end_matches(['/', '\\']),
        irhost_plugin_sdk::case_id()
    );
    if !shell_safe(&dir) {
        return Err(PluginError::InvalidInput(
            "the case id cannot name a directory on the instance".into(),
        ));
    }
    let timeout = Duration::from_secs(param_or("memory_timeout_s", 3600)?);
    let document_hash = ssm.document_hash(document).await;
    let upload = uploads::begin(if windows { "memory.raw" } else { "memory.lime" })?;
    let result = capture_into(&ssm, id, &tool, document, &dir, timeout, &upload).await;
    let (commands, size, sha256) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = uploads::abort(&upload);
            return Err(e);
        }
    };
    let object = uploads::complete(&upload)?;
    if object.size != size {
        return Err(PluginError::Provider(ProviderFailure {
            code: "ImageSizeMismatch".into(),
            message: format!(
                "the instance reported a {size}-byte image, the store holds {} bytes at {}",
                object.size, object.location
            ),
        }));
    }
    let mut artifact = Artifact::reference(
        ArtifactKind::MemoryImage,
        &object.location,
        &object.location,
    )
    .meta("instance", id)
    .meta("platform", &platform)
    .meta("format", if windows { "raw" } else { "lime" })
    .meta("document", document)
    .meta("commands", &commands.join(","))
    .meta("tool_url", &tool.url)
    .meta("tool_sha256", &tool.sha256)
    .meta("parts", &object.parts.to_string())
    .meta("store_etag", &object.etag);
    artifact.size = Some(size);
    artifact.sha256 = Some(sha256);
    if let Some(hash) = document_hash {
        artifact = artifact.meta("document_sha256", &hash);
    }
    if let Some(version) = &object.version {
        artifact = artifact.meta("object_version", version);
    }
    log::info(&format!(
        "{id}: memory image of {size} bytes at {}",
        object.location
    ));
    Ok(vec![artifact])
}

/// Capture, then upload batch by batch: the command ids, size and sha256.
async fn capture_into(
    ssm: &Ssm,
    id: &str,
    tool: &Tool,
    document: &str,
    dir: &str,
    timeout: Duration,
    upload: &uploads::Upload,
) -> Result<(Vec<String>, u64, String), PluginError> {
    let (command, output) = ssm
        .run(
            id,
            document,
            capture_script(tool, dir),
            "memory capture",
            timeout,
        )
        .await?;
    let (size, sha256) = captured(&output).ok_or_else(|| {
        PluginError::Provider(ProviderFailure {
            code: "NoCaptureReport".into(),
            message: format!("the capture command ({command}) reported no image size and sha256"),
        })
    })?;
    let mut commands = vec![command];
    let part_mb: u64 = param_or("memory_part_mb", 64)?;
    let part_size = (part_mb << 20).max(upload.part_size);
    let parts = size.div_ceil(part_size).max(1);
    if parts > u64::from(upload.max_parts) {
        return Err(PluginError::InvalidInput(format!("{size} bytes in parts of {part_size} is more than the store's {} parts: raise memory_part_mb", upload.max_parts)));
    }
    let per_command: u32 =
        param_or("memory_urls_per_command", 16u32)?.clamp(1, uploads::MAX_PART_URLS);
    let mut first = 1u32;
    while u64::from(first) <= parts {
        let count = per_command.min((parts - u64::from(first) + 1) as u32);
        let urls = uploads::part_urls(upload, first, count)?;
        let last = u64::from(first + count - 1) == parts;
        let lines = upload_script(tool, dir, part_size, &urls, last)?;
        let (command, _) = ssm
            .run(
                id,
                document,
                lines,
                &format!("upload of parts {first}-{}", first + count - 1),
                timeout,
            )
            .await?;
        commands.push(command);
        first += count;
    }
    Ok((commands, size, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(windows: bool) -> Tool {
        Tool {
            url: "https://tools.example/avml".into(),
            sha256: "ab".repeat(32),
            args: String::new(),
            windows,
            workdir: "/var/tmp".into(),
        }
    }

    #[test]
    fn the_tool_is_checked_before_it_runs_and_the_report_is_read() {
        let lines = capture_script(&tool(false), "/var/tmp/irhost-IR-1");
        let check = lines
            .iter()
            .position(|l| l.contains("sha256sum -c"))
            .unwrap();
        let run = lines.iter().position(|l| l.starts_with("./tool")).unwrap();
        assert!(check < run, "{lines:?}");
        assert_eq!(
            captured(&format!(
                "noise\nIRHOST-CAPTURED size=42 sha256={} tool_sha256=x\n",
                "cd".repeat(32)
            )),
            Some((42, "cd".repeat(32)))
        );
        assert_eq!(captured("IRHOST-CAPTURED size=42 sha256=short"), None);
        let windows = capture_script(&tool(true), "C:\\Windows\\Temp\\irhost-IR-1").join("\n");
        assert!(
            windows.contains("Get-FileHash") && windows.contains("exit 97"),
            "{windows}"
        );
        assert!(!shell_safe("https://x/'; rm -rf /"));
    }

    #[test]
    fn each_part_goes_to_its_own_url_and_the_last_batch_cleans_up() {
        let urls: Vec<uploads::PartUrl> = (3..=4)
            .map(|n| uploads::PartUrl {
                part: n,
                method: "PUT".into(),
                url: format!("https://s3/x?partNumber={n}"),
                headers: vec![],
                expires_in: 900,
            })
            .collect();
        let lines = upload_script(&tool(false), "/var/tmp/d", 5 << 20, &urls, true).unwrap();
        assert!(lines
            .iter()
            .any(|l| l == "part 3 'https://s3/x?partNumber=3'"));
        assert!(lines
            .iter()
            .any(|l| l.contains("bs=5242880 skip=$(($1 - 1))")));
        assert_eq!(lines.last().unwrap(), "echo 'IRHOST-UPLOADED 3-4'");
        assert!(lines.iter().any(|l| l == "rm -rf '/var/tmp/d'"));
        let mut bad = urls.clone();
        bad[0].url.push('\'');
        assert!(upload_script(&tool(false), "/d", 1, &bad, false).is_err());
    }
}
