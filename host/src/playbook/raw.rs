//! The playbook file as serde reads it: every table and field with its
//! span, unknown fields refused. [`super::Playbook::parse`] checks it.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlaybook {
    pub(super) playbook: Spanned<RawMeta>,
    #[serde(default)]
    pub(super) plugins: BTreeMap<String, Spanned<RawPlugin>>,
    #[serde(default)]
    pub(super) steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub(super) targets: Option<Spanned<RawTargets>>,
    /// What a run may set (`[inputs.NAME]`).
    #[serde(default)]
    pub(super) inputs: BTreeMap<String, Spanned<RawInput>>,
}

/// `[inputs.NAME]`: a parameter a run may set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    #[serde(default)]
    pub(super) values: Option<Spanned<Vec<toml::Value>>>,
    #[serde(default)]
    pub(super) pattern: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeta {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub(super) path: Spanned<String>,
    #[serde(default)]
    pub(super) sha256: Option<Spanned<String>>,
    /// Absent: the grant's default endpoints; `[]`: none.
    #[serde(default)]
    pub(super) allow_hosts: Option<Vec<Spanned<String>>>,
    /// The cloud power the playbook grants the plugin.
    #[serde(default)]
    pub(super) cloud: Option<Spanned<RawGrant>>,
    #[serde(default)]
    pub(super) limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub(super) config: toml::Table,
}

/// `cloud = { aws = ["ec2:DescribeInstances", …] }` or `cloud = { azure =
/// "arm" }` / `cloud = { azure = ["Microsoft.Compute/virtualMachines/read",
/// …] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    #[serde(default)]
    pub(super) aws: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) azure: Option<Spanned<toml::Value>>,
    /// `arn:aws:iam::{account}:role/NAME`: the role AWS calls are signed
    /// with, in the target's account.
    #[serde(default)]
    pub(super) assume_role: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) external_id: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) session_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) duration: Option<Spanned<String>>,
    /// `{ "SUBSCRIPTION" = "TENANT" }`: an Azure target's token comes from
    /// its subscription's tenant.
    #[serde(default)]
    pub(super) tenants: Option<Spanned<toml::Table>>,
    /// `"s3://BUCKET/PREFIX/"` or an Azure container URL: where the
    /// machine itself may upload evidence (a memory image).
    #[serde(default)]
    pub(super) evidence_uploads: Option<Spanned<String>>,
    /// The agent's services an isolation keeps reachable (`["ssm", "s3"]`).
    #[serde(default)]
    pub(super) isolation_keeps: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) memory_mb: Option<Spanned<u64>>,
    pub(super) cpu_ms: Option<Spanned<u64>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) max_output_kb: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) id: Spanned<String>,
    pub(super) plugin: Spanned<String>,
    pub(super) action: Spanned<String>,
    #[serde(default)]
    pub(super) after: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) with: toml::Table,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) retries: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) on_error: super::OnError,
    #[serde(default)]
    pub(super) allow_unpreserved: Option<Spanned<bool>>,
    /// `"target"` (default) or `"sealed"`: see [`super::phase`].
    #[serde(default)]
    pub(super) phase: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargets {
    #[serde(default)]
    pub(super) list: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) region: Option<String>,
    #[serde(default)]
    pub(super) account: Option<String>,
}
