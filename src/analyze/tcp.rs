//! TCP reassembly: each direction of each connection put back in sequence order.
//!
//! Written here rather than taken from a crate: the Rust reassemblers at hand (e.g. the ones in
//! `pktparse`-based tools) deliver bytes but drop what matters to a diagnosis — that a segment
//! never made it into the capture. Here a hole is held open while later segments wait, and is
//! closed as a named [`Chunk::Gap`] when it can no longer be filled: the receiver acknowledged
//! bytes the capture does not have, the waiting data passed a bound, or the connection ended.
//! Retransmissions and overlaps are trimmed to the bytes not seen yet (first copy wins).
//!
//! Connections are keyed by their two endpoints; a new SYN with another initial sequence number
//! on a known pair (port reuse) starts a new connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Out-of-order bytes held per direction before the oldest hole is given up as a gap.
const MAX_PENDING: usize = 4 << 20;

/// Why bytes of a stream are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapCause {
    /// The segment is not in the capture (dropped by the capturing host, or captured elsewhere).
    NotCaptured,
    /// The frame was in the capture but cut by its snap length.
    SnapLen,
}

/// Bytes of one direction, in order.
#[derive(Debug)]
pub enum Chunk<'a> {
    /// The next bytes of the stream.
    Data {
        /// The bytes.
        bytes: &'a [u8],
        /// The frame they came in.
        frame: u64,
        /// Its capture time, Unix seconds.
        ts: f64,
    },
    /// Bytes of the stream the capture does not have.
    Gap {
        /// How many.
        len: u64,
        /// Their position in the stream (0 = the first byte after the SYN, or the first seen).
        offset: u64,
        /// Why they are missing.
        cause: GapCause,
        /// The frame after which they were missing (or the cut frame).
        frame: u64,
        /// When that was noticed, Unix seconds.
        ts: f64,
    },
}

/// A segment held until the bytes before it arrive.
#[derive(Debug)]
struct Held {
    /// Its payload.
    data: Vec<u8>,
    /// Payload bytes the snap length cut off after `data`.
    cut: usize,
    /// Its frame.
    frame: u64,
    /// Its time.
    ts: f64,
}

/// One direction's reassembly.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the next byte expected; `None` until the SYN or the first data.
    next: Option<u32>,
    /// Stream offset of `next`.
    offset: u64,
    /// Segments past a hole, by stream offset.
    pending: BTreeMap<u64, Held>,
    /// Bytes in `pending`.
    pending_bytes: usize,
    /// Whether the stream's SYN was seen (so offset 0 is its real start).
    pub from_start: bool,
    /// Whether its FIN was seen.
    pub fin: bool,
    /// The highest acknowledgment the peer sent for this stream.
    acked: Option<u32>,
    /// Frame and time of the latest segment, for naming gaps at the end.
    last: (u64, f64),
    /// Bytes seen again (retransmissions and overlaps), trimmed.
    pub retransmitted: u64,
}

