//! Summarising a DER certificate into [`CertSummary`] facts, once, at capture time.

use crate::facts::{CertSummary, ExtKeyUsage, KeyUsage};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

/// Why a certificate could not be summarised.
#[derive(Debug, thiserror::Error)]
#[error("not a parseable X.509 certificate: {0}")]
pub struct SummaryError(String);

/// Summaries already made, by DER. A proxy meets the same few chains (the upstream's, its own
/// identities, the clients') on every connection; parsing and hashing them again was ~10% of
/// a new connection's CPU (perf).
static SUMMARIES: LazyLock<Mutex<HashMap<Box<[u8]>, CertSummary>>> = LazyLock::new(Mutex::default);
/// Summaries kept before the cache starts over (bounds memory under many distinct clients).
const MAX_SUMMARIES: usize = 4096;

/// Summarise one DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, SummaryError> {
    if let Some(s) = SUMMARIES.lock().ok().and_then(|m| m.get(der).cloned()) {
        return Ok(s);
    }
    let summary = summarize_uncached(der)?;
    if let Ok(mut m) = SUMMARIES.lock() {
        if m.len() >= MAX_SUMMARIES {
            m.clear();
        }
        m.insert(der.into(), summary.clone());
    }
    Ok(summary)
}

fn summarize_uncached(der: &[u8]) -> Result<CertSummary, SummaryError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| SummaryError(e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let mut eku = Vec::new();
    let mut has_eku = false;
    let mut key_usage = Vec::new();
    let mut has_key_usage = false;
    let mut sans = Vec::new();
    let mut is_ca = false;
    for ext in tbs.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(e) => {
                has_eku = true;
                let named = [
                    (e.any, ExtKeyUsage::Any),
                    (e.server_auth, ExtKeyUsage::ServerAuth),
                    (e.client_auth, ExtKeyUsage::ClientAuth),
                    (e.code_signing, ExtKeyUsage::CodeSigning),
                    (e.email_protection, ExtKeyUsage::EmailProtection),
                    (e.time_stamping, ExtKeyUsage::TimeStamping),
                    (e.ocsp_signing, ExtKeyUsage::OcspSigning),
                ];
                eku.extend(named.into_iter().filter(|(set, _)| *set).map(|(_, u)| u));
                eku.extend(
                    e.other
                        .iter()
                        .map(|oid| ExtKeyUsage::Other(oid.to_id_string())),
                );
            }
            ParsedExtension::KeyUsage(k) => {
                has_key_usage = true;
                let named = [
                    (k.digital_signature(), KeyUsage::DigitalSignature),
                    (k.non_repudiation(), KeyUsage::NonRepudiation),
                    (k.key_encipherment(), KeyUsage::KeyEncipherment),
                    (k.data_encipherment(), KeyUsage::DataEncipherment),
                    (k.key_agreement(), KeyUsage::KeyAgreement),
                    (k.key_cert_sign(), KeyUsage::KeyCertSign),
                    (k.crl_sign(), KeyUsage::CrlSign),
                    (k.encipher_only(), KeyUsage::EncipherOnly),
                    (k.decipher_only(), KeyUsage::DecipherOnly),
                ];
                key_usage.extend(named.into_iter().filter(|(set, _)| *set).map(|(_, u)| u));
            }
            ParsedExtension::SubjectAlternativeName(s) => {
                sans.extend(s.general_names.iter().map(general_name));
            }
            ParsedExtension::BasicConstraints(b) => is_ca = b.ca,
            _ => {}
        }
    }
    Ok(CertSummary {
        subject: name_string(tbs.subject()),
        issuer: name_string(tbs.issuer()),
        serial: colon_hex(tbs.raw_serial()),
        not_before: tbs.validity().not_before.to_datetime(),
        not_after: tbs.validity().not_after.to_datetime(),
        sha256: hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
        sha1: hex(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref(),
        ),
        eku,
        has_eku,
        key_usage,
        has_key_usage,
        sans,
        is_ca,
        self_issued: tbs.subject().as_raw() == tbs.issuer().as_raw(),
        subject_der: hex(tbs.subject().as_raw()),
        issuer_der: hex(tbs.issuer().as_raw()),
        key: key_description(&cert),
    })
}

/// Summarise a chain, skipping (and naming) certificates that do not parse.
pub fn summarize_chain<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> Vec<CertSummary> {
    ders.into_iter().filter_map(|d| summarize(d).ok()).collect()
}

/// A DER `Name` (with its outer SEQUENCE, as in CertificateRequest CA lists) as RFC 4514 text.
pub fn dn_to_string(der: &[u8]) -> String {
    match X509Name::from_der(der) {
        Ok((_, name)) => name_string(&name),
        Err(_) => format!("<unparseable name {}>", hex(der)),
    }
}

fn name_string(name: &X509Name<'_>) -> String {
    // x509-parser's Display is RFC 4514-like, most-significant RDN first; keep it as is so the
    // same DER always gives the same string.
    name.to_string()
}

fn general_name(n: &GeneralName<'_>) -> String {
    match n {
        GeneralName::DNSName(s) => format!("DNS:{s}"),
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                format!("IP:{}", std::net::Ipv6Addr::from(a))
            }
            _ => format!("IP:<{} bytes>", b.len()),
        },
        GeneralName::DirectoryName(n) => format!("DirName:{n}"),
        other => format!("{other:?}"),
    }
}

fn key_description(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => match ec.key_size() {
            256 => "ECDSA P-256".into(),
            384 => "ECDSA P-384".into(),
            521 => "ECDSA P-521".into(),
            n => format!("EC {n}"),
        },
        Ok(_) => {
            let oid = cert.public_key().algorithm.algorithm.to_id_string();
            match oid.as_str() {
                "1.3.101.112" => "Ed25519".into(),
                _ => oid,
            }
        }
        Err(_) => "unparseable key".into(),
    }
}

/// Lowercase hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hex back to bytes; None on odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
