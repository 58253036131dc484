//! Reading encrypted TLS records with an NSS key log (`--keylog`, as curl, browsers, Go's
//! `KeyLogWriter` and mtlscope write it).
//!
//! TLS 1.3: the handshake traffic secrets open EncryptedExtensions, CertificateRequest (with its
//! CA names), both Certificates, CertificateVerify and Finished; the application traffic
//! secrets (with KeyUpdate) open post-handshake CertificateRequests, alerts and the first HTTP
//! bytes. TLS 1.2 with an AEAD suite: the master secret opens everything after each
//! ChangeCipherSpec — renegotiations (their CertificateRequest and Certificate), alerts, HTTP.
//! A session the key log has no secrets for stays unread: what is encrypted is then unknown,
//! never guessed.

mod cipher;
mod found;
mod h2;
mod keylog;

pub use keylog::{KeyLog, KeyLogError};

use crate::facts::EventKind;
use crate::facts::{Decryption, Flow, Wire};
use crate::wire::{msg, Dir, WireParser};
use cipher::{tls12_suite, tls13_suite, Cipher};
use found::Found;
use keylog::Secrets;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Largest TLS record payload (2^14 + 2048).
const MAX_RECORD: usize = 16384 + 2048;
/// Largest decrypted handshake message kept.
const MAX_MESSAGE: usize = 256 * 1024;

/// One direction's record assembly and decryption state.
#[derive(Default)]
struct Side {
    /// The record being collected (header and payload).
    rec: Vec<u8>,
    /// Set after a gap broke this direction's framing: nothing more is read.
    lost: bool,
    /// Protection in force.
    cipher: Option<Cipher>,
    /// TLS 1.2: protection that takes over at this side's next ChangeCipherSpec.
    pending: Option<Cipher>,
    /// Decrypted handshake bytes not yet a whole message.
    hs: Vec<u8>,
    /// Whether this side's Finished (of the first handshake) was read.
    finished: bool,
}

/// Reads one connection's encrypted records when the key log has its secrets.
pub struct Decryptor {
    /// The key logs.
    keys: Arc<KeyLog>,
    /// By [`Dir::index`].
    sides: [Side; 2],
    /// The ServerHello's version and suite.
    server_hello: Option<(u16, u16)>,
    /// The current handshake's randoms (TLS 1.2: a renegotiation brings new ones).
    client_random: Option<[u8; 32]>,
    /// The server's.
    server_random: Option<[u8; 32]>,
    /// The first handshake's secrets, once looked up.
    secrets: Option<Secrets>,
    /// Whether they were looked up (the ClientHello random was known).
    looked_up: bool,
    /// TLS 1.2: renegotiations whose master secret the key log lacked.
    missing_renegotiation_keys: u32,
    /// Records decrypted.
    records: u64,
    /// Records that did not decrypt.
    failed: u64,
    /// Facts read from the decrypted records.
    found: Found,
}

impl Decryptor {
    /// A reader for one connection.
    pub fn new(keys: Arc<KeyLog>) -> Decryptor {
        Decryptor {
            keys,
            sides: Default::default(),
            server_hello: None,
            client_random: None,
            server_random: None,
            secrets: None,
            looked_up: false,
            missing_renegotiation_keys: 0,
            records: 0,
            failed: 0,
            found: Found::default(),
        }
    }

    fn is_tls13(&self) -> bool {
        matches!(self.server_hello, Some((0x0304, _)))
    }

