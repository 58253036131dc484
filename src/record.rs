//! The end of the pipeline for one flow: diagnose it (unless it was diagnosed already, see
//! [`Diagnosed`]), hand it to the subscribers the command attached (the terminal printer, the
//! web view), and append it to the JSON Lines recording through one writer task and the file's
//! own thread.
//!
//! Connection tasks never touch the file: they hand finished flows to a bounded channel; the
//! writer task serialises one line per flow, and only the file's thread writes, so a slow disk
//! slows recording, not relaying (until the channel is full, which then applies back-pressure
//! rather than losing records). The writer
//! also keeps the recording small (schema 2, `docs/recording.md`): an exchange whose legs are
//! unchanged since an earlier full exchange of its connection, and which has no finding, names
//! that exchange in `legs_from` instead of repeating the legs. It rotates the file at
//! `--record-max-size`.
//!
//! Subscribers ([`Subscribe`]) share one copy of each diagnosed flow with the writer. The web
//! view's [`Subscriber`] is a bounded channel that never waits: when it is full the flow is
//! dropped for that subscriber and counted, so a slow browser never slows the relay. The
//! recording keeps everything.

mod file;
pub mod headers;
pub mod locate;
pub mod redact;
mod writer;

use crate::diagnose::Diagnosed;
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
}

/// Something that wants every diagnosed flow as it is emitted: the terminal printer the CLI
/// attaches, the web view's feed, a test's channel. It is called in the emitting task, so it
/// must not wait; the flow is shared, so a subscriber that keeps it copies nothing.
pub trait Subscribe: Send + Sync {
    /// One diagnosed flow, before it is queued for the recording.
    fn flow(&self, flow: &Arc<Flow>);
}

/// Where finished flows go. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Sink {
    /// To the writer task; `None` when there is no `--record` file.
    tx: Option<mpsc::Sender<WriterMsg>>,
    /// Everything that sees each diagnosed flow, in the order attached.
    subscribers: Arc<[Arc<dyn Subscribe>]>,
    /// Flows handed over but not yet queued for the writer (emitted from a task of their
    /// own); `flush` waits for them.
    pending: Arc<Pending>,
    /// Where the writer put each line, for whoever asks (the web view reads evicted flows
    /// back); `None` when there is no `--record` file.
    locator: Option<Arc<locate::Locator>>,
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

    /// Hand `flow` on if there is room now; otherwise count it as dropped. Never waits, and
    /// never copies the flow.
    pub fn offer(&self, flow: &Arc<Flow>) {
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(flow.clone()),
            Err(mpsc::error::TrySendError::Full(())) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The subscriber has gone; nothing to count.
            Err(mpsc::error::TrySendError::Closed(())) => {}
        }
    }
}

impl Subscribe for Subscriber {
    fn flow(&self, flow: &Arc<Flow>) {
        self.offer(flow);
    }
}

/// [`Sink::observed`]'s subscriber: every flow, unbounded, as an owned copy.
struct Observer(mpsc::UnboundedSender<Flow>);

impl Subscribe for Observer {
    fn flow(&self, flow: &Arc<Flow>) {
        let _ = self.0.send(Flow::clone(flow));
    }
}

/// A flow handed to [`Sink::emit_detached`]: facts still to diagnose, or a flow diagnosed
/// already.
pub enum Emitted {
    /// Diagnosed when emitted.
    Facts(Flow),
    /// Emitted as it is.
    Diagnosed(Diagnosed),
}

impl Emitted {
    /// Set the excerpt of the client's request body (known once the body ended).
    pub fn set_request_body_excerpt(&mut self, excerpt: Option<String>) {
        match self {
            Emitted::Facts(flow) => {
                if let Some(r) = flow.request.as_mut() {
                    r.body_excerpt = excerpt;
                }
            }
            Emitted::Diagnosed(d) => d.set_request_body_excerpt(excerpt),
        }
    }
}

impl From<Flow> for Emitted {
    fn from(flow: Flow) -> Emitted {
        Emitted::Facts(flow)
    }
}

impl From<Diagnosed> for Emitted {
    fn from(flow: Diagnosed) -> Emitted {
        Emitted::Diagnosed(flow)
    }
}

/// A count of flows on their way, and a wake-up for when it reaches zero.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    zero: Notify,
}

/// What the writer task is asked to do.
enum WriterMsg {
    /// Append this flow (shared with the subscribers, not copied for the writer).
    Flow(Arc<Flow>),
    /// The connection ended: forget what the writer kept for compacting its exchanges.
    Closed(u64),
    /// Answer once everything before is written and synced, with the totals so far.
    Flush(oneshot::Sender<WriterStats>),
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
    /// Open (append, create) the recording, if any, and start its writer task (on the current
    /// tokio runtime) and the file's thread.
    pub fn open(settings: &RecordSettings) -> Result<Sink, RecordOpenError> {
        let locator = settings.path.as_ref().map(|p| {
            Arc::new(locate::Locator::new(
                p.clone(),
                u64::from(file::KEEP_ROTATED),
            ))
        });
        let tx = match &settings.path {
            None => None,
            Some(path) => {
                // Asked first, so a failure leaves no file behind.
                let rt = tokio::runtime::Handle::try_current().map_err(|e| RecordOpenError {
                    path: path.clone(),
                    source: std::io::Error::other(format!("no runtime for the writer: {e}")),
                })?;
                let writer = writer::Writer::open(path, settings.max_size, locator.clone())?;
                let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
                rt.spawn(writer.run(rx));
                Some(tx)
            }
        };
        Ok(Sink {
            tx,
            subscribers: Arc::new([]),
            pending: Arc::default(),
            locator,
        })
    }

