//! Reading recordings one record at a time, in memory bounded by the connections still open in
//! the file rather than by the records read.
//!
//! What the writer guarantees (`src/record/writer.rs`, docs/recording.md) makes that possible:
//! a `legs_from` names the *latest* full exchange of its own run and connection (and the writer
//! forgets every connection when it rotates, so the first exchange of a connection in a new file
//! is full again). So the reader keeps the latest full legs of each connection, in two
//! generations of recently used connections (a connection that goes quiet falls to the older
//! generation, then out); what falls out keeps only where its full record is (file and byte
//! offset), and a late reference to it reads that one line again. The memory carries across
//! the files given (`FILE.2 FILE.1 FILE`), so even a reference into an earlier file resolves.
//! Only a reference to a connection that fell out of both is left unresolved, as a record whose
//! source is not in the files always was.

use super::{parse_line, ReadError, Record, Skipped};
use crate::facts::{Flow, Leg};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Connections whose parsed legs one generation holds (two generations are kept). A
/// connection's legs with certificates are about 11 KB parsed, so this bounds them to ~25 MB;
/// a reference to a connection beyond it costs one line read again.
const HOT_GENERATION: usize = 1024;
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

/// Where a line is: the file's position in the stream, and the byte offset.
type At = (u16, u64);

/// Where a connection's legs were found, and the legs.
type LegsAt = (At, Option<Arc<Leg>>, Option<Arc<Leg>>);

