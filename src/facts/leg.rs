//! Facts of one TLS leg: hello, certificate request, chains, alerts, timed events, the end.

use super::alert::Alert;
use super::cert::{CertSummary, ChainVerdict};
use super::event::Event;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One TLS leg, seen from mtlscope: the client leg (mtlscope is the server) or the upstream leg
/// (mtlscope is the client).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Leg {
    /// The peer's socket address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Negotiated protocol version; null if the handshake never got that far.
    pub tls_version: Option<TlsVersion>,
    /// Negotiated cipher suite, IANA name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// Negotiated ALPN protocol, e.g. `h2`, `http/1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// Server name: what the client sent (client leg) or what mtlscope sent (upstream leg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The ClientHello random as hex: the key that joins this leg to `--keylog` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_random: Option<String>,
    /// The ClientHello of this leg (client leg: the client's; upstream leg: mtlscope's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_hello: Option<ClientHelloFacts>,
    /// The CertificateRequest: what mtlscope sent (client leg) or what the server sent (upstream
    /// leg). Null when none was sent.
    pub cert_request: Option<CertRequest>,
    /// Upstream leg: CertificateRequests after the first (a server that asks in the handshake
    /// and again in a renegotiation), each with its phase, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later_cert_requests: Vec<CertRequest>,
    /// Upstream leg: the phase (`renegotiation` or `post_handshake`) of a late certificate
    /// request that mtlscope's TLS engine answered and the server accepted (TLS 1.2: the
    /// server's Finished; TLS 1.3: no alert in answer to mtlscope's Finished); null when there
    /// was none, or it was refused or cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_late_request: Option<Phase>,
    /// Upstream leg: the TLS engine mtlscope ran it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<TlsEngine>,
    /// Client leg: the chain the client presented. Upstream leg: the chain mtlscope presented.
    /// Empty when none was presented (or none was asked for: see `cert_request`).
    pub chain: Vec<CertSummary>,
    /// Where `chain` comes from when not from this handshake: a resumed session carries no
    /// Certificate, so its chain is the one presented in the handshake that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_from: Option<ChainFrom>,
    /// Whether this leg resumed an earlier TLS session (no certificates, no CertificateRequest
    /// on the wire).
    #[serde(default)]
    pub resumed: bool,
    /// When the presented chain does not include its last certificate's issuer: what
    /// mtlscope's configured certificates say about that issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_lookup: Option<super::cert::IssuerLookup>,
    /// Client leg: mtlscope's own verdict on the presented chain against `--client-ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_verdict: Option<ChainVerdict>,
    /// Client leg, with `--check-revocation` or `--crl`: what CRLs and OCSP responders said
    /// about the presented chain (attached when the check finished before the record was
    /// written; it never holds up the relay).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation: Vec<super::revocation::RevocationCheck>,
    /// Upstream leg: whether mtlscope's Certificate message went on the wire (`true`; `chain`
    /// is what it carried, empty for an empty Certificate) or the handshake ended before it
    /// (`false`: nothing was presented, whatever `identity` chose). Absent when no certificate
    /// was asked for, or the engine does not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sent: Option<bool>,
    /// Upstream leg: which identity mtlscope chose to present, and why (the configured intent;
    /// `chain` and `certificate_sent` say what went on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityChoice>,
    /// The server's chain: the upstream's (upstream leg) or mtlscope's own (client leg).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_chain: Vec<CertSummary>,
    /// Upstream leg: whether the server's chain verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_verification: Option<ServerVerification>,
    /// Alerts sent and received, in order.
    pub alerts: Vec<Alert>,
    /// Timed steps, in order.
    pub events: Vec<Event>,
    /// TLS 1.2 renegotiations seen after the first handshake.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renegotiations: Vec<Renegotiation>,
    /// Wall-clock time of the handshake: certificate validity is judged at this instant.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub handshake_at: Option<OffsetDateTime>,
    /// When the handshake completed, ms from connection start; null if it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_done_ms: Option<f64>,
    /// The TLS or I/O error that ended the leg, in words.
    pub error: Option<String>,
    /// The same error, classified for rules and scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<LegFailure>,
    /// How the leg is carried when that is not TLS: `plain` for a plain-HTTP upstream (then
    /// every TLS fact stays empty). Absent means TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
}

impl Leg {
    /// The protocol for views: the TLS version, or `plain` for a plain-TCP leg.
    pub fn protocol(&self) -> Option<&'static str> {
        match (self.tls_version, self.transport) {
            (Some(v), _) => Some(v.as_str()),
            (None, Some(Transport::Plain)) => Some("plain"),
            (None, _) => None,
        }
    }
}

/// Where a leg's `chain` was seen.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChainFrom {
    /// The handshake that created the session this leg resumed.
    EarlierHandshake,
}

