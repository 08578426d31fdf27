//! snapshot: crash-consistent snapshots of every attached EBS volume (one
//! CreateSnapshots call with the instance specification), the instance's
//! description and console output, and a note on instance-store volumes,
//! which cannot be preserved by a snapshot.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    Filter, InstanceAttributeName, InstanceSpecification, InstanceType, ResourceType, Snapshot,
};
use irhost_plugin_sdk::prelude::*;

use crate::aws::{
    filter, first_instance, fmt_time, now_rfc3339, state_name, tag, tag_spec, tag_value,
    CaptureBody, Ec2, TAG_CASE, TAG_DEVICE, TAG_SOURCE_INSTANCE, TAG_TIME, TAG_VOLUME,
};

/// One EBS volume attached to the instance.
struct Volume {
    id: String,
    device: String,
    root: bool,
}

pub async fn snapshot(ec2: &Ec2, target: &Target) -> Result<Vec<Artifact>, PluginError> {
    let case = irhost_plugin_sdk::case_id();
    let id = target.id.as_str();

    // The description first, raw as the API said it: it is evidence too.
    let capture = CaptureBody::default();
    let described = ec2
        .client
        .describe_instances()
        .instance_ids(id)
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .map_err(|e| ec2.err("DescribeInstances", e))?;
    let instance = first_instance(described.reservations(), id)?;
    let raw_description = capture.take();
    let state = state_name(&instance);
    if state == "terminated" || state == "shutting-down" {
        return Err(PluginError::Conflict(format!(
            "instance {id} is {state}: its EBS volumes are gone or going, nothing to snapshot"
        )));
    }
    if state != "running" {
        log::info(&format!(
            "instance {id} is {state}; EBS snapshots work in this state, the console output may be stale"
        ));
    }

    let root_device = instance.root_device_name().unwrap_or_default().to_string();
    let volumes: Vec<Volume> = instance
        .block_device_mappings()
        .iter()
        .filter_map(|m| {
            let vol = m.ebs()?.volume_id()?.to_string();
            let device = m.device_name().unwrap_or_default().to_string();
            Some(Volume {
                root: device == root_device,
                id: vol,
                device,
            })
        })
        .collect();

    let mut artifacts = Vec::new();
    if volumes.is_empty() {
        log::warn(&format!("instance {id} has no attached EBS volume"));
    } else {
        artifacts.extend(ebs_snapshots(ec2, target, &case, &volumes).await?);
    }

    // Instance-store volumes: named, never silently skipped.
    let instance_type = instance
        .instance_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let root_type = instance
        .root_device_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let storage = instance_storage(ec2, &instance_type).await;
    let instance_store_root = root_type == "instance-store";
    if instance_store_root || storage.as_ref().is_some_and(|s| s["supported"] == true) {
        let note = json!({
            "instance": id,
            "preservable": false,
            "reason": "instance-store volumes are ephemeral and cannot be snapshotted through \
                       the EC2 API; their contents are lost when the instance stops or terminates. \
                       Acquire them from inside the instance (live response) if needed.",
            "root_device_type": root_type,
            "instance_type": instance_type,
            "instance_storage": storage.clone().unwrap_or(serde_json::Value::Null),
        });
        log::warn(&format!(
            "instance {id} has instance-store volume(s) ({}); they cannot be preserved by a snapshot",
            storage
                .as_ref()
                .and_then(|s| s["total_size_in_gb"].as_i64())
                .map(|gb| format!("{gb} GB"))
                .unwrap_or_else(|| "root device is instance-store".into())
        ));
        artifacts.push(
            Artifact::with_content(
                ArtifactKind::Other,
                &format!("{id}/instance-store.json"),
                serde_json::to_vec_pretty(&note).unwrap_or_default(),
            )
            .meta("preservable", "false")
            .meta("instance", id),
        );
    }

    // The configuration dump: our JSON view plus the API's raw answer and the user data.
    let user_data = ec2
        .client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .map(|o| {
            o.user_data()
                .and_then(|v| v.value())
                .map(|v| json!({ "base64": v }))
                .unwrap_or(serde_json::Value::Null)
        })
        .unwrap_or_else(|e| {
            let e = ec2.err("DescribeInstanceAttribute(userData)", e);
            log::warn(&format!("could not read user data of {id}: {e:?}"));
            json!({ "error": format!("{e:?}") })
        });
    let dump = json!({
        "captured_at": now_rfc3339(),
        "region": ec2.region,
        "instance": crate::describe::instance_json(&instance),
        "user_data": user_data,
        "describe_instances_response": raw_description
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
    });
    artifacts.push(
        Artifact::with_content(
            ArtifactKind::ConfigDump,
            &format!("{id}/describe-instances.json"),
            serde_json::to_vec_pretty(&dump).unwrap_or_default(),
        )
        .meta("instance", id)
        .meta("state", &state)
        .meta("format", "json"),
    );

    // Console output: what the instance printed to its serial console.
    match ec2.client.get_console_output().instance_id(id).send().await {
        Ok(out) => {
            let encoded = out.output().unwrap_or_default();
            let bytes = aws_smithy_types::base64::decode(encoded.trim())
                .unwrap_or_else(|_| encoded.as_bytes().to_vec());
            let mut artifact = Artifact::with_content(
                ArtifactKind::ConsoleLog,
                &format!("{id}/console-output.txt"),
                bytes,
            )
            .meta("instance", id);
            if let Some(t) = fmt_time(out.timestamp()) {
                artifact = artifact.meta("timestamp", &t);
            }
            if encoded.is_empty() {
                artifact = artifact.meta("empty", "true");
            }
            artifacts.push(artifact);
        }
        Err(e) => {
            let e = ec2.err("GetConsoleOutput", e);
            if matches!(e, PluginError::Throttled(_)) {
                return Err(e);
            }
            log::warn(&format!("no console output for {id}: {e:?}"));
        }
    }
    // The screen: a PNG of what the instance's display shows (step 1's
    // screenshots). Not every instance type has one: said, never fatal.
    match ec2
        .client
        .get_console_screenshot()
        .instance_id(id)
        .wake_up(true)
        .send()
        .await
    {
        Ok(out) => match out
            .image_data()
            .map(|data| aws_smithy_types::base64::decode(data.trim()))
        {
            Some(Ok(png)) if !png.is_empty() => artifacts.push(
                Artifact::with_content(ArtifactKind::Other, &format!("{id}/screenshot.png"), png)
                    .meta("type", "screenshot")
                    .meta("format", "png")
                    .meta("instance", id),
            ),
            _ => log::warn(&format!(
                "no screenshot of {id}: GetConsoleScreenshot returned no image"
            )),
        },
        Err(e) => {
            let e = ec2.err("GetConsoleScreenshot", e);
            if matches!(e, PluginError::Throttled(_)) {
                return Err(e);
            }
            log::warn(&format!(
                "no screenshot of {id} (unsupported here, or the instance type has no display): {e:?}"
            ));
        }
    }
    Ok(artifacts)
}

