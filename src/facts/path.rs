//! What one network path showed about one server: the facts `probe --via` and `diff --paths`
//! compare between a direct path and a path through a device. Built from flows (each check is
//! one recorded connection), read by `diagnose::paths`, shown by `render::paths`.

use super::{CertRequest, CertSummary, LegFailure, TlsVersion};
use serde::Serialize;

/// When the server asked for a certificate, on one path, version and request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Asked {
    /// In the initial handshake.
    Handshake,
    /// By TLS 1.2 renegotiation after the request.
    Renegotiation,
    /// By TLS 1.3 post-handshake authentication (seen, or inferred from the answer).
    PostHandshake,
    /// Not at all: the request was answered without a certificate request.
    No,
    /// Not known: no answer came back.
    Unknown,
}

impl Asked {
    /// snake_case name for JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Asked::Handshake => "handshake",
            Asked::Renegotiation => "renegotiation",
            Asked::PostHandshake => "post_handshake",
            Asked::No => "no",
            Asked::Unknown => "unknown",
        }
    }

    /// Whether the server asked at all (in the handshake or later).
    pub fn asked(self) -> bool {
        matches!(
            self,
            Asked::Handshake | Asked::Renegotiation | Asked::PostHandshake
        )
    }

    /// Whether it asked late (after the request).
    pub fn late(self) -> bool {
        matches!(self, Asked::Renegotiation | Asked::PostHandshake)
    }
}

/// One network path to one server, as seen by the checks made over it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PathFacts {
    /// The path's name: `direct`, or the proxy's URL (without password).
    pub label: String,
    /// The server's chain as this path delivered it (the first one seen), leaf first.
    pub server_chain: Vec<CertSummary>,
    /// One entry per connection made over the path.
    pub checks: Vec<PathCheck>,
}

/// One connection over a path: what was tried and what came back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathCheck {
    /// The protocol version offered (alone), when only one was.
    pub offered: Option<TlsVersion>,
    /// The request path (`/` when no request was made).
    pub path: String,
    /// Label of the identity on offer; `None` for none.
    pub identity: Option<String>,
    /// The version negotiated.
    pub negotiated: Option<TlsVersion>,
    /// The ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// When the certificate was asked for.
    pub asked: Asked,
    /// Whether `asked` is inferred from the answer rather than seen.
    pub asked_inferred: bool,
    /// The CertificateRequest seen (handshake or late).
    pub cert_request: Option<CertRequest>,
    /// Whether a certificate was presented.
    pub presented: bool,
    /// Alerts, as `received|sent LEVEL DESCRIPTION`.
    pub alerts: Vec<String>,
    /// The HTTP status, if an answer came back.
    pub status: Option<u16>,
    /// How the connection failed, if it did.
    pub failure: Option<LegFailure>,
    /// The failure in words.
    pub error: Option<String>,
}

impl PathCheck {
    /// The key two paths' checks are matched on: version offered, request path, identity.
    pub fn key(&self) -> (Option<TlsVersion>, &str, Option<&str>) {
        (self.offered, self.path.as_str(), self.identity.as_deref())
    }

    /// Whether the server accepted the request (a 2xx or 3xx answer).
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }

    /// Whether the attempt was refused: a 4xx/5xx answer, or a connection that failed.
    pub fn refused(&self) -> bool {
        self.status.is_some_and(|s| s >= 400) || (self.status.is_none() && self.failure.is_some())
    }
}
