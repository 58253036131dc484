//! The facts: one plain, serialisable data model of what happened on a connection.
//!
//! Capturers write these facts; the diagnosis reads them; renderers show them. Nothing downstream
//! re-derives a fact, and nothing here interprets one. The JSON form of [`Flow`] is the recording
//! format of the interface contract (`schema: 1`), so renaming or removing a field here is a
//! breaking change; adding one is free.

mod cert;
mod leg;
mod wire;

pub use cert::{CertSummary, ChainVerdict};
pub use leg::{
    Alert, AlertLevel, CertRequest, ClientHelloFacts, Direction, Event, IdentityCandidate,
    IdentityChoice, Initiator, Leg, LegFailure, Phase, Renegotiation, ServerVerification,
    TlsEngine, TlsVersion,
};
pub use wire::Wire;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The recording schema version written in every record.
pub const SCHEMA: u32 = 1;

/// One record: a connection and (for `kind: exchange`) one HTTP exchange on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Flow {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// Whether this record is one HTTP exchange or a connection that ended without one.
    pub kind: RecordKind,
    /// Which command produced the record.
    pub mode: Mode,
    /// Process-unique connection number; all exchanges of one connection share it.
    pub connection_id: u64,
    /// Position of this exchange on its connection (0-based); absent on connection records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_index: Option<u32>,
    /// Wall-clock time the client connection was accepted; every `at_ms` counts from here.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The client's socket address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// Where the upstream leg goes, as `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Client ⇄ mtlscope, where mtlscope is the TLS server. Null where it never existed.
    pub client_leg: Option<Leg>,
    /// mtlscope ⇄ server, where mtlscope is the TLS client. Null where it never existed.
    pub upstream_leg: Option<Leg>,
    /// `observe` mode: the one TLS session seen on the wire, instead of two legs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<Wire>,
    /// The HTTP request of this exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// The HTTP response of this exchange (relayed, or produced by mtlscope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// Faults that acted on this connection, so an injected failure is never taken for real.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultEffect>,
    /// `--upstream-engine auto`: this exchange was first sent over a rustls upstream leg, which
    /// could not answer the server's late certificate request, and then replayed once over a
    /// new OpenSSL leg (`upstream_leg` and `response` are the replay's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Replay>,
    /// Why the connection (or exchange) ended abnormally, in words; null when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The diagnosis: filled by `diagnose`, never by a capturer.
    pub findings: Vec<Finding>,
}

/// The first attempt of an exchange that was replayed over another upstream leg.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Replay {
    /// Why it was replayed: the late request the first leg could not answer
    /// (`renegotiation` or `post_handshake`).
    pub reason: Phase,
    /// The first attempt's upstream leg, as it ended.
    pub first_leg: Leg,
    /// The status the server answered the first attempt with; null when the leg failed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_status: Option<u16>,
    /// When the replay was sent upstream, ms from connection start.
    pub at_ms: f64,
}

/// `kind` of a record.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// One HTTP exchange.
    Exchange,
    /// A connection that ended without an exchange (e.g. a failed handshake).
    Connection,
}

/// The command that produced a record.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `mtlscope reverse`.
    Reverse,
    /// `mtlscope forward`.
    Forward,
    /// `mtlscope observe`.
    Observe,
    /// `mtlscope probe`.
    Probe,
}

/// The request line and the headers worth keeping.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Request {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target as the client sent it (origin-form or absolute-form).
    pub uri: String,
    /// HTTP version on the client leg, e.g. `HTTP/1.1`, `HTTP/2.0`.
    pub version: String,
    /// Selected headers; credential values redacted unless `--no-redact`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// When the request head arrived from the client.
    pub at_ms: f64,
    /// When it was sent upstream; null if it never was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_at_ms: Option<f64>,
}

/// The response as the client received it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Who produced it: the upstream (relayed) or mtlscope itself (e.g. a 502).
    pub source: ResponseSource,
    /// Selected headers; credential values redacted unless `--no-redact`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// The first bytes of the body of an error response (400–599), lossily decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_excerpt: Option<String>,
    /// When the response head arrived.
    pub at_ms: f64,
}

/// Who produced a response.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseSource {
    /// Relayed from the upstream server.
    #[default]
    Upstream,
    /// Produced by mtlscope (an error page, a 407, a fault).
    Mtlscope,
}

/// One header as a name/value pair (names lowercase).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Lowercase header name.
    pub name: String,
    /// Value, or `<redacted>` for credentials.
    pub value: String,
}

/// A configured fault and what it did on this connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultEffect {
    /// The fault as configured, e.g. `strip-client-cert`.
    pub name: String,
    /// What it did, in words.
    pub effect: String,
}

/// One diagnosis finding (see `docs/findings.md`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    /// Stable id from the catalogue, e.g. `no-client-cert`.
    pub id: String,
    /// How much this finding explains.
    pub severity: Severity,
    /// One plain sentence.
    pub summary: String,
    /// The recorded facts it rests on, quoted.
    pub evidence: Vec<String>,
    /// What to change, and where (client, server or middlebox).
    pub fix: String,
}

/// Severity of a finding.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Will break something or some clients.
    Warning,
    /// Explains a failure.
    Error,
}

impl Flow {
    /// A connection record with no legs yet; capturers fill it in.
    pub fn new(mode: Mode, connection_id: u64, started_at: OffsetDateTime) -> Flow {
        Flow {
            schema: SCHEMA,
            kind: RecordKind::Connection,
            mode,
            connection_id,
            exchange_index: None,
            started_at,
            client_addr: None,
            upstream: None,
            client_leg: None,
            upstream_leg: None,
            wire: None,
            request: None,
            response: None,
            faults: Vec::new(),
            replayed: None,
            error: None,
            findings: Vec::new(),
        }
    }

    /// The response status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }
}

/// Milliseconds between two instants, rounded to microseconds, as recorded in `at_ms`.
pub fn ms_between(start: std::time::Instant, at: std::time::Instant) -> f64 {
    let micros = at.saturating_duration_since(start).as_micros() as f64;
    micros / 1000.0
}
