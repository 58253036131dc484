//! The end of the pipeline for one flow: diagnose it, print its terminal line, and append it to
//! the JSON Lines recording through one writer thread.
//!
//! Connection tasks never touch the file: they hand finished flows to a bounded channel, and the
//! writer appends one line per flow, so a slow disk slows recording, not relaying (until the
//! channel is full, which then applies back-pressure rather than losing records). The writer
//! also keeps the recording small (schema 2, `docs/recording.md`): an exchange whose legs are
//! unchanged since an earlier full exchange of its connection, and which has no finding, names
//! that exchange in `legs_from` instead of repeating the legs. It rotates the file at
//! `--record-max-size`.
//!
//! A [`Subscriber`] (the web view) gets each diagnosed flow through its own bounded channel that
//! never waits: when it is full the flow is dropped for that subscriber and counted, so a slow
//! browser never slows the relay. The recording keeps everything. With a recording, the writer
//! hands each flow on after writing it, so the flow moves and is never copied for the view.

pub mod headers;
pub mod redact;
mod writer;

use crate::facts::Flow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot, Notify};
pub use writer::WriterStats;

/// This process's run id: its start time (UTC, to the second) and pid, e.g.
/// `20261130T021713Z-12345`. Fixed on first use; `main` uses it first, at start-up.
pub fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let now = time::OffsetDateTime::now_utc();
        let stamp = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let when = now
            .format(&stamp)
            .unwrap_or_else(|_| now.unix_timestamp().to_string());
        format!("{when}-{}", std::process::id())
    })
}

/// Records in flight between connection tasks and the writer.
const CHANNEL_DEPTH: usize = 1024;

/// How flows are recorded.
#[derive(Clone, Debug, Default)]
pub struct RecordSettings {
    /// `--record FILE`; `None` records nothing.
    pub path: Option<PathBuf>,
    /// `--record-max-size`: rotate when the file reaches this many bytes.
    pub max_size: Option<u64>,
    /// Print a terminal line per flow.
    pub print: bool,
}

/// Where finished flows go. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Sink {
    /// To the writer thread; `None` when there is no `--record` file.
    tx: Option<mpsc::Sender<WriterMsg>>,
    /// Whether to print a terminal line per flow.
    print: bool,
    /// Also print each finding's evidence and fix under its flow (`-v/--explain`).
    explain: bool,
    /// Also hand each diagnosed flow to this channel (the demo, tests).
    observer: Option<mpsc::UnboundedSender<Flow>>,
    /// Flows handed over but not yet queued for the writer (emitted from a task of their
    /// own); `flush` waits for them.
    pending: Arc<Pending>,
    /// A lossy live view of every diagnosed flow (the web view).
    subscriber: Option<Subscriber>,
}

/// A bounded, never-blocking feed of diagnosed flows: full means dropped (and counted).
#[derive(Clone)]
pub struct Subscriber {
    /// To the subscriber's task.
    tx: mpsc::Sender<Arc<Flow>>,
    /// Flows dropped because the channel was full.
    dropped: Arc<AtomicU64>,
}

impl Subscriber {
    /// A feed holding at most `depth` flows in flight, and its receiving end.
    pub fn channel(depth: usize) -> (Subscriber, mpsc::Receiver<Arc<Flow>>) {
        let (tx, rx) = mpsc::channel(depth.max(1));
        (
            Subscriber {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// The count of flows dropped so far (shared: it keeps counting).
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Hand `flow` on if there is room now; otherwise count it as dropped. Never waits.
    pub fn offer(&self, flow: Flow) {
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(Arc::new(flow)),
            Err(mpsc::error::TrySendError::Full(())) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The subscriber has gone; nothing to count.
            Err(mpsc::error::TrySendError::Closed(())) => {}
        }
    }
}

/// A count of flows on their way, and a wake-up for when it reaches zero.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    zero: Notify,
}

/// What the writer thread is asked to do.
enum WriterMsg {
    /// Append this flow.
    Flow(Box<Flow>),
    /// The connection ended: forget what the writer kept for compacting its exchanges.
    Closed(u64),
    /// Answer once everything before is written and synced, with the totals so far.
    Flush(oneshot::Sender<WriterStats>),
    /// Hand every flow, once written, on to this subscriber.
    Subscribe(Subscriber),
}

/// Why the recording could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open recording {path}: {source}")]
pub struct RecordOpenError {
    /// The `--record` path.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

impl Sink {
    /// Open (append, create) the recording, if any, and start its writer thread.
    pub fn open(settings: &RecordSettings) -> Result<Sink, RecordOpenError> {
        let tx = match &settings.path {
            None => None,
            Some(path) => {
                let writer = writer::Writer::open(path, settings.max_size)?;
                let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
                std::thread::Builder::new()
                    .name("mtlscope-record".into())
                    .spawn(move || writer.run(rx))
                    .map_err(|source| RecordOpenError {
                        path: PathBuf::from("<writer thread>"),
                        source,
                    })?;
                Some(tx)
            }
        };
        Ok(Sink {
            tx,
            print: settings.print,
            explain: false,
            observer: None,
            pending: Arc::default(),
            subscriber: None,
        })
    }

