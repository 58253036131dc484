//! The client certificate's fields an offloader can pass on, read once per connection from
//! the DER chain the client presented.

use super::encode::{self, UrlStyle};
use crate::cert::hex;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The verify result an offloader reports, in nginx's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The chain verified against `--client-ca`.
    Success,
    /// The client presented no certificate.
    None,
    /// The chain did not verify, or could not be (why, in words).
    Failed(String),
}

impl Verify {
    /// `SUCCESS`, `NONE` or `FAILED:reason`, as nginx's `$ssl_client_verify`.
    pub fn as_text(&self) -> String {
        match self {
            Verify::Success => "SUCCESS".into(),
            Verify::None => "NONE".into(),
            Verify::Failed(why) => format!("FAILED:{why}"),
        }
    }
}

/// The leaf's fields, plus the chain as presented.
#[derive(Clone, Debug)]
pub struct CertFields {
    /// Every certificate the client presented, leaf first, as DER.
    pub chain: Vec<Vec<u8>>,
    /// Subject, RFC 2253 as OpenSSL prints it.
    pub subject: String,
    /// Issuer, RFC 2253 as OpenSSL prints it.
    pub issuer: String,
    /// Serial number, uppercase hex without leading zero bytes (OpenSSL's `BN_bn2hex`).
    pub serial: String,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub sha256: String,
    /// SHA-1 of the leaf's DER, lowercase hex.
    pub sha1: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// URI subject alternative names, in order.
    pub uris: Vec<String>,
    /// DNS subject alternative names, in order.
    pub dns: Vec<String>,
}

impl CertFields {
    /// Read the fields of a presented chain (leaf first); `None` when there is no leaf or it
    /// does not parse.
    pub fn read(chain: &[Vec<u8>]) -> Option<CertFields> {
        let leaf = chain.first()?;
        let (_, cert) = X509Certificate::from_der(leaf).ok()?;
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::URI(u) => uris.push(u.to_string()),
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    _ => {}
                }
            }
        }
        let raw = cert.raw_serial();
        let start = raw
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(raw.len().saturating_sub(1));
        let serial = raw[start..].iter().map(|b| format!("{b:02X}")).collect();
        Some(CertFields {
            subject: encode::rfc2253(cert.subject()),
            issuer: encode::rfc2253(cert.issuer()),
            serial,
            sha256: hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref()),
            sha1: hex(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                leaf,
            )
            .as_ref()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            uris,
            dns,
            chain: chain.to_vec(),
        })
    }

    /// The leaf's DER.
    pub fn leaf(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The leaf's PEM, URL-encoded in `style`.
    pub fn leaf_pem_encoded(&self, style: UrlStyle) -> String {
        encode::url_encode(&encode::pem(self.leaf()), style)
    }

    /// Every presented certificate's PEM, concatenated, URL-encoded in `style`.
    pub fn chain_pem_encoded(&self, style: UrlStyle) -> String {
        let pems: String = self.chain.iter().map(|c| encode::pem(c)).collect();
        encode::url_encode(&pems, style)
    }

    /// The leaf's PEM on one line (line breaks removed), for templates.
    pub fn pem_one_line(&self) -> String {
        encode::pem(self.leaf()).replace('\n', "")
    }

    /// An instant as ISO 8601 in UTC to the second, `2024-09-20T01:50:17Z`.
    pub fn iso(t: OffsetDateTime) -> String {
        let t = t
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(t);
        t.format(&Rfc3339).unwrap_or_default()
    }
}