/// How a leg is carried.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TLS (the default, and what every other leg fact describes).
    Tls,
    /// Plain TCP: no handshake, no certificates (`reverse --upstream http://…`).
    Plain,
}

/// TLS protocol version.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.0 (seen only on the wire; mtlscope does not negotiate it).
    #[serde(rename = "TLSv1.0")]
    Tls10,
    /// TLS 1.1 (seen only on the wire).
    #[serde(rename = "TLSv1.1")]
    Tls11,
    /// TLS 1.2.
    #[serde(rename = "TLSv1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl TlsVersion {
    /// The contract's spelling, e.g. `TLSv1.2`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    /// From the wire value (0x0301..=0x0304).
    pub fn from_wire(v: u16) -> Option<TlsVersion> {
        match v {
            0x0301 => Some(TlsVersion::Tls10),
            0x0302 => Some(TlsVersion::Tls11),
            0x0303 => Some(TlsVersion::Tls12),
            0x0304 => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// What a ClientHello offered.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientHelloFacts {
    /// SNI host name, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN protocols offered, in order.
    pub alpn: Vec<String>,
    /// Versions offered (supported_versions, or the legacy version).
    pub versions: Vec<TlsVersion>,
    /// Signature schemes offered, rustls/IANA names.
    pub signature_schemes: Vec<String>,
    /// Whether the `post_handshake_auth` extension was offered (TLS 1.3).
    pub offered_pha: bool,
}

/// mtlscope's TLS client on the upstream leg.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TlsEngine {
    /// rustls: refuses TLS 1.2 renegotiation, never offers TLS 1.3 post-handshake auth.
    Rustls,
    /// OpenSSL: completes both.
    Openssl,
}

impl TlsEngine {
    /// The name as the flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsEngine::Rustls => "rustls",
            TlsEngine::Openssl => "openssl",
        }
    }
}

/// When the certificate was asked for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// In the initial handshake.
    Handshake,
    /// In a TLS 1.2 renegotiation after the handshake.
    Renegotiation,
    /// In TLS 1.3 post-handshake authentication.
    PostHandshake,
}

/// A CertificateRequest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertRequest {
    /// When in the connection the certificate was asked for.
    pub phase: Phase,
    /// Acceptable-CA names as RFC 4514 strings; empty for an empty list; null when unknown
    /// (encrypted on the wire).
    pub ca_names: Option<Vec<String>>,
    /// The same names as hex DER (`Name` with its outer SEQUENCE), for exact comparison.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_names_der: Vec<String>,
    /// Signature schemes the requester accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_schemes: Vec<String>,
    /// Client leg only: whether mtlscope insisted on a certificate (`required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandatory: Option<bool>,
    /// When the request was seen, ms from connection start.
    pub at_ms: f64,
    /// For a late request: ms since the HTTP request that triggered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_request_ms: Option<f64>,
}

/// Which identity mtlscope presented on the upstream leg, and why.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IdentityChoice {
    /// The identities that were candidates, with their chains (presented or withheld).
    pub candidates: Vec<IdentityCandidate>,
    /// Label of the identity presented; null when none was.
    pub chosen: Option<String>,
    /// Why this one (or why none), in words.
    pub reason: String,
}

/// One configured upstream identity.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IdentityCandidate {
    /// Where it came from, e.g. the certificate file name.
    pub label: String,
    /// Its chain, leaf first.
    pub chain: Vec<CertSummary>,
    /// Whether any certificate in the chain matches the server's CA names (null: not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches_ca_names: Option<bool>,
    /// `probe`'s throw-away identity, from a CA created for this run only: no server can have
    /// verified it, so a server that accepts it checks nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throwaway: bool,
    /// What CRLs and OCSP responders said about this chain, checked at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation: Vec<super::revocation::RevocationCheck>,
}

/// The result of verifying the upstream's certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerVerification {
    /// Whether the chain verified against the upstream trust anchors and the name.
    pub ok: bool,
    /// Why not, in words (e.g. `unknown issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why not, classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<super::cert::CertProblem>,
    /// Whether the verdict was enforced: false with `--insecure-upstream`, when the connection
    /// went on whatever the verdict.
    pub enforced: bool,
}

/// A TLS 1.2 renegotiation attempt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Renegotiation {
    /// When the first handshake record after the handshake was seen.
    pub at_ms: f64,
    /// Who started it.
    pub initiated_by: Initiator,
    /// Ms since the last application data before it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_app_data_ms: Option<f64>,
    /// Whether it completed, was refused (and by whom); null while unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RenegotiationOutcome>,
    /// mtlscope's own TLS engine refused it (rules read this, not the words).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused_by_mtlscope: bool,
}

/// Who started a renegotiation.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The TLS server (HelloRequest).
    Server,
    /// The TLS client (a new ClientHello).
    Client,
}

