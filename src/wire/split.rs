//! The incremental record splitter for one direction of a TLS stream.
//!
//! It is fed arbitrary chunks (whatever one `read` or `write` moved) and yields [`Item`]s one at a
//! time: record headers, plaintext handshake message headers and bodies, plaintext alerts. Only
//! the 5-byte record header, the 4-byte handshake header, a 2-byte alert and the bodies of the
//! few handshake messages worth parsing are kept; everything else (application data, encrypted
//! records, uninteresting handshake messages) is skipped in place. Bytes that are not TLS stop
//! the splitter for good (one [`Item::NotTls`]), so garbage costs nothing after that.

use super::msg::ty;

/// Largest record payload a peer may send (2^14 + 2048, RFC 5246 §6.2.3).
pub const MAX_RECORD: usize = 16384 + 2048;

/// Largest handshake message body kept for parsing; a certificate chain of a dozen large
/// certificates fits. Bigger messages are reported and skipped, not buffered.
pub const MAX_KEPT_MESSAGE: usize = 128 * 1024;

/// Record content types.
pub mod content {
    /// change_cipher_spec.
    pub const CCS: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data.
    pub const APPLICATION_DATA: u8 = 23;
}

/// One thing the splitter saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A record header: content type, legacy version, payload length, and whether the payload is
    /// read as plaintext (the caller decided, see [`Splitter::next`]).
    Record {
        /// Content type.
        ty: u8,
        /// Legacy record version.
        version: u16,
        /// Payload length.
        len: u16,
        /// Whether the payload is parsed as plaintext.
        plain: bool,
    },
    /// A plaintext handshake message header: type, body length, whether the body will be kept.
    HandshakeStart {
        /// Handshake type.
        ty: u8,
        /// Body length.
        len: usize,
        /// Whether the body is buffered and will follow as [`Item::Handshake`].
        kept: bool,
    },
    /// A complete plaintext handshake message worth parsing.
    Handshake {
        /// Handshake type.
        ty: u8,
        /// The body, without the 4-byte header.
        body: &'a [u8],
    },
    /// A plaintext alert.
    Alert {
        /// 1 warning, 2 fatal.
        level: u8,
        /// Description code.
        code: u8,
    },
    /// The stream is not (or no longer) TLS; nothing more is parsed in this direction.
    NotTls(&'static str),
}

/// Which handshake bodies are worth buffering.
fn keep(t: u8) -> bool {
    matches!(
        t,
        ty::CLIENT_HELLO | ty::SERVER_HELLO | ty::CERTIFICATE | ty::CERTIFICATE_REQUEST
    )
}

/// Splitter state for one direction.
#[derive(Debug, Default)]
pub struct Splitter {
    /// Record header bytes collected so far.
    hdr: [u8; 5],
    /// How many of `hdr` are filled.
    hdr_len: usize,
    /// Content type of the record being read.
    rec_ty: u8,
    /// Payload bytes of the current record still to come.
    rec_left: usize,
    /// Whether the current record's payload is parsed as plaintext.
    rec_plain: bool,
    /// Alert bytes collected in the current record.
    alert: [u8; 2],
    /// How many of `alert` are filled.
    alert_len: usize,
    /// Handshake header bytes collected (messages may span records).
    hs_hdr: [u8; 4],
    /// How many of `hs_hdr` are filled.
    hs_hdr_len: usize,
    /// Body bytes of the current handshake message still to come.
    hs_left: usize,
    /// Type of the current handshake message.
    hs_ty: u8,
    /// Whether the current handshake body is being buffered.
    hs_keep: bool,
    /// The buffered body; cleared when the next message starts.
    hs_buf: Vec<u8>,
    /// Set once the stream turned out not to be TLS.
    dead: bool,
}

impl Splitter {
    /// Whether the stream stopped parsing because it is not TLS.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Bytes of the current record's payload still to come that are skipped unread (an
    /// encrypted or application-data record); 0 at a record boundary or inside a parsed one.
    /// A reader that lost bytes (a packet capture's gap) may stand in for that many without
    /// losing the record framing.
    pub fn opaque_left(&self) -> usize {
        let parsed = self.rec_plain && matches!(self.rec_ty, content::HANDSHAKE | content::ALERT);
        if self.dead || parsed || self.hdr_len < 5 {
            0
        } else {
            self.rec_left
        }
    }

