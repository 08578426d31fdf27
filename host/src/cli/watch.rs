//! `irhost watch`: events from a file, a followed file, HTTP or stdin,
//! matched against a rules file; runs started until the source ends (or
//! Ctrl-C).

use std::process::ExitCode;
use std::sync::Arc;

use super::args::WatchArgs;
use super::{exit_code, read_token, Failure};
use crate::diagnostics::parse_duration;
use crate::facade::Host;
use crate::http_auth::BearerToken;
use crate::watch::rules::Rules;
use crate::watch::{WatchError, WatchOptions, Watcher};

pub(super) async fn watch(host: Host, args: &WatchArgs) -> Result<ExitCode, Failure> {
    let rules = Rules::load(&args.rules)?;
    let dedup_window = args
        .dedup_window
        .as_ref()
        .map(|d| parse_duration(d).map_err(|e| Failure::Invalid(format!("--dedup-window: {e}"))))
        .transpose()?;
    let token = read_token(args.token_file.as_deref())?;
    let seal_interval = args
        .seal_interval
        .as_ref()
        .map(|d| parse_duration(d).map_err(|e| Failure::Invalid(format!("--seal-interval: {e}"))))
        .transpose()?;
    let signing_key = args
        .signing_key
        .as_ref()
        .map(|path| crate::custody::keys::SigningKey::load(path))
        .transpose()
        .map_err(|e| Failure::Invalid(format!("--signing-key: {e:#}")))?;
    let source = match (&args.events, &args.follow, &args.listen) {
        (Some(f), _, _) => format!("file:{}", f.display()),
        (_, Some(f), _) => format!("follow:{}", f.display()),
        (_, _, Some(a)) => format!("http:{a}"),
        _ => "stdin".to_string(),
    };
    let options = WatchOptions {
        cases_dir: args.cases_dir.clone(),
        journal_id: args.journal_id.to_string(),
        concurrency: args.concurrency,
        dedup_window,
        run_concurrency: args.run_concurrency,
        json: args.json,
        signing_key,
        seal_interval,
    };
    let watcher = Watcher::new(host, rules, options, &source)
        .await
        .map_err(|e| match e {
            WatchError::Invalid(d) => Failure::Invalid(d.to_string()),
            WatchError::InUse(m) => Failure::Invalid(m),
            WatchError::Runtime(m) => Failure::Runtime(m),
        })?;
    let watcher = Arc::new(watcher);
    watcher.start_sealing();
    consume(&watcher, args, &source, token).await?;
    let report = watcher.finish().await;
    Ok(exit_code(report.failed_runs == 0))
}

/// Feed the watcher from the source the arguments name.
async fn consume(
    watcher: &Arc<Watcher>,
    args: &WatchArgs,
    source: &str,
    token: Option<String>,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Runtime(format!("{source}: {e}"));
    if let Some(file) = &args.events {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Failure::Invalid(format!("{}: {e}", file.display())))?;
        watcher
            .consume(source, tokio::io::BufReader::new(f))
            .await
            .map_err(io)
    } else if let Some(file) = &args.follow {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        watcher.follow(file, stop).await.map_err(io)
    } else if let Some(addr) = &args.listen {
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
        let router =
            crate::watch::http_router(watcher.clone(), token.as_deref().map(BearerToken::new));
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(io)
    } else {
        watcher
            .consume(source, tokio::io::BufReader::new(tokio::io::stdin()))
            .await
            .map_err(io)
    }
}
