//! Memory capture by a pinned tool that the machine's own agent runs (SSM
//! Run Command on AWS, Run Command on Azure): the tool as the playbook
//! pins it, the scripts the agent runs, what they report, and the
//! capture-then-upload sequence over any agent ([`AgentCommands`]). The
//! image goes from the machine straight to the evidence store the playbook
//! grants, through the part URLs the host mints ([`crate::uploads`]); no
//! credential reaches the machine or the plugin.
//!
//! One command captures (download the tool, check its sha256 before running
//! it, write the image, report its size and sha256); then one command per
//! batch of parts uploads them to the URLs minted for that batch (agents'
//! command parameters are size-limited); the host completes the upload from
//! the parts the store received.
//!
//! Parameters: `memory_tool_url` and `memory_tool_sha256` (Linux), or
//! `memory_tool_windows_url` and `memory_tool_windows_sha256`;
//! `memory_tool_args` (before the output file); `memory_workdir` (default
//! `/var/tmp`, `C:\Windows\Temp`); `memory_part_mb` (default 64, at least
//! the store's minimum); `memory_urls_per_command` (default 16);
//! `memory_timeout_s` (default 3600).

use std::future::Future;
use std::time::Duration;

use crate::uploads;
use crate::{Artifact, ArtifactKind, PluginError, ProviderFailure};

/// The tool and how it is run, per platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub url: String,
    pub sha256: String,
    pub args: String,
    pub windows: bool,
    pub workdir: String,
}

fn param_or<T: serde::de::DeserializeOwned>(name: &str, default: T) -> Result<T, PluginError> {
    Ok(crate::param(name)?.unwrap_or(default))
}

impl Tool {
    /// The tool the playbook pins for the platform (`memory_tool_url`, …).
    pub fn from_params(windows: bool) -> Result<Tool, PluginError> {
        let (url_key, sha_key) = if windows {
            ("memory_tool_windows_url", "memory_tool_windows_sha256")
        } else {
            ("memory_tool_url", "memory_tool_sha256")
        };
        let url: String = crate::param(url_key)?.ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "capture-memory needs `{url_key}`: the pinned memory tool's URL"
            ))
        })?;
        let sha256: String = crate::param(sha_key)?.ok_or_else(|| {
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

    /// The case's directory on the machine, under the work directory.
    pub fn case_dir(&self, case: &str) -> Result<String, PluginError> {
        let separator = if self.windows { "\\" } else { "/" };
        let dir = format!(
            "{}{separator}irhost-{case}",
            self.workdir.trim_end_matches(['/', '\\'])
        );
        if !shell_safe(&dir) {
            return Err(PluginError::InvalidInput(
                "the case id cannot name a directory on the machine".into(),
            ));
        }
        Ok(dir)
    }

    /// The image's file name (and its object's name in the store).
    pub fn image_name(&self) -> &'static str {
        if self.windows {
            "memory.raw"
        } else {
            "memory.lime"
        }
    }
}

/// Text that can stand inside single quotes in sh and PowerShell.
pub fn shell_safe(text: &str) -> bool {
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
/// last batch removes the image from the machine. A URL that needs headers
/// or another method, or that cannot stand in single quotes, is refused.
pub fn upload_script(
    tool: &Tool,
    dir: &str,
    part_size: u64,
    urls: &[uploads::PartUrl],
    last: bool,
) -> Result<Vec<String>, PluginError> {
    if let Some(bad) = urls
        .iter()
        .find(|u| !shell_safe(&u.url) || u.method != "PUT" || !u.headers.is_empty())
    {
        return Err(PluginError::Provider(ProviderFailure {
            code: "UnusableUploadUrl".into(),
            message: format!(
                "part {}: the store's URL cannot be passed to the machine",
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
        format!("Write-Output '{}'", uploaded_line(first, end))
    } else {
        format!("echo '{}'", uploaded_line(first, end))
    });
    Ok(lines)
}

fn uploaded_line(first: u32, end: u32) -> String {
    format!("IRHOST-UPLOADED {first}-{end}")
}

/// What the capture command reported: size and sha256 of the image.
pub fn captured(output: &str) -> Option<(u64, String)> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("IRHOST-CAPTURED "))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let size = field("size")?.parse().ok()?;
    let sha = field("sha256")?;
    (sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit())).then_some((size, sha))
}

/// Whether an upload command's output says parts `first`-`end` were sent
/// (its last line is printed only when every PUT succeeded).
pub fn uploaded(output: &str, first: u32, end: u32) -> bool {
    let line = uploaded_line(first, end);
    output.lines().any(|l| l.trim() == line)
}

/// The machine's agent, running a script of `lines` to its end: the
/// command's id and its standard output, or why it did not succeed
/// (cancelled on `timeout`).
pub trait AgentCommands {
    fn run(
        &self,
        lines: Vec<String>,
        what: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(String, String), PluginError>>;
}

/// Capture `machine`'s memory with `tool` through `agent` into a new upload
/// of the granted store: the `memory-image` artifact, with the image's size
/// and sha256 as the machine computed them (checked against the store's
/// size), the commands run and the tool's hash. The upload is aborted when
/// anything fails.
pub async fn capture(
    agent: &impl AgentCommands,
    machine: &str,
    tool: &Tool,
) -> Result<Artifact, PluginError> {
    let dir = tool.case_dir(&crate::case_id())?;
    let timeout = Duration::from_secs(param_or("memory_timeout_s", 3600)?);
    let upload = uploads::begin(tool.image_name())?;
    let (commands, size, sha256) = match capture_into(agent, tool, &dir, timeout, &upload).await {
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
                "the machine reported a {size}-byte image, the store holds {} bytes at {}",
                object.size, object.location
            ),
        }));
    }
    let mut artifact = Artifact::reference(
        ArtifactKind::MemoryImage,
        &object.location,
        &object.location,
    )
    .meta("instance", machine)
    .meta("format", if tool.windows { "raw" } else { "lime" })
    .meta("commands", &commands.join(","))
    .meta("tool_url", &tool.url)
    .meta("tool_sha256", &tool.sha256)
    .meta("parts", &object.parts.to_string())
    .meta("store_etag", &object.etag);
    artifact.size = Some(size);
    artifact.sha256 = Some(sha256);
    if let Some(version) = &object.version {
        artifact = artifact.meta("object_version", version);
    }
    crate::log::info(&format!(
        "{machine}: memory image of {size} bytes at {}",
        object.location
    ));
    Ok(artifact)
}

