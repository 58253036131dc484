//! The checks of `certs inspect` that need more than the certificates themselves: would the
//! chain verify as a client certificate against given trust anchors (`--trust`, what
//! `openssl verify -purpose sslclient` answers), and does a private key belong to the leaf
//! (`--key`). Both use rustls and its aws-lc-rs provider, the same code that verifies and signs
//! on the proxy's legs, so the answer is the one mtlscope itself would reach.

use super::inspect_error::InspectError;
use super::load::{load_certs, load_key, Identity, LoadError};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// Would the chain verify against the trust anchors in a file?
#[derive(Clone, Debug, Serialize)]
pub struct TrustCheck {
    /// The trust-anchor file (`--trust`).
    pub file: PathBuf,
    /// Whether a path to one of its certificates was built and every check passed.
    pub verifies: bool,
    /// In words: what verified, or why not.
    pub explanation: String,
}

/// Does the private key belong to the leaf?
#[derive(Clone, Debug, Serialize)]
pub struct KeyCheck {
    /// The key file (`--key`).
    pub file: PathBuf,
    /// Whether the key's public half is the leaf's.
    pub matches: bool,
    /// In words.
    pub explanation: String,
}

/// Trust anchors read once for every inspected file.
pub struct TrustAnchors {
    /// Where they came from.
    file: PathBuf,
    /// The verifier rustls would use on a server that trusts them.
    verifier: Arc<dyn ClientCertVerifier>,
}

impl TrustAnchors {
    /// Read every certificate in `file` as a trust anchor.
    pub fn load(file: &Path) -> Result<TrustAnchors, InspectError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in load_certs(file)? {
            roots.add(cert).map_err(|e| InspectError::BadTrustAnchor {
                path: file.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| InspectError::BadTrustAnchor {
                    path: file.to_path_buf(),
                    detail: e.to_string(),
                })?;
        Ok(TrustAnchors {
            file: file.to_path_buf(),
            verifier,
        })
    }

    /// Verify `chain` (leaf first, then intermediates) as a client certificate at `at`.
    pub fn check(&self, chain: &[CertificateDer<'static>], at: OffsetDateTime) -> TrustCheck {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return TrustCheck {
                file: self.file.clone(),
                verifies: false,
                explanation: "the file holds no certificate".into(),
            };
        };
        let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        let (verifies, explanation) =
            match self.verifier.verify_client_cert(leaf, intermediates, now) {
                Ok(_) => (
                    true,
                    format!(
                        "verifies as a client certificate against {}",
                        self.file.display()
                    ),
                ),
                Err(e) => (false, why_not(&e, &self.file)),
            };
        TrustCheck {
            file: self.file.clone(),
            verifies,
            explanation,
        }
    }
}

/// A verification error in words, with what usually fixes it.
fn why_not(e: &rustls::Error, anchors: &Path) -> String {
    use rustls::CertificateError as C;
    let anchors = anchors.display();
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "does not verify: no path from the leaf to a certificate in {anchors} (another \
                 CA issued it, or an intermediate is missing from the file)"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                "does not verify: a certificate in the chain has expired".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "does not verify: a certificate in the chain is not valid yet".into()
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "does not verify: the leaf is not allowed for client authentication (EKU)".into()
            }
            C::Revoked => "does not verify: revoked".into(),
            other => format!("does not verify: {other:?}"),
        },
        other => format!("does not verify: {other}"),
    }
}

/// Check that the key in `key_file` belongs to the leaf of `chain` (read from `cert_file`).
pub fn check_key(
    cert_file: &Path,
    chain: &[CertificateDer<'static>],
    key_file: &Path,
) -> Result<KeyCheck, InspectError> {
    let key = load_key(key_file)?;
    let (matches, explanation) =
        match Identity::from_parts(cert_file, key_file, chain.to_vec(), key) {
            Ok(_) => (true, "the private key belongs to the leaf".to_string()),
            Err(LoadError::KeyMismatch { .. }) => (
                false,
                format!(
                    "the private key in {} belongs to another certificate",
                    key_file.display()
                ),
            ),
            Err(e) => return Err(e.into()),
        };
    Ok(KeyCheck {
        file: key_file.to_path_buf(),
        matches,
        explanation,
    })
}
