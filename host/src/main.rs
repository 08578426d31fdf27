//! The `irhost` command line: run, validate and plan playbooks, inspect
//! The `irhost` command line: run, validate and plan playbooks, inspect
//! plugins, watch events (`watch`), serve the HTTP API (`serve`), all
//! through the library API (`irhost::api`); keygen, verify, show and export
//! cases. Exit codes: 0 every target (or every run a watch started)
//! succeeded, or the case verified; 1 some failed (or verification failed);
//! 2 invalid input (nothing was run).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use futures::StreamExt;
use irhost::api::Host;
use irhost::case_id::CaseId;
use irhost::cloud::CloudEnv;
use irhost::custody;
use irhost::diagnostics::{parse_duration, Diagnostics};
use irhost::engine::RunOptions;
use irhost::events::{RunEvent, Status};
use irhost::http_auth::BearerToken;
use irhost::journal::RecordObserver;
use irhost::plan::PlaybookPlan;
use irhost::rules::Rules;
use irhost::runtime::{PluginRuntime, PluginSource, RuntimeConfig};
use irhost::serve::ServeConfig;
use irhost::target::TargetSpec;
use irhost::watch::{WatchError, WatchOptions, Watcher};

#[derive(Parser)]
#[command(
    name = "irhost",
    version,
    about = "Cloud incident response with sandboxed WebAssembly plugins"
)]
struct Cli {
    /// Directory of the precompiled component cache [default: ~/.cache/irhost]
    #[arg(long, global = true, env = "IRHOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of using the cache
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct TargetArgs {
    /// A target as provider:id (repeatable)
    #[arg(long = "target", value_name = "PROVIDER:ID")]
    targets: Vec<String>,
    /// A file of targets, one `provider:id [key=value...]` per line
    #[arg(long = "targets", value_name = "FILE")]
    targets_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a playbook against targets
    Run {
        playbook: PathBuf,
        #[command(flatten)]
        targets: TargetArgs,
        /// Case id (a new one is generated when absent)
        #[arg(long)]
        case: Option<String>,
        /// Where case directories are written
        #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
        cases_dir: PathBuf,
        /// Targets processed at once
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Validate and print the plan; run nothing
        #[arg(long)]
        dry_run: bool,
        /// One JSON event per line on stdout
        #[arg(long)]
        json: bool,
        /// Ed25519 private key (PKCS#8 PEM, from `irhost keygen`) that signs
        /// the case manifest; without one the case is sealed unsigned
        #[arg(long, value_name = "FILE", env = "IRHOST_SIGNING_KEY")]
        signing_key: Option<PathBuf>,
    },
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
    },
    /// Match events (JSON, one per line) against rules and start runs
    Watch {
        /// The rules file (TOML)
        #[arg(long)]
        rules: PathBuf,
        /// Read events from this file and stop when it is consumed and every run has finished
        #[arg(long, value_name = "FILE", conflicts_with_all = ["follow", "listen"])]
        events: Option<PathBuf>,
        /// Follow this file as it grows (until Ctrl-C)
        #[arg(long, value_name = "FILE", conflicts_with = "listen")]
        follow: Option<PathBuf>,
        /// Accept events as HTTP POSTs to /v1/events on this address (until Ctrl-C)
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Where case directories (and the watch journal) are written
        #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
        cases_dir: PathBuf,
        /// The watch journal is <cases-dir>/<journal-id>/journal.jsonl
        #[arg(long, default_value = "watch")]
        journal_id: String,
        /// Runs at once [default: the rules file's, or 4]
        #[arg(long)]
        concurrency: Option<usize>,
        /// Ignore a target this long after a successful run on it [default: the rules file's, or 30m]
        #[arg(long, value_name = "DURATION")]
        dedup_window: Option<String>,
        /// Targets processed at once within a run
        #[arg(long, default_value_t = 16)]
        run_concurrency: usize,
        /// Bearer token required by --listen (or IRHOST_API_TOKEN); needed beyond loopback
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// One JSON journal record per line on stdout
        #[arg(long)]
        json: bool,
    },
    /// Serve the HTTP API (runs, events, cancel, case verification)
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Directory of the playbooks clients may run, by file name
        #[arg(long, default_value = "playbooks")]
        playbooks: PathBuf,
        /// Where case directories are written
        #[arg(long, default_value = "cases", env = "IRHOST_CASES_DIR")]
        cases_dir: PathBuf,
        /// File holding the bearer token (or IRHOST_API_TOKEN)
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Largest request body, in KiB
        #[arg(long, default_value_t = 64)]
        max_body_kb: usize,
        /// Most targets processed at once within a run
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Plugin tools
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum CaseCommand {
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
enum PluginCommand {
    /// Show a plugin's world, describe output, imports and exports
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Failures of a command, by exit code.
enum Failure {
    Invalid(String),
    Runtime(String),
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Self {
        Failure::Invalid(d.to_string())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
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

fn plugin_runtime(cli: &Cli) -> Result<Arc<PluginRuntime>, Failure> {
    let mut config = RuntimeConfig::default();
    if cli.no_cache {
        config.cache_dir = None;
    } else if let Some(dir) = &cli.cache_dir {
        config.cache_dir = Some(dir.clone());
    }
    PluginRuntime::new(config)
        .map(Arc::new)
        .map_err(|e| Failure::Runtime(format!("cannot start the plugin runtime: {e:#}")))
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Keygen { output } => return keygen(&output),
        Command::Verify {
            case_dir,
            key,
            json,
        } => return verify(&case_dir, key.as_deref(), json),
        Command::Case { command } => return case_command(command),
        _ => {}
    }
    let runtime = plugin_runtime(&cli)?;
    let host = Host::with_runtime(runtime.clone(), CloudEnv::from_env());
    match cli.command {
        Command::Keygen { .. } | Command::Verify { .. } | Command::Case { .. } => {
            unreachable!("handled above")
        }
        Command::Validate { playbook, json } => {
            let plan = host.load(&playbook).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "plan": plan.describe()})
                );
            } else {
                println!(
                    "{}: valid ({} steps, {} plugins)",
                    playbook.display(),
                    plan.steps.len() + plan.sealed.len(),
                    plan.plugins.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            playbook,
            targets,
            json,
        } => {
            let plan = host.load(&playbook).await?;
            let targets = collect_targets(&targets, &plan)?;
            print_plan(&plan, &targets, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::Inspect { file, json },
        } => inspect(&runtime, file, json).await,
        Command::Watch {
            rules,
            events,
            follow,
            listen,
            cases_dir,
            journal_id,
            concurrency,
            dedup_window,
            run_concurrency,
            token_file,
            json,
        } => {
            let rules = Rules::load(&rules)?;
            let dedup_window = dedup_window
                .map(|d| {
                    parse_duration(&d).map_err(|e| Failure::Invalid(format!("--dedup-window: {e}")))
                })
                .transpose()?;
            if !CaseId::is_valid(&journal_id) {
                return Err(Failure::Invalid(format!(
                    "--journal-id `{journal_id}`: not a valid case id"
                )));
            }
            let token = read_token(token_file.as_deref())?;
            let source = match (&events, &follow, &listen) {
                (Some(f), _, _) => format!("file:{}", f.display()),
                (_, Some(f), _) => format!("follow:{}", f.display()),
                (_, _, Some(a)) => format!("http:{a}"),
                _ => "stdin".to_string(),
            };
            let options = WatchOptions {
                cases_dir,
                journal_id,
                concurrency,
                dedup_window,
                run_concurrency,
                json,
            };
            let watcher =
                Watcher::new(host, rules, options, &source)
                    .await
                    .map_err(|e| match e {
                        WatchError::Invalid(d) => Failure::Invalid(d.to_string()),
                        WatchError::Runtime(m) => Failure::Runtime(m),
                    })?;
            let watcher = Arc::new(watcher);
            let io = |e: std::io::Error| Failure::Runtime(format!("{source}: {e}"));
            if let Some(file) = &events {
                let f = tokio::fs::File::open(file)
                    .await
                    .map_err(|e| Failure::Invalid(format!("{}: {e}", file.display())))?;
                watcher
                    .consume(&source, tokio::io::BufReader::new(f))
                    .await
                    .map_err(io)?;
            } else if let Some(file) = &follow {
                let stop = tokio_util::sync::CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    on_signal.cancel();
                });
                watcher.follow(file, stop).await.map_err(io)?;
            } else if let Some(addr) = &listen {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| Failure::Invalid(format!("--listen {addr}: {e}")))?;
                let local = listener.local_addr().map_err(io)?;
                if !local.ip().is_loopback() && token.is_none() {
                    return Err(Failure::Invalid(format!(
                        "--listen {addr}: beyond loopback a token is required (--token-file or IRHOST_API_TOKEN)"
                    )));
                }
                println!("listening on http://{local}");
                let router = irhost::watch::http_router(
                    watcher.clone(),
                    token.as_deref().map(BearerToken::new),
                );
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await
                    .map_err(io)?;
            } else {
                watcher
                    .consume(&source, tokio::io::BufReader::new(tokio::io::stdin()))
                    .await
                    .map_err(io)?;
            }
            let report = watcher.finish().await;
            Ok(if report.failed_runs == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Serve {
            addr,
            playbooks,
            cases_dir,
            token_file,
            max_body_kb,
            concurrency,
        } => {
            let Some(token) = read_token(token_file.as_deref())? else {
                return Err(Failure::Invalid(
                    "irhost serve needs a bearer token: --token-file FILE or IRHOST_API_TOKEN"
                        .into(),
                ));
            };
            if !playbooks.is_dir() {
                return Err(Failure::Invalid(format!(
                    "--playbooks {}: not a directory",
                    playbooks.display()
                )));
            }
            let config = ServeConfig {
                playbooks_dir: playbooks,
                cases_dir,
                token,
                body_limit: max_body_kb.max(1) * 1024,
                run_concurrency: concurrency.max(1),
            };
            irhost::serve::serve(host, config, &addr)
                .await
                .map_err(|e| Failure::Runtime(format!("serve {addr}: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            playbook,
            targets,
            case,
            cases_dir,
            concurrency,
            dry_run,
            json,
            signing_key,
        } => {
            let case = case
                .map(|c| CaseId::parse(&c))
                .transpose()
                .map_err(|e| Failure::Invalid(format!("--case: {e}")))?;
            let signing_key = signing_key
                .map(|path| custody::keys::SigningKey::load(&path))
                .transpose()
                .map_err(|e| Failure::Invalid(format!("--signing-key: {e:#}")))?;
            let plan = host.load(&playbook).await?;
            let targets = collect_targets(&targets, &plan)?;
            if dry_run {
                print_plan(&plan, &targets, json);
                return Ok(ExitCode::SUCCESS);
            }
            let mut options = RunOptions::new(case, cases_dir, concurrency);
            options.signing_key = signing_key;
            let display = RunDisplay::new(json, targets.len());
            let show = display.observer();
            let run = host.start(plan, targets, options);
            let mut events = run.events();
            while let Some(record) = events.next().await {
                show(&record);
            }
            let summary = run
                .wait()
                .await
                .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
            display.finish();
            if !json {
                println!(
                    "case {}: {} succeeded, {} failed; journal and artifacts in {}",
                    summary.case_id,
                    summary.succeeded(),
                    summary.failed(),
                    summary.case_dir.display()
                );
                if let Some(phase) = &summary.sealed_phase {
                    let failed: Vec<String> = phase
                        .steps
                        .iter()
                        .filter(|s| s.status != Status::Succeeded)
                        .map(|s| {
                            format!(
                                "{} {}{}",
                                s.id,
                                s.status.as_str(),
                                s.error
                                    .as_ref()
                                    .map(|e| format!(": {e}"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect();
                    if phase.status == Status::Succeeded && failed.is_empty() {
                        println!("sealed phase: {} step(s) succeeded", phase.steps.len());
                    } else if phase.status == Status::Succeeded {
                        println!("sealed phase succeeded; {}", failed.join("; "));
                    } else {
                        println!("sealed phase FAILED: {}", failed.join("; "));
                    }
                }
                if let Some(seal) = &summary.seal {
                    match &seal.key_fingerprint {
                        Some(fp) => println!(
                            "sealed: {} ({} records, {} artifacts) signed by key {fp}",
                            seal.manifest, seal.records, seal.artifacts
                        ),
                        None => println!(
                            "sealed: {} ({} records, {} artifacts); {}",
                            seal.manifest,
                            seal.records,
                            seal.artifacts,
                            custody::UNSIGNED_NOTE
                        ),
                    }
                }
            }
            Ok(if summary.all_succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
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

fn keygen(prefix: &std::path::Path) -> Result<ExitCode, Failure> {
    let key =
        custody::keys::SigningKey::generate().map_err(|e| Failure::Runtime(format!("{e:#}")))?;
    let (private, public) = key
        .write_pair(prefix)
        .map_err(|e| Failure::Invalid(format!("{e:#}")))?;
    println!(
        "private key: {} (mode 0600; keep it secret)",
        private.display()
    );
    println!("public key:  {}", public.display());
    println!("fingerprint: {}", key.public().fingerprint());
    Ok(ExitCode::SUCCESS)
}

fn verify(
    case_dir: &std::path::Path,
    key: Option<&std::path::Path>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let pinned = key
        .map(custody::keys::PublicKey::load)
        .transpose()
        .map_err(|e| Failure::Invalid(format!("--key: {e:#}")))?;
    let report = custody::verify::verify_case(case_dir, pinned.as_ref());
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else if let Some(problem) = &report.problem {
        println!("{}: FAILED: {problem}", case_dir.display());
    } else {
        let signed = match (&report.key_fingerprint, report.key_pinned) {
            (Some(fp), true) => format!("signed by the pinned key {fp}"),
            (Some(fp), false) => format!("signed by key {fp} (NOT pinned)"),
            (None, _) => "UNSIGNED".to_string(),
        };
        println!(
            "{}: OK: case {}, {} journal records chained to head {}, {} artifacts listed, {} stored ({} bytes) match their sha256, {} manifest(s); {signed}",
            case_dir.display(),
            report.case.as_deref().unwrap_or("?"),
            report.records,
            report.head.as_deref().unwrap_or(""),
            report.artifacts_listed,
            report.artifacts_checked,
            report.artifact_bytes,
            report.manifests
        );
    }
    if !json {
        for note in &report.notes {
            println!("  note: {note}");
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn case_command(command: CaseCommand) -> Result<ExitCode, Failure> {
    match command {
        CaseCommand::Show { case_dir, json } => {
            let timeline = custody::timeline::load(&case_dir)
                .map_err(|e| Failure::Invalid(format!("{e:#}")))?;
            if json {
                println!("{}", serde_json::to_string(&timeline).unwrap_or_default());
            } else {
                print!("{}", custody::timeline::render(&timeline));
            }
            Ok(ExitCode::SUCCESS)
        }
        CaseCommand::Export {
            case_dir,
            output,
            json,
        } => {
            if !case_dir.join("journal.jsonl").is_file() {
                return Err(Failure::Invalid(format!(
                    "{}: not a case directory (no journal.jsonl)",
                    case_dir.display()
                )));
            }
            let report = custody::verify::verify_case(&case_dir, None);
            if let Some(problem) = &report.problem {
                return Err(Failure::Runtime(format!(
                    "{}: not exported, the case does not verify: {problem}",
                    case_dir.display()
                )));
            }
            let exported = custody::export::export(&case_dir, &output)
                .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
            if json {
                println!("{}", serde_json::to_string(&exported).unwrap_or_default());
            } else {
                println!(
                    "exported {} files ({} bytes) to {}; sha256 of the bundle {}",
                    exported.files, exported.bytes, exported.file, exported.sha256
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn collect_targets(args: &TargetArgs, plan: &PlaybookPlan) -> Result<Vec<TargetSpec>, Failure> {
    let mut targets = Vec::new();
    for text in &args.targets {
        targets
            .push(TargetSpec::parse(text).map_err(|e| Failure::Invalid(format!("--target: {e}")))?);
    }
    if let Some(file) = &args.targets_file {
        targets.extend(TargetSpec::load_file(file)?);
    }
    if targets.is_empty() {
        targets.extend(plan.playbook.targets.iter().cloned());
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.label()));
    if targets.is_empty() {
        return Err(Failure::Invalid(format!(
            "{}: no targets: give --target provider:id, --targets FILE, or a [targets] list in the playbook",
            plan.playbook.source.file().display()
        )));
    }
    plan.check_targets(&targets).map_err(Failure::Invalid)?;
    Ok(targets)
}

fn print_plan(plan: &PlaybookPlan, targets: &[TargetSpec], json: bool) {
    if json {
        let mut value = plan.describe();
        value["targets"] =
            serde_json::json!(targets.iter().map(TargetSpec::label).collect::<Vec<_>>());
        println!("{value}");
        return;
    }
    println!(
        "playbook {} ({} steps)",
        plan.playbook.name,
        plan.steps.len()
    );
    for target in targets {
        println!("target {}", target.label());
        let applicable = plan
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| plan.applies(*i, &target.provider));
        for (_, step) in applicable {
            let after = if step.spec.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", step.spec.after.join(", "))
            };
            let flag = if step.mutating {
                if step.spec.allow_unpreserved && step.preserved_by.is_empty() {
                    "  MUTATES (unpreserved, allowed)"
                } else {
                    "  MUTATES"
                }
            } else {
                ""
            };
            println!(
                "  {:<24} {}.{}{after}{flag}",
                step.spec.id, step.spec.plugin, step.spec.action
            );
        }
    }
    if !plan.sealed.is_empty() {
        println!("once, after the case is sealed (target case:<case-id>, inputs: the sealed case)");
        for step in &plan.sealed {
            let after = if step.spec.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", step.spec.after.join(", "))
            };
            println!(
                "  {:<24} {}.{}{after}",
                step.spec.id, step.spec.plugin, step.spec.action
            );
        }
    }
}

async fn inspect(runtime: &PluginRuntime, file: PathBuf, json: bool) -> Result<ExitCode, Failure> {
    let plugin = runtime
        .load(PluginSource {
            name: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: file.clone(),
            sha256: None,
            limits: Default::default(),
            egress: Default::default(),
            authorizer: None,
            config: serde_json::json!({}),
        })
        .await
        .map_err(|e| Failure::Invalid(format!("{}: {e:#}", file.display())))?;
    let value = serde_json::json!({
        "file": file.display().to_string(),
        "sha256": plugin.sha256,
        "world": plugin.world.as_str(),
        "describe": plugin.info,
        "imports": plugin.imports,
    });
    if json {
        println!("{value}");
    } else {
        println!("{}", file.display());
        println!("  world:    irhost:plugin/{}@0.1.0", plugin.world.as_str());
        println!("  sha256:   {}", plugin.sha256);
        println!(
            "  plugin:   {} {} (provider {})",
            plugin.info.name, plugin.info.version, plugin.info.provider
        );
        println!("  actions:");
        for a in &plugin.info.actions {
            println!(
                "    {:<22} {}{}",
                a.name,
                if a.mutating { "[mutates] " } else { "" },
                a.description
            );
        }
        println!("  imports:");
        for i in &plugin.imports {
            println!("    {i}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Human or JSON output of a run.
struct RunDisplay {
    json: bool,
    bar: Option<ProgressBar>,
    errors: Arc<Mutex<std::collections::HashMap<String, String>>>,
}

impl RunDisplay {
    fn new(json: bool, targets: usize) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(targets as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} targets {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        RunDisplay {
            json,
            bar,
            errors: Arc::default(),
        }
    }

    fn observer(&self) -> RecordObserver {
        let json = self.json;
        let bar = self.bar.clone();
        let errors = self.errors.clone();
        Arc::new(move |record| {
            if json {
                if let Ok(line) = serde_json::to_string(record) {
                    println!("{line}");
                }
                return;
            }
            let say = |line: String| match &bar {
                Some(bar) => bar.println(line),
                None => println!("{line}"),
            };
            match &record.event {
                RunEvent::StepStarted {
                    target,
                    step,
                    attempt,
                    ..
                } => {
                    if let Some(bar) = &bar {
                        bar.set_message(format!("{target}: {step} (attempt {attempt})"));
                    }
                }
                RunEvent::StepFinished {
                    target,
                    step,
                    status: Status::Failed,
                    error,
                    ..
                } => {
                    let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                    errors.entry(target.clone()).or_insert_with(|| {
                        format!("step `{step}`: {}", error.clone().unwrap_or_default())
                    });
                }
                RunEvent::EgressDenied {
                    target,
                    plugin,
                    url,
                    ..
                } => {
                    say(format!(
                        "  ! {target}: egress denied to plugin `{plugin}`: {url}"
                    ));
                }
                RunEvent::TargetFinished {
                    target,
                    status,
                    duration_ms,
                    failed_steps,
                } => {
                    if let Some(bar) = &bar {
                        bar.inc(1);
                    }
                    match status {
                        Status::Succeeded => say(format!("ok     {target} ({duration_ms} ms)")),
                        _ => {
                            let errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                            let why = errors.get(target).cloned().unwrap_or_else(|| {
                                format!("steps not completed: {}", failed_steps.join(", "))
                            });
                            say(format!("FAILED {target} ({duration_ms} ms): {why}"));
                        }
                    }
                }
                _ => {}
            }
        })
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
