//! Facts of one TLS session seen on the wire without terminating it (`observe`).

use super::alert::Alert;
use super::cert::CertSummary;
use super::event::Event;
use super::leg::{CertRequest, LegFailure, Renegotiation, TlsVersion};
use serde::{Deserialize, Serialize};

/// What the wire showed of one TLS session between a real client and a real server.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Wire {
    /// Negotiated version (from ServerHello's supported_versions, else its legacy version).
    pub tls_version: Option<TlsVersion>,
    /// SNI from the ClientHello.
    pub sni: Option<String>,
    /// ALPN selected by the server, when visible (TLS 1.2), else the first offered.
    pub alpn: Option<String>,
    /// ALPN protocols the client offered.
    #[serde(default)]
    pub alpn_offered: Vec<String>,
    /// Whether the ClientHello offered `post_handshake_auth`.
    pub client_offered_pha: bool,
    /// The CertificateRequest, when one was seen.
    pub cert_request: Option<CertRequest>,
    /// The client's Certificate message (TLS 1.2 plaintext only).
    pub client_chain: Option<Vec<CertSummary>>,
    /// The server's Certificate message (TLS 1.2 plaintext only).
    pub server_chain: Option<Vec<CertSummary>>,
    /// Alerts; `sent` = from the client, `received` = from the server.
    pub alerts: Vec<Alert>,
    /// TLS 1.2 renegotiations.
    pub renegotiations: Vec<Renegotiation>,
    /// Timed steps.
    pub events: Vec<Event>,
    /// Bytes relayed client → server.
    pub bytes_client_to_server: u64,
    /// Bytes relayed server → client.
    pub bytes_server_to_client: u64,
    /// The ClientHello random as hex, the key to join NSS key-log secrets later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_random: Option<String>,
    /// How the relayed connection ended abnormally (e.g. the upstream refused it), classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<LegFailure>,
}

impl Wire {
    /// Whether the wire could not show a CertificateRequest: in TLS 1.3 everything after the
    /// ServerHello is encrypted, so `cert_request: null` there means "cannot tell", not "none".
    pub fn cert_request_hidden(&self) -> bool {
        self.cert_request.is_none() && self.tls_version == Some(TlsVersion::Tls13)
    }
}
