//! CRLs: read (PEM or DER), checked against their issuer's key, and asked about one
//! certificate, with x509-parser's CRL support.

use crate::facts::{RevocationCheck, RevocationSource, RevocationStatus};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// A CRL as read, kept as DER (parsed again per question: CRLs are small and questions rare).
#[derive(Clone, Debug)]
pub struct Crl {
    /// The DER bytes.
    pub der: Vec<u8>,
    /// Where it came from: a file path or a URL.
    pub location: String,
    /// The kind of source.
    pub source: RevocationSource,
    /// Its issuer `Name`, DER.
    pub issuer: Vec<u8>,
    /// thisUpdate.
    pub this_update: Option<OffsetDateTime>,
    /// nextUpdate.
    pub next_update: Option<OffsetDateTime>,
}

/// Why a CRL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// Neither PEM `X509 CRL` nor DER.
    #[error("{location}: not a CRL (PEM `X509 CRL` or DER): {detail}")]
    Parse {
        /// File or URL.
        location: String,
        /// The parser's words.
        detail: String,
    },
}

impl Crl {
    /// Read a CRL from PEM (`-----BEGIN X509 CRL-----`) or DER bytes.
    pub fn parse(bytes: &[u8], location: &str, source: RevocationSource) -> Result<Crl, CrlError> {
        let der = match x509_parser::pem::parse_x509_pem(bytes) {
            Ok((_, pem)) if pem.label.contains("CRL") => pem.contents,
            _ => bytes.to_vec(),
        };
        let (issuer, this_update, next_update) = {
            let (_, crl) =
                CertificateRevocationList::from_der(&der).map_err(|e| CrlError::Parse {
                    location: location.to_string(),
                    detail: e.to_string(),
                })?;
            (
                crl.issuer().as_raw().to_vec(),
                Some(crl.last_update().to_datetime()),
                crl.next_update().map(|t| t.to_datetime()),
            )
        };
        Ok(Crl {
            der,
            location: location.to_string(),
            source,
            issuer,
            this_update,
            next_update,
        })
    }

    /// Whether this CRL is about certificates issued by `cert`'s issuer.
    pub fn covers(&self, cert: &X509Certificate<'_>) -> bool {
        self.issuer == cert.issuer().as_raw()
    }

    /// What this CRL says about `cert`; `issuer` (when known) checks the CRL's signature.
    pub fn status(
        &self,
        cert: &X509Certificate<'_>,
        issuer: Option<&X509Certificate<'_>>,
    ) -> RevocationCheck {
        let mut check = RevocationCheck {
            subject: crate::cert::dn_to_string(cert.subject().as_raw()),
            serial: crate::cert::summary::colon_hex(cert.raw_serial()),
            status: RevocationStatus::Unknown,
            source: self.source,
            location: self.location.clone(),
            this_update: self.this_update,
            next_update: self.next_update,
            revoked_at: None,
            reason: None,
            error: None,
        };
        let crl = match CertificateRevocationList::from_der(&self.der) {
            Ok((_, crl)) => crl,
            Err(e) => {
                check.error = Some(format!("the CRL does not parse: {e}"));
                return check;
            }
        };
        if let Some(issuer) = issuer {
            if let Err(e) = crl.verify_signature(issuer.public_key()) {
                check.error = Some(format!(
                    "the CRL's signature does not verify with the issuer's key: {e}"
                ));
                return check;
            }
        }
        let serial = &cert.tbs_certificate.serial;
        match crl
            .iter_revoked_certificates()
            .find(|r| r.serial() == serial)
        {
            Some(r) => {
                check.status = RevocationStatus::Revoked;
                check.revoked_at = Some(r.revocation_date.to_datetime());
                check.reason = r
                    .reason_code()
                    .map(|(_, code)| reason_name(code.0).to_string());
            }
            None => check.status = RevocationStatus::Good,
        }
        check
    }
}

/// RFC 5280 CRLReason names.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown reason",
    }
}

/// The `http://` URLs of `cert`'s CRL distribution points.
pub fn distribution_points(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(uri) = n {
                            out.push(uri.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// The OCSP responder URLs of `cert`'s authority information access.
pub fn ocsp_responders(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for d in aia.iter() {
                if d.access_method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP {
                    if let GeneralName::URI(uri) = &d.access_location {
                        out.push(uri.to_string());
                    }
                }
            }
        }
    }
    out
}