/// `a` after `b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Stream {
    /// The SYN (or SYN-ACK) with initial sequence number `isn`.
    pub fn syn(&mut self, isn: u32) {
        if self.next.is_none() {
            self.next = Some(isn.wrapping_add(1));
            self.from_start = true;
        }
    }

    /// A segment's payload (`cut` more bytes of it were cut by the snap length).
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        cut: usize,
        frame: u64,
        ts: f64,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        self.last = (frame, ts);
        if payload.is_empty() && cut == 0 {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        let diff = seq.wrapping_sub(next) as i32;
        if diff <= 0 {
            let skip = diff.unsigned_abs() as usize;
            let total = payload.len() + cut;
            if skip >= total {
                self.retransmitted += total as u64;
                return;
            }
            self.retransmitted += skip as u64;
            let (data, cut) = if skip <= payload.len() {
                (payload.get(skip..).unwrap_or(&[]), cut)
            } else {
                (&[][..], total - skip)
            };
            self.deliver(data, cut, frame, ts, out);
            self.drain(out);
        } else {
            let at = self.offset + diff as u64;
            let len = payload.len();
            let keep = self
                .pending
                .get(&at)
                .is_none_or(|h| h.data.len() + h.cut < len + cut);
            if keep {
                if let Some(old) = self.pending.insert(
                    at,
                    Held {
                        data: payload.to_vec(),
                        cut,
                        frame,
                        ts,
                    },
                ) {
                    self.pending_bytes -= old.data.len();
                }
                self.pending_bytes += len;
            }
            while self.pending_bytes > MAX_PENDING {
                self.give_up_hole(out);
            }
        }
    }

    /// The peer acknowledged up to `ack`: a hole it acknowledged will never be filled.
    pub fn acked(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) {
        if self.acked.is_none_or(|a| after(ack, a)) {
            self.acked = Some(ack);
        }
        while let (Some(next), false) = (self.next, self.pending.is_empty()) {
            if !after(ack, next) {
                break;
            }
            let Some((&at, _)) = self.pending.first_key_value() else {
                break;
            };
            // Only a hole below what was acknowledged is certainly lost to the capture.
            let hole_end = next.wrapping_add((at - self.offset) as u32);
            if after(hole_end, ack) {
                break;
            }
            self.give_up_hole(out);
        }
    }

    /// The connection ended: name every remaining hole, and the acknowledged tail the capture
    /// does not have.
    pub fn finish(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while !self.pending.is_empty() {
            self.give_up_hole(out);
        }
        if let (Some(next), Some(ack)) = (self.next, self.acked) {
            // A FIN takes one sequence number of its own.
            let missing = ack.wrapping_sub(next) as i32 - i32::from(self.fin);
            if missing > 0 {
                let (frame, ts) = self.last;
                out(Chunk::Gap {
                    len: missing as u64,
                    offset: self.offset,
                    cause: GapCause::NotCaptured,
                    frame,
                    ts,
                });
                self.advance(missing as u64);
            }
        }
    }

    /// Skip to the oldest held segment, naming the hole, then deliver what follows.
    fn give_up_hole(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        let Some((&at, held)) = self.pending.first_key_value() else {
            return;
        };
        let len = at.saturating_sub(self.offset);
        if len > 0 {
            out(Chunk::Gap {
                len,
                offset: self.offset,
                cause: GapCause::NotCaptured,
                frame: held.frame,
                ts: held.ts,
            });
            self.advance(len);
        }
        self.drain(out);
    }

    /// Deliver held segments that now continue the stream.
    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > self.offset {
                break;
            }
            let at = *entry.key();
            let held = entry.remove();
            self.pending_bytes -= held.data.len();
            let skip = (self.offset - at) as usize;
            let total = held.data.len() + held.cut;
            if skip >= total {
                self.retransmitted += total as u64;
                continue;
            }
            self.retransmitted += skip as u64;
            let (data, cut) = if skip <= held.data.len() {
                (held.data.get(skip..).unwrap_or(&[]), held.cut)
            } else {
                (&[][..], total - skip)
            };
            self.deliver(data, cut, held.frame, held.ts, out);
        }
    }

    fn deliver(
        &mut self,
        data: &[u8],
        cut: usize,
        frame: u64,
        ts: f64,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        if !data.is_empty() {
            out(Chunk::Data {
                bytes: data,
                frame,
                ts,
            });
            self.advance(data.len() as u64);
        }
        if cut > 0 {
            out(Chunk::Gap {
                len: cut as u64,
                offset: self.offset,
                cause: GapCause::SnapLen,
                frame,
                ts,
            });
            self.advance(cut as u64);
        }
    }

    fn advance(&mut self, n: u64) {
        self.offset += n;
        if let Some(next) = self.next.as_mut() {
            *next = next.wrapping_add(n as u32);
        }
    }

    /// Bytes of the stream accounted for so far (delivered and named as gaps).
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// The two endpoints of a connection, in a fixed order, as a map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PairKey(SocketAddr, SocketAddr);

impl PairKey {
    /// The key of the connection between `a` and `b`, either way round.
    pub fn of(a: SocketAddr, b: SocketAddr) -> PairKey {
        if a <= b {
            PairKey(a, b)
        } else {
            PairKey(b, a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run segments `(seq, bytes)` through a stream, then finish; the text with gaps as `_`.
    fn run(isn: u32, segs: &[(u32, &[u8])], ack: Option<u32>) -> (String, Vec<u64>) {
        let mut s = Stream::default();
        s.syn(isn);
        let mut text = String::new();
        let mut gaps = Vec::new();
        let mut out = |c: Chunk<'_>| match c {
            Chunk::Data { bytes, .. } => text.push_str(&String::from_utf8_lossy(bytes)),
            Chunk::Gap { len, .. } => {
                gaps.push(len);
                text.push_str(&"_".repeat(len as usize));
            }
        };
        for (i, (seq, b)) in segs.iter().enumerate() {
            s.segment(*seq, b, 0, i as u64 + 1, 0.0, &mut out);
        }
        if let Some(a) = ack {
            s.acked(a, &mut out);
        }
        s.finish(&mut out);
        (text, gaps)
    }

    #[test]
    fn in_order_out_of_order_and_retransmitted_give_the_same_bytes() {
        let clean = run(99, &[(100, b"hello "), (106, b"world")], None);
        assert_eq!(clean, ("hello world".into(), vec![]));
        let reordered = run(99, &[(106, b"world"), (100, b"hello ")], None);
        assert_eq!(reordered, clean);
        let retrans = run(
            99,
            &[
                (100, b"hello "),
                (100, b"hello "),
                (103, b"lo wo"),
                (106, b"world"),
            ],
            None,
        );
        assert_eq!(retrans, clean);
    }

    #[test]
    fn a_missing_segment_is_a_named_gap() {
        let (text, gaps) = run(99, &[(100, b"hello "), (109, b"ld")], None);
        assert_eq!(text, "hello ___ld");
        assert_eq!(gaps, vec![3]);
        // The receiver acknowledging past the hole gives it up before the end.
        let (text, gaps) = run(99, &[(100, b"ab"), (104, b"ef")], Some(106));
        assert_eq!((text.as_str(), gaps), ("ab__ef", vec![2]));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let isn = u32::MAX - 2;
        let a = isn.wrapping_add(1);
        let b = a.wrapping_add(3);
        assert_eq!(run(isn, &[(b, b"def"), (a, b"abc")], None).0, "abcdef");
    }

    #[test]
    fn an_acknowledged_tail_the_capture_lacks_is_a_gap() {
        let (text, gaps) = run(99, &[(100, b"ab")], Some(110));
        assert_eq!((text.as_str(), gaps), ("ab________", vec![8]));
    }
}