/// How a TLS 1.2 renegotiation ended.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RenegotiationOutcome {
    /// Both sides finished the new handshake.
    Completed,
    /// The connection ended before it finished.
    Incomplete,
    /// The client answered with an alert (no_renegotiation or fatal).
    AlertFromClient,
    /// The server answered with an alert.
    AlertFromServer,
    /// mtlscope's own TLS engine refused it (rustls never renegotiates).
    RefusedByMtlscope,
    /// mtlscope completed it (an engine that renegotiates).
    CompletedByMtlscope,
    /// A value this version does not know (a newer recording).
    #[serde(other)]
    Other,
}

impl RenegotiationOutcome {
    /// The recorded spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RenegotiationOutcome::Completed => "completed",
            RenegotiationOutcome::Incomplete => "incomplete",
            RenegotiationOutcome::AlertFromClient => "alert_from_client",
            RenegotiationOutcome::AlertFromServer => "alert_from_server",
            RenegotiationOutcome::RefusedByMtlscope => "refused_by_mtlscope",
            RenegotiationOutcome::CompletedByMtlscope => "completed_by_mtlscope",
            RenegotiationOutcome::Other => "other",
        }
    }
}

/// The classified end of a leg.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LegFailure {
    /// Where it failed.
    pub stage: Stage,
    /// What failed.
    pub kind: FailureKind,
}

/// Where in a leg's life it failed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Opening the TCP connection (or resolving the name).
    Connect,
    /// Reading the client's first bytes, before a ClientHello was whole.
    ClientHello,
    /// During the TLS handshake.
    Handshake,
    /// After the handshake completed (a late request, a close, a reset).
    AfterHandshake,
    /// In the HTTP exchange.
    Http,
    /// Before any I/O: mtlscope's own configuration.
    Config,
    /// A value this version does not know (a newer recording).
    #[serde(other)]
    Other,
}

/// What ended a leg.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP connection refused.
    ConnectionRefused,
    /// A step took longer than its bound.
    TimedOut,
    /// The peer reset the connection.
    Reset,
    /// The connection was aborted locally.
    Aborted,
    /// The peer closed the connection (no alert, no answer).
    Eof,
    /// Writing to a connection the peer had closed.
    BrokenPipe,
    /// A file or name was not found.
    NotFound,
    /// Bytes that do not parse.
    InvalidData,
    /// No route to the host or network.
    Unreachable,
    /// The local address is not available.
    AddressNotAvailable,
    /// The host name did not resolve.
    Dns,
    /// Another I/O error.
    Io,
    /// The peer sent a fatal alert.
    AlertReceived,
    /// The client presented no certificate to a mandatory request.
    NoCertificatesPresented,
    /// The peer's certificate was rejected.
    PeerCertificateInvalid,
    /// The server asked to renegotiate again after a refusal.
    RenegotiationRefused,
    /// A TLS 1.3 post-handshake CertificateRequest the engine cannot answer.
    PostHandshakeCertificateRequest,
    /// A TLS message out of place.
    UnexpectedMessage,
    /// The peer does not speak TLS.
    NotTls,
    /// The peer spoke plain HTTP to a TLS port.
    PlainHttp,
    /// mtlscope's own TLS configuration could not be built.
    Config,
    /// No common protocol version, cipher suite or signature scheme.
    Incompatible,
    /// No common ALPN protocol.
    NoApplicationProtocol,
    /// A signature or MAC did not verify.
    DecryptError,
    /// Another TLS error.
    Tls,
    /// A `--fault` cut the connection.
    CutByFault,
    /// A `--fault alert=NAME` answered the client.
    InjectedAlert,
    /// The HTTP layer failed.
    Http,
    /// The HTTP/2 server reset the request with `HTTP_1_1_REQUIRED` (RFC 9113 §7): it will
    /// answer it only over HTTP/1.1 (Apache does so to ask a client certificate late).
    Http11Required,
    /// The request could not be formed.
    BadRequest,
    /// The server name is not valid for SNI.
    ServerName,
    /// mtlscope refused a client whose SNI names a host the listener does not answer for
    /// (`reverse` without `--server-cert`: the upstream's host and `--server-name`s).
    UnservedName,
    /// A private key could not be used with its certificate.
    KeyUnusable,
    /// The client opened the TCP connection and closed it without sending a byte (a TCP
    /// health check, `nc -z`, a port scanner).
    NothingSent,
    /// A value this version does not know (a newer recording).
    #[serde(other)]
    Other,
}

/// The recorded snake_case spelling of a typed fact.
fn spelling<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(String::from))
        .unwrap_or_default()
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&spelling(self))
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&spelling(self))
    }
}

impl std::fmt::Display for RenegotiationOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
