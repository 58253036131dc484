//! `mtlscope analyze`: every TLS connection in a packet capture, recorded like `observe`.
//!
//! Pipeline, per file, streamed (the file is never held whole; per connection only out-of-order
//! segments and the few handshake messages worth parsing are kept):
//! - [`pcap`]: frames from pcap / pcapng, decoded to TCP segments;
//! - [`tcp`]: each direction put back in order, holes named as gaps;
//! - [`session`]: the ordered bytes through `observe`'s wire parser (and [`decrypt`] with a key
//!   log), ending in one `mode: capture` [`Flow`] per TLS connection.
//!
//! Then the usual sink diagnoses, prints and records each flow.

pub mod decrypt;
pub mod pcap;
mod session;
pub mod tcp;

use crate::facts::Flow;
use decrypt::KeyLog;
use pcap::{Ending, NotTcp};
use session::Session;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tcp::{PairKey, Stream};

/// Connections idle this long (capture time) are ended, so a long capture stays bounded.
const IDLE_SECS: f64 = 600.0;
/// How often (in frames) idle connections and old closed pairs are swept.
const SWEEP_EVERY: u64 = 1 << 16;

/// What reading one capture file found, besides its records.
#[derive(Debug, Default)]
pub struct FileSummary {
    /// Frames read.
    pub frames: u64,
    /// Bytes of the frames read.
    pub bytes: u64,
    /// TCP connections seen.
    pub tcp_connections: u64,
    /// Of which carried TLS.
    pub tls_connections: u64,
    /// TLS sessions whose secrets the key log had.
    pub decrypted: u64,
    /// Frames whose TCP payload the snap length cut.
    pub cut_frames: u64,
    /// Frames cut before their TCP header ended.
    pub cut_headers: u64,
    /// Frames on link types analyze does not read, by link type number.
    pub unknown_links: BTreeMap<i32, u64>,
    /// IPv4 fragments skipped.
    pub fragments: u64,
    /// How the file ended.
    pub ending: Option<Ending>,
}

/// One TCP connection being reassembled.
struct Conn {
    /// Endpoints by side (0 = the first sender seen).
    sides: [SocketAddr; 2],
    /// Reassembly by side.
    streams: [Stream; 2],
    /// The client's initial sequence number, to tell a reused port pair from a SYN resent.
    syn_seq: Option<u32>,
    /// FIN seen by side.
    fin: [bool; 2],
    /// Capture time of its latest frame.
    last_ts: f64,
    /// The TLS reading.
    session: Session,
}

/// Reads one capture, handing every finished TLS connection to `emit`.
struct Analyzer<'a> {
    /// The file name as given.
    file: Arc<str>,
    /// The key logs, if any.
    keys: Option<Arc<KeyLog>>,
    /// Open connections.
    conns: HashMap<PairKey, Conn>,
    /// Pairs closed by RST or FIN both ways, with the time: late segments on them are ignored.
    closed: HashMap<PairKey, f64>,
    /// The next connection id.
    next_id: &'a mut u64,
    /// Where records go.
    emit: &'a mut dyn FnMut(Flow),
    /// Counters.
    summary: FileSummary,
}

/// Read the capture at `path` (named `name` in records), emitting one flow per TLS connection.
/// Connection ids continue from `next_id`.
pub fn analyze_file(
    path: &Path,
    keys: Option<Arc<KeyLog>>,
    next_id: &mut u64,
    emit: &mut dyn FnMut(Flow),
) -> Result<FileSummary, pcap::CaptureError> {
    let name: Arc<str> = path.display().to_string().into();
    let mut a = Analyzer {
        file: name,
        keys,
        conns: HashMap::new(),
        closed: HashMap::new(),
        next_id,
        emit,
        summary: FileSummary::default(),
    };
    let ending = pcap::for_each_frame(path, |frame| a.frame(&frame))?;
    a.finish_all();
    a.summary.ending = Some(ending);
    Ok(a.summary)
}