    /// Bytes of `dir` in order, at `at` ms; `parser` already read them (it knows the random).
    pub fn feed(&mut self, dir: Dir, at: f64, mut bytes: &[u8], parser: &WireParser) {
        if !self.looked_up {
            if let Some(random) = parser.client_random() {
                self.looked_up = true;
                self.client_random = Some(random);
                self.secrets = self.keys.sessions.get(&random).cloned();
                if self.secrets.is_some() {
                    self.keys.matched.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let d = dir.index();
        while !bytes.is_empty() {
            let Some(side) = self.sides.get_mut(d) else {
                return;
            };
            if side.lost {
                return;
            }
            let want = match side.rec.get(3..5) {
                Some(&[a, b]) => {
                    let len = usize::from(u16::from_be_bytes([a, b]));
                    if len > MAX_RECORD {
                        side.lost = true;
                        return;
                    }
                    5 + len - side.rec.len()
                }
                _ => 5 - side.rec.len(),
            };
            let n = want.min(bytes.len());
            side.rec.extend_from_slice(bytes.get(..n).unwrap_or(&[]));
            bytes = bytes.get(n..).unwrap_or(&[]);
            if let Some(&[a, b]) = side.rec.get(3..5) {
                if side.rec.len() == 5 + usize::from(u16::from_be_bytes([a, b])) {
                    let rec = std::mem::take(&mut side.rec);
                    self.record(dir, at, &rec);
                    if let Some(side) = self.sides.get_mut(d) {
                        side.rec = rec;
                        side.rec.clear();
                    }
                }
            }
        }
    }

    /// `len` bytes of `dir` are missing: the record they fall in will not decrypt, but the
    /// framing holds if they fall inside its payload.
    pub fn gap(&mut self, dir: Dir, len: u64) {
        let Some(side) = self.sides.get_mut(dir.index()) else {
            return;
        };
        if let Some(&[a, b]) = side.rec.get(3..5) {
            let total = 5 + usize::from(u16::from_be_bytes([a, b]));
            if len <= (total - side.rec.len()) as u64 {
                side.rec.resize(side.rec.len() + len as usize, 0);
                return;
            }
        }
        side.lost = true;
    }

    fn record(&mut self, dir: Dir, at: f64, rec: &[u8]) {
        let (Some(&[t, v0, v1, l0, l1]), Some(payload)) = (rec.get(..5), rec.get(5..)) else {
            return;
        };
        let header = [t, v0, v1, l0, l1];
        let d = dir.index();
        let encrypted = self.sides.get(d).is_some_and(|s| s.cipher.is_some());
        if t == 20 && !self.is_tls13() {
            // ChangeCipherSpec (encrypted itself in a renegotiation): the pending keys start.
            if encrypted {
                let _ = self.open(dir, header, payload);
            }
            if let Some(side) = self.sides.get_mut(d) {
                side.cipher = side.pending.take();
            }
            return;
        }
        if !encrypted {
            if t == 22 {
                self.plain_handshake(dir, payload);
            }
            return;
        }
        if t == 20 {
            return; // TLS 1.3 compatibility CCS, never encrypted
        }
        let Some((ty, plain)) = self.open(dir, header, payload) else {
            return;
        };
        match ty {
            22 => {
                let Some(side) = self.sides.get_mut(d) else {
                    return;
                };
                if side.hs.len() + plain.len() > MAX_MESSAGE {
                    side.hs.clear();
                    return;
                }
                side.hs.extend_from_slice(&plain);
                self.handshake_messages(dir, at);
            }
            21 => {
                if let [level, code, ..] = plain[..] {
                    self.found.alert(dir, at, level, code);
                }
            }
            23 => self.found.app_data(dir, at, &plain),
            _ => {}
        }
    }

    fn open(&mut self, dir: Dir, header: [u8; 5], payload: &[u8]) -> Option<(u8, Vec<u8>)> {
        let cipher = self.sides.get_mut(dir.index())?.cipher.as_mut()?;
        let out = cipher.open(header, payload);
        match out {
            Some(_) => self.records += 1,
            None => self.failed += 1,
        }
        out
    }

    /// A plaintext handshake record: the randoms and the suite of the first handshake.
    fn plain_handshake(&mut self, dir: Dir, payload: &[u8]) {
        if dir != Dir::ServerToClient || self.server_hello.is_some() || payload.first() != Some(&2)
        {
            return;
        }
        let Some(body) = payload.get(4..) else { return };
        self.server_hello_body(body);
    }

    /// A ServerHello: keys for the handshake it starts.
    fn server_hello_body(&mut self, body: &[u8]) {
        let Some(sh) = msg::server_hello(body) else {
            return;
        };
        if sh.is_hrr {
            return;
        }
        self.server_hello = Some((sh.version(), sh.cipher_suite));
        self.server_random = body.get(2..34).and_then(|r| r.try_into().ok());
        if sh.version() == 0x0304 {
            let (Some(suite), Some(s)) = (tls13_suite(sh.cipher_suite), self.secrets.as_ref())
            else {
                return;
            };
            let c = s.client_hs.as_deref().and_then(|k| Cipher::tls13(suite, k));
            let sv = s.server_hs.as_deref().and_then(|k| Cipher::tls13(suite, k));
            self.sides[Dir::ClientToServer.index()].cipher = c;
            self.sides[Dir::ServerToClient.index()].cipher = sv;
            return;
        }
        // TLS 1.2 (first handshake or a renegotiation): keys wait for each side's CCS.
        let master = self
            .client_random
            .and_then(|r| self.keys.sessions.get(&r))
            .and_then(|s| s.master.clone());
        let (Some(suite), Some(master), Some(cr), Some(sr)) = (
            tls12_suite(sh.cipher_suite),
            master,
            self.client_random,
            self.server_random,
        ) else {
            if self.sides.iter().any(|s| s.finished) {
                self.missing_renegotiation_keys += 1;
            }
            return;
        };
        if let Some((c, s)) = Cipher::tls12(suite, &master, &cr, &sr) {
            self.sides[Dir::ClientToServer.index()].pending = Some(c);
            self.sides[Dir::ServerToClient.index()].pending = Some(s);
        }
    }

    fn handshake_messages(&mut self, dir: Dir, at: f64) {
        let d = dir.index();
        loop {
            let Some(side) = self.sides.get_mut(d) else {
                return;
            };
            let Some(&[t, a, b, c]) = side.hs.get(..4) else {
                return;
            };
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if side.hs.len() < 4 + len {
                return;
            }
            let body: Vec<u8> = side.hs.get(4..4 + len).unwrap_or(&[]).to_vec();
            side.hs.drain(..4 + len);
            self.message(dir, at, t, &body);
        }
    }

    fn message(&mut self, dir: Dir, at: f64, t: u8, body: &[u8]) {
        let tls13 = self.is_tls13();
        let client_done = self.sides[Dir::ClientToServer.index()].finished;
        match t {
            0 => self
                .found
                .sent(at, EventKind::HelloRequest, dir, "decrypted"),
            1 if !tls13 => {
                // A renegotiation's ClientHello: its random keys the new master secret.
                self.client_random = body.get(2..34).and_then(|r| r.try_into().ok());
                self.found
                    .sent(at, EventKind::ClientHello, dir, "decrypted (renegotiation)");
            }
            2 if !tls13 => {
                self.server_hello_body(body);
                self.found
                    .sent(at, EventKind::ServerHello, dir, "decrypted (renegotiation)");
            }
            20 => {
                self.found.sent(at, EventKind::Finished, dir, "decrypted");
                let first = !self.sides[dir.index()].finished;
                if let Some(side) = self.sides.get_mut(dir.index()) {
                    side.finished = true;
                }
                if tls13 && first {
                    self.tls13_application_keys(dir);
                }
            }
            24 if tls13 => {
                let suite = self.server_hello.and_then(|(_, s)| tls13_suite(s));
                if let (Some(suite), Some(side)) = (suite, self.sides.get_mut(dir.index())) {
                    let next = side.cipher.as_ref().and_then(|c| {
                        cipher::expand_label(suite, &c.secret, "traffic upd", suite.hash_len)
                    });
                    side.cipher = next.and_then(|k| Cipher::tls13(suite, &k));
                }
                self.found.sent(at, EventKind::KeyUpdate, dir, "decrypted");
            }
            _ => self.found.message(dir, at, t, body, tls13, client_done),
        }
    }

    fn tls13_application_keys(&mut self, dir: Dir) {
        let suite = self.server_hello.and_then(|(_, s)| tls13_suite(s));
        let secret = self.secrets.as_ref().and_then(|s| match dir {
            Dir::ClientToServer => s.client_app.clone(),
            Dir::ServerToClient => s.server_app.clone(),
        });
        if let Some(side) = self.sides.get_mut(dir.index()) {
            side.cipher = match (suite, secret) {
                (Some(suite), Some(k)) => Cipher::tls13(suite, &k),
                _ => None,
            };
        }
    }

    /// Put what decryption showed into the record; how decryption went.
    pub fn finish(mut self, wire: &mut Wire, flow: &mut Flow) -> Decryption {
        if self.secrets.is_none() {
            return Decryption::NoKeysForSession;
        }
        match self.server_hello {
            Some((0x0304, suite)) if tls13_suite(suite).is_none() => {
                return Decryption::Unsupported {
                    why: format!("TLS 1.3 cipher suite 0x{suite:04x}"),
                };
            }
            Some((v, suite)) if v != 0x0304 && tls12_suite(suite).is_none() => {
                return Decryption::Unsupported {
                    why: format!("cipher suite 0x{suite:04x} is not an AEAD suite (only AES-GCM and ChaCha20-Poly1305 are read)"),
                };
            }
            _ => {}
        }
        if self.missing_renegotiation_keys > 0 {
            self.found
                .missing_keys(self.missing_renegotiation_keys, wire);
        }
        self.found.apply(wire, flow);
        Decryption::Decrypted {
            records: self.records,
            failed: self.failed,
        }
    }
}
