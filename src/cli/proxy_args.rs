//! The flags `reverse` and `forward` share, merged with the config file, and turned into the
//! client-leg and upstream settings. Start-up errors (missing files, mismatched keys) end here
//! with exit code 2 and a message naming the flag or config key.

pub use super::flag_values::{load_root_certs, load_roots, parse_size, pkcs12_password, Resolve};
use super::flag_values::{named_files, upstream_roots, DEFAULT_GRACE_SECS};
use crate::capture::client_auth::{ClientAuthMode, ClientAuthPolicy};
use crate::capture::keylog::KeyLogFile;
use crate::capture::server_auth::UpstreamTrust;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::cert::KnownCerts;
use crate::config::{CaNames, CertKey, Loaded};
use crate::error::CommandError;
use crate::facts::Mode;
use crate::faults::Faults;
use crate::lifecycle::Lifecycle;
use crate::pki::load::{load_certs, Identity};
use crate::proxy::client_leg::{ClientLegSettings, FixedServerCert};
use crate::proxy::session::SessionContext;
use crate::record::RecordSettings;
use crate::record::Sink;
use crate::upstream::{
    Engine, EngineChoice, OpensslEngine, OpensslSettings, RustlsEngine, RustlsSettings,
};
use clap::Args;
use rustls::crypto::CryptoProvider;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Flags shared by the TLS-terminating modes.
#[derive(Clone, Debug, Args, Default)]
pub struct ProxyArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long)]
    pub listen: Option<String>,
    /// TOML configuration file; flags win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Append one JSON object per flow to FILE (JSON Lines, flushed per line).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Write NSS key-log lines for both legs to FILE (for Wireshark).
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Certificate and key shown to clients; default: a leaf from the local CA.
    #[arg(long, value_name = "CERT,KEY")]
    pub server_cert: Option<String>,
    /// Where the local CA lives.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Ask clients for a certificate: none, optional, required, or mirror the upstream's request.
    #[arg(long, value_enum)]
    pub client_auth: Option<ClientAuthMode>,
    /// CA certificate(s) whose names the client leg's CertificateRequest carries (repeatable).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Vec<PathBuf>,
    /// Which CA names to send: from-ca (the --client-ca subjects) or none (an empty list).
    #[arg(long, value_enum)]
    pub client_ca_names: Option<CaNames>,
    /// Identity mtlscope presents upstream: CERT,KEY (PEM) or FILE.p12 / FILE.pfx (password from
    /// --pkcs12-password-env or --pkcs12-password-file, never the command line). Repeatable; with
    /// several, the first whose chain matches the server's CA names is presented.
    #[arg(long, value_name = "CERT,KEY|FILE.p12")]
    pub identity: Vec<String>,
    /// curl's spelling of `--identity CERT,KEY`: the certificate (with `--key`), or a
    /// FILE.p12 alone. Repeatable; the n-th `--cert` pairs with the n-th `--key`.
    #[arg(long = "cert", value_name = "CERT")]
    pub cert: Vec<PathBuf>,
    /// curl's spelling: the private key of the matching `--cert`.
    #[arg(long = "key", value_name = "KEY")]
    pub key: Vec<PathBuf>,
    /// Environment variable holding the password of PKCS#12 identities (`--identity FILE.p12`).
    #[arg(long, value_name = "VAR")]
    pub pkcs12_password_env: Option<String>,
    /// File whose first line is the password of PKCS#12 identities.
    #[arg(long, value_name = "FILE")]
    pub pkcs12_password_file: Option<PathBuf>,
    /// Trust anchors for the upstream's certificate (repeatable; default: the system store).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Do not verify the upstream's certificate (the result is still recorded).
    #[arg(long)]
    pub insecure_upstream: bool,
    /// Refuse client certificates that do not verify against --client-ca, like a real server.
    #[arg(long)]
    pub enforce: bool,
    /// Keep Authorization, Cookie and similar header values in recordings.
    #[arg(long)]
    pub no_redact: bool,
    /// Connect to ADDR for HOST:PORT instead of resolving it (repeatable, like curl's); the
    /// server name and certificate checks still use HOST.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Behave like a broken middlebox on purpose (repeatable): strip-client-cert, empty-ca-list,
    /// ca-list=FILE, cut-on-cert-request, alert=NAME, allow-fingerprint=SHA256, delay=STEP:MS.
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub fault: Vec<String>,
    /// The upstream leg's TLS client: rustls, openssl (completes TLS 1.2 renegotiation and
    /// TLS 1.3 post-handshake auth), or auto (rustls; a request the server then asks a
    /// certificate for late is replayed once over openssl).
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub upstream_engine: Option<EngineChoice>,
    /// Bound, in seconds, on each connect and handshake (default 10).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// On SIGTERM/SIGINT, seconds in-flight exchanges get to finish before they are ended
    /// (every record is written either way; a second signal exits at once).
    #[arg(long, value_name = "SECS")]
    pub grace: Option<u64>,
    /// At most N client connections at once; more are closed at accept and recorded.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Rotate the recording when it reaches SIZE (e.g. 100M, 1G): FILE becomes FILE.1, FILE.1
    /// becomes FILE.2, ….
    #[arg(long, value_name = "SIZE")]
    pub record_max_size: Option<String>,
    /// Do not print a line per flow.
    #[arg(long, short)]
    pub quiet: bool,
    /// Under each flow, print every finding's evidence and fix (what `demo` shows).
    #[arg(long, short = 'v')]
    pub explain: bool,
    /// The web view.
    #[command(flatten)]
    pub ui: super::ui::UiArgs,
}

