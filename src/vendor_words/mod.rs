//! What vendors call client-certificate failures, mapped onto mtlscope's catalogue
//! (`mtlscope explain TEXT…`).
//!
//! Users arrive with a vendor's words — an AWS ALB reason code, nginx's `FAILED:…`, a Java
//! exception, a Chrome net error, an IIS sub-status — not with finding ids. This module owns the
//! typed table of those words ([`table`]): for each, the catalogue ids it can mean (most likely
//! first), why, the mtlscope command that tells the candidates apart, and the vendor page it was
//! checked against. [`explain`] finds every entry a text contains (a whole log line may hold
//! several) and, when none, the closest entries by edit distance and shared words.
//!
//! The table is data, not rules: nothing here reads a recording. `docs/findings.md` carries the
//! same table (a test keeps them equal).

mod matcher;
mod render;
mod table_clients;
mod table_cloud;
mod table_servers;

use crate::facts::FindingId;
use serde::Serialize;

pub use matcher::{explain, Candidate, Entry, Explanation, Match, NextStep};
pub use render::text;

/// Who says these words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vendor {
    /// AWS Application Load Balancer connection logs (`tls_verify_status`).
    AwsAlb,
    /// Amazon CloudFront viewer mTLS connection logs.
    AwsCloudfront,
    /// Google Cloud Application Load Balancer logs (`statusDetails`, `tls.client_cert_error`).
    GoogleCloud,
    /// nginx's `$ssl_client_verify`, its 400 pages and error log.
    Nginx,
    /// OpenSSL's certificate verification codes and texts, as nginx (`FAILED:<text>`), HAProxy
    /// (`ssl_c_err`, `ssl_c_ca_err`), Apache and `openssl verify` report them.
    OpensslVerify,
    /// Envoy's TLS statistics and `%DOWNSTREAM_TRANSPORT_FAILURE_REASON%`.
    Envoy,
    /// Cloudflare's `cf.tls_client_auth.*` rule fields.
    Cloudflare,
    /// TLS alerts a client received, as OpenSSL, BoringSSL (Envoy), Node and Java print them.
    TlsAlert,
    /// curl's exit codes.
    Curl,
    /// Java (JSSE) exceptions and debug lines.
    Java,
    /// Go `crypto/tls` errors.
    Go,
    /// Chrome's net errors.
    Chrome,
    /// IIS 403 sub-statuses.
    Iis,
    /// SAP SuccessFactors.
    Sap,
}

impl Vendor {
    /// The vendor as a person names it.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::AwsAlb => "AWS ALB",
            Vendor::AwsCloudfront => "AWS CloudFront",
            Vendor::GoogleCloud => "Google Cloud LB",
            Vendor::Nginx => "nginx",
            Vendor::OpensslVerify => "OpenSSL verify (nginx, HAProxy)",
            Vendor::Envoy => "Envoy",
            Vendor::Cloudflare => "Cloudflare",
            Vendor::TlsAlert => "TLS alert",
            Vendor::Curl => "curl",
            Vendor::Java => "Java",
            Vendor::Go => "Go",
            Vendor::Chrome => "Chrome",
            Vendor::Iis => "IIS",
            Vendor::Sap => "SAP",
        }
    }
}

/// One way the vendor's words can appear in a text. Matching ignores ASCII case, and a space in
/// a phrase matches any run of whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Words {
    /// A phrase, found anywhere in the text at word boundaries (a letter, digit or `_` on
    /// either side of the phrase does not count as a boundary).
    Phrase(&'static str),
    /// A number that counts only right after one of `after` (e.g. `alert number ` and `42`),
    /// with up to three of ` :=(#"` between them; or when the whole text is that number.
    Code {
        /// What comes before the number in the vendor's output.
        after: &'static [&'static str],
        /// The number as written, e.g. `42`, `-117`.
        code: &'static str,
    },
}