    /// The next item from `input`, advancing it. `encrypted` says whether this direction is
    /// encrypted now; it is consulted only when a record header completes, so a change made by
    /// the caller after an item applies from the next record on. `None` when `input` is used up.
    pub fn next(&mut self, input: &mut &[u8], encrypted: bool) -> Option<Item<'_>> {
        loop {
            if self.dead {
                *input = &[];
                return None;
            }
            if self.hs_hdr_len == 4 && self.hs_keep && self.hs_left == 0 {
                self.hs_hdr_len = 0;
                return Some(Item::Handshake {
                    ty: self.hs_ty,
                    body: &self.hs_buf,
                });
            }
            if self.rec_left == 0 {
                if let Some(item) = self.header(input, encrypted) {
                    return Some(item);
                }
                if self.hdr_len < 5 {
                    return None; // input used up mid-header (or exactly at a boundary)
                }
                continue;
            }
            if input.is_empty() {
                return None;
            }
            match (self.rec_ty, self.rec_plain) {
                (content::HANDSHAKE, true) => {
                    if let Some(start) = self.handshake_bytes(input) {
                        return Some(start);
                    }
                }
                (content::ALERT, true) => {
                    let n = self.rec_left.min(input.len()).min(2 - self.alert_len);
                    let (head, tail) = input.split_at(n);
                    for (slot, b) in self.alert.iter_mut().skip(self.alert_len).zip(head) {
                        *slot = *b;
                    }
                    self.alert_len += n;
                    self.rec_left -= n;
                    *input = tail;
                    if self.alert_len == 2 {
                        self.alert_len = 0;
                        let [level, code] = self.alert;
                        return Some(Item::Alert { level, code });
                    }
                }
                _ => {
                    let n = self.rec_left.min(input.len());
                    *input = input.get(n..).unwrap_or(&[]);
                    self.rec_left -= n;
                }
            }
        }
    }

    /// Fill the record header; on completion validate it and return its item.
    fn header(&mut self, input: &mut &[u8], encrypted: bool) -> Option<Item<'static>> {
        if self.hdr_len == 5 {
            self.hdr_len = 0; // the previous record is fully read
        }
        let n = (5 - self.hdr_len).min(input.len());
        let (head, tail) = input.split_at(n);
        for (slot, b) in self.hdr.iter_mut().skip(self.hdr_len).zip(head) {
            *slot = *b;
        }
        self.hdr_len += n;
        *input = tail;
        if self.hdr_len < 5 {
            return None;
        }
        let [t, major, minor, l0, l1] = self.hdr;
        let len = u16::from_be_bytes([l0, l1]);
        if !(content::CCS..=24).contains(&t) || major != 3 {
            self.dead = true;
            return Some(Item::NotTls("bytes that are not a TLS record header"));
        }
        if usize::from(len) > MAX_RECORD {
            self.dead = true;
            return Some(Item::NotTls("a record longer than TLS allows"));
        }
        // A plaintext alert is 2 bytes; an encrypted one is longer (TLS 1.2) or hidden inside
        // application_data (TLS 1.3), so a 2-byte alert record is plaintext either way.
        let plain = match t {
            content::HANDSHAKE => !encrypted,
            content::ALERT => !encrypted || len == 2,
            _ => false,
        };
        if t != content::HANDSHAKE && self.hs_hdr_len > 0 {
            // A handshake message cut by another record type: drop the partial message.
            self.hs_hdr_len = 0;
            self.hs_left = 0;
        }
        self.rec_ty = t;
        self.rec_left = usize::from(len);
        self.rec_plain = plain;
        self.alert_len = 0;
        Some(Item::Record {
            ty: t,
            version: u16::from_be_bytes([major, minor]),
            len,
            plain,
        })
    }

    /// Consume plaintext handshake bytes of the current record. Returns a header item when a
    /// handshake header completes; the caller checks for a completed kept body.
    fn handshake_bytes(&mut self, input: &mut &[u8]) -> Option<Item<'static>> {
        if self.hs_hdr_len < 4 {
            let n = (4 - self.hs_hdr_len).min(input.len()).min(self.rec_left);
            let (head, tail) = input.split_at(n);
            for (slot, b) in self.hs_hdr.iter_mut().skip(self.hs_hdr_len).zip(head) {
                *slot = *b;
            }
            self.hs_hdr_len += n;
            self.rec_left -= n;
            *input = tail;
            if self.hs_hdr_len < 4 {
                return None;
            }
            let [t, a, b, c] = self.hs_hdr;
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            self.hs_ty = t;
            self.hs_left = len;
            self.hs_keep = keep(t) && len <= MAX_KEPT_MESSAGE;
            self.hs_buf.clear();
            if self.hs_keep {
                self.hs_buf.reserve(len.min(16 * 1024));
            }
            if len == 0 && !self.hs_keep {
                self.hs_hdr_len = 0; // e.g. ServerHelloDone, HelloRequest: complete already
            }
            return Some(Item::HandshakeStart {
                ty: t,
                len,
                kept: self.hs_keep,
            });
        }
        let n = self.hs_left.min(input.len()).min(self.rec_left);
        let (head, tail) = input.split_at(n);
        if self.hs_keep {
            self.hs_buf.extend_from_slice(head);
        }
        self.hs_left -= n;
        self.rec_left -= n;
        *input = tail;
        if self.hs_left == 0 && !self.hs_keep {
            self.hs_hdr_len = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(item) = s.next(&mut input, false) {
                out.push(format!("{item:?}"));
            }
        }
        out
    }

    #[test]
    fn a_message_spanning_records_and_chunks_is_reassembled() {
        // ServerHelloDone-like kept type 2 body [9, 9, 9] split over two records.
        let rec1 = [22, 3, 3, 0, 5, 2, 0, 0, 3, 9];
        let rec2 = [22, 3, 3, 0, 2, 9, 9];
        let whole: Vec<u8> = rec1.iter().chain(rec2.iter()).copied().collect();
        let expected = items(&[&whole]);
        assert!(expected
            .iter()
            .any(|i| i.contains("Handshake { ty: 2, body: [9, 9, 9] }")));
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(items(&[a, b]), expected, "split at {cut}");
        }
    }

    #[test]
    fn garbage_stops_the_direction() {
        let got = items(&[b"GET / HTTP/1.1\r\n\r\n"]);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("NotTls"));
    }
}
