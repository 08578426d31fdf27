//! What an earlier watch on this journal left: the dedup ledger and the
//! runs in flight, read back from the watch journal when a watch starts, so
//! that a restart keeps its promises. A target a successful run handled
//! within the dedup window stays claimed for the rest of it (it is not
//! quarantined again); a run that was matched and never finished (the watch
//! died) is continued as `irhost resume` would (its case's done steps are
//! not run again), or, when it never started writing its case, released so
//! that the next event retries it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::claims::Claims;
use crate::events::{RunEvent, WatchDecisionKind};
use crate::journal::JournalRecord;

/// A run an earlier watch started and did not see finish.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    pub run_id: String,
    pub rule: String,
    pub playbook: Option<String>,
    pub source: String,
    pub targets: Vec<String>,
    pub case: String,
}

/// Restore `claims` from `records`: successful runs within `window`, and
/// the runs still in flight (returned, in the order they were matched).
pub(super) fn replay(
    records: &[JournalRecord],
    claims: &Claims,
    window: Duration,
) -> Vec<InFlight> {
    let now = chrono::Utc::now();
    let mut in_flight: BTreeMap<(u64, String), InFlight> = BTreeMap::new();
    for record in records {
        let RunEvent::WatchDecision {
            decision,
            source,
            rule,
            targets,
            playbook,
            run_id: Some(run_id),
            case,
            succeeded,
            ..
        } = &record.event
        else {
            continue;
        };
        match decision {
            WatchDecisionKind::Matched | WatchDecisionKind::Resumed => {
                in_flight.retain(|(_, id), _| id != run_id);
                in_flight.insert(
                    (record.seq, run_id.clone()),
                    InFlight {
                        run_id: run_id.clone(),
                        rule: rule.clone().unwrap_or_default(),
                        playbook: playbook.clone(),
                        source: source.clone(),
                        targets: targets.clone(),
                        case: case.clone().unwrap_or_default(),
                    },
                );
            }
            WatchDecisionKind::RunFinished => {
                in_flight.retain(|(_, id), _| id != run_id);
                if *succeeded == Some(true) {
                    let age = chrono::DateTime::parse_from_rfc3339(&record.time)
                        .ok()
                        .and_then(|t| (now - t.with_timezone(&chrono::Utc)).to_std().ok())
                        .unwrap_or_default();
                    if age < window {
                        claims.restore(targets, run_id, Some(age));
                    }
                }
            }
            _ => {}
        }
    }
    let runs: Vec<InFlight> = in_flight.into_values().collect();
    for run in &runs {
        claims.restore(&run.targets, &run.run_id, None);
    }
    runs
}

impl super::Watcher {
    /// Continue each run an earlier watch left in flight, or release its
    /// targets when it cannot be continued; either way journaled.
    pub(super) fn resume_in_flight(&self, runs: Vec<InFlight>) {
        for run in runs {
            self.resume_one(run);
        }
    }

    fn resume_one(&self, run: InFlight) {
        let rule = self.rules.rules.iter().find(|r| r.name == run.rule);
        let progress = crate::facade::read_progress(&self.options.cases_dir.join(&run.case));
        let case = crate::case_id::CaseId::parse(&run.case);
        let problem = match (rule, &progress, &case) {
            (None, _, _) => Some(format!(
                "its rule `{}` is no longer in the rules file",
                run.rule
            )),
            (_, _, Err(e)) => Some(format!("its case id: {e}")),
            (_, Err(e), _) => Some(format!("it had not started its case ({e})")),
            (Some(rule), Ok(p), _)
                if p.playbook_sha256 != self.plans[&rule.playbook].playbook.sha256 =>
            {
                Some(format!("{} changed since", rule.playbook.display()))
            }
            _ => None,
        };
        let decision = |decision, reason: String, succeeded| RunEvent::WatchDecision {
            decision,
            source: run.source.clone(),
            line: None,
            event_id: None,
            event_sha256: None,
            rule: Some(run.rule.clone()),
            targets: run.targets.clone(),
            playbook: run.playbook.clone(),
            run_id: Some(run.run_id.clone()),
            case: Some(run.case.clone()),
            reason: Some(reason),
            succeeded,
            event: None,
        };
        let (Some(rule), Ok(progress), Ok(case), None) = (rule, progress, case, &problem) else {
            self.claims.finish(&run.targets, &run.run_id, false);
            self.emit(decision(
                WatchDecisionKind::RunFinished,
                format!(
                    "in flight when an earlier watch stopped, not resumed: {}; the next event retries its targets",
                    problem.unwrap_or_default()
                ),
                Some(false),
            ));
            return;
        };
        self.emit(decision(
            WatchDecisionKind::Resumed,
            format!(
                "in flight when an earlier watch stopped: {} step(s) done are not run again",
                progress.done.len()
            ),
            None,
        ));
        let mut options = crate::facade::RunOptions::new(
            Some(case),
            self.options.cases_dir.clone(),
            self.options.run_concurrency,
        );
        options.run_id = run.run_id.clone();
        options.params = progress.params.clone();
        options.signing_key = self.options.signing_key.clone();
        options.resumed = Some(std::sync::Arc::new(progress.done));
        self.start_run(
            &run.source,
            rule,
            run.playbook.clone(),
            progress.targets,
            options,
        );
    }
}
