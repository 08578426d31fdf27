//! The command line as clap reads it: global options, commands and their
//! arguments, before any of them is checked against a playbook.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::case_id::CaseId;

#[derive(Parser)]
#[command(
    name = "irhost",
    version,
    about = "Cloud incident response with sandboxed WebAssembly plugins"
)]
pub struct Cli {
    /// Directory of the precompiled component cache [default: ~/.cache/irhost]
    #[arg(long, global = true, env = "IRHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of using the cache
    #[arg(long, global = true)]
    pub no_cache: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args)]
pub struct TargetArgs {
    /// A target as provider:id (repeatable)
    #[arg(long = "target", value_name = "PROVIDER:ID")]
    pub targets: Vec<String>,
    /// A file of targets, one `provider:id [key=value...]` per line
    #[arg(long = "targets", value_name = "FILE")]
    pub targets_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a playbook against targets
    Run(RunArgs),
    /// Continue a case after a crash: the steps its journal shows done are
    /// not run again, the rest run, the case is sealed again
    Resume(ResumeArgs),
    /// Create an Ed25519 key pair for signing case manifests
    Keygen {
        /// Writes PREFIX.key (private, mode 0600) and PREFIX.pub
        #[arg(short, long, value_name = "PREFIX", default_value = "irhost-signing")]
        output: PathBuf,
    },
    /// Check a case offline: hash chain, artifacts, manifest and signature
    Verify {
        case_dir: PathBuf,
        /// The public key that must have signed the case (PUBKEY from keygen)
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Case tools
    Case {
        #[command(subcommand)]
        command: CaseCommand,
    },
    /// Check a playbook (and its plugins) without running anything
    Validate {
        playbook: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the DAG per target and which steps mutate; no plugin side effects
    Plan {
        playbook: PathBuf,
        #[command(flatten)]
        targets: TargetArgs,
        #[arg(long)]
        json: bool,
        /// Print the least-privilege IAM policy and Azure role the
        /// playbook's grants need (JSON; no targets needed)
        #[arg(long)]
        policy: bool,
    },
    /// Check before an incident that the credentials can do what a
    /// playbook needs: per target, who signs, whether it works, each
    /// granted action (EC2 dry runs, IAM policy simulation); exit 1 when
    /// something is missing
    Doctor {
        playbook: PathBuf,
        #[command(flatten)]
        targets: TargetArgs,
        /// One JSON object per check
        #[arg(long)]
        json: bool,
    },
    /// Match events (JSON, one per line) against rules and start runs
    Watch(WatchArgs),
    /// Serve the HTTP API (runs, events, cancel, case verification)
    Serve(ServeArgs),
    /// Plugin tools
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
pub enum CaseCommand {
    /// A readable timeline of a case, per target
    Show {
        case_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Bundle a case into a tar file for hand-off (verified first)
    Export {
        case_dir: PathBuf,
        #[arg(short, long, value_name = "FILE.tar")]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's world, describe output, imports and exports
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// The arguments of `irhost run`.
#[derive(clap::Args)]
pub struct RunArgs {
    pub playbook: PathBuf,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Case id (a new one is generated when absent): 1-128 of
    /// A-Z a-z 0-9 . _ -, not starting with . or -
    #[arg(long)]
    pub case: Option<CaseId>,
    /// Where case directories are written
    #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
    pub cases_dir: PathBuf,
    /// Targets processed at once
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// A run parameter, NAME=VALUE (repeatable): only the playbook's
    /// [inputs] may be set
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Validate and print the plan; run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON event per line on stdout
    #[arg(long)]
    pub json: bool,
    /// Ed25519 private key (PKCS#8 PEM, from `irhost keygen`) that signs
    /// the case manifest; without one the case is sealed unsigned
    #[arg(long, value_name = "FILE", env = "IRHOST_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

/// The arguments of `irhost resume`.
#[derive(clap::Args)]
pub struct ResumeArgs {
    /// The case to continue
    pub case: CaseId,
    /// Where case directories are written
    #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
    pub cases_dir: PathBuf,
    /// The playbook, when it is no longer where the case's run read it (it
    /// must be the same file: its sha256 is checked against the journal's)
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
    /// Targets processed at once [default: the case's last run's]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// One JSON event per line on stdout
    #[arg(long)]
    pub json: bool,
    /// Ed25519 private key that signs the new manifest
    #[arg(long, value_name = "FILE", env = "IRHOST_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

/// The arguments of `irhost watch`.
#[derive(clap::Args)]
pub struct WatchArgs {
    /// The rules file (TOML)
    #[arg(long)]
    pub rules: PathBuf,
    /// Read events from this file and stop when it is consumed and every run has finished
    #[arg(long, value_name = "FILE", conflicts_with_all = ["follow", "listen"])]
    pub events: Option<PathBuf>,
    /// Follow this file as it grows (until Ctrl-C)
    #[arg(long, value_name = "FILE", conflicts_with = "listen")]
    pub follow: Option<PathBuf>,
    /// Accept events as HTTP POSTs to /v1/events on this address (until Ctrl-C)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where case directories (and the watch journal) are written
    #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
    pub cases_dir: PathBuf,
    /// The watch journal is <cases-dir>/<journal-id>/journal.jsonl
    #[arg(long, default_value = "watch")]
    pub journal_id: CaseId,
    /// Runs at once [default: the rules file's, or 4]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Ignore a target this long after a successful run on it [default: the rules file's, or 30m]
    #[arg(long, value_name = "DURATION")]
    pub dedup_window: Option<String>,
    /// Targets processed at once within a run
    #[arg(long, default_value_t = 16)]
    pub run_concurrency: usize,
    /// Seal the watch journal this often, when something new was recorded
    /// (it is always sealed when the watch stops)
    #[arg(long, value_name = "DURATION")]
    pub seal_interval: Option<String>,
    /// Ed25519 private key that signs the watch journal's seals and the
    /// cases of the runs it starts; without one they are sealed unsigned
    #[arg(long, value_name = "FILE", env = "IRHOST_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Bearer token required by --listen (or IRHOST_API_TOKEN); needed beyond loopback
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// One JSON journal record per line on stdout
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `irhost serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Directory of the playbooks clients may run, by file name
    #[arg(long, default_value = "playbooks")]
    pub playbooks: PathBuf,
    /// Where case directories are written
    #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
    pub cases_dir: PathBuf,
    /// File holding the bearer token (or IRHOST_API_TOKEN)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Largest request body, in KiB
    #[arg(long, default_value_t = 64)]
    pub max_body_kb: usize,
    /// Most targets processed at once within a run
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The public key (from `irhost keygen`) a case must be signed by for
    /// the verify route to call it valid; without one it is never valid
    #[arg(long, value_name = "PUBKEY")]
    pub verify_key: Option<PathBuf>,
}
