//! `irhost serve`: the HTTP API, with its bearer token and limits.

use std::process::ExitCode;

use super::args::ServeArgs;
use super::{read_token, Failure};
use crate::custody::keys::PublicKey;
use crate::facade::Host;
use crate::serve::ServeConfig;

pub(super) async fn serve(host: Host, args: &ServeArgs) -> Result<ExitCode, Failure> {
    let Some(token) = read_token(args.token_file.as_deref())? else {
        return Err(Failure::Invalid(
            "irhost serve needs a bearer token: --token-file FILE or IRHOST_API_TOKEN".into(),
        ));
    };
    if !args.playbooks.is_dir() {
        return Err(Failure::Invalid(format!(
            "--playbooks {}: not a directory",
            args.playbooks.display()
        )));
    }
    let verify_key = args
        .verify_key
        .as_deref()
        .map(PublicKey::load)
        .transpose()
        .map_err(|e| Failure::Invalid(format!("--verify-key: {e:#}")))?;
    let config = ServeConfig {
        verify_key,
        playbooks_dir: args.playbooks.clone(),
        cases_dir: args.cases_dir.clone(),
        token,
        body_limit: args.max_body_kb.max(1) * 1024,
        run_concurrency: args.concurrency.max(1),
    };
    crate::serve::serve(host, config, &args.addr)
        .await
        .map_err(|e| Failure::Runtime(format!("serve {}: {e:#}", args.addr)))?;
    Ok(ExitCode::SUCCESS)
}
