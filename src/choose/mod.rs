//! Which certificate each client TLS stack would send: `mtlscope certs choose`.
//!
//! This module owns the selection model: given a server's CertificateRequest (its acceptable-CA
//! names and signature schemes) and the certificates a client holds, it says, stack by stack,
//! which one that client's TLS library sends, or that it sends none, or that it asks the user,
//! and why every other candidate was passed over. [`choose`] is a pure function of the facts
//! (no I/O, no clock), so the diagnosis and the web view call it on a recorded flow exactly as
//! the command does on files. Each stack's rule, and the source it was read from, is in
//! `docs/client-cert-selection.md`.
//!
//! Loading candidates from files ([`candidates`]) and rendering ([`render`]) live beside it.

pub mod candidates;
pub mod flow;
mod java_order;
pub mod jks;
pub mod render;
mod rules;

use crate::facts::{CertRequest, CertSummary, TlsVersion};
use serde::Serialize;
use time::OffsetDateTime;

pub use java_order::{hashmap_order, hashtable_order};

/// What the server asked for: the part of a CertificateRequest a client's choice depends on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    /// Acceptable-CA names as RFC 4514 text, in the server's order (empty: an empty list).
    pub ca_names: Vec<String>,
    /// The same names as hex DER, for exact comparison (may be empty when only text is known).
    #[serde(skip)]
    pub ca_names_der: Vec<String>,
    /// Signature schemes the server accepts for CertificateVerify (IANA names), in its order;
    /// empty when not known (then no candidate is refused for its key type).
    pub signature_schemes: Vec<String>,
    /// The protocol version: TLS 1.3 ties an ECDSA scheme to one curve and forbids PKCS#1.
    pub version: Option<TlsVersion>,
    /// The instant validity is judged at (the handshake's, for a recorded flow).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Request {
    /// The request a recorded CertificateRequest describes; `None` when its CA names are not
    /// known (encrypted on the wire), since then no stack's choice can be predicted.
    pub fn from_recorded(
        cr: &CertRequest,
        version: Option<TlsVersion>,
        at: OffsetDateTime,
    ) -> Option<Request> {
        Some(Request {
            ca_names: cr.ca_names.clone()?,
            ca_names_der: cr.ca_names_der.clone(),
            signature_schemes: cr.signature_schemes.clone(),
            version,
            at,
        })
    }

    fn tls13(&self) -> bool {
        !matches!(self.version, Some(TlsVersion::Tls12))
    }
}

/// Where a candidate came from, when it is an entry of a Java keystore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreEntry {
    /// The alias as the keystore holds it.
    pub alias: String,
    /// The keystore format, which decides the order Java enumerates aliases in.
    pub kind: StoreKind,
    /// Position of the entry in the file (0-based), among all its entries.
    pub position: usize,
}

/// A Java keystore format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// PKCS#12: Java keeps entries in file order, aliases lower-cased.
    Pkcs12,
    /// JKS: Java keeps entries in a `Hashtable`, aliases lower-cased.
    Jks,
}

/// One certificate a client holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// Its name in the output: the file name as given, `store.p12#alias` inside a store.
    pub label: String,
    /// The chain, leaf first, as the client would send it.
    pub chain: Vec<CertSummary>,
    /// Whether the client holds the private key of the leaf.
    pub has_key: bool,
    /// The keystore entry it came from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreEntry>,
}

impl Candidate {
    /// The Java alias: the keystore's (lower-cased, as both keystores keep it) or, for a file,
    /// its label as if imported under that name.
    fn java_alias(&self) -> String {
        match &self.store {
            Some(e) => e.alias.to_lowercase(),
            None => self.label.to_lowercase(),
        }
    }
}

/// A client TLS stack whose choice is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stack {
    /// OpenSSL clients: curl, Python `ssl`, Node, `openssl s_client`.
    Openssl,
    /// Java JSSE with the default `SunX509` key manager.
    Java,
    /// Java JSSE with the `NewSunX509`/`PKIX` key manager.
    JavaPkix,
    /// Go `crypto/tls` with `Config.Certificates`.
    Go,
    /// Windows Schannel as .NET `SslStream` drives it with `ClientCertificates`.
    Schannel,
    /// Chrome (Chromium's `ClientCertStore`).
    Chrome,
    /// Firefox (NSS).
    Firefox,
}

