//! Setting values with more shape than a string: an identity (certificate and key, or a
//! PKCS#12 file), a per-host identity rule, the CA-names choice. Each reads the same from a flag
//! (`FromStr`) and from the config file (`Deserialize`).

use super::Rebase;
use crate::pki::load::{split_pair, Identity};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A certificate and its key, or a PKCS#12 file: `CERT,KEY` or `FILE.p12` on the command line;
/// in the file also `{ cert = "...", key = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertKey {
    /// PEM certificate (chain) and private key.
    Pem {
        /// Certificate (chain) PEM.
        cert: PathBuf,
        /// Private key PEM.
        key: PathBuf,
    },
    /// A `.p12` / `.pfx` file (password from the PKCS#12 password settings).
    Pkcs12(PathBuf),
}

impl CertKey {
    /// A PEM pair.
    pub fn pem(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> CertKey {
        CertKey::Pem {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Load the identity; `password` is asked for only by a PKCS#12 file.
    pub fn load(
        &self,
        password: impl FnOnce() -> Result<String, String>,
    ) -> Result<Identity, String> {
        match self {
            CertKey::Pem { cert, key } => Identity::load(cert, key).map_err(|e| e.to_string()),
            CertKey::Pkcs12(path) => {
                Identity::load_pkcs12(path, &password()?).map_err(|e| e.to_string())
            }
        }
    }
}

/// Whether a lone path names a PKCS#12 file.
pub fn is_pkcs12(path: &str) -> bool {
    let l = path.to_ascii_lowercase();
    l.ends_with(".p12") || l.ends_with(".pfx")
}

impl FromStr for CertKey {
    type Err = String;

    /// `CERT,KEY` (spaces around the comma are dropped) or `FILE.p12` / `FILE.pfx`.
    fn from_str(s: &str) -> Result<CertKey, String> {
        let s = s.trim();
        if !s.contains(',') && is_pkcs12(s) {
            return Ok(CertKey::Pkcs12(PathBuf::from(s)));
        }
        let (cert, key) = split_pair(s).map_err(|e| format!("{e}, or a FILE.p12"))?;
        Ok(CertKey::pem(cert, key))
    }
}

impl std::fmt::Display for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertKey::Pem { cert, key } => write!(f, "{},{}", cert.display(), key.display()),
            CertKey::Pkcs12(path) => write!(f, "{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for CertKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CertKey, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "\"CERT,KEY\", \"FILE.p12\" or { cert = \"CERT\", key = \"KEY\" }"
        )]
        enum Form {
            Text(String),
            Table { cert: PathBuf, key: PathBuf },
        }
        match Form::deserialize(d)? {
            Form::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Form::Table { cert, key } => Ok(CertKey::pem(cert, key)),
        }
    }
}

impl Rebase for CertKey {
    fn rebase(self, base: &Path) -> CertKey {
        match self {
            CertKey::Pem { cert, key } => CertKey::pem(base.join(cert), base.join(key)),
            CertKey::Pkcs12(path) => CertKey::Pkcs12(base.join(path)),
        }
    }
}

/// forward's identity rule for hosts matching a pattern: `--host-identity PATTERN=CERT,KEY`
/// (one identity) or a `[[host]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// `host`, `host:port`, `*.domain` or `*`.
    pub pattern: String,
    /// One identity, or several (the first matching the server's CA names is presented).
    #[serde(default)]
    pub identity: Vec<CertKey>,
    /// A PKCS#12 file (also accepted in `identity`).
    pub pkcs12: Option<PathBuf>,
    /// Environment variable holding this rule's PKCS#12 password (default: the global one).
    pub password_env: Option<String>,
    /// File holding this rule's PKCS#12 password, first line (default: the global one).
    pub password_file: Option<PathBuf>,
    /// The upstream engine for these hosts (`rustls`, `openssl`, `auto`); default: the
    /// listener's.
    pub engine: Option<crate::upstream::EngineChoice>,
}

impl FromStr for HostEntry {
    type Err = String;

    /// `PATTERN=CERT,KEY` or `PATTERN=FILE.p12`.
    fn from_str(s: &str) -> Result<HostEntry, String> {
        let (pattern, identity) = s
            .split_once('=')
            .ok_or_else(|| "expected PATTERN=CERT,KEY".to_string())?;
        Ok(HostEntry {
            pattern: pattern.trim().to_string(),
            identity: vec![identity.parse()?],
            pkcs12: None,
            password_env: None,
            password_file: None,
            engine: None,
        })
    }
}

impl HostEntry {
    /// Every identity this rule names, the `pkcs12` key's last.
    pub fn identities(&self) -> impl Iterator<Item = CertKey> + '_ {
        self.identity
            .iter()
            .cloned()
            .chain(self.pkcs12.clone().map(CertKey::Pkcs12))
    }
}

impl Rebase for HostEntry {
    fn rebase(self, base: &Path) -> HostEntry {
        HostEntry {
            identity: self.identity.into_iter().map(|i| i.rebase(base)).collect(),
            pkcs12: self.pkcs12.map(|p| base.join(p)),
            password_file: self.password_file.map(|p| base.join(p)),
            ..self
        }
    }
}

/// `--client-ca-names`: which CA names the client leg's CertificateRequest carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CaNames {
    /// The subjects of the `--client-ca` certificates.
    FromCa,
    /// An empty list (as IIS 8+ sends by default).
    None,
}
