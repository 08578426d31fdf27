//! `irhost keygen`, `irhost verify`, `irhost case show` and `irhost case
//! export`: the custody commands, which need no plugin runtime.

use std::path::Path;
use std::process::ExitCode;

use super::args::CaseCommand;
use super::{exit_code, Failure};
use crate::custody;

pub(super) fn keygen(prefix: &Path) -> Result<ExitCode, Failure> {
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

pub(super) fn verify(case_dir: &Path, key: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
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
    Ok(exit_code(report.ok))
}

pub(super) fn case_command(command: &CaseCommand) -> Result<ExitCode, Failure> {
    match command {
        CaseCommand::Show { case_dir, json } => {
            let timeline = custody::timeline::load(case_dir)
                .map_err(|e| Failure::Invalid(format!("{e:#}")))?;
            if *json {
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
            let report = custody::verify::verify_case(case_dir, None);
            if let Some(problem) = &report.problem {
                return Err(Failure::Runtime(format!(
                    "{}: not exported, the case does not verify: {problem}",
                    case_dir.display()
                )));
            }
            let exported = custody::export::export(case_dir, output)
                .map_err(|e| Failure::Runtime(format!("{e:#}")))?;
            if *json {
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
