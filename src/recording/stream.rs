//! Reading recordings one record at a time, in memory bounded by the connections still open in
//! the file rather than by the records read.
//!
//! What the writer guarantees (`src/record/writer.rs`, docs/recording.md) makes that possible:
//! a `legs_from` names the *latest* full exchange of its own run and connection, and never one
//! in another file (the writer forgets every connection when it rotates, and every writer starts
//! empty). So the reader keeps, per file, the latest full legs of each connection, in two
//! generations of recently used connections (a connection that goes quiet falls to the older
//! generation, then out); what falls out keeps only the byte offset of its full record, and a
//! late reference to it reads that one line again. Only a reference to a connection that fell
//! out of both is left unresolved, as a record whose source is not in the file always was.

use super::{parse_line, ReadError, Record, Skipped};
use crate::diagnose::diagnose;
use crate::facts::{Flow, Leg};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Connections whose parsed legs one generation holds (two generations are kept).
const HOT_GENERATION: usize = 4096;
/// Connections whose full record's offset one generation holds, once their legs fell out.
const COLD_GENERATION: usize = 128 * 1024;
/// Read buffer per file.
const READ_BUFFER: usize = 256 * 1024;

/// One thing read from a recording: a record, or a line skipped.
#[derive(Debug)]
pub enum Item {
    /// A readable record, `legs_from` resolved and diagnosed when it had no findings.
    Record(Box<Record>),
    /// A line that is not a record.
    Skipped(Skipped),
}

/// `(run, connection)`: the run interned as a number.
type ConnKey = (u32, u64);

/// The latest full exchange of one connection.
struct Full {
    /// Its `exchange_index`.
    index: u32,
    /// Byte offset of its line, to read it again once its legs left memory.
    offset: u64,
    /// Its client leg.
    client: Option<Arc<Leg>>,
    /// Its upstream leg.
    upstream: Option<Arc<Leg>>,
}

/// The legs `legs_from` can still name, for the file being read.
#[derive(Default)]
struct LegCache {
    /// Run ids seen in this file, numbered.
    runs: HashMap<String, u32>,
    /// Connections touched most recently.
    young: HashMap<ConnKey, Full>,
    /// The generation before.
    old: HashMap<ConnKey, Full>,
    /// Connections whose legs fell out: `(exchange_index, offset)` of their full record.
    cold_young: HashMap<ConnKey, (u32, u64)>,
    /// The generation before.
    cold_old: HashMap<ConnKey, (u32, u64)>,
}

impl LegCache {
    fn key(&mut self, run: &str, conn: u64) -> ConnKey {
        if let Some(&n) = self.runs.get(run) {
            return (n, conn);
        }
        let n = u32::try_from(self.runs.len()).unwrap_or(u32::MAX);
        self.runs.insert(run.to_string(), n);
        (n, conn)
    }

    /// Remember `full` as the latest full exchange of `key`.
    fn insert(&mut self, key: ConnKey, full: Full) {
        self.old.remove(&key);
        if self.young.len() >= HOT_GENERATION && !self.young.contains_key(&key) {
            // The older generation's legs leave memory; their offsets stay.
            for (k, f) in self.old.drain() {
                if self.cold_young.len() >= COLD_GENERATION {
                    self.cold_old = std::mem::take(&mut self.cold_young);
                }
                self.cold_young.insert(k, (f.index, f.offset));
            }
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, full);
    }

    /// The legs of exchange `from` of `key`, if still known; `reread` reads a line again.
    fn legs(
        &mut self,
        key: ConnKey,
        from: u32,
        reread: impl FnOnce(u64) -> Option<Flow>,
    ) -> Option<(u64, Option<Arc<Leg>>, Option<Arc<Leg>>)> {
        if let Some(f) = self.young.get(&key) {
            return (f.index == from).then(|| (f.offset, f.client.clone(), f.upstream.clone()));
        }
        if let Some(f) = self.old.remove(&key) {
            let legs = (f.index == from).then(|| (f.offset, f.client.clone(), f.upstream.clone()));
            self.insert(key, f);
            return legs;
        }
        let (index, offset) = self
            .cold_young
            .get(&key)
            .or_else(|| self.cold_old.get(&key))
            .copied()?;
        if index != from {
            return None;
        }
        let flow = reread(offset)?;
        if flow.exchange_index != Some(from) {
            return None;
        }
        let legs = (offset, flow.client_leg.clone(), flow.upstream_leg.clone());
        self.insert(
            key,
            Full {
                index,
                offset,
                client: legs.1.clone(),
                upstream: legs.2.clone(),
            },
        );
        Some(legs)
    }