/// The merged, loaded settings.
pub struct Built {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `--upstream`, if any.
    pub upstream: Option<String>,
    /// The client leg.
    pub client: ClientLegSettings,
    /// The upstream engine.
    pub engine: Engine,
    /// Every engine, for per-host choices (`forward` `[[host]] engine`).
    pub engines: Engines,
    /// Which identity to present upstream.
    pub identity: IdentityPolicy,
    /// Redact credentials.
    pub redact: bool,
    /// Print each finding's evidence and fix under its flow.
    pub explain: bool,
    /// The local CA directory.
    pub ca_dir: Option<PathBuf>,
    /// `--resolve` overrides.
    pub resolve: Resolve,
    /// `--fault`s.
    pub faults: Arc<Faults>,
    /// The config file as read, for the keys only one command uses.
    pub loaded: Arc<Loaded>,
    /// How the recording is written (`--record`, `--record-max-size`).
    pub recording: RecordSettings,
    /// `--grace`.
    pub grace: Duration,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// The process's stop signals and connection tasks.
    pub life: Lifecycle,
    /// `--keylog`'s path, for the web view's per-flow key-log download.
    pub keylog_path: Option<PathBuf>,
}

impl Built {
    /// The session context every connection of a `mode` listener shares.
    pub fn session_context(&self, mode: Mode, sink: Sink) -> SessionContext {
        SessionContext {
            mode,
            client: self.client.clone(),
            engine: self.engine.clone(),
            sink,
            redact: self.redact,
            faults: self.faults.clone(),
            life: self.life.clone(),
            offload: None,
        }
    }

    /// Open the recording (if any) with this listener's settings.
    pub fn open_sink(&self) -> Result<Sink, CommandError> {
        Sink::open(&self.recording).map_err(CommandError::usage)
    }
}

/// The upstream engines a listener can use, built once.
#[derive(Clone, Debug)]
pub struct Engines {
    /// rustls.
    pub rustls: RustlsEngine,
    /// OpenSSL.
    pub openssl: OpensslEngine,
}

impl Engines {
    /// The engine for a choice.
    pub fn get(&self, choice: EngineChoice) -> Engine {
        match choice {
            EngineChoice::Rustls => Engine::Rustls(self.rustls.clone()),
            EngineChoice::Openssl => Engine::Openssl(self.openssl.clone()),
            EngineChoice::Auto => Engine::Auto {
                rustls: self.rustls.clone(),
                openssl: self.openssl.clone(),
            },
        }
    }
}

