//! The live web view's flows that left memory, read back from the recording (`--record`):
//! per evicted flow, where the writer put its line (or, until the writer has reported it,
//! which record it is), about 50 bytes each, for the last [`MAX_EVICTED`] evicted flows.

use crate::record::locate::{FlowKey, Location, Locator};
use crate::recording::Record;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Evicted flows remembered, at most (about 25 MB); older ones are only in the recording (`mtlscope
/// ui FILE` shows them).
pub const MAX_EVICTED: usize = 500_000;

/// Evicted flows, numbered consecutively (the store evicts in number order).
#[derive(Default)]
struct Evicted {
    /// The number of `slots[0]`.
    first: u64,
    /// One per evicted flow, oldest first: which record it is, and where its line is
    /// (`None` until the writer has reported it: looked up when asked for).
    slots: VecDeque<(FlowKey, Option<Location>)>,
}

/// The evicted flows of a live view over a recording.
pub struct ReadBack {
    /// The writer's reports.
    locator: Arc<Locator>,
    /// The evicted flows.
    evicted: Mutex<Evicted>,
}

impl ReadBack {
    /// Read back from the recording `locator` reports on; it is told to keep reports for at
    /// least `max_flows` flows (the store's size) and then some.
    pub fn new(locator: Arc<Locator>, max_flows: usize) -> ReadBack {
        locator.enable(max_flows.saturating_mul(2).saturating_add(64 * 1024));
        ReadBack {
            locator,
            evicted: Mutex::new(Evicted::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Evicted> {
        self.evicted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flow `id` left memory.
    pub fn evict(&self, id: u64, record: &Record) {
        let key = FlowKey::of(&record.flow);
        let slot = self.locator.take(&key);
        let mut e = self.lock();
        if e.slots.is_empty() || e.first + e.slots.len() as u64 != id {
            // Not the next number (never happens: the store evicts in order): start again.
            e.slots.clear();
            e.first = id;
        }
        e.slots.push_back((key, slot));
        if e.slots.len() > MAX_EVICTED {
            e.slots.pop_front();
            e.first += 1;
        }
    }

    /// Evicted flow `id` read from the recording, if it is known and still there.
    pub fn get(&self, id: u64) -> Option<Record> {
        let (key, at) = {
            let mut e = self.lock();
            let pos = usize::try_from(id.checked_sub(e.first)?).ok()?;
            let (key, slot) = *e.slots.get(pos)?;
            let at = match slot {
                Some(at) => at,
                None => {
                    let at = self.locator.take(&key)?;
                    e.slots[pos].1 = Some(at);
                    at
                }
            };
            (key, at)
        };
        match self.locator.read(&key, &at) {
            Ok(mut flow) => {
                super::bounds::cut_for_view(&mut flow);
                Some(Record {
                    file: PathBuf::from("live"),
                    line: 0,
                    index: usize::try_from(id).unwrap_or(usize::MAX),
                    flow: flow.into(),
                    diagnosed_on_read: false,
                })
            }
            Err(e) => {
                tracing::debug!(id, error = %e, "web view: cannot read an evicted flow back");
                None
            }
        }
    }

    /// How many evicted flows can be read back.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether none can.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
