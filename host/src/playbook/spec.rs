//! The checked parts of a playbook: [`PluginSpec`] (a plugin entry) and
//! [`StepSpec`] (a step), with [`OnError`].

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::phase::StepPhase;
use crate::cloud::grant::EvidenceUploads;
use crate::cloud::CloudGrant;
use crate::egress::EgressPolicy;
use crate::runtime::limits::PluginLimits;

/// What a step's failure means for its target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The target fails and the step's dependents are skipped.
    #[default]
    Fail,
    /// The failure is journaled, dependents still run and the target can
    /// still succeed. A failed snapshot still blocks mutating steps.
    Continue,
}

/// A plugin entry of a playbook.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    /// The cloud power the playbook grants it (`cloud = …`); none: no
    /// signer, no token, no default hosts.
    pub grant: Option<CloudGrant>,
    /// Where `cloud` is written (the plugin's table when it is not).
    pub grant_span: Range<usize>,
    /// Where the grant lets the machine upload evidence (`evidence_uploads`).
    pub evidence_uploads: Option<EvidenceUploads>,
    /// The agent's services its isolation keeps reachable (`isolation_keeps`).
    pub isolation_keeps: Vec<String>,
    /// `allow_hosts` is absent: the grant's default endpoints are allowed.
    pub default_hosts: bool,
    pub path: PathBuf,
    pub path_span: Range<usize>,
    pub sha256: Option<String>,
    pub egress: EgressPolicy,
    pub limits: PluginLimits,
    pub config: serde_json::Value,
}

/// A step of a playbook.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub id: String,
    pub id_span: Range<usize>,
    pub plugin: String,
    pub action: String,
    pub action_span: Range<usize>,
    pub after: Vec<String>,
    pub with: serde_json::Value,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub on_error: OnError,
    pub allow_unpreserved: bool,
    /// Per target (the default), or once after the case is sealed.
    pub phase: StepPhase,
    /// Where `phase` is written (the step's id when it is not).
    pub phase_span: Range<usize>,
    /// Where each `after` entry is written, in order.
    pub after_spans: Vec<Range<usize>>,
}
