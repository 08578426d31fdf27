//! `stop`: take the instance down after preservation — StopInstances
//! (hibernating when the playbook asks and the instance supports it),
//! never TerminateInstances; its EBS volumes kept on termination first; the
//! state before and after recorded. A stopped instance is left as it is.
//!
//! Parameters: `hibernate` (bool, default false), `stop_wait_s` (how long
//! to wait for `stopped`, default 600).

use std::time::{Duration, Instant};

use irhost_plugin_sdk::prelude::*;

use crate::aws::{param_or, state_name, Ec2};
use crate::isolate::keep_volumes_on_termination;

/// How often the instance's state is read while it stops.
const POLL: Duration = Duration::from_secs(2);

pub async fn stop(ec2: &Ec2, target: &Target) -> Result<StateChange, PluginError> {
    let id = target.id.as_str();
    let instance = ec2.instance(id).await?;
    let previous = state_name(&instance);
    let mut changes = Vec::new();
    let mut details = vec![("instance".to_string(), id.to_string())];
    match previous.as_str() {
        "stopped" | "stopping" => {
            log::info(&format!("{id} is already {previous}: nothing to do"));
            details.push(("changed".into(), "false".into()));
            return Ok(StateChange {
                target_id: id.to_string(),
                previous_state: previous.clone(),
                state: previous,
                changes,
                details,
            });
        }
        "terminated" | "shutting-down" => {
            return Err(PluginError::Conflict(format!(
                "{id} is {previous}: it cannot be stopped"
            )))
        }
        _ => {}
    }
    keep_volumes_on_termination(ec2, &instance, &mut changes).await?;
    let asked: bool = param_or("hibernate", false)?;
    let supported = instance
        .hibernation_options()
        .and_then(|h| h.configured())
        .unwrap_or(false);
    let hibernate = asked && supported;
    if asked && !supported {
        log::warn(&format!(
            "{id}: hibernation was asked for but the instance is not configured for it: stopping without (memory is lost unless captured)"
        ));
    }
    details.push(("hibernate-asked".into(), asked.to_string()));
    details.push(("hibernated".into(), hibernate.to_string()));
    let out = ec2
        .client
        .stop_instances()
        .instance_ids(id)
        .hibernate(hibernate)
        .send()
        .await
        .map_err(|e| ec2.err("StopInstances", e))?;
    let reported = out
        .stopping_instances()
        .iter()
        .find(|s| s.instance_id() == Some(id))
        .and_then(|s| s.current_state())
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| "stopping".into());
    changes.push(IsolationChange {
        resource_id: id.to_string(),
        description: format!(
            "{} the instance (was {previous})",
            if hibernate { "hibernated" } else { "stopped" }
        ),
        previous: json!({ "kind": "instance-state", "state": previous }).to_string(),
    });
    let state = wait_stopped(ec2, id, &reported).await?;
    Ok(StateChange {
        target_id: id.to_string(),
        previous_state: previous,
        state: if hibernate {
            format!("{state} (hibernated)")
        } else {
            state
        },
        changes,
        details,
    })
}

/// Read the state until it is `stopped` or the wait is over (then the
/// last state read: `stopping` is still a stop in progress, not a failure).
async fn wait_stopped(ec2: &Ec2, id: &str, first: &str) -> Result<String, PluginError> {
    let limit = Duration::from_secs(param_or("stop_wait_s", 600)?);
    let started = Instant::now();
    let mut state = first.to_string();
    while state != "stopped" && started.elapsed() < limit {
        irhost_plugin_sdk::progress(
            started.elapsed().as_secs(),
            limit.as_secs(),
            &format!("{id} is {state}"),
        );
        wstd::task::sleep(wstd::time::Duration::from(POLL)).await;
        state = state_name(&ec2.instance(id).await?);
    }
    Ok(state)
}
