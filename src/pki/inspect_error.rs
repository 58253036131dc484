//! Why `certs inspect` could not read a file: every variant is bad input (exit 2) and names
//! the file. Shared by the report (`inspect`) and the checks that load keys and anchors
//! (`inspect_checks`).

use std::path::PathBuf;

/// Why a file could not be inspected (all of these are bad input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM is malformed (bad base64, a BEGIN without END…).
    #[error("{path}: malformed PEM: {detail}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        detail: String,
    },
    /// PEM without any certificate (e.g. a key file).
    #[error("{path}: no certificate in this file{}", found_note(found))]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// The PEM sections it does hold.
        found: Vec<String>,
    },
    /// Neither PEM nor a DER certificate.
    #[error("{path}: not a certificate file (neither PEM nor DER X.509): {detail}")]
    NotCertificate {
        /// The file.
        path: PathBuf,
        /// What the DER parser said.
        detail: String,
    },
    /// One PEM certificate does not parse (truncated or corrupt DER).
    #[error("{path}: certificate #{index} is not a valid X.509 certificate: {detail}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position in the file, from 1.
        index: usize,
        /// What the parser said.
        detail: String,
    },
    /// A `--trust` certificate cannot serve as a trust anchor.
    #[error("--trust {path}: not usable as trust anchors: {detail}")]
    BadTrustAnchor {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        detail: String,
    },
    /// A `--key` or `--trust` file could not be loaded.
    #[error(transparent)]
    Load(#[from] super::load::LoadError),
}

fn found_note(found: &[String]) -> String {
    if found.is_empty() {
        " (no PEM sections at all)".into()
    } else {
        format!(" (it holds: {}; expected CERTIFICATE)", found.join(", "))
    }
}
