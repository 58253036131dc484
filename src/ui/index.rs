//! `mtlscope ui FILE…` over recordings of any size: one streaming pass builds an index (where
//! each record's line starts, which record carries the legs a compact one names, and per record
//! a few small numbers: its finding set, status, host and run), then list pages, filter counts
//! and flow pages are served from the files on demand.
//!
//! The index costs about 9.5 bytes a record (a 10-million-flow recording: ~95 MB), whatever
//! the records' size: per record a 16-bit offset within a block of [`BLOCK`] records, a
//! 16-bit distance back to the record carrying its legs, a 16-bit finding set, a 16-bit host
//! and an 8-bit status; runs are stored as ranges (a run's records are consecutive). What does
//! not fit (a long line, a far legs source, an odd status) goes to a small map. A flow page
//! reads its line (and its legs' line) again.

use super::column::Column;
use crate::facts::{FindingId, Flow, Severity};
use crate::recording::filter::Filter;
use crate::recording::{parse_line, Item, ReadError, Record, RecordStream, Skipped};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

/// Records per block of offsets: a block's start is a full offset, its records' are relative
/// (16 bits: 32 records of a keep-alive recording average about 35 KB, most of them compacted
/// to about 1 KB).
const BLOCK: usize = 32;
/// The value of an interned column past its table's capacity ("other").
const OTHER: u16 = u16::MAX;
/// A 16-bit column's value meaning "in the overflow map".
const FAR: u16 = u16::MAX;
/// Status/outcome pairs interned in 8 bits; the last value means "in the overflow map".
const FAR_STATUS: u8 = u8::MAX;

/// Values interned to small numbers, in order of first appearance.
#[derive(Default)]
struct Interned<T: std::hash::Hash + Eq + Clone> {
    /// Number of each value.
    ids: HashMap<T, u16>,
    /// The values, by number.
    values: Vec<T>,
}

impl<T: std::hash::Hash + Eq + Clone> Interned<T> {
    fn id(&mut self, v: &T, max: usize) -> u16 {
        if let Some(&n) = self.ids.get(v) {
            return n;
        }
        if self.values.len() >= max {
            return OTHER;
        }
        let n = u16::try_from(self.values.len()).unwrap_or(OTHER);
        self.ids.insert(v.clone(), n);
        self.values.push(v.clone());
        n
    }

    fn get(&self, v: &T) -> Option<u16> {
        self.ids.get(v).copied()
    }
}

/// The index of one or more recordings: column per fact, one entry per record.
pub struct FileIndex {
    /// The files, in order.
    files: Vec<PathBuf>,
    /// Per file, the number of the first record in it.
    file_starts: Vec<u32>,
    /// Per block of [`BLOCK`] records: its first record's file and offset.
    block_start: Column<(u16, u64)>,
    /// Per record: offset of its line from its block's first line (same file), or from its
    /// file's start when it is the first of its file in the block; [`FAR`]: in `far_offset`.
    rel: Column<u16>,
    /// Offsets that do not fit `rel`, by record: the offset in its file.
    far_offset: HashMap<u32, u64>,
    /// Per record: how many records back the one carrying its legs (`legs_from`) is, 0 for
    /// none; [`FAR`]: in `far_src`.
    legs_back: Column<u16>,
    /// Legs sources that do not fit `legs_back`, by record.
    far_src: HashMap<u32, u32>,
    /// Per record: its set of finding ids.
    finding_set: Column<u16>,
    /// Per record: its status and whether it failed, interned; [`FAR_STATUS`]: in
    /// `far_status`.
    status: Column<u8>,
    /// The interned (status, failed) pairs; status 0 is none.
    statuses: Interned<(u16, bool)>,
    /// Pairs that do not fit `status`, by record.
    far_status: HashMap<u32, (u16, bool)>,
    /// Per record: its host.
    host: Column<u16>,
    /// Runs as ranges: (first record, run), in record order.
    run_ranges: Vec<(u32, u16)>,
    /// Finding sets (ids, sorted).
    sets: Interned<Vec<FindingId>>,
    /// Each finding id's severity, as first seen.
    severity: HashMap<FindingId, Severity>,
    /// Hosts.
    hosts: Interned<String>,
    /// Runs.
    runs: Interned<String>,
    /// Lines skipped while indexing.
    pub skipped: Vec<Skipped>,
    /// Legs sources that were not indexed themselves (left out by a filter): record number
    /// → file and offset of the source's line.
    outside_src: HashMap<u32, (u16, u64)>,
    /// Open files, to read lines again.
    handles: Mutex<HashMap<u16, File>>,
}

