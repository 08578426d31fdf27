//! The watch journal: every decision appended as a record (a hash chain
//! like a case journal) and printed, as a line of text or as JSON.

use crate::events::RunEvent;
use crate::journal::{CaseJournal, JournalRecord};

pub(super) fn emit(journal: &CaseJournal, json: bool, event: RunEvent) {
    match journal.append(event) {
        Ok(record) => print_record(&record, json),
        Err(e) => tracing::error!(error = %e, "watch journal write failed"),
    }
}

fn print_record(record: &JournalRecord, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(record) {
            println!("{line}");
        }
        return;
    }
    match &record.event {
        RunEvent::WatchStarted { rules, source, .. } => {
            println!("watching {source} with {rules}");
        }
        RunEvent::WatchDecision {
            decision,
            line,
            rule,
            targets,
            run_id,
            case,
            reason,
            ..
        } => {
            let kind = decision.as_str();
            let mut text = format!("{kind:<12}");
            if let Some(line) = line {
                text.push_str(&format!(" line {line}"));
            }
            if let Some(rule) = rule {
                text.push_str(&format!(" rule {rule}"));
            }
            if !targets.is_empty() {
                text.push_str(&format!(" {}", targets.join(",")));
            }
            if let Some(run_id) = run_id {
                text.push_str(&format!(" run {run_id}"));
            }
            if let Some(case) = case {
                text.push_str(&format!(" case {case}"));
            }
            if let Some(reason) = reason {
                text.push_str(&format!(": {reason}"));
            }
            println!("{text}");
        }
        RunEvent::WatchStopped {
            events,
            runs,
            failed_runs,
        } => println!("stopped: {events} events, {runs} runs, {failed_runs} failed"),
        _ => {}
    }
}
