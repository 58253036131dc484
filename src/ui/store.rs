//! The web view's memory: the last N flows, numbered in arrival order, and a broadcast of each
//! new flow's list row to the open live streams.
//!
//! Older flows fall out of memory (they stay in the recording, and with `--record` they are
//! read back from it when asked for: [`ReadBack`]). Numbers are never reused, so a page that
//! links `#/flow/17` gets flow 17 or "no longer in memory", never another flow.

use super::api::row;
use super::readback::ReadBack;
use crate::recording::Record;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Rows in flight to each live stream before a slow page is told it lagged.
const BROADCAST_DEPTH: usize = 1024;

/// One flow in memory.
pub struct Entry {
    /// Its number in this web view (1-based, arrival order).
    pub id: u64,
    /// The flow, and where it came from (a recording's file and line, or `live`).
    pub record: Arc<Record>,
    /// Its list row, serialised once, when a page first asks for it (a proxy nobody watches
    /// serialises nothing).
    row_json: std::sync::OnceLock<Arc<str>>,
    /// About how many bytes it holds ([`super::bounds::approx_bytes`]).
    bytes: usize,
}

impl Entry {
    /// Its list row as JSON.
    pub fn row_json(&self) -> &str {
        self.row_json.get_or_init(|| {
            serde_json::to_string(&row(self.id, &self.record))
                .unwrap_or_else(|_| "{}".into())
                .into()
        })
    }
}

/// The flows in memory and the live feed of new rows.
pub struct Store {
    /// Flows in arrival order, at most `max`.
    entries: Mutex<VecDeque<Arc<Entry>>>,
    /// How many flows to keep.
    max: usize,
    /// How many bytes of flows to keep (the oldest go first; the newest always stays).
    max_bytes: usize,
    /// Bytes held by `entries`, changed under its lock.
    bytes: std::sync::atomic::AtomicUsize,
    /// The next flow's number.
    next_id: AtomicU64,
    /// New rows, as JSON, to every live stream.
    live: broadcast::Sender<Arc<Entry>>,
    /// Flows the proxy dropped before they reached the web view (its channel was full).
    pub dropped: Arc<AtomicU64>,
    /// Flows that fell out of memory.
    evicted: AtomicU64,
    /// Where flows that fell out of memory are in the recording, when there is one.
    read_back: Option<ReadBack>,
}

impl Store {
    /// An empty store keeping the last `max` flows.
    pub fn new(max: usize, dropped: Arc<AtomicU64>) -> Store {
        let (live, _) = broadcast::channel(BROADCAST_DEPTH);
        Store {
            entries: Mutex::new(VecDeque::new()),
            max: max.max(1),
            max_bytes: usize::MAX,
            bytes: std::sync::atomic::AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            live,
            dropped,
            evicted: AtomicU64::new(0),
            read_back: None,
        }
    }

    /// Read flows that fall out of memory back from the recording.
    pub fn with_read_back(mut self, read_back: ReadBack) -> Store {
        self.read_back = Some(read_back);
        self
    }

    /// Keep at most `mb` megabytes of flows.
    pub fn with_max_mb(mut self, mb: usize) -> Store {
        self.max_bytes = mb.max(1).saturating_mul(1024 * 1024);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add the flow `make` builds, given its number; returns the number.
    pub fn push_with(&self, make: impl FnOnce(u64) -> Record) -> u64 {
        // Numbering under the lock keeps the deque in number order (`get` relies on it).
        let entry = {
            let mut e = self.lock();
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let record = make(id);
            let bytes = super::bounds::approx_bytes(&record.flow);
            let entry = Arc::new(Entry {
                id,
                record: Arc::new(record),
                row_json: std::sync::OnceLock::new(),
                bytes,
            });
            e.push_back(entry.clone());
            let mut held = self.bytes.load(Ordering::Relaxed) + bytes;
            while e.len() > self.max || (held > self.max_bytes && e.len() > 1) {
                if let Some(old) = e.pop_front() {
                    held -= old.bytes;
                    if let Some(rb) = &self.read_back {
                        rb.evict(old.id, &old.record);
                    }
                }
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
            self.bytes.store(held, Ordering::Relaxed);
            entry
        };
        let id = entry.id;
        // No receivers is fine: nobody is watching.
        let _ = self.live.send(entry);
        id
    }

    /// The flow numbered `id`, if still in memory, or read back from the recording.
    pub fn get(&self, id: u64) -> Option<Arc<Entry>> {
        {
            let e = self.lock();
            // Numbers are consecutive in the deque, so the position is arithmetic.
            let first = e
                .front()
                .map_or(self.next_id.load(Ordering::Relaxed), |x| x.id);
            if id >= first {
                let pos = usize::try_from(id - first).ok()?;
                return e.get(pos).filter(|x| x.id == id).cloned();
            }
        }
        let record = self.read_back.as_ref()?.get(id)?;
        Some(Arc::new(Entry {
            id,
            bytes: super::bounds::approx_bytes(&record.flow),
            record: Arc::new(record),
            row_json: std::sync::OnceLock::new(),
        }))
    }

    /// Every flow in memory with a number above `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Arc<Entry>> {
        self.lock()
            .iter()
            .filter(|e| e.id > after)
            .cloned()
            .collect()
    }

    /// A receiver of every flow pushed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.live.subscribe()
    }

    /// `{kept, max, evicted, dropped}` for the page's status line.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "kept": self.lock().len(),
            "max": self.max,
            "bytes": self.bytes.load(Ordering::Relaxed),
            "evicted": self.evicted.load(Ordering::Relaxed),
            "readable": self.read_back.as_ref().map_or(0, |r| r.len()),
            "dropped": self.dropped.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::success;
    use std::path::PathBuf;

    fn rec() -> Record {
        Record {
            file: PathBuf::from("live"),
            line: 0,
            index: 0,
            flow: success().into(),
            diagnosed_on_read: false,
        }
    }

    #[test]
    fn keeps_the_last_n_and_never_reuses_numbers() {
        let s = Store::new(2, Arc::default());
        let mut live = s.subscribe();
        for _ in 0..3 {
            s.push_with(|_| rec());
        }
        assert!(s.get(1).is_none());
        assert_eq!(s.get(3).unwrap().id, 3);
        assert!(s.get(4).is_none());
        assert_eq!(s.since(2).len(), 1);
        assert_eq!(s.stats()["evicted"], 1);
        assert_eq!(live.try_recv().unwrap().id, 1);
    }
}