/// A list request: which records, and which page of them.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only records carrying this finding id.
    pub finding: Option<String>,
    /// Only this host (as listed).
    pub host: Option<String>,
    /// Status prefix, as the live page takes it (`4`, `403`, `error`).
    pub status: Option<String>,
    /// Only this run.
    pub run: Option<String>,
    /// Records to skip (among the matching ones, in file order).
    pub from: usize,
    /// Records per page.
    pub limit: usize,
}

impl FileIndex {
    /// Index `files` in one pass, keeping the records `filter` keeps (the command line's
    /// filters); `on_skip` hears each skipped line.
    pub fn build(
        files: &[PathBuf],
        filter: &Filter,
        mut on_skip: impl FnMut(&Skipped),
    ) -> Result<FileIndex, ReadError> {
        let mut ix = FileIndex {
            files: files.to_vec(),
            file_starts: Vec::new(),
            block_start: Column::default(),
            rel: Column::default(),
            far_offset: HashMap::new(),
            legs_back: Column::default(),
            far_src: HashMap::new(),
            finding_set: Column::default(),
            status: Column::default(),
            statuses: Interned::default(),
            far_status: HashMap::new(),
            host: Column::default(),
            run_ranges: Vec::new(),
            sets: Interned::default(),
            severity: HashMap::new(),
            hosts: Interned::default(),
            runs: Interned::default(),
            skipped: Vec::new(),
            outside_src: HashMap::new(),
            handles: Mutex::new(HashMap::new()),
        };
        // One stream over every file, so a reference into an earlier file resolves too; the
        // stream numbers the files as the index does.
        let mut stream = RecordStream::open(files)?;
        let mut file_no: usize = 0;
        ix.file_starts.push(0);
        // Move on to the file `path` (records come file after file).
        let advance = |ix: &mut FileIndex, file_no: &mut usize, path: &std::path::Path| {
            while *file_no + 1 < files.len() && files[*file_no].as_path() != path {
                *file_no += 1;
                ix.file_starts
                    .push(u32::try_from(ix.len()).unwrap_or(u32::MAX));
            }
        };
        while let Some(item) = stream.next_item()? {
            let r = match item {
                Item::Record(r) => r,
                Item::Skipped(s) => {
                    advance(&mut ix, &mut file_no, &s.file);
                    on_skip(&s);
                    ix.skipped.push(s);
                    continue;
                }
            };
            advance(&mut ix, &mut file_no, &r.file);
            if !filter.keeps(&r) {
                continue;
            }
            let n = u32::try_from(ix.len()).unwrap_or(u32::MAX);
            let file = u16::try_from(file_no).unwrap_or(u16::MAX);
            // The record carrying the legs: found among the indexed records by its file and
            // offset (they are in that order), else remembered by where it is.
            let src = match stream.legs_source() {
                Some((f, at)) => match ix.find(f, at) {
                    Some(k) => u32::try_from(k + 1).unwrap_or(0),
                    None => {
                        ix.outside_src.insert(n, (f, at));
                        0
                    }
                },
                None => 0,
            };
            ix.push(file, stream.offset(), src, &r);
        }
        while ix.file_starts.len() < files.len() {
            ix.file_starts
                .push(u32::try_from(ix.len()).unwrap_or(u32::MAX));
        }
        Ok(ix)
    }

