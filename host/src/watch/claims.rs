//! Which targets are being or were recently handled: a target is claimed
//! by one run at a time, and stays claimed for the dedup window after a
//! successful run (a failed run releases it, so the next event retries).
//! A watch restarted on the same journal restores them from it
//! ([`super::ledger`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::target::TargetSpec;

enum Claim {
    Active { run_id: String },
    Done { run_id: String, at: Instant },
}

/// The claims of a watch.
#[derive(Default)]
pub(super) struct Claims(Mutex<HashMap<String, Claim>>);

impl Claims {
    /// Claim every free target for `run_id`. Returns the targets claimed,
    /// and each busy one's label with the reason.
    pub(super) fn claim(
        &self,
        targets: Vec<TargetSpec>,
        run_id: &str,
        window: Duration,
    ) -> (Vec<TargetSpec>, Vec<(String, String)>) {
        let mut fresh = Vec::new();
        let mut busy = Vec::new();
        let mut claims = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for target in targets {
            let label = target.label();
            let reason = match claims.get(&label) {
                Some(Claim::Active { run_id }) => Some(format!("run {run_id} is active")),
                Some(Claim::Done { run_id, at }) if at.elapsed() < window => Some(format!(
                    "run {run_id} handled it {}s ago (dedup window {}s)",
                    at.elapsed().as_secs(),
                    window.as_secs()
                )),
                _ => None,
            };
            match reason {
                Some(reason) => busy.push((label, reason)),
                None => {
                    claims.insert(
                        label,
                        Claim::Active {
                            run_id: run_id.to_string(),
                        },
                    );
                    fresh.push(target);
                }
            }
        }
        (fresh, busy)
    }

    /// What an earlier watch recorded: a successful run handled `labels`
    /// `age` ago (kept for the rest of the dedup window), or a run of
    /// theirs is still going (`age` `None`: active).
    pub(super) fn restore(&self, labels: &[String], run_id: &str, age: Option<Duration>) {
        let mut claims = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for label in labels {
            let claim = match age {
                None => Claim::Active {
                    run_id: run_id.to_string(),
                },
                Some(age) => match Instant::now().checked_sub(age) {
                    Some(at) => Claim::Done {
                        run_id: run_id.to_string(),
                        at,
                    },
                    // Older than this machine's clock can say: long past.
                    None => continue,
                },
            };
            claims.insert(label.clone(), claim);
        }
    }

    /// A run on `labels` finished: keep them claimed for the dedup window
    /// after a success, release them after a failure.
    pub(super) fn finish(&self, labels: &[String], run_id: &str, ok: bool) {
        let mut claims = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for label in labels {
            if ok {
                claims.insert(
                    label.clone(),
                    Claim::Done {
                        run_id: run_id.to_string(),
                        at: Instant::now(),
                    },
                );
            } else {
                claims.remove(label);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_claimed_once_and_released_by_a_failure() {
        let claims = Claims::default();
        let t = || vec![TargetSpec::parse("test:a").unwrap()];
        let window = Duration::from_secs(60);
        let (fresh, busy) = claims.claim(t(), "r1", window);
        assert_eq!((fresh.len(), busy.len()), (1, 0));
        let (fresh, busy) = claims.claim(t(), "r2", window);
        assert!(fresh.is_empty());
        assert!(busy[0].1.contains("run r1 is active"), "{busy:?}");
        claims.finish(&["test:a".into()], "r1", false);
        assert_eq!(claims.claim(t(), "r3", window).0.len(), 1);
        claims.finish(&["test:a".into()], "r3", true);
        assert!(claims.claim(t(), "r4", window).1[0]
            .1
            .contains("dedup window"));
        assert_eq!(claims.claim(t(), "r5", Duration::ZERO).0.len(), 1);
    }

    #[test]
    fn restored_claims_keep_the_rest_of_their_window() {
        let claims = Claims::default();
        let t = || vec![TargetSpec::parse("test:a").unwrap()];
        let window = Duration::from_secs(60);
        claims.restore(&["test:a".into()], "r0", Some(Duration::from_secs(30)));
        let (fresh, busy) = claims.claim(t(), "r1", window);
        assert!(
            fresh.is_empty() && busy[0].1.contains("run r0 handled it 30s ago"),
            "{busy:?}"
        );
        claims.restore(&["test:a".into()], "r0", Some(Duration::from_secs(90)));
        assert_eq!(
            claims.claim(t(), "r2", window).0.len(),
            1,
            "its window is over"
        );
        claims.restore(&["test:b".into()], "r3", None);
        let b = vec![TargetSpec::parse("test:b").unwrap()];
        assert!(claims.claim(b, "r4", window).1[0]
            .1
            .contains("run r3 is active"));
    }
}
