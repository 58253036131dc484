//! The recording's writer thread: one `write` per line, legs left out where an earlier full
//! exchange of the same connection carries them (schema 2), rotation at a size bound.

use super::locate::{FlowKey, Location, Locator, Spot};
use super::{RecordOpenError, WriterMsg};
use crate::facts::{Flow, Leg, RecordKind};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many connections' legs the writer remembers for `legs_from` at most.
const MAX_TRACKED: usize = 16 * 1024;
/// How many closed connections the writer remembers, to not track a record that follows its
/// connection's close (a `Connection: close` exchange ends after its connection).
const MAX_CLOSED: usize = 64 * 1024;

/// How long the writer lets records gather after a wake-up.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Bytes of lines the writer gathers before writing them, at most (it writes sooner when the
/// queue is empty).
const BATCH_BYTES: usize = 256 * 1024;

/// How many rotated files are kept (`FILE.1` … `FILE.N`).
pub(super) const KEEP_ROTATED: u32 = 9;

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

/// The open recording.
pub struct Writer {
    /// `--record`.
    path: PathBuf,
    /// The file being appended to.
    file: File,
    /// Its size so far.
    size: u64,
    /// `--record-max-size`.
    max_size: Option<u64>,
    /// Per open connection, the exchange whose legs later exchanges may point at.
    full: HashMap<u64, FullLegs>,
    /// Connections already closed: their late records are written in full and not tracked.
    closed: HashSet<u64>,
    /// Totals.
    stats: WriterStats,
    /// Lines serialised but not yet written: whatever queued while the writer was busy goes
    /// out in one `write` (one line at a time cost a syscall and a wake-up per record).
    batch: Vec<u8>,
    /// Lines in `batch`, and of those, compacted ones.
    batch_lines: (u64, u64),
    /// Where each line is reported to (the live web view reads evicted flows back).
    locator: Option<Arc<Locator>>,
    /// Where the lines in `batch` are, reported once they are written.
    located: Vec<(FlowKey, Location)>,
}

impl Writer {
    /// Open `path` for appending; each line written is reported to `locator` once it asks.
    pub fn open(
        path: &Path,
        max_size: Option<u64>,
        locator: Option<Arc<Locator>>,
    ) -> Result<Writer, RecordOpenError> {
        let file = open_append(path).map_err(|source| RecordOpenError {
            path: path.to_path_buf(),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            full: HashMap::new(),
            closed: HashSet::new(),
            stats: WriterStats::default(),
            batch: Vec::with_capacity(BATCH_BYTES),
            batch_lines: (0, 0),
            locator,
            located: Vec::new(),
        })
    }

