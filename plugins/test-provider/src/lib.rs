//! A provider plugin for tests and the demo: it talks to no cloud, and keeps
//! its "state" in the step parameters, so a playbook decides what it sees.
//!
//! Parameters (step `with` over plugin `config`):
//! - `volumes` (default 2), `interfaces` (default 1): the shape of a target;
//! - `fail_targets` (list of ids) with `fail_with` (`not-found`, `denied`,
//!   `provider`, `conflict`; default `provider`): make calls on those targets fail;
//! - `fail_actions` (list): restrict the failures to these actions (default all);
//! - `throttle_attempts` (n) and `retry_after_ms`: answer `throttled` to the first n attempts;
//! - `sleep_ms`: wait this long (on the host's clock) before answering;
//! - `shared_groups` (list of group ids): groups `remediate` finds used by
//!   other machines, so it reports and skips them;
//! - `no_agent` (bool): `capture-memory` answers `unsupported`, as for a
//!   machine without the cloud's agent.

use irhost_plugin_sdk::prelude::*;
use sha2::{Digest, Sha256};

struct TestProvider;

fn param_or<T: serde::de::DeserializeOwned>(name: &str, default: T) -> Result<T, PluginError> {
    Ok(irhost_plugin_sdk::param(name)?.unwrap_or(default))
}

/// Apply the failure, throttling and delay the parameters ask for.
fn scripted_behaviour(action: &str, target: &Target) -> Result<(), PluginError> {
    let sleep_ms: u64 = param_or("sleep_ms", 0)?;
    if sleep_ms > 0 {
        irhost_plugin_sdk::sleep(std::time::Duration::from_millis(sleep_ms));
    }
    let throttle_attempts: u32 = param_or("throttle_attempts", 0)?;
    if irhost_plugin_sdk::attempt() <= throttle_attempts {
        return Err(PluginError::Throttled(Throttle {
            message: format!(
                "{action} throttled on attempt {}",
                irhost_plugin_sdk::attempt()
            ),
            retry_after_ms: param_or("retry_after_ms", 10)?,
        }));
    }
    let fail_targets: Vec<String> = param_or("fail_targets", Vec::new())?;
    let fail_actions: Vec<String> = param_or("fail_actions", Vec::new())?;
    if fail_targets.contains(&target.id)
        && (fail_actions.is_empty() || fail_actions.iter().any(|a| a == action))
    {
        let message = format!("{action} failed for {} as scripted", target.id);
        let kind: String = param_or("fail_with", "provider".to_string())?;
        return Err(match kind.as_str() {
            "not-found" => PluginError::NotFound(message),
            "denied" => PluginError::Denied(message),
            "conflict" => PluginError::Conflict(message),
            _ => PluginError::Provider(ProviderFailure {
                code: "Scripted".into(),
                message,
            }),
        });
    }
    Ok(())
}

fn interfaces(target: &Target) -> Result<Vec<NetworkInterface>, PluginError> {
    let count: u32 = param_or("interfaces", 1)?;
    Ok((0..count)
        .map(|i| NetworkInterface {
            id: format!("{}-nic{i}", target.id),
            mac: Some(format!("02:00:00:00:00:{i:02x}")),
            private_ips: vec![format!("10.0.{i}.10")],
            public_ips: if i == 0 {
                vec!["203.0.113.10".into()]
            } else {
                vec![]
            },
            subnet: Some(format!("subnet-{i}")),
            network: Some("net-test".into()),
            security_groups: vec![SecurityGroup {
                id: "sg-web".into(),
                name: "web".into(),
                rules: vec![Rule {
                    direction: Direction::Ingress,
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    peer: "0.0.0.0/0".into(),
                    access: "allow".into(),
                    description: Some("ssh from anywhere".into()),
                }],
            }],
            attributes: vec![],
        })
        .collect())
}

