//! The first HTTP/2 header block each way of a decrypted connection: frames reassembled across
//! records, HEADERS + CONTINUATION joined, HPACK decoded (`fluke-hpack`, a maintained fork of
//! the `hpack` crate; h2's own decoder is not public). Only `:method`, `:path` and `:status`
//! are kept.

/// Bytes of frames buffered per direction before giving up (a header block is small).
const MAX_BUFFER: usize = 256 * 1024;
/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One direction's HTTP/2 reading.
pub struct H2Side {
    /// Frame bytes not yet a whole frame.
    buf: Vec<u8>,
    /// Preface bytes still to skip (client side).
    preface_left: usize,
    /// The HPACK decoder with this direction's dynamic table.
    decoder: fluke_hpack::Decoder<'static>,
    /// A header block waiting for its CONTINUATION frames.
    block: Vec<u8>,
    /// Set once a header block was decoded, or reading failed.
    pub done: bool,
}

impl H2Side {
    /// A direction; `client` skips the connection preface first.
    pub fn new(client: bool) -> H2Side {
        H2Side {
            buf: Vec::new(),
            preface_left: if client { PREFACE.len() } else { 0 },
            decoder: fluke_hpack::Decoder::new(),
            block: Vec::new(),
            done: false,
        }
    }

    /// Feed decrypted application bytes; the first complete header block, decoded.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<Vec<(String, String)>> {
        if self.done {
            return None;
        }
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = bytes.get(skip..).unwrap_or(&[]);
        if self.buf.len() + bytes.len() > MAX_BUFFER {
            self.done = true;
            return None;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let (len, ty, flags) = match self.buf.get(..9) {
                Some(&[a, b, c, t, f, ..]) => (
                    usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c),
                    t,
                    f,
                ),
                _ => return None,
            };
            if self.buf.len() < 9 + len {
                return None;
            }
            let payload: Vec<u8> = self.buf.get(9..9 + len).unwrap_or(&[]).to_vec();
            self.buf.drain(..9 + len);
            let fragment = match ty {
                1 => headers_fragment(&payload, flags),
                9 if !self.block.is_empty() => Some(payload.as_slice()),
                _ => continue,
            };
            let Some(fragment) = fragment else {
                self.done = true;
                return None;
            };
            self.block.extend_from_slice(fragment);
            if flags & 0x4 == 0 {
                continue; // END_HEADERS not yet
            }
            let block = std::mem::take(&mut self.block);
            self.done = true;
            let fields = self.decoder.decode(&block).ok()?;
            return Some(
                fields
                    .into_iter()
                    .map(|(n, v)| {
                        (
                            String::from_utf8_lossy(&n).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect(),
            );
        }
    }
}

/// The header block fragment of a HEADERS frame payload (padding and priority removed).
fn headers_fragment(payload: &[u8], flags: u8) -> Option<&[u8]> {
    let mut start = 0;
    let mut pad = 0;
    if flags & 0x8 != 0 {
        pad = usize::from(*payload.first()?);
        start = 1;
    }
    if flags & 0x20 != 0 {
        start += 5;
    }
    payload.get(start..payload.len().checked_sub(pad)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_status_is_read_across_frames_and_records() {
        // HEADERS without END_HEADERS, then CONTINUATION; ":status: 403" (static index 8 is
        // 200; 403 is a literal with indexed name 8) and a dynamic-table entry.
        let mut enc = fluke_hpack::Encoder::new();
        let block = enc.encode(vec![
            (&b":status"[..], &b"403"[..]),
            (&b"x-why"[..], &b"no cert"[..]),
        ]);
        let (a, b) = block.split_at(2);
        let mut frames = Vec::new();
        for (ty, flags, part) in [(4u8, 0u8, &[][..]), (1, 0, a), (9, 4, b)] {
            let len = part.len();
            frames.extend_from_slice(&[
                (len >> 16) as u8,
                (len >> 8) as u8,
                len as u8,
                ty,
                flags,
                0,
                0,
                0,
                1,
            ]);
            frames.extend_from_slice(part);
        }
        let mut side = H2Side::new(false);
        let (x, y) = frames.split_at(7);
        assert!(side.feed(x).is_none());
        let fields = side.feed(y).expect("a header block");
        assert_eq!(fields[0], (":status".to_string(), "403".to_string()));
        assert_eq!(fields[1].1, "no cert");
    }
}
