//! The `irhost` command line: run, validate and plan playbooks, inspect
//! plugins, watch events (`watch`), serve the HTTP API (`serve`), all
//! through the [facade](crate::facade); resume a case after a crash;
//! keygen, verify, show and export cases. Exit codes: 0 every target (or every run a watch started)
//! succeeded, or the case verified; 1 some failed (or verification failed);
//! 2 invalid input (nothing was run).
//!
//! [`args`] is the command line as clap reads it; each command has its
//! module, which checks its arguments and runs; [`display`] prints runs.

pub mod args;
mod case;
mod display;
mod doctor;
mod plan;
mod plugin;
mod resume;
mod run;
mod serve;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::diagnostics::Diagnostics;
use crate::facade::{Host, RuntimeConfig};
use args::{Cli, Command, PluginCommand};

/// Failures of a command, by exit code.
pub enum Failure {
    /// Invalid input: nothing was run (exit 2).
    Invalid(String),
    /// Something failed while running (exit 1).
    Runtime(String),
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Self {
        Failure::Invalid(d.to_string())
    }
}

/// Parse the command line, run the command, and say how it went.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Failure::Invalid(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Run one command.
async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let host = || new_host(&cli);
    match &cli.command {
        Command::Keygen { output } => case::keygen(output),
        Command::Verify {
            case_dir,
            key,
            json,
        } => case::verify(case_dir, key.as_deref(), *json),
        Command::Case { command } => case::case_command(command),
        Command::Validate { playbook, json } => plan::validate(&host()?, playbook, *json).await,
        Command::Plan {
            playbook,
            policy: true,
            ..
        } => plan::policy(&host()?, playbook).await,
        Command::Plan {
            playbook,
            targets,
            json,
            policy: false,
        } => plan::plan(&host()?, playbook, targets, *json).await,
        Command::Plugin {
            command: PluginCommand::Inspect { file, json },
        } => plugin::inspect(&host()?, file, *json).await,
        Command::Doctor {
            playbook,
            targets,
            json,
        } => doctor::doctor(&host()?, playbook, targets, *json).await,
        Command::Watch(args) => watch::watch(host()?, args).await,
        Command::Serve(args) => serve::serve(host()?, args).await,
        Command::Run(args) => run::run(&host()?, args).await,
        Command::Resume(args) => resume::resume(&host()?, args).await,
    }
}

/// The host: the plugin runtime (with the global cache options) and the
/// cloud environment of this process.
fn new_host(cli: &Cli) -> Result<Host, Failure> {
    let mut config = RuntimeConfig::default();
    if cli.no_cache {
        config.cache_dir = None;
    } else if let Some(dir) = &cli.cache_dir {
        config.cache_dir = Some(dir.clone());
    }
    Host::new(config)
        .map_err(|e| Failure::Runtime(format!("cannot start the plugin runtime: {e:#}")))
}

/// Exit 0 when everything succeeded, else 1.
fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The API token from a file (trimmed) or IRHOST_API_TOKEN; never empty.
fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>, Failure> {
    let token = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| Failure::Invalid(format!("--token-file {}: {e}", path.display())))?,
        ),
        None => std::env::var("IRHOST_API_TOKEN").ok(),
    };
    match token.map(|t| t.trim().to_string()) {
        Some(t) if t.is_empty() => Err(Failure::Invalid("the API token is empty".into())),
        Some(t) => {
            if t.len() < 16 {
                tracing::warn!("the API token is shorter than 16 characters");
            }
            Ok(Some(t))
        }
        None => Ok(None),
    }
}
