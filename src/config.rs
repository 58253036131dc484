//! The TOML configuration file (`--config`), merged under the command-line flags (flags win).
//!
//! Errors name the file and, for syntax and type errors, the line; relative paths in the file are
//! resolved against the file's directory.

use crate::capture::client_auth::ClientAuthMode;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The settings a config file may hold (all optional; see `config/example.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--upstream`.
    pub upstream: Option<String>,
    /// `--record`.
    pub record: Option<PathBuf>,
    /// `--keylog`.
    pub keylog: Option<PathBuf>,
    /// `--server-cert`.
    pub server_cert: Option<CertKey>,
    /// `--ca-dir`.
    pub ca_dir: Option<PathBuf>,
    /// `--client-auth`.
    pub client_auth: Option<ClientAuthMode>,
    /// `--client-ca`.
    #[serde(default)]
    pub client_ca: Vec<PathBuf>,
    /// `--client-ca-names`.
    pub client_ca_names: Option<CaNames>,
    /// `--identity` (several: `auto` picks by the server's CA names).
    #[serde(default)]
    pub identity: Vec<CertKey>,
    /// `--upstream-ca`.
    #[serde(default)]
    pub upstream_ca: Vec<PathBuf>,
    /// `--insecure-upstream`.
    pub insecure_upstream: Option<bool>,
    /// `--enforce`.
    pub enforce: Option<bool>,
    /// `--no-redact` (as `redact = false`).
    pub redact: Option<bool>,
    /// `--fault`s.
    #[serde(default)]
    pub fault: Vec<String>,
    /// `--upstream-engine`.
    pub upstream_engine: Option<crate::upstream::EngineChoice>,
    /// forward: `--intercept` host patterns.
    #[serde(default)]
    pub intercept: Vec<String>,
    /// forward: `--passthrough` host patterns.
    #[serde(default)]
    pub passthrough: Vec<String>,
    /// forward: `--allow-remote`.
    pub allow_remote: Option<bool>,
    /// forward: `--proxy-auth USER:PASS`.
    pub proxy_auth: Option<String>,
    /// forward: `--identity-dir` (`<host>.pem` files).
    pub identity_dir: Option<PathBuf>,
    /// forward: per-host upstream identities.
    #[serde(default)]
    pub host: Vec<HostEntry>,
}

/// `[[host]]`: the upstream identity for hosts matching a pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// `host`, `host:port`, `*.domain` or `*`.
    pub pattern: String,
    /// One identity, or several (the first matching the server's CA names is presented).
    #[serde(default)]
    pub identity: Vec<CertKey>,
    /// A PKCS#12 file instead of PEM.
    pub pkcs12: Option<PathBuf>,
    /// Environment variable holding the PKCS#12 password.
    pub password_env: Option<String>,
    /// File holding the PKCS#12 password (first line).
    pub password_file: Option<PathBuf>,
    /// The upstream engine for these hosts (`rustls`, `openssl`, `auto`); default: the
    /// listener's.
    pub engine: Option<crate::upstream::EngineChoice>,
}

/// A certificate and its key: `{ cert = "...", key = "..." }` or `"cert.pem,key.pem"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CertKey {
    /// `"cert.pem,key.pem"`.
    Pair(String),
    /// `{ cert = "...", key = "..." }`.
    Table {
        /// Certificate (chain) PEM.
        cert: PathBuf,
        /// Private key PEM.
        key: PathBuf,
    },
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

/// A config file problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Syntax or type error; the message carries line and column.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
}

impl CertKey {
    /// `(cert, key)` paths, resolved against `base`.
    pub fn paths(&self, base: &Path) -> Result<(PathBuf, PathBuf), String> {
        match self {
            CertKey::Pair(s) => match s.split_once(',') {
                Some((c, k)) if !c.is_empty() && !k.is_empty() => Ok((base.join(c), base.join(k))),
                _ => Err(format!("expected \"CERT,KEY\", got {s:?}")),
            },
            CertKey::Table { cert, key } => Ok((base.join(cert), base.join(key))),
        }
    }
}

/// A loaded config file and the directory its relative paths are relative to.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The settings.
    pub config: FileConfig,
    /// The file's directory.
    pub base: PathBuf,
    /// The file, for messages.
    pub path: Option<PathBuf>,
}

impl Loaded {
    /// Read and parse `path`.
    pub fn read(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(&text, &e),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Loaded {
            config,
            base,
            path: Some(path.to_path_buf()),
        })
    }

    /// A path from the file, resolved.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// Name a setting for messages: `FILE: key`.
    pub fn key(&self, key: &str) -> String {
        match &self.path {
            Some(p) => format!("{} ({key})", p.display()),
            None => key.to_string(),
        }
    }
}

/// `line L, column C: message` from a toml error.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {what}")
        }
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mtlscope.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn parses_both_cert_key_forms_and_resolves_relative_paths() {
        let (_d, path) = write(
            "upstream = \"https://localhost:9443\"\nclient_auth = \"optional\"\n\
             identity = [\"a.pem,a.key\", { cert = \"b.pem\", key = \"b.key\" }]\n",
        );
        let loaded = Loaded::read(&path).unwrap();
        assert_eq!(loaded.config.client_auth, Some(ClientAuthMode::Optional));
        let (c, k) = loaded.config.identity[1].paths(&loaded.base).unwrap();
        assert_eq!(c, loaded.base.join("b.pem"));
        assert_eq!(k, loaded.base.join("b.key"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let (_d, path) = write("listen = \"127.0.0.1:1\"\n\nclient_auth = \"sometimes\"\n");
        let err = Loaded::read(&path).unwrap_err().to_string();
        assert!(err.contains("mtlscope.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let (_d, path) = write("listen = \"127.0.0.1:1\"\nbogus_key = 1\n");
        let err = Loaded::read(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("bogus_key"), "{err}");
        let (_d, path) = write("listen = [\n");
        assert!(Loaded::read(&path)
            .unwrap_err()
            .to_string()
            .contains("line "));
    }

    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let loaded = Loaded::read(&path).unwrap();
        assert_eq!(loaded.config.client_auth, Some(ClientAuthMode::Optional));
        assert_eq!(loaded.config.identity.len(), 1);
    }

    #[test]
    fn missing_file_is_named() {
        let err = Loaded::read(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }
}
