//! The recording's writer task: it decides each line — legs left out where an earlier full
//! exchange of the same connection carries them (schema 2) — serialises it, and decides when the
//! file rotates at its size bound. It runs on the runtime, where the flows were built (see
//! [`super::file`] for why), and hands batches of lines to the file's own thread.

use super::file::{Batch, FileMsg, Written};
use super::locate::{FlowKey, Location, Locator, Spot};
use super::{RecordOpenError, WriterMsg};
use crate::facts::{Flow, Leg, RecordKind};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How many connections' legs the writer remembers for `legs_from` at most.
const MAX_TRACKED: usize = 16 * 1024;
/// How many closed connections the writer remembers, to not track a record that follows its
/// connection's close (a `Connection: close` exchange ends after its connection).
const MAX_CLOSED: usize = 64 * 1024;

/// How long the writer lets records gather after a wake-up.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Bytes of lines the writer gathers before handing them on, at most (it hands them on sooner
/// when the queue is empty).
const BATCH_BYTES: usize = 256 * 1024;

/// What the writer did, reported at exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Lines written.
    pub written: u64,
    /// Of those, exchanges written with `legs_from` instead of their legs.
    pub compacted: u64,
    /// Flows that could not be serialised or written (each logged).
    pub failed: u64,
    /// Times the file was rotated.
    pub rotations: u64,
}

/// The last exchange of a connection written with its legs in full.
struct FullLegs {
    /// Its `exchange_index`.
    index: u32,
    /// Its client leg.
    client: Option<Arc<Leg>>,
    /// Its upstream leg.
    upstream: Option<Arc<Leg>>,
    /// Where its line is (reported with the lines that point at it).
    at: Option<Spot>,
}

/// The open recording, as the writer task sees it.
pub struct Writer {
    /// To the file's thread.
    file: mpsc::Sender<FileMsg>,
    /// The file's size once every line handed on is written.
    size: u64,
    /// `--record-max-size`.
    max_size: Option<u64>,
    /// Per open connection, the exchange whose legs later exchanges may point at.
    full: HashMap<u64, FullLegs>,
    /// Connections already closed: their late records are written in full and not tracked.
    closed: HashSet<u64>,
    /// Flows that could not be serialised.
    unserialisable: u64,
    /// Times the file was rotated.
    rotations: u64,
    /// Lines serialised but not yet handed on: whatever queued while the writer paused goes
    /// out in one `write` (one line at a time cost a syscall and a wake-up per record).
    batch: Batch,
    /// Told where each line is (the live web view reads evicted flows back).
    locator: Option<Arc<Locator>>,
}

impl Writer {
    /// Open `path` for appending and start its thread; each line written is reported to
    /// `locator` once it asks.
    pub fn open(
        path: &Path,
        max_size: Option<u64>,
        locator: Option<Arc<Locator>>,
    ) -> Result<Writer, RecordOpenError> {
        let failed = |source| RecordOpenError {
            path: path.to_path_buf(),
            source,
        };
        let file = super::file::open_append(path).map_err(failed)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let file = super::file::start(path, file, locator.clone()).map_err(failed)?;
        Ok(Writer {
            file,
            size,
            max_size,
            full: HashMap::new(),
            closed: HashSet::new(),
            unserialisable: 0,
            rotations: 0,
            batch: Batch::default(),
            locator,
        })
    }

