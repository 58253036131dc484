//! Facts about one certificate, as summarised once from its DER.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A certificate, summarised: everything rules and views need, nothing secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject as an RFC 4514 string.
    pub subject: String,
    /// Issuer as an RFC 4514 string.
    pub issuer: String,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 fingerprint of the DER, lowercase hex without separators.
    pub sha256: String,
    /// SHA-1 fingerprint of the DER (some services register certificates by it).
    pub sha1: String,
    /// Extended key usages by name (`clientAuth`, `serverAuth`, `any`, or a dotted OID); empty
    /// when the extension is absent.
    pub eku: Vec<String>,
    /// Whether the extended key usage extension is present at all (absent = any purpose).
    pub has_eku: bool,
    /// Key usages by name (`digitalSignature`, `keyCertSign`, …); empty when absent.
    pub key_usage: Vec<String>,
    /// Whether the key usage extension is present at all.
    pub has_key_usage: bool,
    /// Subject alternative names, as `DNS:…`, `IP:…`, `email:…`, `URI:…`.
    pub sans: Vec<String>,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// Subject equals issuer (by DER).
    pub self_issued: bool,
    /// Subject `Name` as hex DER, for exact comparison with CA names.
    pub subject_der: String,
    /// Issuer `Name` as hex DER.
    pub issuer_der: String,
    /// Public key algorithm and size, e.g. `ECDSA P-256`, `RSA 2048`.
    pub key: String,
}

/// A verifier's verdict on a presented chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainVerdict {
    /// Whether the chain verified against the configured trust anchors.
    pub trusted: bool,
    /// Why not, in words (e.g. `unknown issuer`, `expired`); empty when trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the verdict was enforced (`--enforce`): the handshake was refused.
    pub enforced: bool,
}
