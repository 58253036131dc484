//! The end of the pipeline for one flow: diagnose it, print its terminal line, and append it to
//! the JSON Lines recording through one writer task.
//!
//! Connection tasks never touch the file: they hand finished flows to a bounded channel, and the
//! writer appends and flushes one line per flow, so a slow disk slows recording, not relaying
//! (until the channel is full, which then applies back-pressure rather than losing records).
//!
//! A [`Subscriber`] (the web view) gets each diagnosed flow through its own bounded channel that
//! never waits: when it is full the flow is dropped for that subscriber and counted, so a slow
//! browser never slows the relay. The recording keeps everything.

use crate::facts::Flow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Records in flight between connection tasks and the writer.
const CHANNEL_DEPTH: usize = 1024;

/// Where finished flows go. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Sink {
    /// To the writer task; `None` when there is no `--record` file.
    tx: Option<mpsc::Sender<WriterMsg>>,
    /// Whether to print a terminal line per flow.
    print: bool,
    /// Also hand each diagnosed flow to this channel (the demo, tests).
    observer: Option<mpsc::UnboundedSender<Flow>>,
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

    /// Hand `flow` on if there is room now; otherwise count it as dropped. Never waits, and
    /// clones the flow only when it can be delivered.
    pub fn offer(&self, flow: &Flow) {
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(Arc::new(flow.clone())),
            Err(mpsc::error::TrySendError::Full(())) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The subscriber has gone; nothing to count.
            Err(mpsc::error::TrySendError::Closed(())) => {}
        }
    }
}

enum WriterMsg {
    Flow(Box<Flow>),
    Flush(oneshot::Sender<()>),
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
    pub fn open(record: Option<&Path>, print: bool) -> Result<Sink, RecordOpenError> {
        let tx = match record {
            None => None,
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| RecordOpenError {
                        path: path.to_path_buf(),
                        source,
                    })?;
                let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
                let path = path.to_path_buf();
                std::thread::Builder::new()
                    .name("mtlscope-record".into())
                    .spawn(move || write_lines(file, path, rx))
                    .map_err(|source| RecordOpenError {
                        path: PathBuf::from("<writer thread>"),
                        source,
                    })?;
                Some(tx)
            }
        };
        Ok(Sink {
            tx,
            print,
            observer: None,
            subscriber: None,
        })
    }

    /// The same sink, also feeding `subscriber` (lossy: see [`Subscriber::offer`]).
    pub fn with_subscriber(mut self, subscriber: Subscriber) -> Sink {
        self.subscriber = Some(subscriber);
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
                observer: Some(tx),
                subscriber: None,
            },
            rx,
        )
    }

    /// Diagnose `flow`, print it, and queue it for the recording. Returns the diagnosed flow.
    pub async fn emit(&self, mut flow: Flow) -> Flow {
        flow.findings = crate::diagnose::diagnose(&flow);
        if self.print {
            println!("{}", crate::render::explain::terminal_line(&flow));
        }
        if let Some(obs) = &self.observer {
            let _ = obs.send(flow.clone());
        }
        if let Some(sub) = &self.subscriber {
            sub.offer(&flow);
        }
        if let Some(tx) = &self.tx {
            if tx
                .send(WriterMsg::Flow(Box::new(flow.clone())))
                .await
                .is_err()
            {
                tracing::error!("recording writer has stopped; record lost");
            }
        }
        flow
    }

    /// Wait until everything emitted so far is written and flushed.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(WriterMsg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }
}

/// The writer: one thread, one `write` per line (so every line reaches the OS as it is
/// recorded), never touched by connection tasks.
fn write_lines(mut file: std::fs::File, path: PathBuf, mut rx: mpsc::Receiver<WriterMsg>) {
    use std::io::Write;
    let mut line = Vec::with_capacity(16 * 1024);
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            WriterMsg::Flow(flow) => {
                line.clear();
                if let Err(e) = serde_json::to_writer(&mut line, &flow) {
                    tracing::error!(error = %e, "cannot serialise a flow; record lost");
                    continue;
                }
                line.push(b'\n');
                if let Err(e) = file.write_all(&line) {
                    tracing::error!(path = %path.display(), error = %e, "cannot write recording");
                }
            }
            WriterMsg::Flush(done) => {
                let _ = file.sync_data();
                let _ = done.send(());
            }
        }
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
        let sink = Sink::open(None, false).unwrap().with_subscriber(sub);
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
}
