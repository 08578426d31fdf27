//! An example custom step: `notify` summarises what the earlier steps found
//! and, when given a `url`, posts the summary there (through the host's
//! egress policy). It does not touch the target.

use irhost_plugin_sdk::http::{fetch, Method};
use irhost_plugin_sdk::prelude::*;

struct Notify;

impl Step for Notify {
    fn describe() -> PluginInfo {
        PluginInfo::new("notify", env!("CARGO_PKG_VERSION"), "any").action(
            "notify",
            Effect::Reads,
            "summarise earlier steps and post the summary to `url`",
        )
    }

    fn run(
        action: &str,
        target: Target,
        params: serde_json::Value,
        inputs: Vec<StepInput>,
    ) -> Result<StepOutput, PluginError> {
        if action != "notify" {
            return Err(PluginError::Unsupported(format!(
                "unknown action `{action}`"
            )));
        }
        let artifacts: usize = inputs.iter().map(|i| i.artifacts.len()).sum();
        let summary = json!({
            "case": irhost_plugin_sdk::case_id(),
            "target": format!("{}:{}", target.provider, target.id),
            "steps": inputs.iter().map(|i| &i.step).collect::<Vec<_>>(),
            "artifacts": artifacts,
            "channel": params.get("channel"),
        });
        log::info(&format!(
            "{} artifacts from {} steps",
            artifacts,
            inputs.len()
        ));
        let mut values = json!({ "artifacts": artifacts, "notified": false });
        if let Some(url) = params.get("url").and_then(|u| u.as_str()) {
            let response = fetch(
                Method::POST,
                url,
                &[("content-type", "application/json")],
                Some(summary.to_string().into_bytes()),
            )?;
            values["notified"] = json!(response.status < 300);
            values["status"] = json!(response.status);
        }
        Ok(StepOutput::values(values))
    }
}

export_step!(Notify);
