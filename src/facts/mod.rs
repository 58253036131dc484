//! The facts: one plain, serialisable data model of what happened on a connection.
//!
//! Capturers write these facts; the diagnosis reads them; renderers show them. Nothing downstream
//! re-derives a fact, and nothing here interprets one. The JSON form of [`Flow`] is the recording
//! format of the interface contract (`schema: 1`), so renaming or removing a field here is a
//! breaking change; adding one is free.

#[macro_use]
mod named;
mod alert;
mod capture;
mod cert;
mod event;
mod http;
mod leg;
mod offload;
pub mod path;
mod revocation;
mod wire;

pub use alert::{
    Alert, AlertDescription, AlertLevel, AlertSource, Direction, ENCRYPTED_ALERT_CODE,
};
pub use capture::{
    CaptureFacts, Decryption, FrameMark, GapEffect, GapKind, StreamDirection, StreamGap,
};
pub use cert::{
    joined, CertProblem, CertSummary, ChainVerdict, ExtKeyUsage, IssuerLookup, KeyUsage,
    KnownIssuer,
};
pub use event::{Event, EventKind, Peer};
pub use http::HttpVersion;
pub use leg::{
    CertRequest, ChainFrom, ClientHelloFacts, FailureKind, IdentityCandidate, IdentityChoice,
    Initiator, Leg, LegFailure, Phase, Renegotiation, RenegotiationOutcome, ServerVerification,
    Stage, TlsEngine, TlsVersion, Transport,
};
pub use offload::{ForwardedIdentity, HeaderExcerpt};
pub use revocation::{RevocationCheck, RevocationSource, RevocationStatus};
pub use wire::Wire;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The recording schema version written in every record. Schema 2 adds `legs_from` (see
/// `docs/recording.md`); readers still read schema 1.
pub const SCHEMA: u32 = 2;

/// One record: a connection and (for `kind: exchange`) one HTTP exchange on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Flow {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// Whether this record is one HTTP exchange or a connection that ended without one.
    pub kind: RecordKind,
    /// Which command produced the record.
    pub mode: Mode,
    /// The mtlscope process that wrote the record (its start time and pid, e.g.
    /// `20261130T021713Z-12345`), so ids stay unambiguous in a file several runs appended to.
    /// Empty in records written before runs were recorded.
    #[serde(default)]
    pub run: String,
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
    /// Client ⇄ mtlscope, where mtlscope is the TLS server. Absent where it never existed, or
    /// where `legs_from` names the exchange that carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_leg: Option<std::sync::Arc<Leg>>,
    /// mtlscope ⇄ server, where mtlscope is the TLS client. Absent where it never existed, or
    /// where `legs_from` names the exchange that carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_leg: Option<std::sync::Arc<Leg>>,
    /// Schema 2: the `exchange_index` of an earlier exchange of the same connection whose legs
    /// this exchange shares unchanged; `client_leg` and `upstream_leg` are then left out.
    /// Readers resolve it; in memory it is always `None` and the legs are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legs_from: Option<u32>,
    /// Which upstream leg of the client connection carried this exchange (0 = the first);
    /// a new leg is opened when the upstream ended the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_leg_index: Option<u32>,
    /// The request was sent again on a new upstream leg, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_retry: Option<UpstreamRetry>,
    /// `--upstream-pool`: the pooled upstream connection that carried this exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_connection: Option<PooledConnection>,
    /// `observe` mode: the one TLS session seen on the wire, instead of two legs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<Box<Wire>>,
    /// `analyze`: the capture file and frames the record was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Box<CaptureFacts>>,
    /// The HTTP request of this exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// The HTTP response of this exchange (relayed, or produced by mtlscope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// Faults that acted on this connection, so an injected failure is never taken for real.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultEffect>,
    /// A limit of mtlscope's own ended this connection (not the client, the server or a fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_limit: Option<OwnLimit>,
    /// `--upstream-engine auto`: this exchange was first sent over a rustls upstream leg, which
    /// could not answer the server's late certificate request, and then replayed once over a
    /// new OpenSSL leg (`upstream_leg` and `response` are the replay's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Box<Replay>>,
    /// Why the connection (or exchange) ended abnormally, in words; null when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether `findings` is the diagnosis mtlscope made when it wrote the record (empty then
    /// means no rule applied). Absent in records written before it was recorded: readers show
    /// what such a record carries and never diagnose it (`report --rediagnose` does). Written
    /// only when true, so such a record reads and writes back unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnosed: bool,
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
    /// `mtlscope analyze`: read from a packet capture.
    Capture,
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
    /// HTTP version on the client leg (recorded as `HTTP/1.1`, `HTTP/2.0`, …).
    pub version: HttpVersion,
    /// Selected headers; credential values redacted unless `--no-redact`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// When the request head arrived from the client.
    pub at_ms: f64,
    /// When it was sent upstream; null if it never was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_at_ms: Option<f64>,
    /// The first bytes (at most 4 KiB) of the body sent upstream, lossily decoded, credential
    /// fields of form and JSON bodies redacted unless `--no-redact`; `…` marks a cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_excerpt: Option<String>,
    /// Playing a TLS offloader (`--forward-client-cert`, or a plain-HTTP upstream): the
    /// identity headers added to the request as forwarded, and those taken out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_identity: Option<ForwardedIdentity>,
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
    /// Headers of the upstream's response that mtlscope did not pass on, with their values:
    /// `alt-svc`, which would send the client around the proxy (e.g. to HTTP/3 on the server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_headers: Vec<Header>,
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

/// A request mtlscope sent again on a new upstream leg because the upstream ended the leg it
/// was sent on before answering (what a client talking to the server directly would do).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpstreamRetry {
    /// The leg the first attempt went to.
    pub from_leg: u32,
    /// Why the first attempt got no answer, in words.
    pub reason: String,
    /// Whether any byte of the first attempt had reached the upstream.
    pub was_sent: bool,
}

