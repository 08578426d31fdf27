//! A run in progress: the [`RunHandle`] a caller keeps (status, cancel,
//! wait) and the [`RunEvents`] streams of its journal records, from the
//! first one, then live.

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, watch};

use super::status::{RunState, RunStatus};
use crate::engine::{Interrupts, RunOptions, RunSummary};
use crate::journal::{JournalRecord, RecordObserver};

/// How a run ended: its summary, or why it could not proceed.
type Outcome = Result<Arc<RunSummary>, String>;

/// A run in progress or finished. Cheap to clone; dropping every handle
/// does not stop the run.
#[derive(Clone)]
pub struct RunHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    run_id: String,
    case_id: String,
    case_dir: std::path::PathBuf,
    shared: Arc<Shared>,
    interrupts: Interrupts,
    done: watch::Receiver<Option<Outcome>>,
}

impl RunHandle {
    /// A handle for a run about to start with `status`; the observer feeds
    /// it the run's journal records, `finish` its result.
    pub(super) fn begin(
        options: &RunOptions,
        status: RunStatus,
    ) -> (
        RunHandle,
        RecordObserver,
        impl FnOnce(anyhow::Result<RunSummary>) + Send + 'static,
    ) {
        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub::default()),
            status: Mutex::new(status),
        });
        let (done_tx, done_rx) = watch::channel(None);
        let observer: RecordObserver = {
            let shared = shared.clone();
            Arc::new(move |record: &JournalRecord| shared.record(record))
        };
        let handle = RunHandle {
            inner: Arc::new(HandleInner {
                run_id: options.run_id.clone(),
                case_id: options.case_id.to_string(),
                case_dir: options.case_dir(),
                shared: shared.clone(),
                interrupts: Interrupts::default(),
                done: done_rx,
            }),
        };
        let finish = move |result: anyhow::Result<RunSummary>| {
            let outcome = match result {
                Ok(summary) => Ok(Arc::new(summary)),
                Err(e) => Err(format!("{e:#}")),
            };
            shared.finish(&outcome);
            let _ = done_tx.send(Some(outcome));
        };
        (handle, observer, finish)
    }

    pub(super) fn interrupts(&self) -> Interrupts {
        self.inner.interrupts.clone()
    }

    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    pub fn case_id(&self) -> &str {
        &self.inner.case_id
    }

    /// `cases/<case-id>`: the journal and artifacts.
    pub fn case_dir(&self) -> &Path {
        &self.inner.case_dir
    }

    /// Every journal record of this run, from the first one, then live as
    /// they are written; the stream ends when the run has finished. Any
    /// number of streams may be open at once.
    pub fn events(&self) -> RunEvents {
        self.inner.shared.subscribe()
    }

    /// Ask the run to stop: no new step starts, running plugin calls are
    /// abandoned, and the remaining steps are journaled as skipped.
    pub fn cancel(&self) {
        self.inner.interrupts.cancel.cancel();
    }

    /// Ask the run to finish what is running and start nothing new (Ctrl-C
    /// once): the plugin calls in flight end on their own (or at
    /// [`RunHandle::cancel`]), the remaining steps are journaled as skipped,
    /// and the case is sealed; `irhost resume` continues it.
    pub fn drain(&self) {
        self.inner.interrupts.drain.cancel();
    }

    pub fn is_finished(&self) -> bool {
        self.inner.done.borrow().is_some()
    }

    /// Where every target and step stands now.
    pub fn status(&self) -> RunStatus {
        self.inner
            .shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait for the run to finish. An `Err` means the run itself could not
    /// proceed (its journal could not be written); failed targets are in
    /// the summary.
    pub async fn wait(&self) -> anyhow::Result<RunSummary> {
        let mut done = self.inner.done.clone();
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| anyhow::anyhow!("the run task ended without a result"))?
            .clone();
        match outcome {
            Some(Ok(summary)) => Ok((*summary).clone()),
            Some(Err(e)) => Err(anyhow::anyhow!(e)),
            None => unreachable!("wait_for returned None"),
        }
    }
}