    /// Serve messages until every sender is gone. Each wake-up handles everything queued,
    /// then hands the lines it made on at once; no line waits for a later message.
    pub async fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) {
        while let Some(msg) = rx.recv().await {
            self.handle(msg).await;
            // Let records gather: one wake-up of this task, and one batch for the file's
            // thread, per pause rather than per record. Records reach the file at most this
            // much later.
            tokio::time::sleep(BATCH_PAUSE).await;
            // Hand on full batches until the queue is empty: a writer that paused again after
            // each batch would fall behind a fast proxy, and records would queue up behind it.
            loop {
                let mut emptied = false;
                while self.batch.bytes.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(msg) => self.handle(msg).await,
                        Err(_) => {
                            emptied = true;
                            break;
                        }
                    }
                }
                self.hand_on().await;
                if emptied {
                    break;
                }
            }
        }
        // The file's thread writes what it was handed, syncs and ends once this is dropped.
        self.hand_on().await;
    }

    async fn handle(&mut self, msg: WriterMsg) {
        match msg {
            WriterMsg::Flow(flow) => self.write(flow).await,
            WriterMsg::Closed(id) => self.close(id),
            WriterMsg::Flush(done) => {
                let _ = done.send(self.flush().await);
            }
        }
    }

    /// Hand every line so far to the file and wait until it is written and synced; the
    /// totals.
    pub async fn flush(&mut self) -> WriterStats {
        self.hand_on().await;
        let (tx, rx) = oneshot::channel();
        let written = match self.file.send(FileMsg::Sync(tx)).await {
            Ok(()) => rx.await.unwrap_or_default(),
            Err(_) => Written::default(),
        };
        WriterStats {
            written: written.lines,
            compacted: written.compacted,
            failed: written.failed + self.unserialisable,
            rotations: self.rotations,
        }
    }

    /// Hand the lines so far to the file's thread.
    async fn hand_on(&mut self) {
        if self.batch.bytes.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Batch::with_capacity(BATCH_BYTES));
        if self.file.send(FileMsg::Append(batch)).await.is_err() {
            tracing::error!("the recording's file thread has stopped; records lost");
        }
    }

    fn close(&mut self, id: u64) {
        self.full.remove(&id);
        if self.closed.len() >= MAX_CLOSED {
            self.closed.clear();
        }
        self.closed.insert(id);
    }

    async fn write(&mut self, flow: Arc<Flow>) {
        // Rotate once the file has reached the bound (the line that crossed it stays), and
        // start the new file without anything compacted lines could point at.
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.hand_on().await;
            if self.rotate().await {
                self.size = 0;
                self.rotations += 1;
                self.full.clear();
            }
        }
        let here = Spot::new(self.rotations, self.size);
        let key = FlowKey::of(&flow);
        let start = self.batch.bytes.len();
        let compacted = self.compact(&flow, here);
        let written = match compacted {
            // Only a compacted line differs from the shared flow: copy it (cheaply, if no
            // subscriber still holds it) to leave its legs out.
            Some((index, _)) => {
                let mut flow = Arc::unwrap_or_clone(flow);
                flow.legs_from = Some(index);
                flow.client_leg = None;
                flow.upstream_leg = None;
                serde_json::to_writer(&mut self.batch.bytes, &flow)
            }
            None => serde_json::to_writer(&mut self.batch.bytes, &*flow),
        };
        if let Err(e) = written {
            self.batch.bytes.truncate(start);
            self.unserialisable += 1;
            tracing::error!(error = %e, "cannot serialise a flow; record lost");
            return;
        }
        self.batch.bytes.push(b'\n');
        self.size += (self.batch.bytes.len() - start) as u64;
        self.batch.lines += 1;
        if compacted.is_some() {
            self.batch.compacted += 1;
        }
        if let (Some(l), Some(line)) = (&self.locator, here) {
            // A compacted line whose full exchange has no known spot cannot be read back.
            let legs = compacted.and_then(|(_, at)| at);
            if l.enabled() && (compacted.is_none() || legs.is_some()) {
                self.batch.located.push((key, Location { line, legs }));
            }
        }
    }

    /// Ask the file's thread to rotate; whether a new file is open.
    async fn rotate(&mut self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.file.send(FileMsg::Rotate(tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The `legs_from` of an exchange whose legs an earlier full exchange of its connection
    /// carries unchanged, and which has nothing to explain, with where that exchange's line
    /// is; otherwise `None`, and these legs, written at `here`, are remembered.
    fn compact(&mut self, flow: &Flow, here: Option<Spot>) -> Option<(u32, Option<Spot>)> {
        if flow.kind != RecordKind::Exchange {
            return None;
        }
        let index = flow.exchange_index?;
        let same = self.full.get(&flow.connection_id).is_some_and(|f| {
            same_leg(&f.client, &flow.client_leg) && same_leg(&f.upstream, &flow.upstream_leg)
        });
        if same && flow.findings.is_empty() && flow.legs_from.is_none() {
            return self.full.get(&flow.connection_id).map(|f| (f.index, f.at));
        }
        // A connection's last record can arrive after its "closed" message (bodies end on
        // tasks of their own): nothing can point at it any more, so it is not remembered.
        // Without this, every `Connection: close` exchange kept its legs until the bound below
        // (~250 MB under a new-connection load).
        if flow.legs_from.is_none() && !self.closed.contains(&flow.connection_id) {
            // Bound the map anyway; a connection forgotten here just writes its next exchange
            // in full.
            if self.full.len() >= MAX_TRACKED && !self.full.contains_key(&flow.connection_id) {
                self.full.clear();
            }
            self.full.insert(
                flow.connection_id,
                FullLegs {
                    index,
                    client: flow.client_leg.clone(),
                    upstream: flow.upstream_leg.clone(),
                    at: here,
                },
            );
        }
        None
    }
}

/// Equal legs: the same snapshot (the usual case on a keep-alive connection), or equal facts.
fn same_leg(a: &Option<Arc<Leg>>, b: &Option<Arc<Leg>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Finding, FindingId, Mode, Severity};

    fn exchange(conn: u64, index: u32, leg: &Arc<Leg>) -> Flow {
        let mut f = Flow::new(Mode::Reverse, conn, time::OffsetDateTime::UNIX_EPOCH);
        f.kind = RecordKind::Exchange;
        f.exchange_index = Some(index);
        f.client_leg = Some(leg.clone());
        f.upstream_leg = Some(leg.clone());
        f
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn unchanged_legs_without_findings_point_at_the_full_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut w = Writer::open(&path, None, None).unwrap();
        let leg = Arc::new(Leg::default());
        w.write(Arc::new(exchange(1, 0, &leg))).await;
        w.write(Arc::new(exchange(1, 1, &leg))).await;
        let mut with_finding = exchange(1, 2, &leg);
        with_finding.findings.push(Finding {
            id: FindingId::Unexplained,
            severity: Severity::Error,
            summary: String::new(),
            evidence: vec![],
            fix: String::new(),
            inferred: false,
        });
        w.write(Arc::new(with_finding)).await;
        let changed = Arc::new(Leg {
            alpn: Some("h2".into()),
            ..Leg::default()
        });
        w.write(Arc::new(exchange(1, 3, &changed))).await;
        w.write(Arc::new(exchange(1, 4, &changed))).await;
        w.flush().await;
        let got = lines(&path);
        assert!(got[0]["client_leg"].is_object() && got[0].get("legs_from").is_none());
        assert_eq!(got[1]["legs_from"], 0);
        assert!(got[1].get("client_leg").is_none());
        assert!(
            got[2]["client_leg"].is_object(),
            "a finding carries its legs"
        );
        assert!(
            got[3]["client_leg"].is_object(),
            "changed legs are written in full"
        );
        assert_eq!(got[4]["legs_from"], 3);
        assert_eq!(w.flush().await.compacted, 2);
    }

    #[tokio::test]
    async fn a_rotated_file_starts_with_full_legs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut w = Writer::open(&path, Some(1), None).unwrap();
        let leg = Arc::new(Leg::default());
        w.write(Arc::new(exchange(1, 0, &leg))).await;
        w.write(Arc::new(exchange(1, 1, &leg))).await;
        assert_eq!(w.flush().await.rotations, 1);
        let rotated = lines(&dir.path().join("rec.jsonl.1"));
        let current = lines(&path);
        assert_eq!(rotated.len(), 1);
        assert!(current[0]["client_leg"].is_object(), "{:?}", current[0]);
        assert!(current[0].get("legs_from").is_none());
    }

    #[tokio::test]
    async fn a_record_after_its_connection_closed_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut w = Writer::open(&path, None, None).unwrap();
        let leg = Arc::new(Leg::default());
        w.write(Arc::new(exchange(1, 0, &leg))).await;
        assert_eq!(w.full.len(), 1);
        w.close(1);
        w.close(2);
        assert!(w.full.is_empty());
        // Connection 2's only exchange ends after its close (`Connection: close`).
        w.write(Arc::new(exchange(2, 0, &leg))).await;
        assert!(w.full.is_empty(), "its legs would be kept for nothing");
        w.flush().await;
        assert!(lines(&path)[1]["client_leg"].is_object());
    }
}