    /// The same sink, also feeding `subscriber` (lossy: see [`Subscriber::offer`]). With a
    /// recording the writer feeds it, after writing each flow.
    pub fn with_subscriber(mut self, subscriber: Subscriber) -> Sink {
        if let Some(tx) = &self.tx {
            match tx.try_send(WriterMsg::Subscribe(subscriber)) {
                Ok(()) => return self,
                Err(
                    mpsc::error::TrySendError::Full(WriterMsg::Subscribe(s))
                    | mpsc::error::TrySendError::Closed(WriterMsg::Subscribe(s)),
                ) => self.subscriber = Some(s),
                Err(_) => {}
            }
            return self;
        }
        self.subscriber = Some(subscriber);
        self
    }

    /// This sink, printing each finding's evidence and fix under its flow when `explain`.
    pub fn explaining(mut self, explain: bool) -> Sink {
        self.explain = explain;
        self
    }

    /// A sink that records nothing, prints nothing, and hands every diagnosed flow to the
    /// returned receiver.
    pub fn observed() -> (Sink, mpsc::UnboundedReceiver<Flow>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Sink {
                tx: None,
                print: false,
                explain: false,
                observer: Some(tx),
                pending: Arc::default(),
                subscriber: None,
            },
            rx,
        )
    }

    /// Diagnose `flow`, print it, and queue it for the recording. Returns the diagnosed flow.
    pub async fn emit(&self, flow: Flow) {
        let flow = self.diagnosed(flow);
        self.queue(flow).await;
    }

    /// [`Sink::emit`], returning a copy of the diagnosed flow (for callers that show it).
    pub async fn emit_returning(&self, flow: Flow) -> Flow {
        let flow = self.diagnosed(flow);
        self.queue(flow.clone()).await;
        flow
    }

    /// Stamp the run, diagnose, print, and hand the flow to the observers.
    fn diagnosed(&self, mut flow: Flow) -> Flow {
        if flow.run.is_empty() {
            flow.run = run_id().to_string();
        }
        flow.findings = crate::diagnose::diagnose(&flow);
        if self.print {
            let line = if self.explain {
                crate::render::explain::explained_block(&flow)
            } else {
                crate::render::explain::terminal_line(&flow)
            };
            crate::io::stdout::try_write(format_args!("{line}\n"));
        }
        if let Some(obs) = &self.observer {
            let _ = obs.send(flow.clone());
        }
        flow
    }

    /// Queue `flow` for the recording; it moves to the writer (no copy per record), which
    /// hands it on to the subscriber. Without a recording it moves to the subscriber.
    async fn queue(&self, flow: Flow) {
        if let Some(sub) = &self.subscriber {
            if self.tx.is_none() {
                sub.offer(flow);
                return;
            }
            sub.offer(flow.clone());
        }
        if let Some(tx) = &self.tx {
            if tx.send(WriterMsg::Flow(Box::new(flow))).await.is_err() {
                tracing::error!("recording writer has stopped; record lost");
            }
        }
    }

    /// Emit `flow` from a task of its own (for code that cannot wait, like a body's end);
    /// [`Sink::flush`] waits for it.
    pub fn emit_detached(&self, flow: Flow) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no runtime to record a flow; record lost");
            return;
        };
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        let sink = self.clone();
        rt.spawn(async move {
            sink.emit(flow).await;
            if sink.pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                sink.pending.zero.notify_waiters();
            }
        });
    }

    /// Tell the writer a connection ended (its exchanges' legs need not be kept any more).
    pub async fn connection_closed(&self, connection_id: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(WriterMsg::Closed(connection_id)).await;
        }
    }

    /// Wait until everything emitted so far is written and synced; the writer's totals.
    pub async fn flush(&self) -> WriterStats {
        loop {
            let zero = self.pending.zero.notified();
            if self.pending.count.load(Ordering::Acquire) == 0 {
                break;
            }
            zero.await;
        }
        let Some(tx) = &self.tx else {
            return WriterStats::default();
        };
        let (done, wait) = oneshot::channel();
        if tx.send(WriterMsg::Flush(done)).await.is_err() {
            return WriterStats::default();
        }
        wait.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::success;

    #[tokio::test]
    async fn a_full_subscriber_drops_and_counts_without_waiting() {
        let (sub, mut rx) = Subscriber::channel(1);
        let dropped = sub.dropped();
        let sink = Sink::open(&RecordSettings::default())
            .unwrap()
            .with_subscriber(sub);
        for _ in 0..3 {
            // Nobody reads: the first fits, the others are dropped, and emit never waits.
            let emitted =
                tokio::time::timeout(std::time::Duration::from_secs(5), sink.emit(success()));
            assert!(emitted.await.is_ok(), "emit waited on a full subscriber");
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        assert_eq!(rx.try_recv().unwrap().connection_id, 7);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn with_a_recording_the_writer_hands_each_flow_on_whole_after_writing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let (sub, mut rx) = Subscriber::channel(8);
        let settings = RecordSettings {
            path: Some(path.clone()),
            ..RecordSettings::default()
        };
        let sink = Sink::open(&settings).unwrap().with_subscriber(sub);
        let mut first = success();
        first.kind = crate::facts::RecordKind::Exchange;
        first.exchange_index = Some(0);
        let mut second = first.clone();
        second.exchange_index = Some(1);
        sink.emit(first).await;
        sink.emit(second).await;
        sink.flush().await;
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.lines().nth(1).unwrap().contains("\"legs_from\":0"),
            "the file's second exchange points at the first: {written}"
        );
        for index in [0, 1] {
            let got = rx.recv().await.unwrap();
            assert_eq!(got.exchange_index, Some(index));
            assert!(got.legs_from.is_none(), "the view gets the legs themselves");
            assert!(got.client_leg.is_some() && got.upstream_leg.is_some());
        }
    }
}