impl Stack {
    /// Every modelled stack, in output order.
    pub const ALL: [Stack; 7] = [
        Stack::Openssl,
        Stack::Java,
        Stack::JavaPkix,
        Stack::Go,
        Stack::Schannel,
        Stack::Chrome,
        Stack::Firefox,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Openssl => "openssl",
            Stack::Java => "java",
            Stack::JavaPkix => "java-pkix",
            Stack::Go => "go",
            Stack::Schannel => "schannel",
            Stack::Chrome => "chrome",
            Stack::Firefox => "firefox",
        }
    }

    /// Which clients the stack stands for, in words.
    pub fn clients(self) -> &'static str {
        match self {
            Stack::Openssl => "curl, Python ssl, Node, openssl s_client",
            Stack::Java => "Java, SunX509 key manager (the default)",
            Stack::JavaPkix => "Java, NewSunX509/PKIX key manager",
            Stack::Go => "Go crypto/tls",
            Stack::Schannel => ".NET SslStream, Windows Schannel",
            Stack::Chrome => "Chrome, Edge (Chromium)",
            Stack::Firefox => "Firefox (NSS)",
        }
    }

    /// How the rule is known: checked against the real stack in mtlscope's tests, or read
    /// from documentation and source only.
    pub fn basis(self) -> Basis {
        match self {
            Stack::Openssl | Stack::Java | Stack::JavaPkix | Stack::Go => Basis::Tested,
            Stack::Schannel | Stack::Chrome | Stack::Firefox => Basis::Documented,
        }
    }
}

/// How a stack's rule is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Checked against the real stack in `tests/certs_choose.rs`.
    Tested,
    /// Read from the stack's documentation or source; not run here.
    Documented,
}

/// Why a candidate was passed over (or ranked down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The client does not hold the private key.
    NoPrivateKey,
    /// An OpenSSL client holds one configured certificate: this is not it.
    NotConfigured {
        /// The label of the configured one.
        configured: String,
    },
    /// No certificate of the chain was issued by a listed CA (and no chain reaches one).
    IssuerNotListed {
        /// The leaf's issuer.
        issuer: String,
    },
    /// The key cannot sign with any scheme the server accepts.
    KeyTypeNotAllowed {
        /// The leaf's key, e.g. `RSA 2048`.
        key: String,
    },
    /// Past notAfter at the request's instant.
    Expired {
        /// notAfter, RFC 3339.
        not_after: String,
    },
    /// Before notBefore at the request's instant.
    NotYetValid {
        /// notBefore, RFC 3339.
        not_before: String,
    },
    /// The leaf's extended key usage has neither clientAuth nor anyExtendedKeyUsage.
    NoClientAuthEku {
        /// The usages it has.
        eku: Vec<crate::facts::ExtKeyUsage>,
    },
    /// The leaf's key usage lacks digitalSignature.
    WrongKeyUsage {
        /// The usages it has.
        usage: Vec<crate::facts::KeyUsage>,
    },
    /// Eligible, but another candidate comes first in this stack's order.
    Outranked {
        /// The label of the one chosen.
        by: String,
    },
}

impl Skip {
    /// The reason in words.
    pub fn words(&self) -> String {
        match self {
            Skip::NoPrivateKey => "no private key".into(),
            Skip::NotConfigured { configured } => {
                format!("not configured: an OpenSSL client holds one certificate ({configured})")
            }
            Skip::IssuerNotListed { issuer } => {
                format!("issuer not among the CA names and no chain to one (issued by {issuer})")
            }
            Skip::KeyTypeNotAllowed { key } => {
                format!("key type not allowed by the signature schemes ({key})")
            }
            Skip::Expired { not_after } => format!("expired (notAfter {not_after})"),
            Skip::NotYetValid { not_before } => format!("not yet valid (notBefore {not_before})"),
            Skip::NoClientAuthEku { eku } => {
                format!(
                    "no clientAuth extended key usage (has {})",
                    crate::facts::joined(eku)
                )
            }
            Skip::WrongKeyUsage { usage } => {
                format!(
                    "key usage lacks digitalSignature (has {})",
                    crate::facts::joined(usage)
                )
            }
            Skip::Outranked { by } => format!("eligible, but {by} comes first"),
        }
    }
}

/// One stack's view of one candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// Index into the candidates as given.
    pub index: usize,
    /// Whether the stack could send it.
    pub eligible: bool,
    /// Why it was not sent (or, when eligible, why it was ranked down or passed over).
    pub skip: Option<Skip>,
    /// A remark that does not disqualify it, e.g. "expired: ranked after valid entries".
    pub note: Option<String>,
}

/// What a stack does with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sends this candidate (index into the candidates as given).
    Sends(usize),
    /// Sends an empty Certificate message.
    SendsNone,
    /// Shows the user these candidates (indices) to pick from.
    AsksUser(Vec<usize>),
}

/// One stack's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct StackAnswer {
    /// The stack.
    pub stack: Stack,
    /// What it does.
    pub outcome: Outcome,
    /// Why, in words.
    pub why: String,
    /// Every candidate, in the order given, with this stack's verdict.
    pub candidates: Vec<Judged>,
}

impl StackAnswer {
    /// The label of the candidate sent, if one is sent without asking.
    pub fn sends<'a>(&self, candidates: &'a [Candidate]) -> Option<&'a str> {
        match self.outcome {
            Outcome::Sends(i) => candidates.get(i).map(|c| c.label.as_str()),
            _ => None,
        }
    }
}

/// Every stack's choice among `candidates` for `request`, in [`Stack::ALL`] order.
pub fn choose(request: &Request, candidates: &[Candidate]) -> Vec<StackAnswer> {
    Stack::ALL
        .iter()
        .map(|&stack| rules::answer(stack, request, candidates))
        .collect()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