    /// Serve messages until every sender is gone. Each wake-up handles everything queued,
    /// then writes the lines it made at once; no line waits for a later message.
    pub fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) {
        while let Some(msg) = rx.blocking_recv() {
            self.handle(msg);
            // Let records gather before writing: while the writer sleeps it waits on nothing,
            // so the connection tasks queue records without waking it (a wake-up per record
            // is a futex call and a context switch on the proxy's CPU). Records reach the
            // file at most this much later.
            std::thread::sleep(BATCH_PAUSE);
            // Write full batches until the queue is empty: a writer that paused again after
            // each batch would fall behind a fast proxy, and records would queue up behind it.
            loop {
                let mut emptied = false;
                while self.batch.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(msg) => self.handle(msg),
                        Err(_) => {
                            emptied = true;
                            break;
                        }
                    }
                }
                self.write_batch();
                if emptied {
                    break;
                }
            }
        }
        self.write_batch();
        let _ = self.file.sync_data();
    }

    fn handle(&mut self, msg: WriterMsg) {
        match msg {
            WriterMsg::Flow(flow) => self.write(flow),
            WriterMsg::Closed(id) => self.close(id),
            WriterMsg::Flush(done) => {
                self.write_batch();
                let _ = self.file.sync_data();
                let _ = done.send(self.stats);
            }
        }
    }

    /// Write the batched lines.
    fn write_batch(&mut self) {
        let (lines, compacted) = std::mem::take(&mut self.batch_lines);
        if self.batch.is_empty() {
            return;
        }
        match self.file.write_all(&self.batch) {
            Ok(()) => {
                self.stats.written += lines;
                self.stats.compacted += compacted;
                if let Some(l) = &self.locator {
                    l.wrote(self.located.drain(..));
                }
            }
            Err(e) => {
                self.stats.failed += lines;
                tracing::error!(path = %self.path.display(), error = %e, lines, "cannot write recording");
            }
        }
        self.batch.clear();
        self.located.clear();
    }

    /// A connection ended: forget its legs, and do not remember any record of it that is
    /// still on its way.
    fn close(&mut self, id: u64) {
        self.full.remove(&id);
        if self.closed.len() >= MAX_CLOSED {
            self.closed.clear();
        }
        self.closed.insert(id);
    }

    /// Serialise one flow onto the batch (`size` counts batched lines too).
    fn write(&mut self, flow: Arc<Flow>) {
        // Rotate once the file has reached the bound (the line that crossed it stays), and
        // start the new file without anything compacted lines could point at.
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.write_batch();
            self.rotate();
            self.full.clear();
        }
        let here = Spot::new(self.stats.rotations, self.size);
        let key = FlowKey::of(&flow);
        let start = self.batch.len();
        let compacted = self.compact(&flow, here);
        let written = match compacted {
            // Only a compacted line differs from the shared flow: copy it (cheaply, if no
            // subscriber still holds it) to leave its legs out.
            Some((index, _)) => {
                let mut flow = Arc::unwrap_or_clone(flow);
                flow.legs_from = Some(index);
                flow.client_leg = None;
                flow.upstream_leg = None;
                serde_json::to_writer(&mut self.batch, &flow)
            }
            None => serde_json::to_writer(&mut self.batch, &*flow),
        };
        if let Err(e) = written {
            self.batch.truncate(start);
            self.stats.failed += 1;
            tracing::error!(error = %e, "cannot serialise a flow; record lost");
            return;
        }
        self.batch.push(b'\n');
        self.size += (self.batch.len() - start) as u64;
        self.batch_lines.0 += 1;
        if compacted.is_some() {
            self.batch_lines.1 += 1;
        }
        if let (Some(l), Some(line)) = (&self.locator, here) {
            // A compacted line whose full exchange has no known spot cannot be read back.
            let legs = compacted.and_then(|(_, at)| at);
            if l.enabled() && (compacted.is_none() || legs.is_some()) {
                self.located.push((key, Location { line, legs }));
            }
        }
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

    /// FILE → FILE.1 → FILE.2 …, keeping [`KEEP_ROTATED`]; then a new FILE.
    fn rotate(&mut self) {
        let _ = self.file.sync_data();
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(KEEP_ROTATED));
        for n in (1..KEEP_ROTATED).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        if let Err(e) = std::fs::rename(&self.path, name(1)) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot rotate the recording; appending on");
            return;
        }
        match open_append(&self.path) {
            Ok(file) => {
                self.file = file;
                self.size = 0;
                self.stats.rotations += 1;
                if let Some(l) = &self.locator {
                    l.rotated();
                }
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot open the new recording after rotating; writing to the rotated file");
            }
        }
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

/// Open for appending; a new file is created 0600 (recordings carry certificates, headers and
/// request excerpts: not for other users of the machine).
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
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

    #[test]
    fn unchanged_legs_without_findings_point_at_the_full_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut w = Writer::open(&path, None, None).unwrap();
        let leg = Arc::new(Leg::default());
        w.write(Arc::new(exchange(1, 0, &leg)));
        w.write(Arc::new(exchange(1, 1, &leg)));
        let mut with_finding = exchange(1, 2, &leg);
        with_finding.findings.push(Finding {
            id: FindingId::Unexplained,
            severity: Severity::Error,
            summary: String::new(),
            evidence: vec![],
            fix: String::new(),
            inferred: false,
        });
        w.write(Arc::new(with_finding));
        let changed = Arc::new(Leg {
            alpn: Some("h2".into()),
            ..Leg::default()
        });
        w.write(Arc::new(exchange(1, 3, &changed)));
        w.write(Arc::new(exchange(1, 4, &changed)));
        w.write_batch();
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
        assert_eq!(w.stats.compacted, 2);
    }

    #[test]
    fn a_rotated_file_starts_with_full_legs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut w = Writer::open(&path, Some(1), None).unwrap();
        let leg = Arc::new(Leg::default());
        w.write(Arc::new(exchange(1, 0, &leg)));
        w.write(Arc::new(exchange(1, 1, &leg)));
        w.write_batch();
        assert_eq!(w.stats.rotations, 1);
        let rotated = lines(&dir.path().join("rec.jsonl.1"));
        let current = lines(&path);
        assert_eq!(rotated.len(), 1);
        assert!(current[0]["client_leg"].is_object(), "{:?}", current[0]);
        assert!(current[0].get("legs_from").is_none());
    }

    #[test]
    fn a_record_after_its_connection_closed_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut w = Writer::open(&path, None, None).unwrap();
        let leg = Arc::new(Leg::default());
        w.write(Arc::new(exchange(1, 0, &leg)));
        assert_eq!(w.full.len(), 1);
        w.close(1);
        w.close(2);
        assert!(w.full.is_empty());
        // Connection 2's only exchange ends after its close (`Connection: close`).
        w.write(Arc::new(exchange(2, 0, &leg)));
        assert!(w.full.is_empty(), "its legs would be kept for nothing");
        w.write_batch();
        assert!(lines(&path)[1]["client_leg"].is_object());
    }
}
