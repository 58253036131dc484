//! `export --har`, written as the recording is read: `log.entries` one entry at a time, the
//! connection records (which HAR puts after the entries, under `_mtlscope_connections`)
//! gathered in a temporary file meanwhile, so the document never sits in memory.
//!
//! A keep-alive connection's exchanges share their two TLS legs. HAR has no references, so by
//! default (`--har-legs first`) the first entry of a connection that carries a set of legs has
//! them in full and the later ones name that entry (`_mtlscope.legs_same_as`); `--har-legs all`
//! repeats them in every entry. Certificate DER (hex) is left out unless `--har-der`.

use super::har::{entry, strip_der, LegsOut};
use crate::facts::{Leg, RecordKind};
use crate::recording::Record;
use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::sync::Arc;

/// Connections whose legs' entry one generation remembers (two are kept); a connection that
/// falls out has its next entry written in full again. As the reader's cache
/// (`recording::stream`), whose legs these are: ~11 KB a connection, so ~25 MB at most.
const GENERATION: usize = 1024;

/// `--har-legs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LegsIn {
    /// The legs in full in the first entry that carries them, a reference in later ones.
    #[default]
    First,
    /// The legs in full in every entry.
    All,
}

/// How the HAR is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct HarOptions {
    /// `--har-legs`.
    pub legs: LegsIn,
    /// `--har-der`: keep certificate and CA-name DER (hex).
    pub der: bool,
}

/// The entry that carried a connection's legs in full.
struct Written {
    /// Its position in `log.entries`.
    entry: u64,
    /// Its exchange index.
    exchange_index: Option<u32>,
    /// The legs it carried (the reader shares one allocation among a connection's exchanges
    /// with the same legs, so the same legs are the same pointers).
    client: Option<Arc<Leg>>,
    /// Its upstream leg.
    upstream: Option<Arc<Leg>>,
}

/// A HAR document being written.
pub struct HarWriter<W: Write> {
    /// Where the document goes.
    out: BufWriter<W>,
    /// Connection records, each a JSON value and a comma, until the entries are done.
    connections: BufWriter<std::fs::File>,
    /// How the legs are written.
    opts: HarOptions,
    /// Entries written.
    entries: u64,
    /// Connection records gathered.
    conns: u64,
    /// Per `(run, connection)`, the entry carrying its legs: recent connections.
    young: HashMap<(String, u64), Written>,
    /// The generation before.
    old: HashMap<(String, u64), Written>,
}

fn same(a: &Option<Arc<Leg>>, b: &Option<Arc<Leg>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl<W: Write> HarWriter<W> {
    /// Start the document.
    pub fn new(out: W, opts: HarOptions) -> io::Result<HarWriter<W>> {
        let mut out = BufWriter::with_capacity(256 * 1024, out);
        let creator =
            serde_json::json!({ "name": "mtlscope", "version": env!("CARGO_PKG_VERSION") });
        write!(
            out,
            "{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"entries\":["
        )?;
        Ok(HarWriter {
            out,
            connections: BufWriter::new(tempfile::tempfile()?),
            opts,
            entries: 0,
            conns: 0,
            young: HashMap::new(),
            old: HashMap::new(),
        })
    }

    /// Add one record: an exchange becomes an entry, a connection record joins the
    /// connections.
    pub fn push(&mut self, r: &Record) -> io::Result<()> {
        let flow = &r.flow;
        if flow.kind == RecordKind::Connection {
            let mut v = serde_json::to_value(flow).unwrap_or(serde_json::Value::Null);
            if !self.opts.der {
                strip_der(&mut v);
            }
            if self.conns > 0 {
                self.connections.write_all(b",")?;
            }
            self.connections.write_all(b"\n")?;
            serde_json::to_writer(&mut self.connections, &v)?;
            self.conns += 1;
            return Ok(());
        }
        let legs = self.legs_for(r);
        let v = entry(flow, &legs);
        if self.entries > 0 {
            self.out.write_all(b",")?;
        }
        self.out.write_all(b"\n")?;
        serde_json::to_writer(&mut self.out, &v)?;
        self.entries += 1;
        Ok(())
    }

    /// Full legs, or the entry that already carries these legs.
    fn legs_for(&mut self, r: &Record) -> LegsOut {
        let full = LegsOut::Full { der: self.opts.der };
        let flow = &r.flow;
        if self.opts.legs == LegsIn::All
            || (flow.client_leg.is_none() && flow.upstream_leg.is_none())
        {
            return full;
        }
        let key = (flow.run.clone(), flow.connection_id);
        let known = match self.young.get(&key) {
            Some(w) => Some(w),
            None => {
                if let Some(w) = self.old.remove(&key) {
                    self.young.insert(key.clone(), w);
                }
                self.young.get(&key)
            }
        };
        if let Some(w) = known {
            if same(&w.client, &flow.client_leg) && same(&w.upstream, &flow.upstream_leg) {
                return LegsOut::SameAs {
                    entry: w.entry,
                    exchange_index: w.exchange_index,
                };
            }
        }
        if self.young.len() >= GENERATION && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(
            key,
            Written {
                entry: self.entries,
                exchange_index: flow.exchange_index,
                client: flow.client_leg.clone(),
                upstream: flow.upstream_leg.clone(),
            },
        );
        full
    }

    /// End the document: the connection records, then the closing brackets. Returns the
    /// counts of entries and connection records.
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        self.out.write_all(b"\n],\"_mtlscope_connections\":[")?;
        let mut spool = self.connections.into_inner().map_err(|e| e.into_error())?;
        spool.rewind()?;
        io::copy(&mut (&mut spool).take(u64::MAX), &mut self.out)?;
        self.out.write_all(b"\n]}}\n")?;
        self.out.flush()?;
        Ok((self.entries, self.conns))
    }
}
