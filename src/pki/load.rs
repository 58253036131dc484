//! Loading certificates, chains and private keys from PEM files, with errors that name the file.
//!
//! An identity whose key does not match its certificate is refused here, at start-up, so the
//! proxy never presents a certificate it cannot prove.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a certificate, key or identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("{path}: no PEM certificate found (expected a -----BEGIN CERTIFICATE----- block)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no usable private key.
    #[error("{path}: no PEM private key found (expected PKCS#8, PKCS#1 or SEC1 PEM): {detail}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The key's algorithm is not supported by the crypto provider.
    #[error("{path}: private key not usable: {detail}")]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// What the provider said.
        detail: String,
    },
    /// The key belongs to another certificate.
    #[error("{key}: private key does not match the certificate in {cert} (expected the key of {subject})")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The certificate's subject.
        subject: String,
    },
    /// Certificate and key given in the wrong order.
    #[error("{cert} holds a private key and {key} a certificate: the order is CERT,KEY, certificate first (try {key},{cert})")]
    Swapped {
        /// The file given as the certificate.
        cert: PathBuf,
        /// The file given as the key.
        key: PathBuf,
    },
    /// A `CERT,KEY` argument without the comma.
    #[error("expected CERT,KEY (two paths separated by a comma), got {0:?}")]
    PairSyntax(String),
    /// A PKCS#12 file that could not be opened (wrong password, corrupt, no key).
    #[error("{path}: cannot use as a PKCS#12 identity: {detail}")]
    Pkcs12 {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// A certificate chain with its private key, checked to belong together.
#[derive(Clone, Debug)]
pub struct Identity {
    /// A short name for records: the certificate file's name.
    pub label: String,
    /// Where the chain came from.
    pub cert_path: PathBuf,
    /// The chain, leaf first, as it will be presented.
    pub chain: Vec<CertificateDer<'static>>,
    /// The signing key and chain, ready for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The private key as read, for the OpenSSL upstream engine (its `Debug` prints no key).
    pub key: Arc<PrivateKeyDer<'static>>,
    /// Made up for this run from a throw-away CA (`probe`), not loaded from the user's files.
    pub throwaway: bool,
    /// What CRLs and OCSP responders said about the chain at start-up (empty: not checked, or
    /// no source named).
    pub revocation: Vec<crate::facts::RevocationCheck>,
}

impl Identity {
    /// Load `cert` (leaf first, then any intermediates) and `key`, and check they pair.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, LoadError> {
        let chain = match load_certs(cert) {
            Ok(chain) => chain,
            Err(LoadError::NoCertificate { .. })
                if load_key(cert).is_ok() && load_certs(key).is_ok() =>
            {
                return Err(LoadError::Swapped {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                })
            }
            Err(e) => return Err(e),
        };
        let key_der = load_key(key)?;
        Identity::from_parts(cert, key, chain, key_der)
    }

    /// Load a PKCS#12 (`.p12`/`.pfx`) file holding one private key and its chain (leaf first).
    pub fn load_pkcs12(path: &Path, password: &str) -> Result<Identity, LoadError> {
        let err = |detail: String| LoadError::Pkcs12 {
            path: path.to_path_buf(),
            detail,
        };
        let bytes = read(path)?;
        let store = p12_keystore::KeyStore::from_pkcs12(
            &bytes,
            password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| err(format!("{e} (wrong password, or not a PKCS#12 file?)")))?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| err("no private key with a matching certificate in it".into()))?;
        let certs: Vec<CertificateDer<'static>> = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        if certs.is_empty() {
            return Err(err("the private key has no certificate".into()));
        }
        let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
        Identity::from_parts(path, path, certs, key)
    }

    /// Parse a `CERT,KEY` pair as given on the command line and load it.
    pub fn load_pair(arg: &str) -> Result<Identity, LoadError> {
        let (cert, key) = split_pair(arg)?;
        Identity::load(Path::new(cert), Path::new(key))
    }

    /// Build from already-read parts; `cert` and `key` name the sources in errors.
    pub fn from_parts(
        cert: &Path,
        key: &Path,
        chain: Vec<CertificateDer<'static>>,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Identity, LoadError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| LoadError::UnusableKey {
                path: key.to_path_buf(),
                detail: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain.clone(), signing);
        match certified.keys_match() {
            Ok(()) => {}
            // Unknown means the provider cannot tell (e.g. an exotic key type): let it through.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                let subject = crate::cert::summarize(&chain[0])
                    .map(|s| s.subject)
                    .unwrap_or_else(|_| "the certificate".into());
                return Err(LoadError::KeyMismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    subject,
                });
            }
        }
        Ok(Identity {
            label: cert
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| cert.display().to_string()),
            cert_path: cert.to_path_buf(),
            chain,
            certified: Arc::new(certified),
            key: Arc::new(key_der),
            throwaway: false,
            revocation: Vec::new(),
        })
    }
}

/// Split a `CERT,KEY` argument; spaces around either path are dropped (`a.pem, a.key`).
pub fn split_pair(arg: &str) -> Result<(&str, &str), LoadError> {
    match arg.split_once(',').map(|(c, k)| (c.trim(), k.trim())) {
        Some((c, k)) if !c.is_empty() && !k.is_empty() => Ok((c, k)),
        _ => Err(LoadError::PairSyntax(arg.to_string())),
    }
}

/// All certificates in a PEM file, in file order; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(LoadError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, LoadError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| LoadError::NoKey {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A file the user named could not be loaded: a usage error (exit 2) that names it.
impl From<LoadError> for crate::error::CommandError {
    fn from(e: LoadError) -> Self {
        crate::error::CommandError::usage(e)
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