/// How to find a case's snapshots: the narrowest query that finds them.
pub enum SnapshotLookup<'a> {
    /// Snapshots of these volumes (the instance's), by `volume-id`.
    Volumes(&'a [String]),
    /// These snapshots (from the case's artifacts), by id.
    Ids(&'a [String]),
    /// Every snapshot tagged with the case (when nothing narrower is known).
    Tagged,
}

/// Snapshots of the case taken from `instance`. The query narrows by volume
/// or snapshot id, and the case and source-instance tags are checked here
/// on what comes back: a tag filter finds nothing more, and EC2
/// implementations that evaluate it per snapshot are far slower for it
/// (moto walks every tag of the region for every snapshot: 380 ms against
/// 13–22 ms for an id or volume query with 1,351 snapshots).
pub async fn case_snapshots(
    ec2: &Ec2,
    case: &str,
    instance: &str,
    lookup: SnapshotLookup<'_>,
) -> Result<Vec<Snapshot>, PluginError> {
    let mut query = ec2.client.describe_snapshots();
    match lookup {
        SnapshotLookup::Volumes([]) | SnapshotLookup::Ids([]) => return Ok(Vec::new()),
        SnapshotLookup::Volumes(volumes) => {
            query = query.owner_ids("self").filters(
                Filter::builder()
                    .name("volume-id")
                    .set_values(Some(volumes.to_vec()))
                    .build(),
            )
        }
        SnapshotLookup::Ids(ids) => query = query.set_snapshot_ids(Some(ids.to_vec())),
        SnapshotLookup::Tagged => {
            query = query
                .owner_ids("self")
                .filters(filter(&format!("tag:{TAG_CASE}"), case))
                .filters(filter(&format!("tag:{TAG_SOURCE_INSTANCE}"), instance))
        }
    }
    let mut snapshots = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = query
            .clone()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| ec2.err("DescribeSnapshots", e))?;
        snapshots.extend(
            out.snapshots()
                .iter()
                .filter(|s| {
                    tag_value(s.tags(), TAG_CASE) == Some(case)
                        && tag_value(s.tags(), TAG_SOURCE_INSTANCE) == Some(instance)
                })
                .cloned(),
        );
        match out.next_token().filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    Ok(snapshots)
}