/// `--upstream-pool`: which pooled upstream connection carried an exchange. The record's
/// `upstream_leg` holds that connection's handshake, which happened where `opened_for` says.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PooledConnection {
    /// The upstream connection's number in the pool (1, 2, …; unique in the process).
    pub id: u64,
    /// The client connection it was opened (and its handshake recorded) for.
    pub opened_for: u64,
    /// Whether it was opened for an earlier client connection and reused for this one (so no
    /// handshake, and no CertificateRequest, happened for this client connection).
    pub reused: bool,
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

/// A limit of mtlscope's own that refused a connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum OwnLimit {
    /// `--max-connections`: `max` client connections were already open at accept.
    MaxConnections {
        /// The configured bound.
        max: usize,
    },
}

/// A finding id: the catalogue of `docs/findings.md`, checked by the compiler (every rule names
/// one of these) and by a test (the document lists exactly these).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum FindingId {
    /// `no-client-cert`.
    NoClientCert,
    /// `issuer-not-in-ca-list`.
    IssuerNotInCaList,
    /// `empty-ca-list`.
    EmptyCaList,
    /// `chain-untrusted`.
    ChainUntrusted,
    /// `chain-incomplete`.
    ChainIncomplete,
    /// `cert-expired`.
    CertExpired,
    /// `cert-not-yet-valid`.
    CertNotYetValid,
    /// `cert-revoked`.
    CertRevoked,
    /// `wrong-purpose`.
    WrongPurpose,
    /// `no-common-signature-scheme`.
    NoCommonSignatureScheme,
    /// `client-cert-not-verified`.
    ClientCertNotVerified,
    /// `ca-list-too-large`.
    CaListTooLarge,
    /// `key-unusable`.
    KeyUnusable,
    /// `handshake-rejected`.
    HandshakeRejected,
    /// `renegotiation-requested`.
    RenegotiationRequested,
    /// `post-handshake-auth`.
    PostHandshakeAuth,
    /// `http2-blocks-late-auth`.
    Http2BlocksLateAuth,
    /// `access-denied-after-auth`.
    AccessDeniedAfterAuth,
    /// `cert-not-registered`.
    CertNotRegistered,
    /// `iis-substatus`.
    IisSubstatus,
    /// `identity-not-forwarded`.
    IdentityNotForwarded,
    /// `client-sent-identity-header`.
    ClientSentIdentityHeader,
    /// `intercepted-upstream`.
    InterceptedUpstream,
    /// `server-cert-untrusted`.
    ServerCertUntrusted,
    /// `proxy-auth-required`.
    ProxyAuthRequired,
    /// `upstream-unreachable`.
    UpstreamUnreachable,
    /// `path-removes-cert-request`.
    PathRemovesCertRequest,
    /// `path-changes-ca-list`.
    PathChangesCaList,
    /// `path-blocks-late-request`.
    PathBlocksLateRequest,
    /// `path-strips-client-cert`.
    PathStripsClientCert,
    /// `injected-fault`.
    InjectedFault,
    /// `proxy-limit-reached`.
    ProxyLimitReached,
    /// `unexplained`.
    Unexplained,
    /// `client-not-tls`.
    ClientNotTls,
    /// `port-check`.
    PortCheck,
    /// `not-certificate-related`.
    NotCertificateRelated,
    /// An id this version does not know (a newer recording).
    #[serde(other)]
    Other,
}