struct Shared {
    hub: Mutex<Hub>,
    status: Mutex<RunStatus>,
}

/// Records in journal order (the recorder notifies under the journal's
/// lock), and the subscribers to hand them to.
#[derive(Default)]
struct Hub {
    history: Vec<JournalRecord>,
    subscribers: Vec<mpsc::UnboundedSender<JournalRecord>>,
    closed: bool,
}

impl Hub {
    fn deliver(&mut self, record: JournalRecord) {
        self.subscribers
            .retain(|tx| tx.send(record.clone()).is_ok());
        self.history.push(record);
    }
}

impl Shared {
    fn record(&self, record: &JournalRecord) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(&record.event);
        self.hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deliver(record.clone());
    }

    fn finish(&self, outcome: &Outcome) {
        // Status first: a stream that ends sees the final status.
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.finished_at =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            match outcome {
                Ok(summary) => {
                    status.state = if summary.cancelled {
                        RunState::Cancelled
                    } else if summary.all_succeeded() {
                        RunState::Succeeded
                    } else {
                        RunState::Failed
                    };
                    status.succeeded = summary.succeeded();
                    status.failed = summary.failed();
                }
                Err(e) => {
                    status.state = RunState::Error;
                    status.error = Some(e.clone());
                }
            }
        }
        let mut hub = self.hub.lock().unwrap_or_else(|p| p.into_inner());
        hub.closed = true;
        hub.subscribers.clear();
    }

    fn subscribe(&self) -> RunEvents {
        let mut hub = self.hub.lock().unwrap_or_else(|p| p.into_inner());
        let backlog = hub.history.clone().into();
        let live = if hub.closed {
            None
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            hub.subscribers.push(tx);
            Some(rx)
        };
        RunEvents { backlog, live }
    }
}

/// The journal records of one run, as a [`Stream`] (see [`RunHandle::events`]).
pub struct RunEvents {
    backlog: std::collections::VecDeque<JournalRecord>,
    live: Option<mpsc::UnboundedReceiver<JournalRecord>>,
}

impl Stream for RunEvents {
    type Item = JournalRecord;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<JournalRecord>> {
        if let Some(record) = self.backlog.pop_front() {
            return Poll::Ready(Some(record));
        }
        match self.live.as_mut() {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_id::CaseId;
    use crate::events::RunEvent;
    use futures::StreamExt;

    fn record(seq: u64) -> JournalRecord {
        JournalRecord {
            seq,
            time: String::new(),
            case: "c".into(),
            prev: String::new(),
            event: RunEvent::TargetStarted {
                target: format!("test:{seq}"),
            },
        }
    }

    fn shared() -> Shared {
        let options = RunOptions::new(CaseId::parse("c").ok(), "cases".into(), 1);
        Shared {
            hub: Mutex::new(Hub::default()),
            status: Mutex::new(RunStatus::new(
                &options,
                "p".into(),
                &[],
                &[],
                String::new(),
            )),
        }
    }

    #[tokio::test]
    async fn streams_see_every_record_once_in_journal_order() {
        let shared = shared();
        shared.record(&record(5));
        let early = shared.subscribe();
        shared.record(&record(6));
        shared.record(&record(7));
        let late = shared.subscribe();
        shared.record(&record(8));
        // (An outcome without a summary, so that this test does not depend on
        // RunSummary's fields.)
        shared.finish(&Err("journal unwritable".into()));
        let after = shared.subscribe();
        for stream in [early, late, after] {
            let seqs: Vec<u64> = stream.map(|r| r.seq).collect().await;
            assert_eq!(seqs, vec![5, 6, 7, 8]);
        }
        let status = shared.status.lock().unwrap().clone();
        assert_eq!(status.state, RunState::Error);
        assert_eq!(status.error.as_deref(), Some("journal unwritable"));
    }
}