/// Capture, then upload batch by batch: the command ids, size and sha256.
async fn capture_into(
    agent: &impl AgentCommands,
    tool: &Tool,
    dir: &str,
    timeout: Duration,
    upload: &uploads::Upload,
) -> Result<(Vec<String>, u64, String), PluginError> {
    let (command, output) = agent
        .run(capture_script(tool, dir), "memory capture", timeout)
        .await?;
    let (size, sha256) = captured(&output).ok_or_else(|| {
        PluginError::Provider(ProviderFailure {
            code: "NoCaptureReport".into(),
            message: format!(
                "the capture command ({command}) reported no image size and sha256: {}",
                tail(&output)
            ),
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
        let end = first + count - 1;
        let urls = uploads::part_urls(upload, first, count)?;
        let last = u64::from(end) == parts;
        let lines = upload_script(tool, dir, part_size, &urls, last)?;
        let what = format!("upload of parts {first}-{end}");
        let (command, output) = agent.run(lines, &what, timeout).await?;
        if !uploaded(&output, first, end) {
            return Err(PluginError::Provider(ProviderFailure {
                code: "UploadNotReported".into(),
                message: format!(
                    "the {what} ({command}) did not report its parts sent: {}",
                    tail(&output)
                ),
            }));
        }
        commands.push(command);
        first += count;
    }
    Ok((commands, size, sha256))
}

/// The end of a command's output, for messages.
fn tail(output: &str) -> String {
    let trimmed = output.trim();
    let start = trimmed.char_indices().rev().nth(399).map_or(0, |(i, _)| i);
    if trimmed.is_empty() {
        "(no output)".into()
    } else {
        trimmed[start..].to_string()
    }
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
        // Azure's Linux form: one message, stdout after a `[stdout]` line.
        assert_eq!(
            captured(&format!(
                "Enable succeeded: \n[stdout]\nIRHOST-CAPTURED size=7 sha256={} tool_sha256=x\n\n[stderr]\n",
                "cd".repeat(32)
            )),
            Some((7, "cd".repeat(32)))
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
        assert!(uploaded("x\nIRHOST-UPLOADED 3-4\n", 3, 4));
        assert!(!uploaded("IRHOST-UPLOADED 3-5", 3, 4));
        assert!(lines.iter().any(|l| l == "rm -rf '/var/tmp/d'"));
        let mut bad = urls.clone();
        bad[0].url.push('\'');
        assert!(upload_script(&tool(false), "/d", 1, &bad, false).is_err());
        let mut headers = urls.clone();
        headers[1].headers = vec![("x-amz-checksum".into(), "x".into())];
        assert!(upload_script(&tool(false), "/d", 1, &headers, false).is_err());
    }

    #[test]
    fn the_case_directory_lives_under_the_workdir() {
        assert_eq!(
            tool(false).case_dir("IR-1").unwrap(),
            "/var/tmp/irhost-IR-1"
        );
        let mut windows = tool(true);
        windows.workdir = "C:\\Windows\\Temp\\".into();
        assert_eq!(
            windows.case_dir("IR-1").unwrap(),
            "C:\\Windows\\Temp\\irhost-IR-1"
        );
        assert!(tool(false).case_dir("x'y").is_err());
    }
}