    /// Where the writer puts each record, once asked ([`locate::Locator::enable`]); `None`
    /// without a recording.
    pub fn locator(&self) -> Option<Arc<locate::Locator>> {
        self.locator.clone()
    }

    /// The same sink, also handing every diagnosed flow to `subscriber`.
    pub fn subscribe(mut self, subscriber: impl Subscribe + 'static) -> Sink {
        let mut all: Vec<Arc<dyn Subscribe>> = self.subscribers.to_vec();
        all.push(Arc::new(subscriber));
        self.subscribers = all.into();
        self
    }

    /// The same sink, also feeding `subscriber` (lossy: see [`Subscriber::offer`]).
    pub fn with_subscriber(self, subscriber: Subscriber) -> Sink {
        self.subscribe(subscriber)
    }

    /// A sink that records nothing, prints nothing, and hands every diagnosed flow to the
    /// returned receiver.
    pub fn observed() -> (Sink, mpsc::UnboundedReceiver<Flow>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Sink {
            tx: None,
            subscribers: Arc::new([]),
            pending: Arc::default(),
            locator: None,
        };
        (sink.subscribe(Observer(tx)), rx)
    }

    /// Diagnose `flow`, hand it to the subscribers, and queue it for the recording.
    pub async fn emit(&self, flow: Flow) {
        self.emit_diagnosed(Diagnosed::new(flow)).await;
    }

    /// Hand a flow diagnosed earlier (for its `Mtlscope-Diagnosis` header or the body of a
    /// response mtlscope produced) to the subscribers and the recording, without diagnosing
    /// it again.
    pub async fn emit_diagnosed(&self, flow: Diagnosed) {
        let flow = self.publish(flow);
        self.queue(flow).await;
    }

    /// [`Sink::emit`], returning the diagnosed flow (for callers that show it).
    pub async fn emit_returning(&self, flow: Flow) -> Arc<Flow> {
        let flow = self.publish(Diagnosed::new(flow));
        self.queue(flow.clone()).await;
        flow
    }

    /// Stamp the run and hand the flow to the subscribers; the one shared copy.
    fn publish(&self, mut flow: Diagnosed) -> Arc<Flow> {
        flow.stamp_run(run_id());
        let flow = Arc::new(flow.into_flow());
        for s in self.subscribers.iter() {
            s.flow(&flow);
        }
        flow
    }

    /// Queue `flow` for the recording; the writer shares it (no copy per record).
    async fn queue(&self, flow: Arc<Flow>) {
        if let Some(tx) = &self.tx {
            if tx.send(WriterMsg::Flow(flow)).await.is_err() {
                tracing::error!("recording writer has stopped; record lost");
            }
        }
    }

    /// Emit `flow` without waiting (for code that cannot, like a body's end): diagnosed (unless it
    /// was already), handed to the subscribers and queued for the writer at once; only when the
    /// writer's queue is full does a task of its own wait for room, which [`Sink::flush`] waits
    /// for.
    pub fn emit_detached(&self, flow: impl Into<Emitted>) {
        let flow = match flow.into() {
            Emitted::Facts(flow) => Diagnosed::new(flow),
            Emitted::Diagnosed(flow) => flow,
        };
        let flow = self.publish(flow);
        let Some(tx) = &self.tx else {
            return;
        };
        let msg = WriterMsg::Flow(flow);
        // Behind records already waiting for room, wait in turn: records keep their order.
        let msg = if self.pending.count.load(Ordering::Acquire) > 0 {
            msg
        } else {
            match tx.try_send(msg) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::error!("recording writer has stopped; record lost");
                    return;
                }
                Err(mpsc::error::TrySendError::Full(msg)) => msg,
            }
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("no runtime to wait for the recording writer; record lost");
            return;
        };
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        let (tx, pending) = (tx.clone(), self.pending.clone());
        rt.spawn(async move {
            if tx.send(msg).await.is_err() {
                tracing::error!("recording writer has stopped; record lost");
            }
            if pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                pending.zero.notify_waiters();
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

    #[test]
    fn a_recording_opened_outside_a_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let Err(e) = Sink::open(&RecordSettings {
            path: Some(path.clone()),
            max_size: None,
        }) else {
            panic!("the writer task needs a runtime");
        };
        assert_eq!(e.path, path);
        assert!(e.to_string().contains("no runtime for the writer"), "{e}");
        assert!(!path.exists(), "nothing is created");
    }

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
    async fn records_emitted_faster_than_the_writer_writes_are_all_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let sink = Sink::open(&RecordSettings {
            path: Some(path.clone()),
            max_size: None,
        })
        .unwrap();
        // Four queues' worth without yielding: the queue fills, and the rest wait their turn.
        let n = 4 * CHANNEL_DEPTH;
        for i in 0..n {
            let mut flow = success();
            flow.connection_id = i as u64;
            sink.emit_detached(flow);
        }
        let stats = tokio::time::timeout(std::time::Duration::from_secs(30), sink.flush())
            .await
            .expect("flush");
        assert_eq!(stats.written, n as u64);
        let ids: Vec<u64> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Flow>(l).unwrap().connection_id)
            .collect();
        assert_eq!(ids, (0..n as u64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn subscribers_share_one_diagnosed_copy_of_each_flow() {
        let (a, mut got_a) = Subscriber::channel(4);
        let (b, mut got_b) = Subscriber::channel(4);
        let sink = Sink::open(&RecordSettings::default())
            .unwrap()
            .subscribe(a)
            .subscribe(b);
        sink.emit(success()).await;
        let (x, y) = (got_a.try_recv().unwrap(), got_b.try_recv().unwrap());
        assert!(Arc::ptr_eq(&x, &y), "each subscriber got a copy of its own");
        assert!(x.diagnosed && !x.run.is_empty());
    }
}