impl FindingId {
    /// Every id the diagnosis can emit.
    pub const ALL: &'static [FindingId] = &[
        FindingId::NoClientCert,
        FindingId::IssuerNotInCaList,
        FindingId::EmptyCaList,
        FindingId::ChainUntrusted,
        FindingId::ChainIncomplete,
        FindingId::CertExpired,
        FindingId::CertNotYetValid,
        FindingId::CertRevoked,
        FindingId::WrongPurpose,
        FindingId::NoCommonSignatureScheme,
        FindingId::ClientCertNotVerified,
        FindingId::CaListTooLarge,
        FindingId::KeyUnusable,
        FindingId::HandshakeRejected,
        FindingId::RenegotiationRequested,
        FindingId::PostHandshakeAuth,
        FindingId::Http2BlocksLateAuth,
        FindingId::AccessDeniedAfterAuth,
        FindingId::CertNotRegistered,
        FindingId::IisSubstatus,
        FindingId::IdentityNotForwarded,
        FindingId::ClientSentIdentityHeader,
        FindingId::InterceptedUpstream,
        FindingId::ServerCertUntrusted,
        FindingId::ProxyAuthRequired,
        FindingId::UpstreamUnreachable,
        FindingId::PathRemovesCertRequest,
        FindingId::PathChangesCaList,
        FindingId::PathBlocksLateRequest,
        FindingId::PathStripsClientCert,
        FindingId::InjectedFault,
        FindingId::ProxyLimitReached,
        FindingId::Unexplained,
        FindingId::ClientNotTls,
        FindingId::PortCheck,
        FindingId::NotCertificateRelated,
    ];

    /// The id as recorded, e.g. `no-client-cert`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingId::NoClientCert => "no-client-cert",
            FindingId::IssuerNotInCaList => "issuer-not-in-ca-list",
            FindingId::EmptyCaList => "empty-ca-list",
            FindingId::ChainUntrusted => "chain-untrusted",
            FindingId::ChainIncomplete => "chain-incomplete",
            FindingId::CertExpired => "cert-expired",
            FindingId::CertNotYetValid => "cert-not-yet-valid",
            FindingId::CertRevoked => "cert-revoked",
            FindingId::WrongPurpose => "wrong-purpose",
            FindingId::NoCommonSignatureScheme => "no-common-signature-scheme",
            FindingId::ClientCertNotVerified => "client-cert-not-verified",
            FindingId::CaListTooLarge => "ca-list-too-large",
            FindingId::KeyUnusable => "key-unusable",
            FindingId::HandshakeRejected => "handshake-rejected",
            FindingId::RenegotiationRequested => "renegotiation-requested",
            FindingId::PostHandshakeAuth => "post-handshake-auth",
            FindingId::Http2BlocksLateAuth => "http2-blocks-late-auth",
            FindingId::AccessDeniedAfterAuth => "access-denied-after-auth",
            FindingId::CertNotRegistered => "cert-not-registered",
            FindingId::IisSubstatus => "iis-substatus",
            FindingId::IdentityNotForwarded => "identity-not-forwarded",
            FindingId::ClientSentIdentityHeader => "client-sent-identity-header",
            FindingId::InterceptedUpstream => "intercepted-upstream",
            FindingId::ServerCertUntrusted => "server-cert-untrusted",
            FindingId::ProxyAuthRequired => "proxy-auth-required",
            FindingId::UpstreamUnreachable => "upstream-unreachable",
            FindingId::PathRemovesCertRequest => "path-removes-cert-request",
            FindingId::PathChangesCaList => "path-changes-ca-list",
            FindingId::PathBlocksLateRequest => "path-blocks-late-request",
            FindingId::PathStripsClientCert => "path-strips-client-cert",
            FindingId::InjectedFault => "injected-fault",
            FindingId::ProxyLimitReached => "proxy-limit-reached",
            FindingId::Unexplained => "unexplained",
            FindingId::ClientNotTls => "client-not-tls",
            FindingId::PortCheck => "port-check",
            FindingId::NotCertificateRelated => "not-certificate-related",
            FindingId::Other => "other",
        }
    }
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for FindingId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One diagnosis finding (see `docs/findings.md`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    /// Stable id from the catalogue, e.g. `no-client-cert`.
    pub id: FindingId,
    /// How much this finding explains.
    pub severity: Severity,
    /// One plain sentence.
    pub summary: String,
    /// The recorded facts it rests on, quoted.
    pub evidence: Vec<String>,
    /// What to change, and where (client, server or middlebox).
    pub fix: String,
    /// Concluded rather than observed: the evidence says what would confirm it.
    #[serde(default)]
    pub inferred: bool,
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
            run: String::new(),
            connection_id,
            exchange_index: None,
            started_at,
            client_addr: None,
            upstream: None,
            client_leg: None,
            upstream_leg: None,
            legs_from: None,
            upstream_leg_index: None,
            upstream_retry: None,
            upstream_connection: None,
            wire: None,
            capture: None,
            request: None,
            response: None,
            faults: Vec::new(),
            own_limit: None,
            replayed: None,
            error: None,
            diagnosed: false,
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

#[cfg(test)]
#[path = "compat_tests.rs"]
mod compat_tests;
