//! Where the writer put each record (the file's rotation generation and the line's byte
//! offset), so the live web view can read a flow back from the recording once it has left
//! memory.
//!
//! The writer reports every line it wrote, with the line carrying its legs when it wrote a
//! `legs_from` reference, but only once someone asked for locations ([`Locator::enable`]).
//! Locations wait here until the web view takes them (when it evicts the flow); those nobody
//! takes (flows the web view dropped) are forgotten after two generations of
//! [`Locator::enable`]'s `keep` reports, so this holds a bounded number.

use crate::facts::{Flow, RecordKind};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Bits of a [`Spot`] that hold the offset (256 TiB); the bits above hold the generation.
const OFFSET_BITS: u32 = 48;
/// A line longer than this is not read back.
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// Which record a location is for: unique within one process's recording (connection ids
/// are never reused, and a connection has one record per exchange, or one without any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The flow's `connection_id`.
    pub connection_id: u64,
    /// Its `exchange_index`, for an exchange record.
    pub exchange_index: Option<u32>,
    /// Whether it is an exchange record (not a connection record).
    pub exchange: bool,
}

impl FlowKey {
    /// The key of `flow`.
    pub fn of(flow: &Flow) -> FlowKey {
        FlowKey {
            connection_id: flow.connection_id,
            exchange_index: flow.exchange_index,
            exchange: flow.kind == RecordKind::Exchange,
        }
    }
}

/// One line of the recording: the file's generation (how many times the writer had rotated
/// when it wrote the line) and the line's offset, packed in 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spot(u64);

impl Spot {
    /// The line at `offset` of generation `generation`; `None` past the packing's range.
    pub fn new(generation: u64, offset: u64) -> Option<Spot> {
        (generation < (1 << (64 - OFFSET_BITS)) && offset < (1 << OFFSET_BITS))
            .then_some(Spot((generation << OFFSET_BITS) | offset))
    }

    /// The generation of the file.
    pub fn generation(self) -> u64 {
        self.0 >> OFFSET_BITS
    }

    /// The line's offset in that file.
    pub fn offset(self) -> u64 {
        self.0 & ((1 << OFFSET_BITS) - 1)
    }
}

/// Where one record is: its line, and the line of the exchange its `legs_from` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The record's own line.
    pub line: Spot,
    /// The full exchange carrying its legs, when the line has `legs_from`.
    pub legs: Option<Spot>,
}

/// Why a record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The file holding it was rotated away (more than the writer keeps).
    #[error("the recording file holding it was rotated away")]
    RotatedAway,
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The line there is not the record asked for (the file changed under the reader).
    #[error("{path} at byte {offset} does not hold the record any more")]
    Moved {
        /// The file.
        path: PathBuf,
        /// The offset read.
        offset: u64,
    },
}

/// Locations reported by the writer, waiting to be taken.
pub struct Locator {
    /// The `--record` path (generation `g` is `PATH.N` once rotated `N` times since).
    path: PathBuf,
    /// Rotated files the writer keeps (`PATH.1` … `PATH.N`).
    keep_rotated: u64,
    /// Whether the writer should report (nobody asked: no cost).
    enabled: AtomicBool,
    /// The reports.
    inner: Mutex<Reports>,
}