impl Provider for TestProvider {
    fn describe() -> PluginInfo {
        PluginInfo::new("test-provider", env!("CARGO_PKG_VERSION"), "test")
            .action(
                "snapshot",
                Effect::Preserves,
                "pretend to snapshot every volume",
            )
            .action(
                "capture-memory",
                Effect::Preserves,
                "pretend to image the machine's memory",
            )
            .action(
                "enumerate-interfaces",
                Effect::Reads,
                "list the scripted interfaces",
            )
            .action("isolate", Effect::Mutates, "pretend to isolate the target")
            .action(
                "remediate",
                Effect::Mutates,
                "pretend to revoke world-open ingress from the inventory",
            )
            .action("stop", Effect::Mutates, "pretend to stop the machine")
            .action("seal", Effect::Preserves, "digest the artifacts handed in")
            .action(
                "release",
                Effect::Mutates,
                "undo a pretend isolation and remediation",
            )
    }

    fn snapshot(target: Target, _inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        scripted_behaviour("snapshot", &target)?;
        let volumes: u32 = param_or("volumes", 2)?;
        log::info(&format!("snapshotting {volumes} volumes of {}", target.id));
        let mut artifacts: Vec<Artifact> = (0..volumes)
            .map(|i| {
                irhost_plugin_sdk::progress(u64::from(i + 1), u64::from(volumes), "volume");
                Artifact::reference(
                    ArtifactKind::DiskSnapshot,
                    &format!("snap-{}-{i}", target.id),
                    &format!("test://snapshots/{}/{i}", target.id),
                )
                .meta("volume", &format!("vol-{i}"))
                .meta("case", &irhost_plugin_sdk::case_id())
            })
            .collect();
        let description =
            json!({ "id": target.id, "provider": target.provider, "volumes": volumes });
        artifacts.push(Artifact::with_content(
            ArtifactKind::ConfigDump,
            &format!("{}-description", target.id),
            serde_json::to_vec_pretty(&description).unwrap_or_default(),
        ));
        Ok(artifacts)
    }

    fn capture_memory(target: Target, _inputs: Inputs) -> Result<Vec<Artifact>, PluginError> {
        scripted_behaviour("capture-memory", &target)?;
        if param_or("no_agent", false)? {
            return Err(PluginError::Unsupported(format!(
                "{} has no agent to capture its memory with",
                target.id
            )));
        }
        let image = format!(
            "MEMORY IMAGE of {} for {}\n",
            target.id,
            irhost_plugin_sdk::case_id()
        );
        Ok(vec![Artifact::with_content(
            ArtifactKind::MemoryImage,
            &format!("{}-memory", target.id),
            image.into_bytes(),
        )
        .meta("tool", "test")])
    }

    fn enumerate_interfaces(
        target: Target,
        _inputs: Inputs,
    ) -> Result<InterfaceInventory, PluginError> {
        scripted_behaviour("enumerate-interfaces", &target)?;
        let interfaces = interfaces(&target)?;
        let exposed = interfaces
            .iter()
            .flat_map(|nic| {
                nic.security_groups.iter().flat_map(move |sg| {
                    sg.rules
                        .iter()
                        .filter(|r| matches!(r.direction, Direction::Ingress))
                        .map(move |r| ExposedPort {
                            interface_id: nic.id.clone(),
                            protocol: r.protocol.clone(),
                            from_port: r.from_port,
                            to_port: r.to_port,
                            peer: r.peer.clone(),
                            via: sg.id.clone(),
                        })
                })
            })
            .collect();
        let shared_storage = vec![SharedStorage {
            id: format!("fs-{}", target.id),
            kind: "efs-mount-target".into(),
            attached_to: vec![target.id.clone(), "test-neighbour".into()],
            endpoints: vec!["10.0.0.200".into()],
            attributes: vec![],
        }];
        Ok(InterfaceInventory {
            interfaces,
            exposed,
            shared_storage,
        })
    }

