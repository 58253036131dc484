//! The end of the pipeline for one flow: diagnose it, print its terminal line, and append it to
//! the JSON Lines recording through one writer task.
//!
//! Connection tasks never touch the file: they hand finished flows to a bounded channel, and the
//! writer appends and flushes one line per flow, so a slow disk slows recording, not relaying
//! (until the channel is full, which then applies back-pressure rather than losing records).

use crate::facts::Flow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};

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

/// Where finished flows go. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Sink {
    /// To the writer task; `None` when there is no `--record` file.
    tx: Option<mpsc::Sender<WriterMsg>>,
    /// Whether to print a terminal line per flow.
    print: bool,
    /// Also print each finding's evidence and fix under its flow (`-v/--explain`).
    explain: bool,
    /// Also hand each diagnosed flow to this channel (the demo, tests).
    observer: Option<mpsc::UnboundedSender<Flow>>,
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
            explain: false,
            observer: None,
        })
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
            },
            rx,
        )
    }

    /// Diagnose `flow`, print it, and queue it for the recording. Returns the diagnosed flow.
    pub async fn emit(&self, mut flow: Flow) -> Flow {
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