/// The one crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl ProxyArgs {
    /// Merge with the config file (refusing keys `command` does not read) and load every file
    /// named.
    pub fn build(
        &self,
        command: &str,
        default_listen: &str,
        server_cert: impl FnOnce(
            &ServerCertInputs,
        )
            -> Result<Arc<dyn rustls::server::ResolvesServerCert>, CommandError>,
    ) -> Result<Built, CommandError> {
        let loaded = match &self.config {
            Some(p) => Loaded::read(p).map_err(CommandError::usage)?,
            None => Loaded::default(),
        };
        use crate::config::keys;
        let allowed = match command {
            "forward" => [keys::LISTENER, keys::FORWARD_ONLY],
            _ => [keys::LISTENER, keys::REVERSE_ONLY],
        };
        loaded
            .only(command, &allowed)
            .map_err(CommandError::usage)?;
        self.merged_with(&loaded)
            .build_merged(loaded, default_listen, server_cert)
    }

    /// These flags with the config file's values filled in where a flag was not given.
    fn merged_with(&self, loaded: &Loaded) -> ProxyArgs {
        let c = &loaded.config;
        let mut m = self.clone();
        m.timeout = m.timeout.or(c.timeout);
        if m.resolve.is_empty() {
            m.resolve = c.resolve.clone();
        }
        if m.pkcs12_password_env.is_none() && m.pkcs12_password_file.is_none() {
            m.pkcs12_password_env = c.pkcs12_password_env.clone();
            m.pkcs12_password_file = c.pkcs12_password_file.as_ref().map(|p| loaded.resolve(p));
        }
        m.quiet |= c.quiet.unwrap_or(false);
        m.explain |= c.explain.unwrap_or(false);
        m
    }

    fn build_merged(
        &self,
        loaded: Loaded,
        default_listen: &str,
        server_cert: impl FnOnce(
            &ServerCertInputs,
        )
            -> Result<Arc<dyn rustls::server::ResolvesServerCert>, CommandError>,
    ) -> Result<Built, CommandError> {
        let c = &loaded.config;
        let provider = provider();
        let timeout = Duration::from_secs(self.timeout.unwrap_or(10).max(1));

        let listen_text = self
            .listen
            .clone()
            .or(c.listen.clone())
            .unwrap_or_else(|| default_listen.to_string());
        let listen: SocketAddr = super::listen_addr(&listen_text)?;

        let keylog_path = self
            .keylog
            .clone()
            .or(c.keylog.as_ref().map(|p| loaded.resolve(p)));
        let keylog: Option<Arc<dyn rustls::KeyLog>> = match keylog_path.clone() {
            Some(p) => Some(Arc::new(KeyLogFile::open(&p).map_err(|e| {
                CommandError::usage(format!("--keylog {}: {e}", p.display()))
            })?)),
            None => None,
        };

        // Client leg: certificate request policy.
        let mode = self
            .client_auth
            .or(c.client_auth)
            .unwrap_or(ClientAuthMode::None);
        let mut client_cas = Vec::new();
        let ca_files = named_files(
            &self.client_ca,
            "--client-ca",
            &c.client_ca,
            "client_ca",
            &loaded,
        );
        for (flag, path) in &ca_files {
            client_cas
                .extend(load_certs(path).map_err(|e| CommandError::usage(format!("{flag}: {e}")))?);
        }
        let send_names = self
            .client_ca_names
            .or(c.client_ca_names)
            .unwrap_or(CaNames::FromCa)
            == CaNames::FromCa;
        let enforce = self.enforce || c.enforce.unwrap_or(false);
        for warning in super::lint::client_auth_warnings(mode, !ca_files.is_empty(), enforce)? {
            eprintln!("mtlscope: warning: {warning}");
        }
        let mut policy =
            ClientAuthPolicy::new(mode, &client_cas, send_names, enforce, provider.clone())
                .map_err(|e| CommandError::usage(format!("--client-ca: {e}")))?;
        let mut known = KnownCerts::new();
        for (flag, path) in &ca_files {
            if let Ok(certs) = load_certs(path) {
                known.add(&certs, &format!("{flag} {}", path.display()));
            }
        }

        // Upstream leg: identities and trust.
        let mut identities = Vec::new();
        let identity_args = self.identity_args()?;
        if identity_args.is_empty() {
            for ck in &c.identity {
                let at =
                    |e: String| CommandError::usage(format!("{}: {e}", loaded.key("identity")));
                let identity = match ck.pkcs12() {
                    Some(p12) => self.load_identity_arg(&loaded.resolve(p12).to_string_lossy()),
                    None => {
                        let (cert, key) = ck.paths(&loaded.base).map_err(at)?;
                        Identity::load(&cert, &key).map_err(|e| e.to_string())
                    }
                };
                identities.push(Arc::new(identity.map_err(at)?));
            }
        } else {
            for arg in &identity_args {
                identities
                    .push(Arc::new(self.load_identity_arg(arg).map_err(|e| {
                        CommandError::usage(format!("--identity: {e}"))
                    })?));
            }
        }
        let identity = match identities.len() {
            0 => IdentityPolicy::None,
            1 => IdentityPolicy::Fixed(identities.remove(0)),
            _ => IdentityPolicy::Auto(identities),
        };
        for id in identity.candidates() {
            known.add(&id.chain, &format!("identity {}", id.cert_path.display()));
        }
        let upstream_ca_files = named_files(
            &self.upstream_ca,
            "--upstream-ca",
            &c.upstream_ca,
            "upstream_ca",
            &loaded,
        );
        for (flag, path) in &upstream_ca_files {
            if let Ok(certs) = load_certs(path) {
                known.add(&certs, &format!("{flag} {}", path.display()));
            }
        }
        let known = Arc::new(known);
        policy.known = known.clone();
        let insecure = self.insecure_upstream || c.insecure_upstream.unwrap_or(false);
        let root_certs = upstream_roots(self, &loaded)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(root_certs.iter().cloned());
        let trust = UpstreamTrust::new(roots, insecure, provider.clone());
        let engines = Engines {
            rustls: RustlsEngine {
                settings: Arc::new(RustlsSettings {
                    provider: provider.clone(),
                    trust,
                    alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                    keylog: keylog.clone(),
                    timeout,
                    versions: None,
                    known: known.clone(),
                }),
            },
            openssl: OpensslEngine::new(OpensslSettings {
                roots: root_certs,
                insecure,
                keylog: keylog.clone(),
                timeout,
            })
            .map_err(|e| CommandError::usage(format!("--upstream-engine: {e}")))?,
        };
        let engine = engines.get(
            self.upstream_engine
                .or(c.upstream_engine)
                .unwrap_or_default(),
        );

        let inputs = ServerCertInputs {
            upstream: c.upstream.clone(),
            ca_dir: self
                .ca_dir
                .clone()
                .or(c.ca_dir.as_ref().map(|p| loaded.resolve(p))),
            server_cert: match (&self.server_cert, &c.server_cert) {
                (Some(arg), _) => Some((
                    "--server-cert".to_string(),
                    CertKey::Pair(arg.clone()),
                    PathBuf::new(),
                )),
                (None, Some(ck)) => {
                    Some((loaded.key("server_cert"), ck.clone(), loaded.base.clone()))
                }
                (None, None) => None,
            },
        };
        let resolver = server_cert(&inputs)?;
        let fault_values = if self.fault.is_empty() {
            &c.fault
        } else {
            &self.fault
        };
        let faults = Faults::parse(fault_values).map_err(CommandError::usage)?;
        let record = self
            .record
            .clone()
            .or(c.record.as_ref().map(|p| loaded.resolve(p)));
        let redact = !self.no_redact && c.redact.unwrap_or(true);
        let max_size = match (&self.record_max_size, &c.record_max_size) {
            (Some(v), _) => Some(
                parse_size(v)
                    .map_err(|e| CommandError::usage(format!("--record-max-size {v:?}: {e}")))?,
            ),
            (None, Some(v)) => Some(parse_size(v).map_err(|e| {
                CommandError::usage(format!(
                    "{}: record_max_size {v:?}: {e}",
                    loaded.key("record_max_size")
                ))
            })?),
            (None, None) => None,
        };
        let print = !self.quiet;
        Ok(Built {
            listen,
            upstream: inputs.upstream,
            client: ClientLegSettings {
                provider,
                server_cert: resolver,
                client_auth: Arc::new(policy),
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                keylog,
                timeout,
            },
            engine,
            engines,
            identity,
            recording: RecordSettings {
                path: record,
                max_size,
                print,
            },
            redact,
            explain: self.explain,
            ca_dir: inputs.ca_dir,
            resolve: Resolve::parse(&self.resolve).map_err(|e| {
                if self.resolve == c.resolve && !c.resolve.is_empty() {
                    CommandError::usage(format!("{}: {e}", loaded.key("resolve")))
                } else {
                    e
                }
            })?,
            faults: Arc::new(faults),
            grace: Duration::from_secs(self.grace.or(c.grace).unwrap_or(DEFAULT_GRACE_SECS)),
            max_connections: self.max_connections.or(c.max_connections),
            life: Lifecycle::new(),
            loaded: Arc::new(loaded),
            keylog_path,
        })
    }

    /// Every `--identity`, then every curl-style `--cert`/`--key` pair as `CERT,KEY`.
    pub fn identity_args(&self) -> Result<Vec<String>, CommandError> {
        let mut out = self.identity.clone();
        out.extend(super::lint::curl_style_identities(&self.cert, &self.key)?);
        Ok(out)
    }

    /// Load `CERT,KEY` or a PKCS#12 file named on the command line.
    pub fn load_identity_arg(&self, arg: &str) -> Result<Identity, String> {
        let arg = arg.trim();
        let lower = arg.to_ascii_lowercase();
        if !arg.contains(',') && (lower.ends_with(".p12") || lower.ends_with(".pfx")) {
            let password = self.pkcs12_password()?;
            return Identity::load_pkcs12(std::path::Path::new(arg), &password)
                .map_err(|e| e.to_string());
        }
        Identity::load_pair(arg).map_err(|e| e.to_string())
    }

    /// The PKCS#12 password from --pkcs12-password-env or --pkcs12-password-file (empty if
    /// neither is given).
    fn pkcs12_password(&self) -> Result<String, String> {
        pkcs12_password(
            self.pkcs12_password_env.as_deref(),
            self.pkcs12_password_file.as_deref(),
        )
    }
}

/// The settings the server-certificate choice depends on.
pub struct ServerCertInputs {
    /// `--upstream` from the config file (the flag is handled by the command).
    pub upstream: Option<String>,
    /// `--ca-dir`.
    pub ca_dir: Option<PathBuf>,
    /// `--server-cert`: where it was named, the pair, and the base for relative paths.
    pub server_cert: Option<(String, CertKey, PathBuf)>,
}

impl ServerCertInputs {
    /// Load `--server-cert` into a fixed resolver, if given.
    pub fn fixed_server_cert(
        &self,
    ) -> Result<Option<Arc<dyn rustls::server::ResolvesServerCert>>, CommandError> {
        let Some((flag, ck, base)) = &self.server_cert else {
            return Ok(None);
        };
        let (cert, key) = ck
            .paths(base)
            .map_err(|e| CommandError::usage(format!("{flag}: {e}")))?;
        let id =
            Identity::load(&cert, &key).map_err(|e| CommandError::usage(format!("{flag}: {e}")))?;
        Ok(Some(Arc::new(FixedServerCert(id.certified.clone()))))
    }
}