    fn isolate(target: Target, _inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        scripted_behaviour("isolate", &target)?;
        let changes = interfaces(&target)?
            .into_iter()
            .map(|nic| IsolationChange {
                resource_id: nic.id.clone(),
                description: "replaced security groups with the case isolation group".into(),
                previous: json!({ "groups": ["sg-web"] }).to_string(),
            })
            .collect();
        Ok(IsolationRecord {
            target_id: target.id,
            changes,
            verified: true,
        })
    }

    fn remediate(target: Target, inputs: Inputs) -> Result<RemediationRecord, PluginError> {
        scripted_behaviour("remediate", &target)?;
        let inventory = inputs.inventory()?.ok_or_else(|| {
            PluginError::InvalidInput(
                "remediate needs the inventory of an enumerate-interfaces step among its inputs"
                    .into(),
            )
        })?;
        let shared: Vec<String> = param_or("shared_groups", Vec::new())?;
        let (mut changes, mut skipped) = (Vec::new(), Vec::new());
        for port in inventory
            .exposed
            .iter()
            .filter(|p| p.peer == "0.0.0.0/0" || p.peer == "::/0")
        {
            let rule = format!(
                "{} {:?}-{:?} from {}",
                port.protocol, port.from_port, port.to_port, port.peer
            );
            if shared.contains(&port.via) {
                skipped.push(SkippedChange {
                    resource_id: port.via.clone(),
                    reason: format!(
                        "{} is used by other machines: {rule} left in place",
                        port.via
                    ),
                });
            } else {
                changes.push(IsolationChange {
                    resource_id: port.via.clone(),
                    description: format!("revoked {rule}"),
                    previous: json!({ "rule": rule }).to_string(),
                });
            }
        }
        for nic in &inventory.interfaces {
            for ip in &nic.public_ips {
                changes.push(IsolationChange {
                    resource_id: nic.id.clone(),
                    description: format!("dissociated public IP {ip}"),
                    previous: json!({ "public_ip": ip }).to_string(),
                });
            }
        }
        Ok(RemediationRecord {
            target_id: target.id,
            changes,
            skipped,
            verified: true,
        })
    }

    fn stop(target: Target, _inputs: Inputs) -> Result<StateChange, PluginError> {
        scripted_behaviour("stop", &target)?;
        let hibernate: bool = param_or("hibernate", false)?;
        Ok(StateChange {
            target_id: target.id.clone(),
            previous_state: "running".into(),
            state: if hibernate {
                "stopped (hibernated)"
            } else {
                "stopped"
            }
            .into(),
            changes: vec![IsolationChange {
                resource_id: format!("vol-{}-0", target.id),
                description: "kept the volume on termination".into(),
                previous: json!({ "delete_on_termination": true }).to_string(),
            }],
            details: vec![],
        })
    }

    fn seal(target: Target, inputs: Inputs) -> Result<SealRecord, PluginError> {
        scripted_behaviour("seal", &target)?;
        let artifacts = inputs.artifacts();
        let mut hasher = Sha256::new();
        for artifact in &artifacts {
            hasher.update(artifact.provider_id.as_bytes());
            hasher.update([0]);
        }
        Ok(SealRecord {
            sealed: artifacts.into_iter().map(|a| a.provider_id).collect(),
            digest: hex::encode(hasher.finalize()),
            time: "1970-01-01T00:00:00Z".into(),
            details: vec![("case".into(), irhost_plugin_sdk::case_id())],
        })
    }

    fn release(target: Target, inputs: Inputs) -> Result<IsolationRecord, PluginError> {
        scripted_behaviour("release", &target)?;
        let mut changes = inputs.isolation()?.map(|p| p.changes).unwrap_or_default();
        changes.extend(inputs.remediation()?.map(|r| r.changes).unwrap_or_default());
        Ok(IsolationRecord {
            target_id: target.id,
            changes,
            verified: true,
        })
    }
}

export_provider!(TestProvider);
