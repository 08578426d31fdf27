//! Everything that happens in a run, as data. Each [`RunEvent`] becomes one
//! journal record and, with `--json`, one line on stdout.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where events go (a case journal, or nowhere).
pub type EventSink = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// Outcome of a step or a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        playbook: String,
        playbook_sha256: String,
        targets: Vec<String>,
        /// The targets whole (provider, id, region, account, attributes:
        /// the engine's target specs as JSON), so that `irhost resume`
        /// runs the same ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        target_specs: Vec<serde_json::Value>,
        concurrency: usize,
        /// Run-wide parameters (see `engine::RunOptions::params`).
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        params: serde_json::Map<String, serde_json::Value>,
    },
    PluginLoaded {
        plugin: String,
        path: String,
        sha256: String,
        world: String,
        /// The `irhost:plugin` version it was built against.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        contract: String,
        name: String,
        version: String,
        allow_hosts: Vec<String>,
        /// What the host set up for the plugin's cloud (signer, endpoint).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// A mutating step runs without a preserved snapshot because the
    /// playbook said `allow_unpreserved = true`.
    UnpreservedMutationAllowed {
        step: String,
        action: String,
    },
    TargetStarted {
        target: String,
    },
    StepStarted {
        target: String,
        step: String,
        plugin: String,
        action: String,
        attempt: u32,
        mutating: bool,
    },
    StepRetrying {
        target: String,
        step: String,
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    StepFinished {
        target: String,
        step: String,
        action: String,
        status: Status,
        attempts: u32,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<serde_json::Value>,
    },
    StepSkipped {
        target: String,
        step: String,
        reason: String,
    },
    PluginLog {
        target: String,
        step: String,
        plugin: String,
        level: String,
        message: String,
    },
    PluginProgress {
        target: String,
        step: String,
        done: u64,
        total: u64,
        message: String,
    },
    EgressDenied {
        target: String,
        step: String,
        plugin: String,
        method: String,
        url: String,
        reason: String,
    },
    /// What the host did for a plugin's evidence upload (the `uploads`
    /// interface): created it, minted short-lived URLs for some of its
    /// parts, completed or abandoned it. A minted URL is a credential for
    /// one object: each is journaled.
    EvidenceUpload {
        target: String,
        step: String,
        plugin: String,
        /// `begin`, `part-urls`, `complete`, `abort`.
        operation: String,
        location: String,
        /// The parts concerned (`1-100`), for `part-urls` and `complete`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parts: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_s: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// One cloud API call made with the responder's credentials: the
    /// case's own trail of every call.
    CloudCall {
        target: String,
        step: String,
        plugin: String,
        service: String,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Whose credentials signed it: the role and session, or the base
        /// identity's access key id (never a secret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<String>,
    },
    ArtifactRecorded {
        target: String,
        step: String,
        kind: String,
        provider_id: String,
        location: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// The host wrote the bytes to `artifacts/<sha256>` (the plugin
        /// returned content); otherwise the artifact is a reference.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stored: bool,
        /// The plugin's metadata for the artifact (volume, region, ...).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        metadata: Vec<(String, String)>,
    },
    TargetFinished {
        target: String,
        status: Status,
        failed_steps: Vec<String>,
        duration_ms: u64,
    },
    RunFinished {
        run_id: String,
        succeeded: usize,
        failed: usize,
        duration_ms: u64,
    },
    /// The journal's torn last line (a write cut by a power loss or a full
    /// disk) was cut off when the case was opened again; the chain goes on
    /// from the last whole record. The bytes are kept at `saved_as`.
    Repair {
        removed_bytes: u64,
        removed_sha256: String,
        records_kept: u64,
        saved_as: String,
    },
    /// `irhost resume`: the step is not run again, its success for this
    /// playbook is journaled at `seq`; its output is its dependents' input.
    StepResumed {
        target: String,
        step: String,
        seq: u64,
    },
    /// The case is about to be sealed: this record is the last one the
    /// manifest (`manifest`, relative to the case directory) covers.
    CaseSealed {
        run_id: String,
        manifest: String,
        signed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_fingerprint: Option<String>,
        /// `user@host` of the process that sealed the case.
        sealed_by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// `irhost watch` started (first record of a watch session).
    WatchStarted {
        rules: String,
        rules_sha256: String,
        source: String,
        concurrency: usize,
        dedup_window_s: u64,
    },
    /// What `irhost watch` decided about one event, or how a run it
    /// started ended.
    WatchDecision {
        decision: WatchDecisionKind,
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
        /// The event's top-level `id`, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// sha256 of the event exactly as received.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_sha256: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        targets: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playbook: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `run_finished`: whether the run succeeded (its targets then stay
        /// claimed for the dedup window, across a restart of the watch too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        succeeded: Option<bool>,
        /// The matched event itself (matched decisions only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<serde_json::Value>,
    },
    /// `irhost watch` stopped.
    WatchStopped {
        events: u64,
        runs: u64,
        failed_runs: u64,
    },
}

/// A decision of `irhost watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WatchDecisionKind {
    /// A rule matched: a run was started (see `run_id`, `case`).
    Matched,
    /// No rule matched, or a rule matched but named no target.
    Ignored,
    /// A rule matched, but every target is being or was recently handled.
    Deduplicated,
    /// Not a JSON object: logged and skipped.
    Malformed,
    /// A run started by a match finished (`reason` says how).
    RunFinished,
    /// A run that was in flight when an earlier watch on this journal
    /// stopped, continued with `irhost resume`'s rules on start.
    Resumed,
}

impl Status {
    /// The name used in journals (`succeeded`, `failed`, `skipped`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl WatchDecisionKind {
    /// The name used in journals (`matched`, `run_finished`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl RunEvent {
    /// The record's `type` as written in the journal (`step_started`, ...).
    pub fn kind(&self) -> &'static str {
        self.into()
    }

    /// The target an event belongs to, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            RunEvent::TargetStarted { target }
            | RunEvent::StepStarted { target, .. }
            | RunEvent::StepRetrying { target, .. }
            | RunEvent::StepFinished { target, .. }
            | RunEvent::StepSkipped { target, .. }
            | RunEvent::StepResumed { target, .. }
            | RunEvent::PluginLog { target, .. }
            | RunEvent::PluginProgress { target, .. }
            | RunEvent::EgressDenied { target, .. }
            | RunEvent::CloudCall { target, .. }
            | RunEvent::EvidenceUpload { target, .. }
            | RunEvent::ArtifactRecorded { target, .. }
            | RunEvent::TargetFinished { target, .. } => Some(target),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_names() {
        let event = RunEvent::TargetStarted {
            target: "test:a".into(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.kind());
        for status in [Status::Succeeded, Status::Failed, Status::Skipped] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        let kind = WatchDecisionKind::RunFinished;
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}
