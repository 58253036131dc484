//! The settings `reverse` and `forward` share (flags and `--config` keys, one model: see
//! [`crate::settings`]), turned into the client-leg and upstream settings. Start-up errors
//! (missing files, mismatched keys) end here with exit code 2 and a message naming the flag, or
//! the config file and line.

use super::run_args::RunArgs;
use super::ui::UiArgs;
use super::upstream_args::UpstreamArgs;
use crate::capture::client_auth::{ClientAuthMode, ClientAuthPolicy};
use crate::capture::keylog::KeyLogFile;
use crate::capture::server_auth::UpstreamTrust;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::cert::KnownCerts;
use crate::error::CommandError;
use crate::facts::Mode;
use crate::faults::Faults;
use crate::lifecycle::Lifecycle;
use crate::pki::load::{load_certs, Identity};
use crate::proxy::client_leg::{ClientLegSettings, FixedServerCert};
use crate::proxy::context::SessionContext;
use crate::proxy::resumption::{ClientSessions, UpstreamResume};
use crate::record::RecordSettings;
use crate::record::Sink;
use crate::settings::{self, settings_group, CaNames, CertKey, Origins, Part};
use crate::upstream::Resolve;
use crate::upstream::{
    Engine, EngineChoice, OpensslEngine, OpensslSettings, RustlsEngine, RustlsSettings,
};
use clap::Args;
use rustls::crypto::CryptoProvider;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

settings_group! {
    /// The TLS-terminating modes' own settings (`reverse`, `forward`): the client leg's
    /// certificate and request, the upstream engine, the key log, redaction.
    #[derive(Clone, Debug, Default, Args, serde::Deserialize)]
    #[serde(default)]
    pub struct TlsArgs {
        /// Write NSS key-log lines for both legs to FILE (for Wireshark).
        #[arg(long, value_name = "FILE")]
        pub keylog: Option<PathBuf>,
        /// Certificate and key shown to clients; default: a leaf from the local CA.
        #[arg(long, value_name = "CERT,KEY")]
        pub server_cert: Option<CertKey>,
        /// Where the local CA lives (default: the user's data directory; `mtlscope ca` says).
        #[arg(long, value_name = "DIR")]
        pub ca_dir: Option<PathBuf>,
        /// Ask clients for a certificate: none, optional, required, or mirror the upstream's
        /// request.
        #[arg(long, value_enum)]
        pub client_auth: Option<ClientAuthMode>,
        /// CA certificate(s) whose names the client leg's CertificateRequest carries
        /// (repeatable).
        #[arg(long, value_name = "FILE")]
        pub client_ca: Vec<PathBuf>,
        /// Which CA names to send: from-ca (the --client-ca subjects) or none (an empty list).
        #[arg(long, value_enum)]
        pub client_ca_names: Option<CaNames>,
        /// Refuse client certificates that do not verify against --client-ca, like a real
        /// server.
        #[arg(long)]
        pub enforce: bool,
        /// Keep Authorization, Cookie and similar header values in recordings (in the config
        /// file: `redact = false`).
        #[arg(long = "no-redact", num_args = 0, default_missing_value = "false")]
        pub redact: Option<bool>,
        /// The upstream leg's TLS client: rustls, openssl (completes TLS 1.2 renegotiation and
        /// TLS 1.3 post-handshake auth), or auto (rustls; a request the server then asks a
        /// certificate for late is replayed once over openssl).
        #[arg(long, value_enum, value_name = "ENGINE")]
        pub upstream_engine: Option<EngineChoice>,
        /// When a client resumes its TLS session, resume the upstream session paired with the
        /// client's original handshake (mirror, the default), or always do a full upstream
        /// handshake (never).
        #[arg(long, value_enum, value_name = "MODE")]
        pub upstream_resume: Option<UpstreamResume>,
        /// Reuse upstream connections across client connections (for load), kept apart by
        /// the identity presented, server name, verification settings, engine and the client's
        /// own certificate. What you give up: the server's handshake, and its
        /// CertificateRequest, is seen once per pooled connection, not per client connection
        /// (a reused connection's exchanges say `upstream_connection.reused`), and upstream
        /// sessions are not resumed. Not with --client-auth mirror.
        #[arg(long)]
        pub upstream_pool: bool,
        /// Check the certificates clients present for revocation: the CRL at their CRL
        /// distribution points and their OCSP responder (2 s each, cached until nextUpdate), and
        /// --crl files; off the relay's path, the answer joins the record when it arrives.
        #[arg(long)]
        pub check_revocation: bool,
    }
}

