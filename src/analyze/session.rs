//! One TCP connection of a capture read as TLS: its two reassembled streams go through the same
//! [`WireParser`] `observe` uses (so the `wire` facts are the same), with capture timestamps; a
//! [`Decryptor`] reads the encrypted records when the key log has the session's secrets.
//!
//! TLS is found by content, on any port: the client's first bytes must be a TLS handshake record
//! (or, for a capture that starts mid-connection, any TLS record header).

use super::decrypt::{Decryptor, KeyLog};
use super::tcp::{Chunk, GapCause};
use crate::facts::EventKind;
use crate::facts::{
    CaptureFacts, Decryption, Event, Flow, FrameMark, GapEffect, GapKind, Mode, Peer,
    StreamDirection, StreamGap,
};
use crate::wire::{Dir, TapRole, WireParser};
use std::net::SocketAddr;
use std::sync::Arc;

/// Frames marked as evidence per connection, at most.
const MAX_MARKS: usize = 256;
/// Gaps kept per connection, at most (more are counted in the last one's bytes).
const MAX_GAPS: usize = 64;

/// Whether the connection carries TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tls {
    /// No client byte seen yet.
    Undecided,
    /// It does.
    Yes,
    /// It does not; nothing more is read.
    No,
}

/// One connection being read.
pub struct Session {
    /// The capture file's name, for the record.
    file: Arc<str>,
    /// Capture time of the connection's first frame, Unix seconds.
    start: f64,
    /// The endpoints, by TCP side (0 = the first sender seen, or the SYN's sender).
    ends: [SocketAddr; 2],
    /// The side of the TLS client, once known.
    client: Option<usize>,
    /// Whether the SYN was seen.
    from_syn: bool,
    /// Whether this is TLS.
    tls: Tls,
    /// The wire facts.
    parser: WireParser,
    /// Directions (by [`Dir::index`]) no longer read after a gap hit their framing.
    lost: [bool; 2],
    /// Decrypts, when there are keys.
    decrypt: Option<Decryptor>,
    /// First and last frame.
    frames: (u64, u64),
    /// Evidence frames.
    marks: Vec<FrameMark>,
    /// Named gaps.
    gaps: Vec<StreamGap>,
    /// TCP events (SYN, FIN, RST) with their times.
    events: Vec<Event>,
    /// A reset before any FIN (one after a FIN is the usual teardown of a socket closed with
    /// unread bytes): who sent it, in which frame.
    reset: Option<(usize, u64)>,
    /// Whether a FIN was seen.
    fin_seen: bool,
}

impl Session {
    /// A connection whose first frame `frame` at `ts` went from `ends[0]` to `ends[1]`.
    pub fn new(
        file: Arc<str>,
        ends: [SocketAddr; 2],
        frame: u64,
        ts: f64,
        keys: Option<Arc<KeyLog>>,
    ) -> Session {
        Session {
            file,
            start: ts,
            ends,
            client: None,
            from_syn: false,
            tls: Tls::Undecided,
            parser: WireParser::new(),
            lost: [false; 2],
            decrypt: keys.map(Decryptor::new),
            frames: (frame, frame),
            marks: Vec::new(),
            gaps: Vec::new(),
            events: Vec::new(),
            reset: None,
            fin_seen: false,
        }
    }

    fn at_ms(&self, ts: f64) -> f64 {
        (((ts - self.start) * 1000.0).max(0.0) * 1000.0).round() / 1000.0
    }

    /// The connection's first frame.
    pub fn first_frame(&self) -> u64 {
        self.frames.0
    }

    /// A frame of this connection was read (for the frame range).
    pub fn saw_frame(&mut self, frame: u64) {
        self.frames.1 = frame;
    }

    /// A SYN from `side` (without ACK: that side is the client).
    pub fn syn(&mut self, side: usize, is_client: bool, ts: f64) {
        if is_client && self.client.is_none() {
            self.client = Some(side);
            self.from_syn = true;
            let at = self.at_ms(ts);
            self.event(at, EventKind::TcpSyn, Some(self.ends[side].to_string()));
        } else if !is_client && self.client.is_none() {
            self.client = Some(1 - side);
            self.from_syn = true;
        }
    }

