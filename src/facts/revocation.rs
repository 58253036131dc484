//! Facts of a revocation check: what a CRL or an OCSP responder said about one certificate.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One certificate's revocation status, as one source gave it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevocationCheck {
    /// The certificate's subject (RFC 4514).
    pub subject: String,
    /// Its serial number, colon-separated hex (as in `CertSummary::serial`).
    pub serial: String,
    /// What the source said.
    pub status: RevocationStatus,
    /// Where the answer came from.
    pub source: RevocationSource,
    /// Where the answer came from: the CRL's URL or file, or the OCSP responder's URL.
    pub location: String,
    /// The CRL's thisUpdate, or the OCSP response's thisUpdate.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub this_update: Option<OffsetDateTime>,
    /// The CRL's or OCSP response's nextUpdate: the answer is cached until then.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_update: Option<OffsetDateTime>,
    /// When the certificate was revoked.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<OffsetDateTime>,
    /// The revocation reason (RFC 5280 name, e.g. `keyCompromise`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the status is unknown (a fetch that failed or timed out, a bad signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of a revocation source.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RevocationStatus {
    /// Not listed as revoked.
    Good,
    /// Listed as revoked.
    Revoked,
    /// No answer (see `error`).
    Unknown,
    /// A value this version does not know (a newer recording).
    #[serde(other)]
    Other,
}

/// The kind of revocation source.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RevocationSource {
    /// A CRL given with `--crl FILE`.
    CrlFile,
    /// A CRL fetched from the certificate's CRL distribution point.
    CrlUrl,
    /// The OCSP responder named in the certificate's authority information access.
    Ocsp,
    /// A value this version does not know (a newer recording).
    #[serde(other)]
    Other,
}

impl RevocationSource {
    /// In words, for evidence.
    pub fn words(self) -> &'static str {
        match self {
            RevocationSource::CrlFile => "the CRL file",
            RevocationSource::CrlUrl => "the CRL from the certificate's distribution point",
            RevocationSource::Ocsp => "the OCSP responder",
            RevocationSource::Other => "a revocation source",
        }
    }
}
