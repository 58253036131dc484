//! OCSP: the request for one certificate, and the responder's answer read and verified, with
//! OpenSSL's OCSP support (already linked for the upstream engine; no Rust OCSP crate both
//! builds requests and verifies responses as completely).

use super::fetch::fetch;
use crate::facts::{RevocationCheck, RevocationSource, RevocationStatus};
use openssl::hash::MessageDigest;
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus,
    OcspRevokedStatus,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use std::time::Duration;
use time::OffsetDateTime;

/// Ask `url` about `cert` (DER), issued by `issuer` (DER).
pub async fn ask(
    url: &str,
    cert: &[u8],
    issuer: &[u8],
    subject: String,
    serial: String,
    timeout: Duration,
) -> RevocationCheck {
    let mut check = RevocationCheck {
        subject,
        serial,
        status: RevocationStatus::Unknown,
        source: RevocationSource::Ocsp,
        location: url.to_string(),
        this_update: None,
        next_update: None,
        revoked_at: None,
        reason: None,
        error: None,
    };
    let request = match request(cert, issuer) {
        Ok(r) => r,
        Err(e) => {
            check.error = Some(format!("cannot build the OCSP request: {e}"));
            return check;
        }
    };
    match fetch(url, Some(("application/ocsp-request", request)), timeout).await {
        Ok(body) => {
            if let Err(e) = read(&body, cert, issuer, &mut check) {
                check.error = Some(e);
            }
        }
        Err(e) => check.error = Some(e.to_string()),
    }
    check
}

fn cert_id(cert: &[u8], issuer: &[u8]) -> Result<OcspCertId, openssl::error::ErrorStack> {
    let cert = X509::from_der(cert)?;
    let issuer = X509::from_der(issuer)?;
    OcspCertId::from_cert(MessageDigest::sha1(), &cert, &issuer)
}

fn request(cert: &[u8], issuer: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut req = OcspRequest::new()?;
    req.add_id(cert_id(cert, issuer)?)?;
    req.to_der()
}

/// Read the responder's answer into `check`: the response must verify (signed by the issuer,
/// or by a responder the issuer delegated to).
fn read(
    body: &[u8],
    cert: &[u8],
    issuer: &[u8],
    check: &mut RevocationCheck,
) -> Result<(), String> {
    let resp = OcspResponse::from_der(body).map_err(|e| format!("not an OCSP response: {e}"))?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(format!(
            "the responder answered status {}",
            resp.status().as_raw()
        ));
    }
    let basic = resp.basic().map_err(|e| e.to_string())?;
    let issuer_x509 = X509::from_der(issuer).map_err(|e| e.to_string())?;
    let mut store = X509StoreBuilder::new().map_err(|e| e.to_string())?;
    store
        .add_cert(issuer_x509.clone())
        .map_err(|e| e.to_string())?;
    let store = store.build();
    let mut certs = Stack::new().map_err(|e| e.to_string())?;
    certs.push(issuer_x509).map_err(|e| e.to_string())?;
    basic
        .verify(&certs, &store, OcspFlag::TRUST_OTHER)
        .map_err(|e| format!("the OCSP response does not verify: {e}"))?;
    let id = cert_id(cert, issuer).map_err(|e| e.to_string())?;
    let status = basic
        .find_status(&id)
        .ok_or("the OCSP response says nothing about this certificate")?;
    check.this_update = asn1_time(&status.this_update.to_string());
    check.next_update = status.next_update().and_then(|t| asn1_time(&t.to_string()));
    if status.status == OcspCertStatus::GOOD {
        check.status = RevocationStatus::Good;
    } else if status.status == OcspCertStatus::REVOKED {
        check.status = RevocationStatus::Revoked;
        check.revoked_at = status
            .revocation_time
            .and_then(|t| asn1_time(&t.to_string()));
        check.reason = (status.reason != OcspRevokedStatus::NO_STATUS)
            .then(|| super::crl::reason_name(status.reason.as_raw() as u8).to_string());
    } else {
        return Err("the responder does not know the certificate".into());
    }
    Ok(())
}

/// OpenSSL's printed time (`Dec  2 14:00:00 2026 GMT`) as an instant.
fn asn1_time(s: &str) -> Option<OffsetDateTime> {
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    let squeezed = s.trim();
    time::PrimitiveDateTime::parse(squeezed, &fmt)
        .ok()
        .map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn openssl_times_read() {
        let t = super::asn1_time("Dec  2 14:00:05 2026 GMT").unwrap();
        assert_eq!(t.year(), 2026);
        assert_eq!(t.day(), 2);
        assert!(super::asn1_time("Nov 30 01:02:03 2026 GMT").is_some());
    }
}