    /// A FIN or RST from `side`.
    pub fn close(&mut self, side: usize, rst: bool, frame: u64, ts: f64) {
        let at = self.at_ms(ts);
        let who = if Some(side) == self.client {
            Peer::Client
        } else {
            Peer::Server
        };
        if rst {
            if self.reset.is_none() && !self.fin_seen {
                self.reset = Some((side, frame));
            }
            let rest = format!("frame {frame}");
            self.push(Event::from_peer(at, EventKind::TcpReset, who, Some(&rest)));
        } else {
            self.fin_seen = true;
            self.push(Event::from_peer(at, EventKind::TcpFin, who, None));
        }
    }

    fn event(&mut self, at_ms: f64, kind: EventKind, detail: Option<String>) {
        self.push(Event::new(at_ms, kind, detail));
    }

    /// Keep `e`, unless the session already holds as many steps as it keeps.
    fn push(&mut self, e: Event) {
        if self.events.len() < 16 {
            self.events.push(e);
        }
    }

    /// Whether the connection turned out not to be TLS (its bytes need not be reassembled).
    pub fn is_not_tls(&self) -> bool {
        self.tls == Tls::No
    }

    /// Whether it is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls == Tls::Yes
    }

    /// The next in-order bytes (or gap) from TCP side `side`; `from_start` says whether that
    /// stream's SYN was seen.
    pub fn chunk(&mut self, side: usize, from_start: bool, chunk: Chunk<'_>) {
        if self.tls == Tls::No {
            return;
        }
        if self.tls == Tls::Undecided {
            let Chunk::Data { bytes, .. } = &chunk else {
                return; // a gap before any byte: wait for bytes
            };
            self.decide(side, from_start, bytes);
            if self.tls != Tls::Yes {
                return;
            }
        }
        let Some(client) = self.client else {
            return;
        };
        let dir = if side == client {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        match chunk {
            Chunk::Data { bytes, frame, ts } => {
                let at = self.at_ms(ts);
                if !self.lost[dir.index()] {
                    let before = self.parser.generation();
                    self.parser.feed(dir, at, bytes);
                    if self.parser.generation() != before && self.marks.len() < MAX_MARKS {
                        let what = format!("TLS from {}", dir.sender());
                        if self.marks.last().is_none_or(|m| m.frame != frame) {
                            self.marks.push(FrameMark {
                                at_ms: at,
                                frame,
                                what,
                            });
                        }
                    }
                }
                if let Some(d) = self.decrypt.as_mut() {
                    d.feed(dir, at, bytes, &self.parser);
                }
            }
            Chunk::Gap {
                len,
                offset,
                cause,
                frame,
                ts,
            } => self.gap(dir, len, offset, cause, frame, ts),
        }
    }

    /// Decide from the first bytes whether this is TLS, and who the client is.
    fn decide(&mut self, side: usize, from_start: bool, bytes: &[u8]) {
        let hello = matches!(bytes, [22, 3, 0..=4, ..]);
        let record = matches!(bytes, [20..=23, 3, 0..=4, ..]);
        match self.client {
            Some(c) if from_start => {
                self.tls = if side == c && hello {
                    Tls::Yes
                } else {
                    Tls::No
                };
            }
            _ => {
                // No SYN: a ClientHello names the client; any record header mid-stream makes
                // the higher (ephemeral) port the client.
                if hello && bytes.get(5) == Some(&1) {
                    self.client = Some(side);
                    self.tls = Tls::Yes;
                } else if record {
                    let higher = usize::from(self.ends[1].port() > self.ends[0].port());
                    self.client = Some(higher);
                    self.tls = Tls::Yes;
                } else {
                    self.tls = Tls::No;
                }
            }
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, offset: u64, cause: GapCause, frame: u64, ts: f64) {
        let at = self.at_ms(ts);
        let d = dir.index();
        let effect = if self.lost[d] {
            GapEffect::AfterLostTrack
        } else if (self.parser.opaque_left(dir) as u64) >= len {
            // Inside an encrypted record: stand in for the bytes so the framing holds.
            let zeros = [0u8; 4096];
            let mut left = len as usize;
            while left > 0 {
                let n = left.min(zeros.len());
                self.parser.feed(dir, at, zeros.get(..n).unwrap_or(&[]));
                left -= n;
            }
            GapEffect::InsideRecord
        } else {
            self.lost[d] = true;
            GapEffect::LostTrack
        };
        if let Some(dec) = self.decrypt.as_mut() {
            dec.gap(dir, len);
        }
        let kind = match cause {
            GapCause::NotCaptured => GapKind::NotCaptured,
            GapCause::SnapLen => GapKind::SnapLen,
        };
        let why = match kind {
            GapKind::NotCaptured => "not in the capture".to_string(),
            GapKind::SnapLen => {
                "cut off by the capture's snap length (capture with -s 0)".to_string()
            }
        };
        let then = match effect {
            GapEffect::InsideRecord => "inside an encrypted record; the TLS framing is kept",
            GapEffect::LostTrack => "TLS from here on in this direction is not read",
            GapEffect::AfterLostTrack => "after TLS was already not read",
        };
        self.event(
            at,
            EventKind::CaptureGap,
            Some(format!(
                "{len} bytes from the {} {why}, frame {frame}; {then}",
                dir.sender()
            )),
        );
        if self.gaps.len() < MAX_GAPS {
            self.gaps.push(StreamGap {
                direction: match dir {
                    Dir::ClientToServer => StreamDirection::ClientToServer,
                    Dir::ServerToClient => StreamDirection::ServerToClient,
                },
                offset,
                bytes: len,
                cause: kind,
                frame,
                at_ms: at,
                effect,
            });
        }
    }

    /// The record of this connection (`None` when it was not TLS).
    pub fn into_flow(self, id: u64) -> Option<Flow> {
        if self.tls != Tls::Yes {
            return None;
        }
        let client = self.client.unwrap_or(0);
        let nanos = (self.start * 1e9) as i128;
        let started = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut flow = Flow::new(Mode::Capture, id, started);
        flow.client_addr = Some(self.ends[client].to_string());
        flow.upstream = Some(self.ends[1 - client].to_string());
        let mut wire = self.parser.facts(TapRole::Client).into_wire();
        let mut decryption = Decryption::NoKeyLog;
        if let Some(dec) = self.decrypt {
            decryption = dec.finish(&mut wire, &mut flow);
        }
        wire.events.extend(self.events);
        wire.events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        if let Some((side, frame)) = self.reset {
            let who = if side == client { "client" } else { "server" };
            flow.error = Some(format!(
                "the {who} reset the connection (TCP RST, frame {frame})"
            ));
            wire.failure = Some(crate::facts::LegFailure {
                stage: if wire
                    .events
                    .iter()
                    .any(|e| e.kind == EventKind::HandshakeDone)
                {
                    crate::facts::Stage::AfterHandshake
                } else {
                    crate::facts::Stage::Handshake
                },
                kind: crate::facts::FailureKind::Reset,
            });
        }
        let mut marks = self.marks;
        for m in &mut marks {
            if let Some(e) = wire
                .events
                .iter()
                .find(|e| e.at_ms == m.at_ms && e.kind != EventKind::CaptureGap)
            {
                m.what = e.kind.as_str().to_string();
            }
        }
        flow.wire = Some(Box::new(wire));
        flow.capture = Some(Box::new(CaptureFacts {
            file: self.file.to_string(),
            first_frame: self.frames.0,
            last_frame: self.frames.1,
            from_syn: self.from_syn,
            frames: marks,
            gaps: self.gaps,
            retransmitted_bytes: 0,
            decryption,
        }));
        Some(flow)
    }
}