    /// Records indexed.
    pub fn len(&self) -> usize {
        self.rel.len()
    }

    /// Whether no record was indexed.
    pub fn is_empty(&self) -> bool {
        self.rel.is_empty()
    }

    fn push(&mut self, file_no: u16, offset: u64, src: u32, r: &Record) {
        let n = self.len();
        let new_block = n % BLOCK == 0;
        let base = if new_block {
            self.block_start.push((file_no, offset));
            offset
        } else {
            match self.block_start.last() {
                Some((f, b)) if f == file_no => b,
                _ => 0,
            }
        };
        let key = u32::try_from(n).unwrap_or(u32::MAX);
        match u16::try_from(offset - base) {
            Ok(rel) if rel != FAR => self.rel.push(rel),
            _ => {
                self.rel.push(FAR);
                self.far_offset.insert(key, offset);
            }
        }
        // `src` is 1 + the source's number, or 0.
        let back = match src.checked_sub(1) {
            None => 0,
            Some(s) => match n.checked_sub(s as usize).map(u16::try_from) {
                Some(Ok(b)) if b != FAR => b,
                _ => {
                    self.far_src.insert(key, s);
                    FAR
                }
            },
        };
        self.legs_back.push(back);
        let f = &r.flow;
        for x in &f.findings {
            self.severity.entry(x.id).or_insert(x.severity);
        }
        let mut set: Vec<FindingId> = f.findings.iter().map(|x| x.id).collect();
        set.sort_unstable();
        set.dedup();
        self.finding_set
            .push(self.sets.id(&set, usize::from(OTHER)));
        let status = (f.status().unwrap_or(0), crate::render::report::failed(f));
        match self.statuses.id(&status, usize::from(FAR_STATUS)) {
            id if id < u16::from(FAR_STATUS) => {
                self.status.push(u8::try_from(id).unwrap_or(FAR_STATUS))
            }
            _ => {
                self.status.push(FAR_STATUS);
                self.far_status.insert(key, status);
            }
        }
        let host = super::api::host(f);
        self.host.push(self.hosts.id(&host, usize::from(OTHER)));
        let run = self.runs.id(&f.run, usize::from(OTHER));
        if self.run_ranges.last().is_none_or(|&(_, r)| r != run) {
            self.run_ranges.push((key, run));
        }
    }

    /// Record `n`'s run (interned).
    fn run_of(&self, n: usize) -> u16 {
        let i = self
            .run_ranges
            .partition_point(|&(start, _)| start as usize <= n);
        i.checked_sub(1).map_or(OTHER, |i| self.run_ranges[i].1)
    }

    /// Record `n`'s status (0 for none) and whether it failed.
    fn status_of(&self, n: usize) -> (u16, bool) {
        match self.status[n] {
            FAR_STATUS => u32::try_from(n)
                .ok()
                .and_then(|k| self.far_status.get(&k).copied())
                .unwrap_or((0, false)),
            id => self.statuses.values[usize::from(id)],
        }
    }

    /// The record carrying record `n`'s legs, if it has one among the indexed records.
    fn legs_src_of(&self, n: usize) -> Option<usize> {
        match self.legs_back.get(n)? {
            0 => None,
            FAR => u32::try_from(n)
                .ok()
                .and_then(|k| self.far_src.get(&k))
                .map(|&s| s as usize),
            back => n.checked_sub(usize::from(back)),
        }
    }

    /// File and offset of record `n` (0-based).
    fn position(&self, n: usize) -> Option<(u16, u64)> {
        let rel = self.rel.get(n)?;
        let (bfile, base) = self.block_start.get(n / BLOCK)?;
        // The record's file: the last file starting at or before it.
        let file = self
            .file_starts
            .partition_point(|&s| s as usize <= n)
            .checked_sub(1)?;
        let file = u16::try_from(file).ok()?;
        if rel == FAR {
            let at = *self.far_offset.get(&u32::try_from(n).ok()?)?;
            return Some((file, at));
        }
        let rel = u64::from(rel);
        Some((file, if file == bfile { base + rel } else { rel }))
    }

