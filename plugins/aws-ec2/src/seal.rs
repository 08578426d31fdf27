//! seal: mark every snapshot of the case taken from this instance as sealed
//! (case id, digest of the case's artifact list, time) and, when the
//! playbook names a forensic account, share the snapshots with it.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{OperationType, SnapshotAttributeName};
use irhost_plugin_sdk::artifact_digest;
use irhost_plugin_sdk::prelude::*;

use crate::aws::{
    now_rfc3339, tag, tag_value, Ec2, TAG_CASE, TAG_SEALED, TAG_SEALED_AT, TAG_SEAL_DIGEST,
};
use crate::snapshot::{case_snapshots, SnapshotLookup};

pub async fn seal(
    ec2: &Ec2,
    target: &Target,
    artifacts: &[Artifact],
) -> Result<SealRecord, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let id = target.id.as_str();
    let forensic_account: Option<String> = irhost_plugin_sdk::param("forensic_account")?;
    if let Some(acct) = &forensic_account {
        if acct.len() != 12 || !acct.chars().all(|c| c.is_ascii_digit()) {
            return Err(PluginError::InvalidInput(format!(
                "forensic_account `{acct}` is not a 12-digit AWS account id"
            )));
        }
    }
    let digest = artifact_digest(artifacts);
    // The case's snapshots of this instance are among the artifacts it
    // received; without any (a seal in a run of its own), look them up by tag.
    let snapshot_ids: Vec<String> = artifacts
        .iter()
        .filter(|a| {
            matches!(a.kind, ArtifactKind::DiskSnapshot) && a.provider_id.starts_with("snap-")
        })
        .map(|a| a.provider_id.clone())
        .collect();
    let lookup = if snapshot_ids.is_empty() {
        SnapshotLookup::Tagged
    } else {
        SnapshotLookup::Ids(&snapshot_ids)
    };
    let snapshots = case_snapshots(ec2, &case, id, lookup).await?;
    if snapshots.is_empty() {
        log::warn(&format!(
            "no snapshot of {id} is tagged with case {case}; nothing to seal"
        ));
    }

    // Already sealed with the same digest: keep the first seal's time.
    let mut to_tag = Vec::new();
    let mut sealed_at: Option<String> = None;
    for s in &snapshots {
        let sid = s.snapshot_id().unwrap_or_default().to_string();
        let done = tag_value(s.tags(), TAG_SEALED) == Some("true")
            && tag_value(s.tags(), TAG_SEAL_DIGEST) == Some(digest.as_str());
        if done {
            if sealed_at.is_none() {
                sealed_at = tag_value(s.tags(), TAG_SEALED_AT).map(str::to_string);
            }
        } else {
            if tag_value(s.tags(), TAG_SEALED) == Some("true") {
                log::warn(&format!(
                    "{sid} was sealed with another artifact list; sealing it again with digest {digest}"
                ));
            }
            to_tag.push(sid);
        }
    }
    let time = if to_tag.is_empty() {
        sealed_at.unwrap_or_else(now_rfc3339)
    } else {
        now_rfc3339()
    };
    if !to_tag.is_empty() {
        ec2.client
            .create_tags()
            .set_resources(Some(to_tag.clone()))
            .tags(tag(TAG_SEALED, "true"))
            .tags(tag(TAG_SEAL_DIGEST, &digest))
            .tags(tag(TAG_SEALED_AT, &time))
            .tags(tag(TAG_CASE, &case))
            .send()
            .await
            .map_err(|e| ec2.err("CreateTags", e))?;
        log::info(&format!(
            "sealed {} snapshot(s) of {id} with digest {digest}",
            to_tag.len()
        ));
    }

    if let Some(acct) = &forensic_account {
        for s in &snapshots {
            let sid = s.snapshot_id().unwrap_or_default();
            if s.encrypted() == Some(true) {
                log::warn(&format!(
                    "{sid} is encrypted: account {acct} also needs access to its KMS key {} (snapshots under the default aws/ebs key cannot be shared)",
                    s.kms_key_id().unwrap_or("(default)")
                ));
            }
            let result = ec2
                .client
                .modify_snapshot_attribute()
                .snapshot_id(sid)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                // OperationType + UserId.N: the form every EC2 implementation
                // (moto included) reads; AWS treats it like CreateVolumePermission.Add.
                .operation_type(OperationType::Add)
                .user_ids(acct)
                .send()
                .await;
            if let Err(e) = result {
                // A snapshot still pending cannot be shared yet: let the engine come back.
                if e.code() == Some("IncorrectState") {
                    return Err(PluginError::Throttled(Throttle {
                        message: format!(
                            "{sid} is not completed yet; it can be shared with {acct} once it is"
                        ),
                        retry_after_ms: ec2.retry_after_ms.max(5000),
                    }));
                }
                return Err(ec2.err("ModifySnapshotAttribute", e));
            }
        }
        log::info(&format!(
            "shared {} snapshot(s) of {id} with account {acct}",
            snapshots.len()
        ));
    }

    let mut details = vec![
        ("case".to_string(), case),
        ("instance".to_string(), id.to_string()),
        ("region".to_string(), ec2.region.clone()),
        ("artifacts".to_string(), artifacts.len().to_string()),
        (
            "digest-input".to_string(),
            "sha256 over the sorted, de-duplicated artifact provider ids, each followed by \\n"
                .to_string(),
        ),
        ("newly-sealed".to_string(), to_tag.len().to_string()),
    ];
    if let Some(acct) = forensic_account {
        details.push(("shared-with".to_string(), acct));
    }
    Ok(SealRecord {
        sealed: snapshots
            .iter()
            .filter_map(|s| s.snapshot_id().map(str::to_string))
            .collect(),
        digest,
        time,
        details,
    })
}