/// The latest full exchange of one connection.
struct Full {
    /// Its `exchange_index`.
    index: u32,
    /// Where its line is, to read it again once its legs left memory.
    at: At,
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
    /// Connections whose legs fell out: `(exchange_index, where)` of their full record.
    cold_young: HashMap<ConnKey, (u32, At)>,
    /// The generation before.
    cold_old: HashMap<ConnKey, (u32, At)>,
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
                self.cold_young.insert(k, (f.index, f.at));
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
        reread: impl FnOnce(At) -> Option<Flow>,
    ) -> Option<LegsAt> {
        if let Some(f) = self.young.get(&key) {
            return (f.index == from).then(|| (f.at, f.client.clone(), f.upstream.clone()));
        }
        if let Some(f) = self.old.remove(&key) {
            let legs = (f.index == from).then(|| (f.at, f.client.clone(), f.upstream.clone()));
            self.insert(key, f);
            return legs;
        }
        let (index, at) = self
            .cold_young
            .get(&key)
            .or_else(|| self.cold_old.get(&key))
            .copied()?;
        if index != from {
            return None;
        }
        let flow = reread(at)?;
        if flow.exchange_index != Some(from) {
            return None;
        }
        let legs = (at, flow.client_leg.clone(), flow.upstream_leg.clone());
        self.insert(
            key,
            Full {
                index,
                at,
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
    /// Its position among the stream's files.
    number: u16,
    /// Its lines.
    reader: Box<dyn BufRead>,
    /// Lines read so far.
    line: usize,
    /// Records read so far (what `FILE:N` counts).
    index: usize,
    /// Byte offset of the next line.
    offset: u64,
    /// The line being read.
    buf: Vec<u8>,
}

/// Parse the line at `offset` of `path` again (for a connection whose legs left memory).
fn reread(again: &mut HashMap<u16, File>, number: u16, path: &Path, offset: u64) -> Option<Flow> {
    let file = match again.entry(number) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => v.insert(File::open(path).ok()?),
    };
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut line = Vec::new();
    BufReader::new(file.take(64 * 1024 * 1024))
        .read_until(b'\n', &mut line)
        .ok()?;
    let raw = line.strip_suffix(b"\n").unwrap_or(&line);
    parse_line(raw.strip_suffix(b"\r").unwrap_or(raw)).ok()
}

/// What a stream remembers across its files to resolve `legs_from`.
struct Resolver {
    /// Every file of the stream, by number (empty when reading from memory).
    paths: Vec<PathBuf>,
    /// Handles opened to read lines again, by file number.
    again: HashMap<u16, File>,
    /// The legs `legs_from` can name.
    legs: LegCache,
    /// Where the line is whose legs the last record took.
    legs_source: Option<At>,
}

/// Records of one or more recordings, read one at a time, files in the order given.
pub struct RecordStream {
    /// Files not opened yet, with their numbers.
    pending: std::vec::IntoIter<(u16, PathBuf)>,
    /// The file being read.
    cur: Option<Cursor>,
    /// Byte offset (in its file) of the line of the last item returned.
    last_offset: u64,
    /// `legs_from` resolution, across the files.
    resolver: Resolver,
    /// `report --rediagnose`: replace every record's findings with today's rules'.
    rediagnose: bool,
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
        let numbered: Vec<(u16, PathBuf)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (u16::try_from(i).unwrap_or(u16::MAX), p.clone()))
            .collect();
        Ok(RecordStream {
            pending: numbered.into_iter(),
            cur: None,
            last_offset: 0,
            resolver: Resolver::new(paths.to_vec()),
            rediagnose: false,
        })
    }

    /// Read the bytes of a recording named `file` (already in memory).
    pub fn from_bytes(file: &Path, bytes: Vec<u8>) -> RecordStream {
        RecordStream {
            pending: Vec::new().into_iter(),
            cur: Some(Cursor::new(
                file.to_path_buf(),
                0,
                Box::new(std::io::Cursor::new(bytes)),
            )),
            last_offset: 0,
            resolver: Resolver::new(Vec::new()),
            rediagnose: false,
        }
    }

    /// The same stream, replacing every record's findings with what today's rules draw from
    /// its facts (`report --rediagnose`), instead of showing those the recording carries.
    pub fn rediagnosing(mut self, rediagnose: bool) -> RecordStream {
        self.rediagnose = rediagnose;
        self
    }

    /// Byte offset, within its file, of the line of the last item returned.
    pub fn offset(&self) -> u64 {
        self.last_offset
    }

    /// For the last record returned, if its `legs_from` was resolved: where the line that
    /// carries its legs is (the file's position among those given, and the byte offset).
    pub fn legs_source(&self) -> Option<(u16, u64)> {
        self.resolver.legs_source
    }

    /// How many connections' legs are held in memory now (for tests of the bound).
    pub fn legs_in_memory(&self) -> usize {
        self.resolver.legs.hot()
    }

    /// The next record or skipped line; `None` after the last file's last line.
    pub fn next_item(&mut self) -> Result<Option<Item>, ReadError> {
        loop {
            if self.cur.is_none() {
                let Some((number, path)) = self.pending.next() else {
                    return Ok(None);
                };
                let file = File::open(&path).map_err(|source| ReadError {
                    path: path.clone(),
                    source,
                })?;
                let reader = Box::new(BufReader::with_capacity(READ_BUFFER, file));
                self.cur = Some(Cursor::new(path, number, reader));
            }
            let Some(cur) = self.cur.as_mut() else {
                continue;
            };
            match cur.next_item(&mut self.resolver)? {
                Some((offset, mut item)) => {
                    self.last_offset = offset;
                    if let (true, Item::Record(r)) = (self.rediagnose, &mut item) {
                        r.rediagnose();
                    }
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

impl Resolver {
    fn new(paths: Vec<PathBuf>) -> Resolver {
        Resolver {
            paths,
            again: HashMap::new(),
            legs: LegCache::default(),
            legs_source: None,
        }
    }

    /// Resolve `legs_from`, remember full legs, diagnose what carries no findings.
    fn record(&mut self, mut flow: Flow, at: At) -> Flow {
        self.legs_source = None;
        let key = self.legs.key(&flow.run, flow.connection_id);
        if let Some(from) = flow.legs_from {
            let (again, paths) = (&mut self.again, &self.paths);
            let read_again = |(file, offset): At| {
                let path = paths.get(usize::from(file))?;
                reread(again, file, path, offset)
            };
            if let Some((src, client, upstream)) = self.legs.legs(key, from, read_again) {
                self.legs_source = Some(src);
                flow.client_leg = client;
                flow.upstream_leg = upstream;
                flow.legs_from = None;
            }
        } else if let Some(index) = flow.exchange_index {
            self.legs.insert(
                key,
                Full {
                    index,
                    at,
                    client: flow.client_leg.clone(),
                    upstream: flow.upstream_leg.clone(),
                },
            );
        }
        flow
    }
}

impl Cursor {
    fn new(path: PathBuf, number: u16, reader: Box<dyn BufRead>) -> Cursor {
        Cursor {
            path,
            number,
            reader,
            line: 0,
            index: 0,
            offset: 0,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// The next item of this file, with its line's offset.
    fn next_item(&mut self, resolver: &mut Resolver) -> Result<Option<(u64, Item)>, ReadError> {
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
                Ok(flow) => {
                    // The findings are the recording's: a reader never diagnoses (only
                    // `rediagnosing` does, on request).
                    let flow = resolver.record(flow, (self.number, offset));
                    self.index += 1;
                    Item::Record(Box::new(Record {
                        file: self.path.clone(),
                        line: self.line,
                        index: self.index,
                        flow: flow.into(),
                        diagnosed_on_read: false,
                    }))
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::test_lines::{alpn, exchange_line};

    fn line(conn: u64, index: u32, from: Option<u32>, alpn: &str) -> String {
        exchange_line(conn, index, from, alpn, "r", None)
    }

    #[test]
    fn legs_in_memory_stay_bounded_and_a_quiet_connection_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let mut text = line(1, 0, None, "first");
        // Many short connections after it push connection 1 out of memory...
        let many = 5 * HOT_GENERATION as u64;
        for c in 2..many {
            text.push_str(&line(c, 0, None, "x"));
            text.push_str(&line(c, 1, Some(0), ""));
        }
        // ...then it speaks again.
        text.push_str(&line(1, 1, Some(0), ""));
        std::fs::write(&path, text).unwrap();
        let mut s = RecordStream::open(&[path]).unwrap();
        let mut most = 0;
        let mut last = None;
        let mut source = None;
        while let Some(item) = s.next_item().unwrap() {
            most = most.max(s.legs_in_memory());
            if let Item::Record(r) = item {
                last = Some(r);
                source = s.legs_source();
            }
        }
        assert!(most <= 2 * HOT_GENERATION, "{most} connections' legs held");
        let last = last.unwrap();
        assert_eq!(last.flow.connection_id, 1);
        assert_eq!(
            alpn(&last).as_deref(),
            Some("first"),
            "read again from the file"
        );
        assert_eq!(source, Some((0, 0)));
    }

    #[test]
    fn a_reference_into_an_earlier_file_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("rec.jsonl.1"), dir.path().join("rec.jsonl"));
        std::fs::write(&a, line(1, 0, None, "h2")).unwrap();
        // The writer starts a new file with full legs, but a hand-joined or older pair of
        // files may not: the reader's memory spans the files given.
        std::fs::write(&b, line(1, 1, Some(0), "")).unwrap();
        let mut s = RecordStream::open(&[a, b]).unwrap();
        let _first = s.next_item().unwrap();
        let Some(Item::Record(r)) = s.next_item().unwrap() else {
            panic!()
        };
        assert_eq!(alpn(&r).as_deref(), Some("h2"));
        assert_eq!(r.index, 1, "numbered within its file");
        assert_eq!(
            s.legs_source(),
            Some((0, 0)),
            "its legs are in the first file"
        );
    }
}