    /// The indexed record of file `file_no` at `offset`.
    fn find(&self, file_no: u16, offset: u64) -> Option<usize> {
        let first = *self.file_starts.get(usize::from(file_no))? as usize;
        let (mut lo, mut hi) = (first, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.position(mid) {
                Some((f, at)) if f == file_no && at < offset => lo = mid + 1,
                _ => hi = mid,
            }
        }
        (self.position(lo) == Some((file_no, offset))).then_some(lo)
    }

    /// Read and parse the line of record `n` (no legs resolved, no diagnosis).
    fn read_flow(&self, n: usize) -> Option<(u16, Flow)> {
        let (file, offset) = self.position(n)?;
        Some((file, self.read_at(file, offset)?))
    }

    /// Parse the line at `offset` of file `file`.
    fn read_at(&self, file: u16, offset: u64) -> Option<Flow> {
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let h = match handles.entry(file) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(File::open(self.files.get(usize::from(file))?).ok()?)
            }
        };
        h.seek(SeekFrom::Start(offset)).ok()?;
        let mut line = Vec::new();
        BufReader::new(h.take(64 * 1024 * 1024))
            .read_until(b'\n', &mut line)
            .ok()?;
        let raw = line.strip_suffix(b"\n").unwrap_or(&line);
        parse_line(raw.strip_suffix(b"\r").unwrap_or(raw)).ok()
    }

    /// Record `n` (0-based) as a view shows it: legs put back, its findings as recorded.
    pub fn record(&self, n: usize) -> Option<Record> {
        let (file, mut flow) = self.read_flow(n)?;
        if flow.legs_from.is_some() {
            let full = match self.legs_src_of(n) {
                Some(src) => self.read_flow(src).map(|x| x.1),
                None => u32::try_from(n)
                    .ok()
                    .and_then(|k| self.outside_src.get(&k))
                    .and_then(|&(f, at)| self.read_at(f, at)),
            };
            if let Some(full) = full {
                flow.client_leg = full.client_leg;
                flow.upstream_leg = full.upstream_leg;
                flow.legs_from = None;
            }
        }
        // The recording's findings, as recorded: the web view never diagnoses.
        let first = self.file_starts[usize::from(file)] as usize;
        Some(Record {
            file: self.files[usize::from(file)].clone(),
            line: 0,
            index: n - first + 1,
            flow: flow.into(),
            diagnosed_on_read: false,
        })
    }

    /// Whether record `n` passes `q`'s filters (resolved to interned numbers).
    fn matcher(&self, q: &Query) -> impl Fn(usize) -> bool + '_ {
        let sets: Option<Vec<bool>> = q.finding.as_ref().map(|id| {
            self.sets
                .values
                .iter()
                .map(|s| s.iter().any(|f| f.as_str() == id.as_str()))
                .collect()
        });
        // A value the index never saw matches nothing.
        let host = q.host.as_ref().map(|h| self.hosts.get(h));
        let run = q.run.as_ref().map(|r| self.runs.get(r));
        // Per interned status: whether it matches (a prefix of `403`, `error`, …).
        let status_text = |(code, failed): (u16, bool)| match code {
            0 if failed => "error".to_string(),
            0 => String::new(),
            code => code.to_string(),
        };
        let status = q.status.clone().filter(|s| !s.is_empty());
        let status_ok: Option<Vec<bool>> = status.as_ref().map(|s| {
            self.statuses
                .values
                .iter()
                .map(|&v| status_text(v).starts_with(s.as_str()))
                .collect()
        });
        move |n| {
            if let Some(sets) = &sets {
                if !sets
                    .get(usize::from(self.finding_set[n]))
                    .copied()
                    .unwrap_or(false)
                {
                    return false;
                }
            }
            if host.is_some_and(|h| h != Some(self.host[n])) {
                return false;
            }
            if run.is_some_and(|r| r != Some(self.run_of(n))) {
                return false;
            }
            if let (Some(s), Some(ok)) = (&status, &status_ok) {
                let matches = match self.status[n] {
                    FAR_STATUS => status_text(self.status_of(n)).starts_with(s.as_str()),
                    id => ok[usize::from(id)],
                };
                if !matches {
                    return false;
                }
            }
            true
        }
    }

    /// One list page: the matching records' numbers (0-based) and how many match in all.
    pub fn page(&self, q: &Query) -> (Vec<usize>, usize) {
        let keep = self.matcher(q);
        let mut matched = 0;
        let mut ids = Vec::with_capacity(q.limit.min(1000));
        for n in 0..self.len() {
            if keep(n) {
                if matched >= q.from && ids.len() < q.limit {
                    ids.push(n);
                }
                matched += 1;
            }
        }
        (ids, matched)
    }

    /// Counts over the whole index: per finding id (with its severity), host, status and run.
    pub fn counts(&self) -> Value {
        let mut per_set = vec![0usize; self.sets.values.len()];
        let mut per_host = vec![0usize; self.hosts.values.len()];
        let mut per_run = vec![0usize; self.runs.values.len()];
        let mut statuses: std::collections::BTreeMap<String, usize> = Default::default();
        let mut status_counts: HashMap<(u16, bool), usize> = HashMap::new();
        let mut per_status = vec![0usize; self.statuses.values.len()];
        for n in 0..self.len() {
            if let Some(c) = per_set.get_mut(usize::from(self.finding_set[n])) {
                *c += 1;
            }
            if let Some(c) = per_host.get_mut(usize::from(self.host[n])) {
                *c += 1;
            }
            match per_status.get_mut(usize::from(self.status[n])) {
                Some(c) => *c += 1,
                None => *status_counts.entry(self.status_of(n)).or_default() += 1,
            }
        }
        for (&v, c) in self.statuses.values.iter().zip(&per_status) {
            *status_counts.entry(v).or_default() += c;
        }
        // Runs are ranges: each range's length is its count.
        for (i, &(start, run)) in self.run_ranges.iter().enumerate() {
            let end = self
                .run_ranges
                .get(i + 1)
                .map_or(self.len(), |&(next, _)| next as usize);
            if let Some(c) = per_run.get_mut(usize::from(run)) {
                *c += end - start as usize;
            }
        }
        for ((code, failed), c) in status_counts {
            let key = match code {
                0 if failed => "error".to_string(),
                0 => "none".to_string(),
                c => c.to_string(),
            };
            *statuses.entry(key).or_default() += c;
        }
        let mut findings: HashMap<FindingId, (Severity, usize)> = HashMap::new();
        for (set, c) in self.sets.values.iter().zip(&per_set) {
            for id in set {
                let sev = self.severity.get(id).copied().unwrap_or(Severity::Info);
                findings.entry(*id).or_insert((sev, 0)).1 += c;
            }
        }
        let mut findings: Vec<Value> = findings
            .into_iter()
            .map(|(id, (sev, n))| json!({ "id": id.as_str(), "severity": sev, "n": n }))
            .collect();
        findings.sort_by(|a, b| {
            b["n"]
                .as_u64()
                .cmp(&a["n"].as_u64())
                .then(a["id"].as_str().cmp(&b["id"].as_str()))
        });
        let named = |values: &[String], counts: &[usize]| -> Vec<Value> {
            let mut v: Vec<Value> = values
                .iter()
                .zip(counts)
                .map(|(name, n)| json!({ "name": name, "n": n }))
                .collect();
            v.sort_by(|a, b| b["n"].as_u64().cmp(&a["n"].as_u64()));
            v
        };
        json!({
            "records": self.len(),
            "findings": findings,
            "hosts": named(&self.hosts.values, &per_host),
            "runs": named(&self.runs.values, &per_run),
            "statuses": statuses,
        })
    }
}

impl std::fmt::Debug for FileIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileIndex")
            .field("files", &self.files)
            .field("records", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
