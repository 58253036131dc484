//! The PKI mtlscope needs: loading identities and CA files, the dev PKI, the local CA that issues
//! client-facing leaves, and certificate inspection.

pub mod dev;
mod files;
pub mod inspect;
pub mod inspect_checks;
pub mod inspect_error;
#[cfg(test)]
mod inspect_tests;
pub mod inspect_text;
pub mod load;
pub mod local_ca;
pub mod recipe;

pub use dev::{ClientCert, DevPki, IdentityFiles};
pub use local_ca::{LocalCa, LocalCaResolver};

use std::path::PathBuf;

/// Why a PKI job (dev PKI, local CA) failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The recipe file could not be read.
    #[error("cannot read recipe {path}: {source}")]
    RecipeRead {
        /// The recipe file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The recipe is not valid TOML or does not fit the recipe format.
    #[error("recipe {origin}: {detail}")]
    RecipeSyntax {
        /// The recipe file, or `embedded recipe`.
        origin: String,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// One recipe entry is inconsistent (unknown issuer, bad name, unknown usage…).
    #[error("recipe {origin}: entry {entry:?}: {detail}")]
    RecipeEntry {
        /// The recipe file, or `embedded recipe`.
        origin: String,
        /// The entry's `name`.
        entry: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The recipe lacks an entry the typed dev PKI accessor needs.
    #[error("recipe {origin}: no entry named {name:?} (the dev PKI needs it)")]
    RecipeMissing {
        /// The recipe file, or `embedded recipe`.
        origin: String,
        /// The missing entry's name.
        name: String,
    },
    /// rcgen could not build a key or certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An existing CA file could not be read or parsed.
    #[error("{path}: {detail}")]
    CaFile {
        /// The CA certificate or key file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Only half of a CA pair exists; mtlscope never regenerates over it.
    #[error("{missing} is missing but {present} exists: restore it, or move {present} away to create a new CA")]
    CaIncomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// The CA key does not belong to the CA certificate.
    #[error("{key}: private key does not match the CA certificate {cert}")]
    CaMismatch {
        /// The CA certificate.
        cert: PathBuf,
        /// The CA key.
        key: PathBuf,
    },
    /// A CA directory or key file other users could change or read: refused, since whoever
    /// can write it makes mtlscope issue certificates the user's clients trust.
    #[error("{path}: {what} (mode {mode:04o}); mtlscope will not use it: run `chmod {fix} {path}`, or pass --ca-dir to use another directory")]
    CaExposed {
        /// The directory or key file.
        path: PathBuf,
        /// What is wrong, in words.
        what: &'static str,
        /// Its permission bits.
        mode: u32,
        /// The `chmod` argument that fixes it.
        fix: &'static str,
    },
    /// `--ca-names` asks for constraints a CA that already exists cannot get.
    #[error("{path} already holds a local CA; --ca-names applies when the CA is created: move {path} away (clients then need the new CA) or drop --ca-names")]
    CaExists {
        /// The CA directory.
        path: PathBuf,
    },
    /// No data directory to put the local CA in.
    #[error("no data or home directory to keep the local CA in: pass --ca-dir")]
    NoDataDir,
    /// A leaf was asked for a name that cannot go in a certificate.
    #[error("cannot issue a certificate for {host:?}: {detail}")]
    BadHost {
        /// The requested host.
        host: String,
        /// Why it is unusable.
        detail: String,
    },
    /// The crypto provider refused a generated key.
    #[error("generated key for {what} is not usable: {detail}")]
    UnusableKey {
        /// Which key.
        what: String,
        /// What rustls said.
        detail: String,
    },
}

impl PkiError {
    /// Whether the error is the user's input (exit 2) rather than a runtime failure (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            PkiError::Write { .. } | PkiError::Generate { .. } | PkiError::UnusableKey { .. }
        )
    }
}

impl From<PkiError> for crate::error::CommandError {
    fn from(e: PkiError) -> Self {
        if e.is_usage() {
            crate::error::CommandError::usage(e)
        } else {
            crate::error::CommandError::runtime(e)
        }
    }
}
