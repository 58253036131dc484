//! Fuzz target for the wire tap's parser: the input is a capture (frames of
//! `dir u8, len u16 BE, bytes`, the format of tests/data/handshakes/*.tlscap), fed to a
//! `WireParser` in pieces whose size the first byte chooses; then the facts are taken (which
//! summarises any certificates seen). Nothing may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtlscope::wire::{msg, Dir, TapRole, WireParser};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, mut rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut parser = WireParser::new();
    let mut i = 0u32;
    while let [d, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (frame, next) = tail.split_at(len);
        let dir = if d & 1 == 0 { Dir::ClientToServer } else { Dir::ServerToClient };
        for chunk in frame.chunks(piece) {
            parser.feed(dir, f64::from(i), chunk);
        }
        rest = next;
        i += 1;
    }
    let facts = parser.facts(TapRole::Server);
    let _ = facts.into_wire();
    // The message parsers directly, on the raw input too.
    let _ = msg::client_hello(data);
    let _ = msg::server_hello(data);
    let _ = msg::certificate(data, piece % 2 == 0);
    let _ = msg::certificate_request(data, piece % 2 == 1);
});