/// Tag a snapshot with its volume and device (they differ per snapshot, so
/// snapshots are tagged one by one).
async fn tag_snapshot(ec2: &Ec2, sid: &str, volume: &str, device: &str) -> Result<(), PluginError> {
    ec2.client
        .create_tags()
        .resources(sid)
        .tags(tag(TAG_VOLUME, volume))
        .tags(tag(TAG_DEVICE, device))
        .send()
        .await
        .map_err(|e| ec2.err("CreateTags", e))?;
    Ok(())
}

async fn ebs_snapshots(
    ec2: &Ec2,
    target: &Target,
    case: &str,
    volumes: &[Volume],
) -> Result<Vec<Artifact>, PluginError> {
    let id = target.id.as_str();
    // Idempotency: a volume that already has a snapshot for this case and
    // instance is not snapshotted again.
    let mut existing: BTreeMap<String, Snapshot> = BTreeMap::new();
    let volume_ids: Vec<String> = volumes.iter().map(|v| v.id.clone()).collect();
    for s in case_snapshots(ec2, case, id, SnapshotLookup::Volumes(&volume_ids)).await? {
        let usable = s.state().map(|st| st.as_str() != "error").unwrap_or(true);
        let volume = s
            .volume_id()
            .or_else(|| tag_value(s.tags(), TAG_VOLUME))
            .map(str::to_string);
        if let (true, Some(volume)) = (usable, volume) {
            existing.entry(volume).or_insert(s);
        }
    }
    let missing: Vec<&Volume> = volumes
        .iter()
        .filter(|v| !existing.contains_key(&v.id))
        .collect();

    let mut created: BTreeMap<String, (String, bool)> = BTreeMap::new(); // volume -> (snapshot, reused)
    for (volume, s) in &existing {
        let Some(sid) = s.snapshot_id() else { continue };
        // A run cut between CreateSnapshots and the per-snapshot tags left
        // them off: add what is missing, once.
        if tag_value(s.tags(), TAG_VOLUME).is_none() || tag_value(s.tags(), TAG_DEVICE).is_none() {
            let device = volumes
                .iter()
                .find(|v| v.id == *volume)
                .map(|v| v.device.as_str())
                .unwrap_or_default();
            tag_snapshot(ec2, sid, volume, device).await?;
        }
        created.insert(volume.clone(), (sid.to_string(), true));
    }
    if !missing.is_empty() {
        let time = now_rfc3339();
        let exclude_boot = !missing.iter().any(|v| v.root);
        let exclude_data: Vec<String> = volumes
            .iter()
            .filter(|v| !v.root && existing.contains_key(&v.id))
            .map(|v| v.id.clone())
            .collect();
        let mut spec = InstanceSpecification::builder().instance_id(id);
        if exclude_boot {
            spec = spec.exclude_boot_volume(true);
        }
        if !exclude_data.is_empty() {
            spec = spec.set_exclude_data_volume_ids(Some(exclude_data));
        }
        log::info(&format!(
            "creating crash-consistent snapshots of {} volume(s) of {id}",
            missing.len()
        ));
        let out = ec2
            .client
            .create_snapshots()
            .instance_specification(spec.build())
            .description(format!("irhost case {case}: {id}"))
            .tag_specifications(tag_spec(
                ResourceType::Snapshot,
                vec![
                    tag(TAG_CASE, case),
                    tag(TAG_SOURCE_INSTANCE, id),
                    tag(TAG_TIME, &time),
                ],
            ))
            .send()
            .await
            .map_err(|e| ec2.err("CreateSnapshots", e))?;
        for info in out.snapshots() {
            let (Some(sid), Some(vol)) = (info.snapshot_id(), info.volume_id()) else {
                continue;
            };
            let device = volumes
                .iter()
                .find(|v| v.id == vol)
                .map(|v| v.device.as_str())
                .unwrap_or_default();
            tag_snapshot(ec2, sid, vol, device).await?;
            created.insert(vol.to_string(), (sid.to_string(), false));
        }
    } else {
        log::info(&format!(
            "every volume of {id} already has a snapshot for case {case}; reusing them"
        ));
    }

    let total = volumes.len() as u64;
    let mut artifacts = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        irhost_plugin_sdk::progress(i as u64 + 1, total, "volume");
        let Some((sid, reused)) = created.get(&v.id) else {
            log::warn(&format!(
                "CreateSnapshots returned no snapshot for volume {} ({}) of {id}",
                v.id, v.device
            ));
            continue;
        };
        let mut a = Artifact::reference(
            ArtifactKind::DiskSnapshot,
            sid,
            &format!("aws://ec2/{}/snapshot/{sid}", ec2.region),
        )
        .meta("volume", &v.id)
        .meta("device", &v.device)
        .meta("instance", id)
        .meta("case", case)
        .meta("root", &v.root.to_string())
        .meta("reused", &reused.to_string());
        if let Some(s) = existing.get(&v.id) {
            if let Some(st) = s.state() {
                a = a.meta("state", st.as_str());
            }
            if let Some(t) = fmt_time(s.start_time()) {
                a = a.meta("start_time", &t);
            }
        }
        artifacts.push(a);
    }
    Ok(artifacts)
}

/// What the instance type says about instance storage; None when unknown.
async fn instance_storage(ec2: &Ec2, instance_type: &str) -> Option<serde_json::Value> {
    if instance_type.is_empty() {
        return None;
    }
    match ec2
        .client
        .describe_instance_types()
        .instance_types(InstanceType::from(instance_type))
        .send()
        .await
    {
        Ok(out) => out.instance_types().first().map(|t| {
            let info = t.instance_storage_info();
            json!({
                "supported": t.instance_storage_supported().unwrap_or(false),
                "total_size_in_gb": info.and_then(|i| i.total_size_in_gb()),
                "disks": info.map(|i| i.disks().iter().map(|d| json!({
                    "count": d.count(),
                    "size_in_gb": d.size_in_gb(),
                    "type": d.r#type().map(|t| t.as_str()),
                })).collect::<Vec<_>>()),
            })
        }),
        Err(e) => {
            let e = ec2.err("DescribeInstanceTypes", e);
            log::warn(&format!(
                "could not tell whether {instance_type} has instance storage: {e:?}"
            ));
            None
        }
    }
}
