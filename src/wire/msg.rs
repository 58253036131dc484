//! Pure parsers for the plaintext handshake message bodies the tap cares about: ClientHello,
//! ServerHello, Certificate and CertificateRequest (TLS 1.2 and 1.3 forms).
//!
//! Every parser reads a borrowed body through a bounds-checked [`Reader`] and returns `None` on
//! anything malformed: no indexing, no panics, whatever the bytes. Results borrow from the body
//! where they can (certificates and CA names are slices, not copies).

use crate::facts::EventKind;

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod ty {
    /// HelloRequest (TLS 1.2 renegotiation request).
    pub const HELLO_REQUEST: u8 = 0;
    /// ClientHello.
    pub const CLIENT_HELLO: u8 = 1;
    /// ServerHello (and HelloRetryRequest).
    pub const SERVER_HELLO: u8 = 2;
    /// Certificate.
    pub const CERTIFICATE: u8 = 11;
    /// CertificateRequest.
    pub const CERTIFICATE_REQUEST: u8 = 13;
    /// ServerHelloDone.
    pub const SERVER_HELLO_DONE: u8 = 14;
}

/// The event of a handshake message type.
pub fn handshake_kind(t: u8) -> EventKind {
    match t {
        0 => EventKind::HelloRequest,
        1 => EventKind::ClientHello,
        2 => EventKind::ServerHello,
        4 => EventKind::NewSessionTicket,
        5 => EventKind::EndOfEarlyData,
        8 => EventKind::EncryptedExtensions,
        11 => EventKind::Certificate,
        12 => EventKind::ServerKeyExchange,
        13 => EventKind::CertificateRequest,
        14 => EventKind::ServerHelloDone,
        15 => EventKind::CertificateVerify,
        16 => EventKind::ClientKeyExchange,
        20 => EventKind::Finished,
        22 => EventKind::CertificateStatus,
        24 => EventKind::KeyUpdate,
        _ => EventKind::HandshakeMessage,
    }
}

/// The ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Extension numbers used here.
mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const CERTIFICATE_AUTHORITIES: u16 = 47;
    pub const POST_HANDSHAKE_AUTH: u16 = 49;
}

/// A bounds-checked cursor over a byte slice; every read is `Option`.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    /// A big-endian u24.
    pub fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            usize::from(*b.first()?) << 16 | usize::from(*b.get(1)?) << 8 | usize::from(*b.get(2)?),
        )
    }

    /// A vector with a one-byte length prefix, as a sub-reader.
    pub fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = usize::from(self.u8()?);
        self.take(n).map(Reader::new)
    }

    /// A vector with a two-byte length prefix, as a sub-reader.
    pub fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = usize::from(self.u16()?);
        self.take(n).map(Reader::new)
    }

    /// A vector with a three-byte length prefix, as a sub-reader.
    pub fn vec24(&mut self) -> Option<Reader<'a>> {
        let n = self.u24()?;
        self.take(n).map(Reader::new)
    }

    /// The bytes not read yet, consuming them.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// What a ClientHello offered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// Legacy version field.
    pub legacy_version: u16,
    /// The 32-byte client random.
    pub random: &'a [u8],
    /// SNI host name.
    pub sni: Option<&'a str>,
    /// ALPN protocols, in order (lossy UTF-8).
    pub alpn: Vec<String>,
    /// supported_versions, in order; empty when the extension is absent.
    pub versions: Vec<u16>,
    /// signature_algorithms, in order.
    pub signature_schemes: Vec<u16>,
    /// Whether post_handshake_auth (49) was offered.
    pub offered_pha: bool,
}

/// Parse a ClientHello body (after the 4-byte handshake header).
pub fn client_hello(body: &[u8]) -> Option<ClientHello<'_>> {
    let mut r = Reader::new(body);
    let mut ch = ClientHello {
        legacy_version: r.u16()?,
        random: r.take(32)?,
        ..ClientHello::default()
    };
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    if r.is_empty() {
        return Some(ch); // no extensions (SSLv3-style hello)
    }
    let mut exts = r.vec16()?;
    while !exts.is_empty() {
        let ty = exts.u16()?;
        let mut data = exts.vec16()?;
        match ty {
            ext::SERVER_NAME => {
                let mut list = data.vec16()?;
                while !list.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?.rest();
                    if name_type == 0 && ch.sni.is_none() {
                        ch.sni = std::str::from_utf8(name).ok();
                    }
                }
            }
            ext::ALPN => ch.alpn = alpn_list(&mut data)?,
            ext::SUPPORTED_VERSIONS => {
                let mut list = data.vec8()?;
                while !list.is_empty() {
                    ch.versions.push(list.u16()?);
                }
            }
            ext::SIGNATURE_ALGORITHMS => ch.signature_schemes = u16_list(&mut data)?,
            ext::POST_HANDSHAKE_AUTH => ch.offered_pha = true,
            _ => {}
        }
    }
    Some(ch)
}

fn alpn_list(data: &mut Reader<'_>) -> Option<Vec<String>> {
    let mut list = data.vec16()?;
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(String::from_utf8_lossy(list.vec8()?.rest()).into_owned());
    }
    Some(out)
}

