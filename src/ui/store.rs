//! The web view's memory: the last N flows, numbered in arrival order, and a broadcast of each
//! new flow's list row to the open live streams.
//!
//! Older flows fall out of memory (they stay in the recording, and with `--record` they are
//! read back from it when asked for: [`ReadBack`]). Numbers are never reused, so a page that
//! links `#/flow/17` gets flow 17 or "no longer in memory", never another flow.
//!
//! With a recording to read back from, only the newest [`HOT_FLOWS`] of the N listed flows are
//! held whole: the rest of the list is read back when a page opens it. Holding 10,000 flows
//! whole cost the relay 15–23% of its CPU per request on keep-alive with nobody watching
//! (every new flow's memory replaced a cold, evicted one's); 512 cost 4–9%.

use super::api::row;
use super::readback::ReadBack;
use crate::recording::Record;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Rows in flight to each live stream before a slow page is told it lagged.
const BROADCAST_DEPTH: usize = 1024;

/// Flows held whole in memory when older ones can be read back from the recording.
pub const HOT_FLOWS: usize = 512;

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
    /// Flow `id`, read back from the recording.
    fn read_back(id: u64, record: Record) -> Arc<Entry> {
        Arc::new(Entry {
            id,
            bytes: super::bounds::approx_bytes(&record.flow),
            record: Arc::new(record),
            row_json: std::sync::OnceLock::new(),
        })
    }

    /// Its list row as JSON.
    pub fn row_json(&self) -> &str {
        self.row_json.get_or_init(|| {
            serde_json::to_string(&row(self.id, &self.record))
                .unwrap_or_else(|_| "{}".into())
                .into()
        })
    }
}

/// Which flows a store has numbered, lists and holds, at one instant.
struct Window {
    /// The number of the oldest flow in memory (the next one's when none is).
    first_in_memory: u64,
    /// How many flows are in memory.
    in_memory: u64,
    /// How many flows were numbered so far.
    numbered: u64,
    /// The number of the oldest flow the list shows (`--ui-max-flows` back from the newest).
    oldest_listed: u64,
}

/// The flows in memory and the live feed of new rows.
pub struct Store {
    /// Flows held in memory, in arrival order, at most `hot`.
    entries: Mutex<VecDeque<Arc<Entry>>>,
    /// How many flows the list shows (`--ui-max-flows`).
    max: usize,
    /// How many of those are held in memory: all of them, unless older ones can be read back.
    hot: usize,
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
            hot: max.max(1),
            max_bytes: usize::MAX,
            bytes: std::sync::atomic::AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            live,
            dropped,
            read_back: None,
        }
    }

    /// Read flows that fall out of memory back from the recording, and hold only the newest
    /// [`HOT_FLOWS`] of the listed ones in memory.
    pub fn with_read_back(mut self, read_back: ReadBack) -> Store {
        self.read_back = Some(read_back);
        self.hot = self.max.min(HOT_FLOWS);
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
            while e.len() > self.hot || (held > self.max_bytes && e.len() > 1) {
                if let Some(old) = e.pop_front() {
                    held -= old.bytes;
                    if let Some(rb) = &self.read_back {
                        rb.evict(old.id, &old.record);
                    }
                }
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
        Some(Entry::read_back(id, record))
    }

    /// Every flow in memory with a number above `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Arc<Entry>> {
        self.lock()
            .iter()
            .filter(|e| e.id > after)
            .cloned()
            .collect()
    }

    /// The listed flows that are no longer in memory, numbered above `after`, read back from
    /// the recording, oldest first (file reads: call it off the runtime's threads).
    pub fn listed_before_memory(&self, after: u64) -> Vec<Arc<Entry>> {
        let Some(rb) = &self.read_back else {
            return Vec::new();
        };
        let w = self.window();
        (w.oldest_listed.max(after + 1)..w.first_in_memory)
            .filter_map(|id| Some(Entry::read_back(id, rb.get(id)?)))
            .collect()
    }

    /// Which flows are numbered, listed and in memory now.
    fn window(&self) -> Window {
        let e = self.lock();
        let next = self.next_id.load(Ordering::Relaxed);
        let numbered = next - 1;
        Window {
            first_in_memory: e.front().map_or(next, |x| x.id),
            in_memory: e.len() as u64,
            numbered,
            oldest_listed: numbered.saturating_sub(self.max as u64) + 1,
        }
    }

    /// A receiver of every flow pushed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.live.subscribe()
    }

    /// `{kept, in_memory, max, evicted, dropped}` for the page's status line: `kept` flows are
    /// listed, `in_memory` of them held whole, `evicted` ones only in the recording (a few
    /// `readable` by number).
    pub fn stats(&self) -> serde_json::Value {
        let w = self.window();
        // Older listed flows: those the recording can give back, up to `--ui-max-flows`.
        let cold = match &self.read_back {
            Some(rb) => (w.first_in_memory.saturating_sub(w.oldest_listed)).min(rb.len() as u64),
            None => 0,
        };
        let listed = w.in_memory + cold;
        serde_json::json!({
            "kept": listed,
            "in_memory": w.in_memory,
            "max": self.max,
            "bytes": self.bytes.load(Ordering::Relaxed),
            "evicted": w.numbered.saturating_sub(listed),
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
