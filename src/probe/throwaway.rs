//! `probe`'s throw-away identity: a client certificate from a CA created for this run only and
//! then forgotten. No server can trust that CA, so a server that accepts the certificate does
//! not verify client certificates (`client-cert-not-verified`).

use crate::pki::load::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// The label the throw-away identity carries in records and reports.
pub const LABEL: &str = "throw-away identity (mtlscope's own throw-away CA)";

/// Why the throw-away identity could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the throw-away identity: {0}")]
pub struct ThrowawayError(String);

/// A fresh CA and a clientAuth leaf it issued (ECDSA P-256, valid from yesterday for a week).
pub fn identity() -> Result<Identity, ThrowawayError> {
    let err = |e: rcgen::Error| ThrowawayError(e.to_string());
    let now = OffsetDateTime::now_utc();
    let tag = now.unix_timestamp_nanos() % 1_000_000;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, format!("mtlscope throw-away CA {tag}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - Duration::days(1);
    ca.not_after = now + Duration::days(7);
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = CertifiedIssuer::self_signed(ca, ca_key).map_err(err)?;

    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "mtlscope throw-away client");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = now - Duration::days(1);
    leaf.not_after = now + Duration::days(7);
    leaf.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&key, &ca).map_err(err)?;
    let chain = vec![cert.der().clone(), ca.der().clone()];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut id = Identity::from_parts(Path::new(LABEL), Path::new(LABEL), chain, key_der)
        .map_err(|e| ThrowawayError(e.to_string()))?;
    id.label = LABEL.to_string();
    id.throwaway = true;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fresh_identity_each_time_marked_as_throwaway() {
        let a = super::identity().unwrap();
        let b = super::identity().unwrap();
        assert!(a.throwaway);
        assert_eq!(a.chain.len(), 2);
        assert_ne!(a.chain[1], b.chain[1], "a new CA each time");
    }
}
