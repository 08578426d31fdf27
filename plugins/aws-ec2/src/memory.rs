//! `capture-memory` on EC2: the SDK's [`irhost_plugin_sdk::memory`]
//! sequence (a pinned tool, AVML on Linux or WinPmem on Windows, run by the
//! instance's own agent, the image uploaded by the instance to the store the
//! playbook grants) over SSM Run Command (`AWS-RunShellScript` /
//! `AWS-RunPowerShellScript`). Each command is polled with
//! `GetCommandInvocation` (progress reported) and cancelled on timeout. An
//! instance SSM does not manage (`DescribeInstanceInformation` does not list
//! it) is `unsupported`. Parameters: the SDK module's, and `memory_poll_ms`
//! (default 2000).

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter};
use aws_sdk_ssm::Client;
use irhost_plugin_sdk::memory::{self, AgentCommands, Tool};
use irhost_plugin_sdk::prelude::*;
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

/// SSM running commands on one instance with one document.
struct Agent<'a> {
    ssm: &'a Ssm,
    instance: &'a str,
    document: &'a str,
}

impl AgentCommands for Agent<'_> {
    async fn run(
        &self,
        lines: Vec<String>,
        what: &str,
        timeout: Duration,
    ) -> Result<(String, String), PluginError> {
        self.ssm
            .run(self.instance, self.document, lines, what, timeout)
            .await
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
    let document_hash = ssm.document_hash(document).await;
    let agent = Agent {
        ssm: &ssm,
        instance: id,
        document,
    };
    let mut artifact = memory::capture(&agent, id, &tool)
        .await?
        .meta("platform", &platform)
        .meta("document", document);
    if let Some(hash) = document_hash {
        artifact = artifact.meta("document_sha256", &hash);
    }
    Ok(vec![artifact])
}
