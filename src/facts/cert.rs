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
    /// Extended key usages (recorded by name: `clientAuth`, `serverAuth`, `any`, or a dotted
    /// OID); empty when the extension is absent.
    pub eku: Vec<ExtKeyUsage>,
    /// Whether the extended key usage extension is present at all (absent = any purpose).
    pub has_eku: bool,
    /// Key usages (recorded by name: `digitalSignature`, `keyCertSign`, …); empty when absent.
    pub key_usage: Vec<KeyUsage>,
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

super::named::named_words! {
    /// An extended key usage purpose (RFC 5280 §4.2.1.12), recorded by its OpenSSL-style name.
    pub enum ExtKeyUsage {
        /// anyExtendedKeyUsage: any purpose.
        Any = "any",
        /// id-kp-serverAuth.
        ServerAuth = "serverAuth",
        /// id-kp-clientAuth.
        ClientAuth = "clientAuth",
        /// id-kp-codeSigning.
        CodeSigning = "codeSigning",
        /// id-kp-emailProtection.
        EmailProtection = "emailProtection",
        /// id-kp-timeStamping.
        TimeStamping = "timeStamping",
        /// id-kp-OCSPSigning.
        OcspSigning = "OCSPSigning",
    }
    /// Another purpose, by its dotted OID.
}

super::named::named_words! {
    /// A key usage bit (RFC 5280 §4.2.1.3), recorded by its RFC name.
    pub enum KeyUsage {
        /// digitalSignature (bit 0).
        DigitalSignature = "digitalSignature",
        /// nonRepudiation / contentCommitment (bit 1).
        NonRepudiation = "nonRepudiation",
        /// keyEncipherment (bit 2).
        KeyEncipherment = "keyEncipherment",
        /// dataEncipherment (bit 3).
        DataEncipherment = "dataEncipherment",
        /// keyAgreement (bit 4).
        KeyAgreement = "keyAgreement",
        /// keyCertSign (bit 5).
        KeyCertSign = "keyCertSign",
        /// cRLSign (bit 6).
        CrlSign = "cRLSign",
        /// encipherOnly (bit 7).
        EncipherOnly = "encipherOnly",
        /// decipherOnly (bit 8).
        DecipherOnly = "decipherOnly",
    }
    /// A name this version does not write (a newer recording), kept as read.
}

/// Names joined by `, `, for views.
pub fn joined<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A verifier's verdict on a presented chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainVerdict {
    /// Whether the chain verified against the configured trust anchors.
    pub trusted: bool,
    /// Why not, in words (e.g. `unknown issuer`, `expired`); empty when trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why not, classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<CertProblem>,
    /// Whether the verdict was enforced (`--enforce`): the handshake was refused.
    pub enforced: bool,
}

/// Why a certificate chain did not verify.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertProblem {
    /// No path to a trusted anchor.
    UnknownIssuer,
    /// Past notAfter.
    Expired,
    /// Before notBefore.
    NotYetValid,
    /// Revoked (CRL or OCSP).
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Not valid for the purpose (extended key usage).
    WrongPurpose,
    /// Not valid for the name.
    NameMismatch,
    /// Anything else, or a value this version does not know.
    #[serde(other)]
    Other,
}

impl CertProblem {
    /// Classify a rustls certificate error.
    pub fn of(e: &rustls::CertificateError) -> CertProblem {
        use rustls::CertificateError as C;
        match e {
            C::UnknownIssuer => CertProblem::UnknownIssuer,
            C::Expired | C::ExpiredContext { .. } => CertProblem::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => CertProblem::NotYetValid,
            C::Revoked => CertProblem::Revoked,
            C::BadSignature => CertProblem::BadSignature,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => CertProblem::WrongPurpose,
            C::NotValidForName | C::NotValidForNameContext { .. } => CertProblem::NameMismatch,
            _ => CertProblem::Other,
        }
    }

    /// Classify a rustls error, when it is about a certificate.
    pub fn of_error(e: &rustls::Error) -> Option<CertProblem> {
        match e {
            rustls::Error::InvalidCertificate(c) => Some(CertProblem::of(c)),
            _ => None,
        }
    }
}

/// What mtlscope's configured certificates say about a chain that does not include its last
/// certificate's issuer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuerLookup {
    /// The issuer the chain names but does not include (RFC 4514).
    pub issuer: String,
    /// The configured certificates that link it upwards, issuer first, up to a root when
    /// known; empty when mtlscope knows no such certificate.
    pub found: Vec<KnownIssuer>,
}

/// A configured CA certificate found by [`IssuerLookup`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KnownIssuer {
    /// Its subject (RFC 4514).
    pub subject: String,
    /// Its SHA-256 fingerprint.
    pub sha256: String,
    /// Whether it is self-issued (a root).
    pub self_issued: bool,
    /// Where mtlscope found it, e.g. `--upstream-ca ca.pem`.
    pub source: String,
}
