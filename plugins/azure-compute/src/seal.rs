//! seal: tag every snapshot of the case taken from this VM as sealed (case,
//! digest of the case's artifact list, time) and put a CanNotDelete
//! management lock on each, so that nobody deletes the evidence by mistake
//! (removing the lock is itself an audited, privileged action).

use irhost_plugin_sdk::artifact_digest;
use irhost_plugin_sdk::prelude::*;

use crate::arm::{
    complete, compute, locks, model, now_rfc3339, tag, vm_id, vm_of, with_tags, Arm, ResourceRef,
    TAG_CASE, TAG_SEALED, TAG_SEALED_AT, TAG_SEAL_DIGEST,
};
use crate::snapshot::case_snapshots;

/// The lock irhost puts on a sealed snapshot.
pub fn lock_name(case: &str) -> String {
    crate::arm::resource_name(&["irhost-sealed", case], 90)
}

pub async fn seal(
    arm: &Arm,
    target: &Target,
    artifacts: &[Artifact],
) -> Result<SealRecord, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let vm_ref = vm_of(target)?;
    let source_vm = vm_id(&vm_ref);
    let digest = artifact_digest(artifacts);
    let snapshots = case_snapshots(arm, &vm_ref, &case, &source_vm).await?;
    if snapshots.is_empty() {
        log::warn(&format!(
            "no snapshot of {} is tagged with case {case}; nothing to seal",
            vm_ref.name
        ));
    }
    let mut sealed_at: Option<String> = None;
    let now = now_rfc3339();
    let mut tagged = 0;
    for snap in &snapshots {
        let id = snap.resource.id.clone().unwrap_or_default();
        let name = ResourceRef::name_of(&id);
        let done = tag(&snap.resource.tags, TAG_SEALED) == Some("true")
            && tag(&snap.resource.tags, TAG_SEAL_DIGEST) == Some(digest.as_str());
        if done {
            if sealed_at.is_none() {
                sealed_at = tag(&snap.resource.tags, TAG_SEALED_AT).map(str::to_string);
            }
        } else {
            if tag(&snap.resource.tags, TAG_SEALED) == Some("true") {
                log::warn(&format!("{name} was sealed with another artifact list; sealing it again with digest {digest}"));
            }
            let tags = with_tags(
                &snap.resource.tags,
                &[
                    (TAG_SEALED, "true".into()),
                    (TAG_SEAL_DIGEST, digest.clone()),
                    (TAG_SEALED_AT, now.clone()),
                    (TAG_CASE, case.clone()),
                ],
            );
            let update: compute::models::SnapshotUpdate =
                model("snapshot tags", serde_json::json!({ "tags": tags }))?;
            let what = format!("tag snapshot {name} as sealed");
            let response = arm
                .compute
                .snapshots_client()
                .update(&vm_ref.subscription, &vm_ref.resource_group, &name, update)
                .send()
                .await
                .map_err(|e| arm.error(&what, e))?;
            complete(arm, &what, response.into_raw_response()).await?;
            tagged += 1;
        }
        ensure_lock(arm, &id, &case, &digest).await?;
    }
    let time = if tagged == 0 {
        sealed_at.unwrap_or(now)
    } else {
        now
    };
    log::info(&format!(
        "{}: sealed {} snapshot(s) ({} newly tagged), each under a CanNotDelete lock, digest {digest}",
        vm_ref.name,
        snapshots.len(),
        tagged
    ));
    Ok(SealRecord {
        sealed: snapshots
            .iter()
            .filter_map(|s| s.resource.id.clone())
            .collect(),
        digest,
        time,
        details: vec![
            ("lock".into(), lock_name(&case)),
            ("lock-level".into(), "CanNotDelete".into()),
            ("vm".into(), source_vm),
        ],
    })
}

/// A CanNotDelete lock named for the case on `resource_id`, unless one with
/// that name and a delete-blocking level is already there.
async fn ensure_lock(
    arm: &Arm,
    resource_id: &str,
    case: &str,
    digest: &str,
) -> Result<(), PluginError> {
    let scope = resource_id.trim_start_matches('/');
    let name = lock_name(case);
    let what = format!("read lock {name} on {}", ResourceRef::name_of(resource_id));
    let existing = arm
        .locks
        .management_locks_client()
        .get_by_scope(scope, &name)
        .send()
        .await;
    match existing {
        Ok(response) => {
            let lock = response
                .into_body()
                .await
                .map_err(|e| arm.error(&what, e))?;
            use locks::models::management_lock_properties::Level;
            if matches!(lock.properties.level, Level::CanNotDelete | Level::ReadOnly) {
                return Ok(());
            }
        }
        Err(e) => match arm.error(&what, e) {
            PluginError::NotFound(_) => {}
            other => return Err(other),
        },
    }
    let lock: locks::models::ManagementLockObject = model(
        "management lock",
        serde_json::json!({
            "properties": {
                "level": "CanNotDelete",
                "notes": format!("irhost case {case}: sealed evidence (digest {digest})"),
            }
        }),
    )?;
    let what = format!("lock {}", ResourceRef::name_of(resource_id));
    let response = arm
        .locks
        .management_locks_client()
        .create_or_update_by_scope(scope, name, lock)
        .send()
        .await
        .map_err(|e| arm.error(&what, e))?;
    complete(arm, &what, response.into_raw_response()).await?;
    Ok(())
}