/// The reports, in two generations so untaken ones are forgotten.
#[derive(Default)]
struct Reports {
    /// Reports kept per generation before the older one is forgotten.
    keep: usize,
    /// The writer's current file generation.
    generation: u64,
    /// Newer reports.
    current: HashMap<FlowKey, Location>,
    /// Older reports, forgotten when `current` fills up.
    previous: HashMap<FlowKey, Location>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("path", &self.path)
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

impl Locator {
    /// A locator for the recording at `path` (disabled until [`Locator::enable`]).
    pub(crate) fn new(path: PathBuf, keep_rotated: u64) -> Locator {
        Locator {
            path,
            keep_rotated,
            enabled: AtomicBool::new(false),
            inner: Mutex::new(Reports::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reports> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start reporting; a location not taken within about `keep` later reports is forgotten.
    pub fn enable(&self, keep: usize) {
        let mut r = self.lock();
        r.keep = r.keep.max(keep.max(1024));
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether anybody asked for locations.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The writer wrote these lines (one lock per batch).
    pub(crate) fn wrote(&self, lines: impl IntoIterator<Item = (FlowKey, Location)>) {
        let mut r = self.lock();
        for (key, at) in lines {
            if r.current.len() >= r.keep {
                r.previous = std::mem::take(&mut r.current);
            }
            r.current.insert(key, at);
        }
    }

    /// The writer rotated: what was generation `g`'s file is now one further back.
    pub(crate) fn rotated(&self) {
        self.lock().generation += 1;
    }

    /// The location of `key`'s line, if reported and not taken yet; it is taken.
    pub fn take(&self, key: &FlowKey) -> Option<Location> {
        let mut r = self.lock();
        r.current.remove(key).or_else(|| r.previous.remove(key))
    }

    /// The file that holds generation `g` now.
    fn file_of(&self, g: u64) -> Result<PathBuf, ReadBackError> {
        let back = self.lock().generation.saturating_sub(g);
        match back {
            0 => Ok(self.path.clone()),
            n if n <= self.keep_rotated => {
                let mut p = self.path.clone().into_os_string();
                p.push(format!(".{n}"));
                Ok(PathBuf::from(p))
            }
            _ => Err(ReadBackError::RotatedAway),
        }
    }

    /// Read the line at `spot` (parsed, nothing resolved).
    fn read_line(&self, spot: Spot) -> Result<Flow, ReadBackError> {
        let path = self.file_of(spot.generation())?;
        let io = |source| ReadBackError::Io {
            path: path.clone(),
            source,
        };
        let mut f = File::open(&path).map_err(io)?;
        f.seek(SeekFrom::Start(spot.offset())).map_err(io)?;
        let mut line = Vec::new();
        BufReader::new(f.take(MAX_LINE))
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        let raw = line.strip_suffix(b"\n").unwrap_or(&line);
        crate::recording::parse_line(raw).map_err(|_| ReadBackError::Moved {
            path: path.clone(),
            offset: spot.offset(),
        })
    }

    /// Read the record `key` at `at` back, its legs put back from the line that carries them.
    pub fn read(&self, key: &FlowKey, at: &Location) -> Result<Flow, ReadBackError> {
        let mut flow = self.read_line(at.line)?;
        let moved = |spot: Spot| ReadBackError::Moved {
            path: self.file_of(spot.generation()).unwrap_or_default(),
            offset: spot.offset(),
        };
        if FlowKey::of(&flow) != *key {
            return Err(moved(at.line));
        }
        if let (Some(index), Some(legs)) = (flow.legs_from, at.legs) {
            let full = self.read_line(legs)?;
            if full.connection_id != key.connection_id || full.exchange_index != Some(index) {
                return Err(moved(legs));
            }
            flow.client_leg = full.client_leg;
            flow.upstream_leg = full.upstream_leg;
            flow.legs_from = None;
        }
        Ok(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_pack_generation_and_offset() {
        let s = Spot::new(3, 123_456_789_012).unwrap();
        assert_eq!((s.generation(), s.offset()), (3, 123_456_789_012));
        assert!(Spot::new(1 << 16, 0).is_none());
        assert!(Spot::new(0, 1 << 48).is_none());
    }

    #[test]
    fn untaken_reports_are_forgotten_after_two_generations() {
        let l = Locator::new(PathBuf::from("x.jsonl"), 9);
        l.enable(0);
        let key = |n| FlowKey {
            connection_id: n,
            exchange_index: None,
            exchange: false,
        };
        let at = Location {
            line: Spot::new(0, 0).unwrap(),
            legs: None,
        };
        l.wrote((0..3000).map(|n| (key(n), at)));
        assert!(l.take(&key(0)).is_none(), "two generations of 1024 ago");
        assert_eq!(l.take(&key(2999)), Some(at));
        assert!(l.take(&key(2999)).is_none(), "taken once");
        assert_eq!(l.file_of(0).unwrap(), PathBuf::from("x.jsonl"));
        l.rotated();
        assert_eq!(l.file_of(0).unwrap(), PathBuf::from("x.jsonl.1"));
        for _ in 0..9 {
            l.rotated();
        }
        assert!(matches!(l.file_of(0), Err(ReadBackError::RotatedAway)));
    }
}