/// Everything `reverse` and `forward` share, as flags and as `--config` keys.
#[derive(Clone, Debug, Args, Default)]
pub struct ProxyArgs {
    /// TOML file holding any of these settings under the same names (`client_ca` for
    /// `--client-ca`; see config/example.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listening, recording, stopping, faults.
    #[command(flatten)]
    pub run: RunArgs,
    /// The client leg and the engine.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The upstream leg.
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// The web view.
    #[command(flatten)]
    pub ui: UiArgs,
}

/// The merged, loaded settings.
pub struct Built {
    /// Where to listen.
    pub listen: SocketAddr,
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
    /// The terminal printer (`--quiet` leaves it out; `-v` prints evidence and fix).
    pub printer: Option<super::printer::Printer>,
    /// `--resolve` overrides.
    pub resolve: Resolve,
    /// `--fault`s.
    pub faults: Arc<Faults>,
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
    /// `--upstream-pool`.
    pub upstream_pool: bool,
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
            idle_timeout: Duration::from_secs(crate::proxy::context::DEFAULT_IDLE_SECS),
            served_names: None,
            pool: self
                .upstream_pool
                .then(crate::proxy::pool::UpstreamPool::new),
        }
    }

    /// Open the recording (if any) with this listener's settings, printing unless `--quiet`.
    pub fn open_sink(&self) -> Result<Sink, CommandError> {
        let sink = Sink::open(&self.recording).map_err(CommandError::usage)?;
        Ok(super::printer::Printer::attach(self.printer, sink))
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
    /// Fill what the flags left unset from `--config`, for `command` with its own groups
    /// (`own`); a key none of them reads is refused with its line.
    pub fn load<'a>(
        &'a mut self,
        command: &str,
        own: &'a mut [&'a mut dyn Part],
    ) -> Result<Origins, CommandError> {
        self.upstream.fold_curl_spellings()?;
        let mut parts: Vec<&'a mut dyn Part> = vec![
            &mut self.run,
            &mut self.tls,
            &mut self.upstream,
            &mut self.ui,
        ];
        parts.extend(own.iter_mut().map(|p| &mut **p));
        settings::load(self.config.as_deref(), command, &mut parts).map_err(CommandError::usage)
    }

    /// Load every file named and build the legs' settings; `server_cert` picks what clients
    /// are shown.
    pub fn build(
        &self,
        origins: &Origins,
        default_listen: &str,
        server_cert: impl FnOnce(
            &ServerCertInputs,
        )
            -> Result<Arc<dyn rustls::server::ResolvesServerCert>, CommandError>,
    ) -> Result<Built, CommandError> {
        let (run, tls, up) = (&self.run, &self.tls, &self.upstream);
        let provider = provider();
        let timeout = up.timeout(origins)?;
        let listen = run.listen_addr(default_listen, origins)?;

        let keylog: Option<Arc<dyn rustls::KeyLog>> = match &tls.keylog {
            Some(p) => Some(Arc::new(KeyLogFile::open(p).map_err(|e| {
                CommandError::usage(format!("{} {}: {e}", origins.name("keylog"), p.display()))
            })?)),
            None => None,
        };

        // Client leg: certificate request policy.
        let mode = tls.client_auth.unwrap_or(ClientAuthMode::None);
        let client_ca_name = origins.name("client_ca");
        let mut client_cas = Vec::new();
        let mut known = KnownCerts::new();
        for path in &tls.client_ca {
            let certs = load_certs(path)
                .map_err(|e| CommandError::usage(format!("{client_ca_name}: {e}")))?;
            known.add(&certs, &format!("{client_ca_name} {}", path.display()));
            client_cas.extend(certs);
        }
        let send_names = tls.client_ca_names.unwrap_or(CaNames::FromCa) == CaNames::FromCa;
        for warning in
            super::lint::client_auth_warnings(mode, !tls.client_ca.is_empty(), tls.enforce)?
        {
            eprintln!("mtlscope: warning: {warning}");
        }
        if tls.upstream_pool && mode == ClientAuthMode::Mirror {
            return Err(CommandError::usage(format!(
                "{}: not with {} mirror: mirror asks each client what the server asked on that \
                 client's own upstream connection, and a pooled connection was asked once",
                origins.name("upstream_pool"),
                origins.name("client_auth")
            )));
        }
        let mut policy =
            ClientAuthPolicy::new(mode, &client_cas, send_names, tls.enforce, provider.clone())
                .map_err(|e| CommandError::usage(format!("{client_ca_name}: {e}")))?;

        // Upstream leg: identities and trust.
        let mut identities: Vec<Arc<Identity>> = up
            .checked_identities(origins)?
            .into_iter()
            .map(Arc::new)
            .collect();
        let identity = match identities.len() {
            0 => IdentityPolicy::None,
            1 => IdentityPolicy::Fixed(identities.remove(0)),
            _ => IdentityPolicy::Auto(identities),
        };
        for id in identity.candidates() {
            known.add(&id.chain, &format!("identity {}", id.cert_path.display()));
        }
        for (named, path) in up.ca_files(origins) {
            if let Ok(certs) = load_certs(&path) {
                known.add(&certs, &format!("{named} {}", path.display()));
            }
        }
        let known = Arc::new(known);
        policy.known = known.clone();
        if tls.check_revocation {
            policy.revocation = Some(up.revocation(origins)?);
        } else if !up.crl.is_empty() {
            // --crl alone: offline CRLs for client chains too, nothing fetched from URLs a
            // client's certificate names.
            policy.revocation = Some(Arc::new(
                crate::revocation::Checker::new(&up.crl, false)
                    .map_err(|e| CommandError::usage(format!("{}: {e}", origins.name("crl"))))?,
            ));
        }
        let root_certs = up.root_certs(origins)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(root_certs.iter().cloned());
        let trust = UpstreamTrust::new(roots, up.insecure_upstream, provider.clone());
        let engines = Engines {
            rustls: RustlsEngine::new(Arc::new(RustlsSettings {
                provider: provider.clone(),
                trust,
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                keylog: keylog.clone(),
                timeout,
                versions: None,
                known: known.clone(),
            })),
            openssl: OpensslEngine::new(OpensslSettings {
                roots: root_certs,
                insecure: up.insecure_upstream,
                keylog: keylog.clone(),
                timeout,
                version: None,
            })
            .map_err(|e| {
                CommandError::usage(format!("{}: {e}", origins.name("upstream_engine")))
            })?,
        };
        let engine = engines.get(tls.upstream_engine.unwrap_or_default());

        let inputs = ServerCertInputs {
            ca_dir: tls.ca_dir.clone(),
            server_cert: tls
                .server_cert
                .clone()
                .map(|ck| (origins.name("server_cert"), ck)),
        };
        let resolver = server_cert(&inputs)?;
        Ok(Built {
            listen,
            client: ClientLegSettings {
                provider,
                server_cert: resolver,
                client_auth: Arc::new(policy),
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                keylog,
                timeout,
                sessions: ClientSessions::new(tls.upstream_resume.unwrap_or_default())
                    .map_err(|e| CommandError::usage(e.to_string()))?,
            },
            engine,
            engines,
            identity,
            recording: run.recording(origins)?,
            redact: tls.redact.unwrap_or(true),
            printer: run.printer(),
            resolve: up.resolve(origins)?,
            faults: Arc::new(run.faults(origins)?),
            grace: run.grace(),
            max_connections: run.max_connections,
            life: Lifecycle::new(),
            keylog_path: tls.keylog.clone(),
            upstream_pool: tls.upstream_pool,
        })
    }
}

/// The settings the server-certificate choice depends on.
pub struct ServerCertInputs {
    /// `--ca-dir`.
    pub ca_dir: Option<PathBuf>,
    /// `--server-cert`, with where it was named.
    pub server_cert: Option<(String, CertKey)>,
}

impl ServerCertInputs {
    /// Load `--server-cert` into a fixed resolver, if given.
    pub fn fixed_server_cert(
        &self,
    ) -> Result<Option<Arc<dyn rustls::server::ResolvesServerCert>>, CommandError> {
        let Some((named, ck)) = &self.server_cert else {
            return Ok(None);
        };
        let id = ck
            .load(|| Err("a PKCS#12 server certificate is not supported; use CERT,KEY".into()))
            .map_err(|e| CommandError::usage(format!("{named}: {e}")))?;
        Ok(Some(Arc::new(FixedServerCert(id.certified.clone()))))
    }
}