    /// How many connections' legs are in memory.
    fn hot(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// The file being read.
struct Cursor {
    /// The file, as named.
    path: PathBuf,
    /// Its lines.
    reader: Box<dyn BufRead>,
    /// A second handle, opened on first use, to read a line again by offset.
    again: Option<File>,
    /// Whether the bytes came from a file that can be opened again (not from memory).
    on_disk: bool,
    /// Lines read so far.
    line: usize,
    /// Records read so far (what `FILE:N` counts).
    index: usize,
    /// Byte offset of the next line.
    offset: u64,
    /// The line being read.
    buf: Vec<u8>,
    /// The legs `legs_from` can name in this file.
    legs: LegCache,
    /// Offset of the line whose legs the last record took (`legs_from` resolved).
    legs_source: Option<u64>,
}

impl Cursor {
    /// Parse the line at `offset` again (for a connection whose legs left memory).
    fn reread(again: &mut Option<File>, path: &Path, offset: u64) -> Option<Flow> {
        if again.is_none() {
            *again = File::open(path).ok();
        }
        let file = again.as_mut()?;
        file.seek(SeekFrom::Start(offset)).ok()?;
        let mut line = Vec::new();
        BufReader::new(file.take(64 * 1024 * 1024))
            .read_until(b'\n', &mut line)
            .ok()?;
        let raw = line.strip_suffix(b"\n").unwrap_or(&line);
        parse_line(raw.strip_suffix(b"\r").unwrap_or(raw)).ok()
    }
}

/// Records of one or more recordings, read one at a time, files in the order given.
pub struct RecordStream {
    /// Files not opened yet.
    pending: std::vec::IntoIter<PathBuf>,
    /// The file being read.
    cur: Option<Cursor>,
    /// Byte offset (in its file) of the line of the last item returned.
    last_offset: u64,
}

impl RecordStream {
    /// Read `paths` in order. Every file is checked to be readable first, so a bad name fails
    /// before any output.
    pub fn open(paths: &[PathBuf]) -> Result<RecordStream, ReadError> {
        for p in paths {
            File::open(p).map_err(|source| ReadError {
                path: p.clone(),
                source,
            })?;
        }
        Ok(RecordStream {
            pending: paths.to_vec().into_iter(),
            cur: None,
            last_offset: 0,
        })
    }

    /// Read the bytes of a recording named `file` (already in memory).
    pub fn from_bytes(file: &Path, bytes: Vec<u8>) -> RecordStream {
        RecordStream {
            pending: Vec::new().into_iter(),
            cur: Some(Cursor::new(
                file.to_path_buf(),
                Box::new(std::io::Cursor::new(bytes)),
                false,
            )),
            last_offset: 0,
        }
    }

    /// Byte offset, within its file, of the line of the last item returned.
    pub fn offset(&self) -> u64 {
        self.last_offset
    }

    /// For the last record returned, if its `legs_from` was resolved: the offset (in the same
    /// file) of the line that carries its legs.
    pub fn legs_source(&self) -> Option<u64> {
        self.cur.as_ref().and_then(|c| c.legs_source)
    }

    /// How many connections' legs are held in memory now (for tests of the bound).
    pub fn legs_in_memory(&self) -> usize {
        self.cur.as_ref().map_or(0, |c| c.legs.hot())
    }

    /// The next record or skipped line; `None` after the last file's last line.
    pub fn next_item(&mut self) -> Result<Option<Item>, ReadError> {
        loop {
            if self.cur.is_none() {
                let Some(path) = self.pending.next() else {
                    return Ok(None);
                };
                let file = File::open(&path).map_err(|source| ReadError {
                    path: path.clone(),
                    source,
                })?;
                let reader = Box::new(BufReader::with_capacity(READ_BUFFER, file));
                self.cur = Some(Cursor::new(path, reader, true));
            }
            let Some(cur) = self.cur.as_mut() else {
                continue;
            };
            match cur.next_item()? {
                Some((offset, item)) => {
                    self.last_offset = offset;
                    return Ok(Some(item));
                }
                None => self.cur = None,
            }
        }
    }
}

impl Iterator for RecordStream {
    type Item = Result<Item, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

impl Cursor {
    fn new(path: PathBuf, reader: Box<dyn BufRead>, on_disk: bool) -> Cursor {
        Cursor {
            path,
            reader,
            again: None,
            on_disk,
            line: 0,
            index: 0,
            offset: 0,
            buf: Vec::with_capacity(16 * 1024),
            legs: LegCache::default(),
            legs_source: None,
        }
    }

    /// The next item of this file, with its line's offset.
    fn next_item(&mut self) -> Result<Option<(u64, Item)>, ReadError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ReadError {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            let offset = self.offset;
            self.offset += n as u64;
            self.line += 1;
            // The last line without a newline is what a writer cut off mid-line leaves behind.
            let truncated = self.buf.last() != Some(&b'\n');
            let raw = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let item = match parse_line(raw) {
                Ok(flow) => Item::Record(Box::new(self.record(flow, offset))),
                Err(reason) => {
                    let reason = if truncated && reason.starts_with("malformed") {
                        format!("truncated last line ({reason})")
                    } else {
                        reason
                    };
                    Item::Skipped(Skipped {
                        file: self.path.clone(),
                        line: self.line,
                        reason,
                    })
                }
            };
            return Ok(Some((offset, item)));
        }
    }

    /// Resolve `legs_from`, remember full legs, diagnose what carries no findings.
    fn record(&mut self, mut flow: Flow, offset: u64) -> Record {
        self.legs_source = None;
        let key = self.legs.key(&flow.run, flow.connection_id);
        if let Some(from) = flow.legs_from {
            let (again, path, on_disk) = (&mut self.again, &self.path, self.on_disk);
            let reread = |at| on_disk.then(|| Cursor::reread(again, path, at)).flatten();
            if let Some((at, client, upstream)) = self.legs.legs(key, from, reread) {
                self.legs_source = Some(at);
                flow.client_leg = client;
                flow.upstream_leg = upstream;
                flow.legs_from = None;
            }
        } else if let Some(index) = flow.exchange_index {
            self.legs.insert(
                key,
                Full {
                    index,
                    offset,
                    client: flow.client_leg.clone(),
                    upstream: flow.upstream_leg.clone(),
                },
            );
        }
        let mut diagnosed_on_read = false;
        if flow.findings.is_empty() {
            flow.findings = diagnose(&flow);
            diagnosed_on_read = !flow.findings.is_empty();
        }
        self.index += 1;
        Record {
            file: self.path.clone(),
            line: self.line,
            index: self.index,
            flow,
            diagnosed_on_read,
        }
    }
}