fn u16_list(data: &mut Reader<'_>) -> Option<Vec<u16>> {
    let mut list = data.vec16()?;
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(list.u16()?);
    }
    Some(out)
}

/// What a ServerHello chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// Legacy version field (0x0303 for TLS 1.3).
    pub legacy_version: u16,
    /// supported_versions' selected version, when present (TLS 1.3).
    pub selected_version: Option<u16>,
    /// Selected cipher suite.
    pub cipher_suite: u16,
    /// ALPN protocol the server selected (lossy UTF-8).
    pub alpn: Option<String>,
    /// Whether this is a HelloRetryRequest.
    pub is_hrr: bool,
}

impl ServerHello {
    /// The version actually negotiated.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// Parse a ServerHello body.
pub fn server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Reader::new(body);
    let mut sh = ServerHello {
        legacy_version: r.u16()?,
        ..ServerHello::default()
    };
    sh.is_hrr = r.take(32)? == HRR_RANDOM;
    r.vec8()?; // session id
    sh.cipher_suite = r.u16()?;
    r.u8()?; // compression
    if r.is_empty() {
        return Some(sh);
    }
    let mut exts = r.vec16()?;
    while !exts.is_empty() {
        let ty = exts.u16()?;
        let mut data = exts.vec16()?;
        match ty {
            ext::SUPPORTED_VERSIONS => sh.selected_version = Some(data.u16()?),
            ext::ALPN => sh.alpn = alpn_list(&mut data)?.into_iter().next(),
            _ => {}
        }
    }
    Some(sh)
}

/// Parse a Certificate body into its DER certificates, leaf first. `tls13` selects the TLS 1.3
/// form (request context and per-certificate extensions).
pub fn certificate(body: &[u8], tls13: bool) -> Option<Vec<&[u8]>> {
    let mut r = Reader::new(body);
    if tls13 {
        r.vec8()?; // certificate_request_context
    }
    let mut list = r.vec24()?;
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(list.vec24()?.rest());
        if tls13 {
            list.vec16()?; // extensions
        }
    }
    Some(out)
}

/// What a CertificateRequest asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateRequest<'a> {
    /// Acceptable-CA names, each a DER `Name` with its outer SEQUENCE.
    pub ca_names: Vec<&'a [u8]>,
    /// Signature schemes the server accepts.
    pub signature_schemes: Vec<u16>,
}

/// Parse a CertificateRequest body (TLS 1.2 form, or TLS 1.3 with `tls13`).
pub fn certificate_request(body: &[u8], tls13: bool) -> Option<CertificateRequest<'_>> {
    let mut r = Reader::new(body);
    let mut cr = CertificateRequest::default();
    if tls13 {
        r.vec8()?; // certificate_request_context
        let mut exts = r.vec16()?;
        while !exts.is_empty() {
            let ty = exts.u16()?;
            let mut data = exts.vec16()?;
            match ty {
                ext::SIGNATURE_ALGORITHMS => cr.signature_schemes = u16_list(&mut data)?,
                ext::CERTIFICATE_AUTHORITIES => cr.ca_names = dn_list(&mut data)?,
                _ => {}
            }
        }
    } else {
        r.vec8()?; // certificate_types
        cr.signature_schemes = u16_list(&mut r)?;
        cr.ca_names = dn_list(&mut r)?;
    }
    Some(cr)
}

fn dn_list<'a>(r: &mut Reader<'a>) -> Option<Vec<&'a [u8]>> {
    let mut list = r.vec16()?;
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(list.vec16()?.rest());
    }
    Some(out)
}

pub use super::scheme_names::scheme_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_hellos_are_none_not_panics() {
        let mut ch = vec![3, 3];
        ch.extend([7u8; 32]);
        ch.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        assert!(client_hello(&ch).is_some());
        for n in 0..ch.len() {
            let _ = client_hello(&ch[..n]);
            let _ = server_hello(&ch[..n]);
            let _ = certificate(&ch[..n], n % 2 == 0);
            let _ = certificate_request(&ch[..n], n % 2 == 1);
        }
    }

    #[test]
    fn tls12_certificate_request_names() {
        // types [1], sigalgs [0x0403], one CA name "0\x00" (empty SEQUENCE).
        let body = [1, 1, 0, 2, 4, 3, 0, 4, 0, 2, 0x30, 0];
        let cr = certificate_request(&body, false).expect("parses");
        assert_eq!(cr.signature_schemes, vec![0x0403]);
        assert_eq!(cr.ca_names, vec![&[0x30u8, 0][..]]);
        assert_eq!(scheme_name(0x0403), "ecdsa_secp256r1_sha256");
    }

    #[test]
    fn tls13_certificate_request_names() {
        // context "", exts: sigalgs [0x0804], certificate_authorities [30 00].
        let body = [
            0, 0, 18, 0, 13, 0, 4, 0, 2, 8, 4, 0, 47, 0, 6, 0, 4, 0, 2, 0x30, 0,
        ];
        let cr = certificate_request(&body, true).expect("parses");
        assert_eq!(cr.signature_schemes, vec![0x0804]);
        assert_eq!(cr.ca_names.len(), 1);
    }
}
