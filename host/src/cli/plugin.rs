//! `irhost plugin inspect`: a component's world and contract, `describe`
//! (verbs, effects, the API actions each declares), imports.

use std::path::Path;
use std::process::ExitCode;

use super::Failure;
use crate::facade::Host;

pub(super) async fn inspect(host: &Host, file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let plugin = host
        .inspect(file)
        .await
        .map_err(|e| Failure::Invalid(format!("{}: {e:#}", file.display())))?;
    let value = serde_json::json!({
        "file": file.display().to_string(),
        "sha256": plugin.sha256,
        "world": plugin.world,
        "contract": plugin.contract,
        "describe": plugin.info,
        "imports": plugin.imports,
    });
    if json {
        println!("{value}");
    } else {
        println!("{}", file.display());
        println!(
            "  world:    irhost:plugin/{}@{}",
            plugin.world, plugin.contract
        );
        println!("  sha256:   {}", plugin.sha256);
        println!(
            "  plugin:   {} {} (provider {})",
            plugin.info.name, plugin.info.version, plugin.info.provider
        );
        println!("  actions:");
        for a in &plugin.info.actions {
            println!(
                "    {:<22} [{}] {}",
                a.name,
                a.effect.as_str(),
                a.description
            );
            for api in &a.api_actions {
                println!("      {:<20} {}", api.effect.as_str(), api.name);
            }
        }
        println!("  imports:");
        for i in &plugin.imports {
            println!("    {i}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
