//! The wire tap: TLS records and plaintext handshake messages seen below TLS.
//!
//! Layers, bottom up:
//! - [`msg`]: pure parsers for handshake bodies (ClientHello, ServerHello, Certificate,
//!   CertificateRequest), bounds-checked, never panicking.
//! - [`split`]: the incremental per-direction record splitter (no payload copies; only the few
//!   handshake messages worth parsing are buffered, capped).
//! - [`WireParser`]: both directions together: encryption start, handshake completion,
//!   renegotiations, alerts, timings. Pure: bytes and times in, [`TapFacts`] out.
//! - [`Tap`]: an `AsyncRead + AsyncWrite` wrapper around a raw stream that feeds a shared
//!   [`TapHandle`] with every read and write.
//!
//! What the wire cannot show: in TLS 1.3 everything after the ServerHello is encrypted and every
//! encrypted record is `application_data` on the outside, so the CertificateRequest (in the
//! handshake or post-handshake), certificates, alerts and KeyUpdates are invisible; only the
//! hellos, the `post_handshake_auth` offer, plaintext alerts and timing are seen; the client's
//! first encrypted flight is recorded as such (`client_encrypted_flight`: its Finished or an
//! alert, never claimed as a completed handshake). In a TLS 1.2
//! renegotiation the messages are encrypted: the request for a certificate is inferred from the
//! number of handshake records the client answers with (see `state.rs`), with null CA names.
//!
//! Hand-written rather than `tls-parser`: that crate parses whole records into allocated message
//! lists (not incrementally across reads), does not decode TLS 1.3 CertificateRequest or
//! `certificate_authorities`, and brings nom; the handful of messages needed here take a few
//! hundred lines of slice reading.

pub mod alert_names;
pub mod msg;
pub mod scheme_names;
pub mod split;
mod state;
mod tap;

pub use crate::facts::ENCRYPTED_ALERT_CODE;
pub use alert_names::alert_name;
pub use scheme_names::scheme_name;
pub use state::WireParser;
pub use tap::{Tap, TapHandle};

use crate::facts::{
    Alert, CertRequest, CertSummary, ClientHelloFacts, Direction, Event, Renegotiation, TlsVersion,
    Wire,
};

/// A direction of the TLS session, by TLS role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Bytes the TLS client sent.
    ClientToServer,
    /// Bytes the TLS server sent.
    ServerToClient,
}

impl Dir {
    /// Array index of this direction.
    pub fn index(self) -> usize {
        match self {
            Dir::ClientToServer => 0,
            Dir::ServerToClient => 1,
        }
    }

    /// Who sent bytes in this direction.
    pub fn peer(self) -> crate::facts::Peer {
        match self {
            Dir::ClientToServer => crate::facts::Peer::Client,
            Dir::ServerToClient => crate::facts::Peer::Server,
        }
    }

    /// Who sent bytes in this direction: `client` or `server`.
    pub fn sender(self) -> &'static str {
        match self {
            Dir::ClientToServer => "client",
            Dir::ServerToClient => "server",
        }
    }
}

/// Which TLS role the owner of a tapped stream plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapRole {
    /// We are the TLS client on this stream: writes go client → server. (Also `observe`'s view,
    /// where `sent` means "sent by the client".)
    Client,
    /// We are the TLS server on this stream: writes go server → client.
    Server,
}

impl TapRole {
    /// The TLS direction of bytes we write.
    pub fn write_dir(self) -> Dir {
        match self {
            TapRole::Client => Dir::ClientToServer,
            TapRole::Server => Dir::ServerToClient,
        }
    }

    /// The TLS direction of bytes we read.
    pub fn read_dir(self) -> Dir {
        match self {
            TapRole::Client => Dir::ServerToClient,
            TapRole::Server => Dir::ClientToServer,
        }
    }

    /// Whether an alert travelling in `dir` was sent or received by us.
    pub fn direction_of(self, dir: Dir) -> Direction {
        if dir == self.write_dir() {
            Direction::Sent
        } else {
            Direction::Received
        }
    }
}

/// What the tap saw on one connection, so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TapFacts {
    /// Negotiated version, from the ServerHello (supported_versions, else legacy version).
    pub tls_version: Option<TlsVersion>,
    /// The ClientHello's offer.
    pub client_hello: Option<ClientHelloFacts>,
    /// The ClientHello random as hex: joins NSS key-log lines to this connection.
    pub client_random: Option<String>,
    /// ALPN the server selected, when visible (TLS 1.2 ServerHello).
    pub server_alpn: Option<String>,
    /// The CertificateRequest: parsed when plaintext (TLS 1.2 handshake); inferred with null
    /// `ca_names` when it was encrypted in a renegotiation.
    pub cert_request: Option<CertRequest>,
    /// The client's Certificate message (TLS 1.2 plaintext); `Some(empty)` = it sent none.
    pub client_chain: Option<Vec<CertSummary>>,
    /// The server's Certificate message (TLS 1.2 plaintext).
    pub server_chain: Option<Vec<CertSummary>>,
    /// Alerts (`source: "wire"`), direction relative to the tap's role.
    pub alerts: Vec<Alert>,
    /// TLS 1.2 renegotiations after the first handshake.
    pub renegotiations: Vec<Renegotiation>,
    /// Timed steps seen on the wire.
    pub events: Vec<Event>,
    /// Events, alerts and renegotiations not kept because their caps were reached.
    pub events_dropped: u64,
    /// When the wire's reading of the handshake ended (TLS 1.2: both Finished; TLS 1.3: the
    /// client's first encrypted flight, which may be its Finished or an alert, so a TLS 1.3
    /// session records no `handshake_done` event), ms from the connection start.
    pub handshake_done_ms: Option<f64>,
    /// Latest application-data record from the client after the handshake, ms.
    pub last_app_data_from_client_ms: Option<f64>,
    /// Latest application-data record from the server after the handshake, ms.
    pub last_app_data_from_server_ms: Option<f64>,
    /// Latest handshake record after the handshake completed (a renegotiation step), ms.
    pub last_post_handshake_ms: Option<f64>,
    /// Bytes the client sent.
    pub bytes_client_to_server: u64,
    /// Bytes the server sent.
    pub bytes_server_to_client: u64,
    /// Why parsing stopped, when a direction turned out not to be TLS.
    pub not_tls: Option<String>,
}

impl TapFacts {
    /// The `wire` object of an `observe` record.
    pub fn into_wire(self) -> Wire {
        let hello = self.client_hello.unwrap_or_default();
        Wire {
            tls_version: self.tls_version,
            sni: hello.sni,
            alpn: self.server_alpn.or_else(|| hello.alpn.first().cloned()),
            alpn_offered: hello.alpn,
            client_offered_pha: hello.offered_pha,
            cert_request: self.cert_request,
            client_chain: self.client_chain,
            server_chain: self.server_chain,
            alerts: self.alerts,
            renegotiations: self.renegotiations,
            events: self.events,
            bytes_client_to_server: self.bytes_client_to_server,
            bytes_server_to_client: self.bytes_server_to_client,
            client_random: self.client_random,
            ..Wire::default()
        }
    }
}