/// The mtlscope command that tells a mapping's candidate ids apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Next {
    /// Ask the server with the identity (and without): CA names, signature schemes, verdict.
    ProbeIdentity,
    /// Judge the chain offline: trust, dates, purpose, key.
    InspectChain,
    /// Judge the chain against the server's acceptable-CA list.
    InspectCaNames,
    /// Put mtlscope in front of the server, presenting the identity, and watch both legs.
    ReverseIdentity,
    /// Put mtlscope in front of the server as the clients' server, asking them for a certificate.
    ReverseClientLeg,
    /// Watch the real client and server without terminating TLS.
    Observe,
    /// Read a packet capture taken where the failure happens.
    Analyze,
}

impl Next {
    /// The command, with placeholders in capitals.
    pub fn command(self) -> &'static str {
        match self {
            Next::ProbeIdentity => "mtlscope probe https://HOST/ --identity CERT.pem,KEY.pem",
            Next::InspectChain => "mtlscope certs inspect CERT.pem --trust CA.pem --key KEY.pem",
            Next::InspectCaNames => "mtlscope certs inspect CERT.pem --ca-names SERVER-CA.pem",
            Next::ReverseIdentity => {
                "mtlscope reverse --listen 127.0.0.1:8443 --upstream https://HOST/ --identity CERT.pem,KEY.pem -v"
            }
            Next::ReverseClientLeg => {
                "mtlscope reverse --listen 127.0.0.1:8443 --upstream https://HOST/ --client-auth optional --client-ca CA.pem -v"
            }
            Next::Observe => "mtlscope observe --listen 127.0.0.1:9444 --upstream HOST:443 -v",
            Next::Analyze => "mtlscope analyze capture.pcapng -v",
        }
    }

    /// What the command shows that decides between the candidates.
    pub fn decides(self) -> &'static str {
        match self {
            Next::ProbeIdentity => {
                "whether the server asks in the handshake, with which CA names and signature \
                 schemes, and what it answers with no certificate and with yours"
            }
            Next::InspectChain => {
                "whether the chain verifies against the CA, is in its validity period, is for \
                 client authentication, and pairs with its key"
            }
            Next::InspectCaNames => {
                "whether any certificate of the chain matches the CA names the server asks for \
                 (clients send nothing otherwise)"
            }
            Next::ReverseIdentity => {
                "what the server asked for, what went on the wire, the alert and the HTTP answer, \
                 with each finding's evidence"
            }
            Next::ReverseClientLeg => {
                "what the client presents when asked, and mtlscope's verdict on it (trust, dates, \
                 purpose)"
            }
            Next::Observe => {
                "what the real client and server did: the CertificateRequest, the chain, the \
                 alert and who sent it"
            }
            Next::Analyze => {
                "the same from a capture taken next to the failing client (tcpdump, Wireshark): \
                 who ended the handshake, with which alert, after which message"
            }
        }
    }
}

/// One row of the table: a vendor's words and what they mean in the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    /// Who says it.
    pub vendor: Vendor,
    /// The words as the vendor documents them (shown, and the table's key in the docs).
    pub shown: &'static str,
    /// The spellings that match it in a user's text.
    pub words: &'static [Words],
    /// The catalogue ids it can mean, most likely first.
    pub ids: &'static [FindingId],
    /// Why, in one or two sentences: what the vendor checked and what usually causes it.
    pub why: &'static str,
    /// The command that tells the ids apart.
    pub next: Next,
    /// The vendor's own page the mapping was checked against.
    pub source: &'static str,
}

/// A table row (the tables are `static` slices of these).
const fn row(
    vendor: Vendor,
    shown: &'static str,
    words: &'static [Words],
    ids: &'static [FindingId],
    why: &'static str,
    next: Next,
    source: &'static str,
) -> Mapping {
    Mapping {
        vendor,
        shown,
        words,
        ids,
        why,
        next,
        source,
    }
}

/// Every mapping, grouped by vendor (cloud load balancers, servers and proxies, clients).
pub fn table() -> impl Iterator<Item = &'static Mapping> {
    table_cloud::TABLE
        .iter()
        .chain(table_servers::TABLE)
        .chain(table_clients::TABLE)
}

#[cfg(test)]
mod tests;
