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
    /// `--grace` seconds.
    pub grace: Option<u64>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--record-max-size` (e.g. `100M`).
    pub record_max_size: Option<String>,
    /// `--timeout` (seconds, each connect, handshake and exchange).
    pub timeout: Option<u64>,
    /// `--resolve HOST:PORT:ADDR` overrides.
    #[serde(default)]
    pub resolve: Vec<String>,
    /// `--pkcs12-password-env`: the variable holding the password of PKCS#12 identities.
    pub pkcs12_password_env: Option<String>,
    /// `--pkcs12-password-file`: the file whose first line is that password.
    pub pkcs12_password_file: Option<PathBuf>,
    /// `--quiet`: no line per flow.
    pub quiet: Option<bool>,
    /// `--explain`: each finding's evidence and fix under its flow.
    pub explain: Option<bool>,
    /// reverse: `--forward-client-cert` formats.
    #[serde(default)]
    pub forward_client_cert: Vec<String>,
    /// reverse: `--forward-client-cert-verify`.
    pub forward_client_cert_verify: Option<bool>,
    /// reverse: `--expect-client-cert-header`.
    pub expect_client_cert_header: Option<String>,
}

/// The keys each command reads from a config file; any other key in the file is refused with
/// its line, so a setting never silently does nothing.
pub mod keys {
    /// What `reverse` and `forward` both read.
    pub const LISTENER: &[&str] = &[
        "listen",
        "record",
        "keylog",
        "server_cert",
        "ca_dir",
        "client_auth",
        "client_ca",
        "client_ca_names",
        "identity",
        "upstream_ca",
        "insecure_upstream",
        "enforce",
        "redact",
        "fault",
        "timeout",
        "resolve",
        "pkcs12_password_env",
        "pkcs12_password_file",
        "quiet",
        "explain",
        "grace",
        "max_connections",
        "record_max_size",
        "upstream_engine",
    ];
    /// `reverse`, besides [`LISTENER`].
    pub const REVERSE_ONLY: &[&str] = &[
        "upstream",
        "forward_client_cert",
        "forward_client_cert_verify",
        "expect_client_cert_header",
    ];
    /// `forward`, besides [`LISTENER`] (no `upstream`: it goes where each client asks).
    pub const FORWARD_ONLY: &[&str] = &[
        "intercept",
        "passthrough",
        "allow_remote",
        "proxy_auth",
        "identity_dir",
        "host",
    ];
    /// `observe` (it terminates no TLS: no certificates, identities or trust).
    pub const OBSERVE: &[&str] = &["listen", "upstream", "record", "fault", "quiet", "explain"];
    /// `probe` (the URL is its argument).
    pub const PROBE: &[&str] = &[
        "identity",
        "pkcs12_password_env",
        "pkcs12_password_file",
        "upstream_ca",
        "insecure_upstream",
        "resolve",
        "timeout",
        "record",
    ];
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
    /// A key this command does not read.
    #[error("config {path}: line {line}: `{key}` does not apply to `mtlscope {command}`{why}")]
    NotForCommand {
        /// The file.
        path: PathBuf,
        /// Where the key is.
        line: usize,
        /// The key.
        key: String,
        /// The command.
        command: String,
        /// Why, when there is more to say.
        why: String,
    },
}

impl CertKey {
    /// The PKCS#12 file, when the entry is one (`"client.p12"`: no comma, `.p12`/`.pfx`).
    pub fn pkcs12(&self) -> Option<&Path> {
        match self {
            CertKey::Pair(s) if !s.contains(',') => {
                let l = s.to_ascii_lowercase();
                (l.ends_with(".p12") || l.ends_with(".pfx")).then(|| Path::new(s.as_str()))
            }
            _ => None,
        }
    }

    /// `(cert, key)` paths, resolved against `base`.
    pub fn paths(&self, base: &Path) -> Result<(PathBuf, PathBuf), String> {
        match self {
            CertKey::Pair(s) => match s.split_once(',').map(|(c, k)| (c.trim(), k.trim())) {
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
    /// Its text, to say on which line a key is.
    pub text: String,
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
            text,
        })
    }

    /// Refuse every top-level key `command` does not read (`allowed`), naming its line.
    pub fn only(&self, command: &str, allowed: &[&[&str]]) -> Result<(), ConfigError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let table: toml::Table = toml::from_str(&self.text).unwrap_or_default();
        for key in table.keys() {
            if allowed.iter().any(|keys| keys.contains(&key.as_str())) {
                continue;
            }
            let why = match (command, key.as_str()) {
                ("forward", "upstream") => {
                    ": a forward proxy goes where each client asks (CONNECT or an absolute URL); \
                     use `reverse` for one upstream"
                        .to_string()
                }
                ("observe", _) => ": observe terminates no TLS, so it presents and checks no \
                                   certificate"
                    .to_string(),
                _ => String::new(),
            };
            return Err(ConfigError::NotForCommand {
                path: path.clone(),
                line: self.line_of(key).unwrap_or(1),
                key: key.clone(),
                command: command.to_string(),
                why,
            });
        }
        Ok(())
    }

    /// The line (1-based) where top-level `key` is set (`key =`, `[key]` or `[[key]]`).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                let l = l.trim_start();
                let assigned = l
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='));
                let table = l
                    .trim_start_matches('[')
                    .strip_prefix(key)
                    .is_some_and(|rest| l.starts_with('[') && rest.trim_start().starts_with(']'));
                assigned || table
            })
            .map(|i| i + 1)
    }

    /// A path from the file, resolved.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// Name a setting for messages: `FILE line N (key)`.
    pub fn key(&self, key: &str) -> String {
        let top = key.split_whitespace().next().unwrap_or(key);
        match (&self.path, self.line_of(top)) {
            (Some(p), Some(line)) => format!("{} line {line} ({key})", p.display()),
            (Some(p), None) => format!("{} ({key})", p.display()),
            (None, _) => key.to_string(),
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
        assert!(loaded
            .only("reverse", &[keys::LISTENER, keys::REVERSE_ONLY])
            .is_ok());
    }

    #[test]
    fn keys_a_command_does_not_read_are_refused_with_their_line() {
        let (_d, path) = write("listen = \"127.0.0.1:1\"\n\nupstream = \"https://x:1\"\n");
        let loaded = Loaded::read(&path).unwrap();
        assert!(loaded
            .only("reverse", &[keys::LISTENER, keys::REVERSE_ONLY])
            .is_ok());
        let err = loaded
            .only("forward", &[keys::LISTENER, keys::FORWARD_ONLY])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("`upstream`"),
            "{err}"
        );
        assert_eq!(
            loaded.key("upstream"),
            format!("{} line 3 (upstream)", path.display())
        );
    }

    /// Every key the file model accepts belongs to some command and is shown in the example.
    #[test]
    fn every_key_is_read_by_a_command_and_in_the_example() {
        let fields = struct_fields::<FileConfig>();
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml"),
        )
        .unwrap();
        for f in fields {
            let used = [
                keys::LISTENER,
                keys::REVERSE_ONLY,
                keys::FORWARD_ONLY,
                keys::OBSERVE,
                keys::PROBE,
            ]
            .iter()
            .any(|k| k.contains(f));
            assert!(used, "{f} is read by no command");
            let shown = example.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{f} =")) || l.starts_with(&format!("[[{f}]]"))
            });
            assert!(shown, "{f} missing from config/example.toml");
        }
        for k in keys::LISTENER
            .iter()
            .chain(keys::REVERSE_ONLY)
            .chain(keys::FORWARD_ONLY)
            .chain(keys::OBSERVE)
            .chain(keys::PROBE)
        {
            assert!(fields.contains(k), "{k} listed but not a key");
        }
    }

    /// The field names serde's derive gives `T` (what `deny_unknown_fields` accepts).
    fn struct_fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::{self, Visitor};
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> de::Deserializer<'de> for Probe<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("probe"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("probe"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        fields
    }

    #[test]
    fn missing_file_is_named() {
        let err = Loaded::read(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }
}
