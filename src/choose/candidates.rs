//! Reading `certs choose`'s candidates from files: `CERT,KEY` pairs, PEM or DER certificate
//! files (with the key in the same PEM or beside it as `NAME.key`), PKCS#12 files, JKS and
//! PKCS#12 Java keystores (every key entry, in the store's order), and directories of them.
//! Labels are the paths as given; an entry of a store is `STORE#alias`.

use super::{Candidate, StoreEntry, StoreKind};
use crate::facts::CertSummary;
use crate::pki::load::{split_pair, Identity, LoadError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Why a candidate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    /// The path could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `CERT,KEY` pair that does not load (a missing file, a key of another certificate).
    #[error(transparent)]
    Pair(#[from] LoadError),
    /// A file that is none of the known kinds.
    #[error("{path}: not a certificate (PEM or DER), a PKCS#12 file or a Java keystore")]
    Unrecognised {
        /// The file.
        path: PathBuf,
    },
    /// A certificate that does not parse.
    #[error("{path}: certificate {index} does not parse: {detail}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        /// What the parser said.
        detail: String,
    },
    /// A PKCS#12 file that cannot be opened.
    #[error("{path}: cannot open as PKCS#12: {detail} (wrong --password?)")]
    Pkcs12 {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A JKS keystore that cannot be read.
    #[error("{path}: {source}")]
    Jks {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: super::jks::JksError,
    },
    /// Nothing usable in a directory.
    #[error("{path}: no certificate, PKCS#12 file or keystore in this directory")]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
}

/// Load every candidate named by `args`, in order. `password` opens PKCS#12 files and checks
/// JKS keystores (PKCS#12 files without one are tried with the empty password).
pub fn load(args: &[String], password: Option<&str>) -> Result<Vec<Candidate>, CandidateError> {
    let mut out = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if !path.exists() && arg.contains(',') {
            let (cert, key) = split_pair(arg)?;
            let id = Identity::load(Path::new(cert), Path::new(key))?;
            out.push(Candidate {
                label: cert.to_string(),
                chain: summaries(Path::new(cert), &id.chain)?,
                has_key: true,
                store: None,
            });
        } else if path.is_dir() {
            load_dir(path, password, &mut out)?;
        } else {
            load_file(path, arg, password, &mut out)?;
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, CandidateError> {
    std::fs::read(path).map_err(|source| CandidateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A directory's certificate files and stores, by file name; key files serve their certificate.
fn load_dir(
    dir: &Path,
    password: Option<&str>,
    out: &mut Vec<Candidate>,
) -> Result<(), CandidateError> {
    let rd = std::fs::read_dir(dir).map_err(|source| CandidateError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let before = out.len();
    for file in files {
        let ext = file
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let known = [
            "pem", "crt", "cer", "der", "p12", "pfx", "jks", "keystore", "ks",
        ];
        if !known.contains(&ext.as_str()) {
            continue;
        }
        let bytes = read(&file)?;
        // A PEM holding only a key is some certificate's key file, not a candidate.
        if is_pem(&bytes) && CertificateDer::pem_slice_iter(&bytes).next().is_none() {
            continue;
        }
        load_file(&file, &file.display().to_string(), password, out)?;
    }
    if out.len() == before {
        return Err(CandidateError::EmptyDirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn load_file(
    path: &Path,
    label: &str,
    password: Option<&str>,
    out: &mut Vec<Candidate>,
) -> Result<(), CandidateError> {
    let bytes = read(path)?;
    if bytes.starts_with(&super::jks::MAGIC) {
        return load_jks(path, label, &bytes, password, out);
    }
    if is_pem(&bytes) {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(CandidateError::Unrecognised {
                path: path.to_path_buf(),
            });
        }
        return push_cert_file(path, label, certs, &bytes, out);
    }
    if crate::cert::summarize(&bytes).is_ok() {
        return push_cert_file(
            path,
            label,
            vec![CertificateDer::from(bytes.clone())],
            &[],
            out,
        );
    }
    load_pkcs12(path, label, &bytes, password, out)
}

/// A certificate file: its key is in the same PEM, or in `NAME.key` beside it.
fn push_cert_file(
    path: &Path,
    label: &str,
    chain: Vec<CertificateDer<'static>>,
    pem: &[u8],
    out: &mut Vec<Candidate>,
) -> Result<(), CandidateError> {
    let sibling = path.with_extension("key");
    let key = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Some((path.to_path_buf(), key)),
        Err(_) if sibling.is_file() => {
            let bytes = read(&sibling)?;
            PrivateKeyDer::from_pem_slice(&bytes)
                .ok()
                .map(|k| (sibling.clone(), k))
        }
        Err(_) => None,
    };
    let has_key = match key {
        Some((key_path, key)) => {
            Identity::from_parts(path, &key_path, chain.clone(), key)?;
            true
        }
        None => false,
    };
    out.push(Candidate {
        label: label.to_string(),
        chain: summaries(path, &chain)?,
        has_key,
        store: None,
    });
    Ok(())
}

fn summaries(
    path: &Path,
    chain: &[CertificateDer<'_>],
) -> Result<Vec<CertSummary>, CandidateError> {
    chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            crate::cert::summarize(der).map_err(|e| CandidateError::BadCertificate {
                path: path.to_path_buf(),
                index: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

fn load_jks(
    path: &Path,
    label: &str,
    bytes: &[u8],
    password: Option<&str>,
    out: &mut Vec<Candidate>,
) -> Result<(), CandidateError> {
    let entries = super::jks::read(bytes, password).map_err(|source| CandidateError::Jks {
        path: path.to_path_buf(),
        source,
    })?;
    for (position, e) in entries.iter().enumerate().filter(|(_, e)| e.has_key) {
        let ders: Vec<CertificateDer<'_>> = e
            .chain
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        out.push(Candidate {
            label: format!("{label}#{}", e.alias),
            chain: summaries(path, &ders)?,
            has_key: true,
            store: Some(StoreEntry {
                alias: e.alias.clone(),
                kind: StoreKind::Jks,
                position,
            }),
        });
    }
    Ok(())
}

/// Every key of a PKCS#12 file, in file order: the leaf is the certificate with the key's
/// local key id (the only certificate when there are no ids), the chain its issuers in the file.
fn load_pkcs12(
    path: &Path,
    label: &str,
    bytes: &[u8],
    password: Option<&str>,
    out: &mut Vec<Candidate>,
) -> Result<(), CandidateError> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password.unwrap_or("")).map_err(
        |e| match e {
            p12_keystore::error::Error::DerError(_) if password.is_none() => {
                CandidateError::Unrecognised {
                    path: path.to_path_buf(),
                }
            }
            e => CandidateError::Pkcs12 {
                path: path.to_path_buf(),
                detail: e.to_string(),
            },
        },
    )?;
    let certs: Vec<CertSummary> = archive
        .certs
        .iter()
        .map(|c| crate::cert::summarize(c.cert.as_der()))
        .collect::<Result<_, _>>()
        .map_err(|e| CandidateError::Pkcs12 {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let several = archive.keys.len() > 1;
    for (position, key) in archive.keys.iter().enumerate() {
        let id = key.local_key_id.as_ref().map(|i| i.0.clone());
        let leaf = archive
            .certs
            .iter()
            .position(|c| id.is_some() && c.local_key_id == id)
            .or_else(|| (!several && !certs.is_empty()).then_some(0));
        let Some(leaf) = leaf else { continue };
        let mut chain = vec![certs[leaf].clone()];
        for _ in 0..certs.len() {
            let last = &chain[chain.len() - 1];
            if last.self_issued {
                break;
            }
            let next = certs.iter().find(|c| {
                c.subject_der == last.issuer_der && !chain.iter().any(|h| h.sha256 == c.sha256)
            });
            match next {
                Some(c) => chain.push(c.clone()),
                None => break,
            }
        }
        let alias = key
            .friendly_name
            .clone()
            .unwrap_or_else(|| (position + 1).to_string());
        out.push(Candidate {
            label: if several || key.friendly_name.is_some() {
                format!("{label}#{alias}")
            } else {
                label.to_string()
            },
            chain,
            has_key: true,
            store: Some(StoreEntry {
                alias,
                kind: StoreKind::Pkcs12,
                position,
            }),
        });
    }
    Ok(())
}