/// [`analyze_file`] over bytes in memory (tests and the fuzz target).
pub fn analyze_bytes(
    name: &str,
    bytes: &[u8],
    keys: Option<Arc<KeyLog>>,
    emit: &mut dyn FnMut(Flow),
) -> Result<FileSummary, pcap::CaptureError> {
    let mut next_id = 1;
    let mut a = Analyzer {
        file: name.into(),
        keys,
        conns: HashMap::new(),
        closed: HashMap::new(),
        next_id: &mut next_id,
        emit,
        summary: FileSummary::default(),
    };
    let ending = pcap::read_frames(Path::new(name), bytes, &mut |frame| a.frame(&frame))?;
    a.finish_all();
    a.summary.ending = Some(ending);
    Ok(a.summary)
}

impl Analyzer<'_> {
    fn frame(&mut self, frame: &pcap::Frame<'_>) {
        self.summary.frames += 1;
        self.summary.bytes += frame.data.len() as u64;
        if frame.number % SWEEP_EVERY == 0 {
            self.sweep(frame.ts);
        }
        let pkt = match pcap::tcp_packet(frame) {
            Ok(p) => p,
            Err(NotTcp::UnknownLink(n)) => {
                *self.summary.unknown_links.entry(n).or_default() += 1;
                return;
            }
            Err(NotTcp::CutHeaders) => {
                self.summary.cut_headers += 1;
                return;
            }
            Err(NotTcp::Fragment) => {
                self.summary.fragments += 1;
                return;
            }
            Err(NotTcp::OtherProtocol) => return,
        };
        if pkt.cut > 0 {
            self.summary.cut_frames += 1;
        }
        let key = PairKey::of(pkt.src, pkt.dst);
        let fresh_syn = pkt.syn && pkt.ack.is_none();
        if let Some(c) = self.conns.get(&key) {
            // A new SYN on a known pair: a new connection unless it repeats the first SYN.
            let reused = fresh_syn && c.syn_seq != Some(pkt.seq);
            if reused {
                self.finish(key);
            }
        }
        if !self.conns.contains_key(&key) {
            if !fresh_syn && self.closed.contains_key(&key) {
                return; // a late segment of a connection already ended
            }
            self.closed.remove(&key);
            self.summary.tcp_connections += 1;
            let session = Session::new(
                self.file.clone(),
                [pkt.src, pkt.dst],
                frame.number,
                frame.ts,
                self.keys.clone(),
            );
            self.conns.insert(
                key,
                Conn {
                    sides: [pkt.src, pkt.dst],
                    streams: [Stream::default(), Stream::default()],
                    syn_seq: None,
                    fin: [false; 2],
                    last_ts: frame.ts,
                    session,
                },
            );
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let side = usize::from(pkt.src != c.sides[0]);
        let other = 1 - side;
        c.last_ts = frame.ts;
        c.session.saw_frame(frame.number);
        if pkt.syn {
            if fresh_syn {
                c.syn_seq = Some(pkt.seq);
            }
            if let Some(s) = c.streams.get_mut(side) {
                s.syn(pkt.seq);
            }
            c.session.syn(side, fresh_syn, frame.ts);
        }
        if !c.session.is_not_tls() {
            let Conn {
                streams, session, ..
            } = c;
            let [s0, s1] = streams;
            let (mine, theirs) = if side == 0 { (s0, s1) } else { (s1, s0) };
            if let Some(ack) = pkt.ack {
                let from_start = theirs.from_start;
                theirs.acked(ack, &mut |ch| session.chunk(other, from_start, ch));
            }
            let seq = if pkt.syn {
                pkt.seq.wrapping_add(1)
            } else {
                pkt.seq
            };
            let from_start = mine.from_start;
            mine.segment(
                seq,
                pkt.payload,
                pkt.cut,
                frame.number,
                frame.ts,
                &mut |ch| session.chunk(side, from_start, ch),
            );
        }
        if pkt.fin || pkt.rst {
            c.session.close(side, pkt.rst, frame.number, frame.ts);
            if let Some(f) = c.fin.get_mut(side) {
                *f = true;
            }
            if let Some(s) = c.streams.get_mut(side) {
                s.fin |= pkt.fin;
            }
            if pkt.rst || c.fin == [true, true] {
                self.closed.insert(key, frame.ts);
                self.finish(key);
            }
        }
    }

    /// End a connection: name its remaining holes and emit its record.
    fn finish(&mut self, key: PairKey) {
        let Some(mut c) = self.conns.remove(&key) else {
            return;
        };
        let Conn {
            streams, session, ..
        } = &mut c;
        for (side, s) in streams.iter_mut().enumerate() {
            let from_start = s.from_start;
            s.finish(&mut |ch| session.chunk(side, from_start, ch));
        }
        if c.session.is_tls() {
            self.summary.tls_connections += 1;
        }
        let id = *self.next_id;
        let retransmitted: u64 = c.streams.iter().map(|s| s.retransmitted).sum();
        if let Some(mut flow) = c.session.into_flow(id) {
            if let Some(cap) = flow.capture.as_mut() {
                cap.retransmitted_bytes = retransmitted;
            }
            *self.next_id += 1;
            if flow.capture.as_ref().is_some_and(|cap| {
                matches!(cap.decryption, crate::facts::Decryption::Decrypted { .. })
            }) {
                self.summary.decrypted += 1;
            }
            (self.emit)(flow);
        }
    }

    /// End connections idle for [`IDLE_SECS`] and forget old closed pairs.
    fn sweep(&mut self, now: f64) {
        let idle: Vec<PairKey> = self
            .conns
            .iter()
            .filter(|(_, c)| now - c.last_ts > IDLE_SECS)
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            self.finish(k);
        }
        self.closed.retain(|_, t| now - *t < 120.0);
    }

    /// End every connection still open, in the order they started.
    fn finish_all(&mut self) {
        let mut keys: Vec<(u64, PairKey)> = self
            .conns
            .iter()
            .map(|(k, c)| (c.session.first_frame(), *k))
            .collect();
        keys.sort_by_key(|(f, _)| *f);
        for (_, k) in keys {
            self.finish(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap (Ethernet) of one client→server segment carrying `payload`, then the same bytes
    /// from the server back.
    fn pcap(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, (sp, dp)) in [(40000u16, 4433u16), (4433, 40000)].into_iter().enumerate() {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + 20 + payload.len()) as u16;
            f.extend_from_slice(&[
                0x45,
                0,
                (total >> 8) as u8,
                total as u8,
                0,
                0,
                0x40,
                0,
                64,
                6,
                0,
                0,
            ]);
            f.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
            f.extend_from_slice(&sp.to_be_bytes());
            f.extend_from_slice(&dp.to_be_bytes());
            f.extend_from_slice(&1000u32.to_be_bytes());
            f.extend_from_slice(&0u32.to_be_bytes());
            f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
            f.extend_from_slice(payload);
            let len = (f.len() as u32).to_le_bytes();
            out.extend_from_slice(&(i as u32 + 1).to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&len);
            out.extend_from_slice(&len);
            out.extend_from_slice(&f);
        }
        out
    }

    #[test]
    fn tls_is_found_by_content_on_any_port_without_a_syn() {
        // A ClientHello record header with a ClientHello message type: TLS, port 4433.
        let hello = [22, 3, 1, 0, 4, 1, 0, 0, 0];
        let mut flows = Vec::new();
        let s =
            analyze_bytes("t.pcap", &pcap(&hello), None, &mut |f| flows.push(f)).expect("reads");
        assert_eq!((s.tcp_connections, flows.len()), (1, 1));
        let cap = flows[0].capture.as_ref().expect("capture facts");
        assert!(!cap.from_syn, "started mid-connection");
        assert_eq!(flows[0].client_addr.as_deref(), Some("127.0.0.1:40000"));
        // Plain HTTP is not TLS: no record.
        let mut flows = Vec::new();
        analyze_bytes("h.pcap", &pcap(b"GET / HTTP/1.1\r\n\r\n"), None, &mut |f| {
            flows.push(f)
        })
        .expect("reads");
        assert!(flows.is_empty());
    }

    #[test]
    fn mangled_captures_never_panic() {
        // The fuzz target's property, on deterministic mutations of a small capture.
        let base = pcap(&[22, 3, 3, 0, 40, 2, 0, 0, 36, 3, 3]);
        let mut seed = 0x9e37_79b9_u32;
        for round in 0..2000 {
            let mut bytes = base.clone();
            for _ in 0..(round % 7 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = seed as usize % bytes.len();
                bytes[at] = (seed >> 8) as u8;
            }
            let cut = seed as usize % (bytes.len() + 1);
            let bytes = if round % 3 == 0 {
                &bytes[..cut]
            } else {
                &bytes[..]
            };
            let _ = analyze_bytes("m.pcap", bytes, None, &mut |f| {
                let _ = crate::diagnose::diagnose(&f);
            });
        }
    }
}
