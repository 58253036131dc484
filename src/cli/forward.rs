//! `mtlscope forward`: an HTTP proxy (plain HTTP and CONNECT) that intercepts TLS to hosts in
//! scope, with per-host upstream identities.

use super::proxy_args::ProxyArgs;
use super::upstream_args::UpstreamArgs;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::error::CommandError;
use crate::facts::Mode;
use crate::pki::load::Identity;
use crate::pki::{LocalCa, LocalCaResolver};
use crate::proxy::forward::{basic_credentials, ForwardOptions, ForwardProxy, LeafFactory};
use crate::proxy::hosts::{HostEngines, HostPattern, IdentityMap, Scope};
use crate::settings::{settings_group, HostEntry, Origins};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

settings_group! {
    /// `forward`'s own settings: scope, per-host identities, proxy authentication.
    #[derive(Debug, Default, Args, serde::Deserialize)]
    #[serde(default)]
    pub struct ForwardOnly {
        /// Intercept only hosts matching PATTERN (repeatable; default: all). `host`,
        /// `host:port`, `*.domain`, `*`.
        #[arg(long, value_name = "PATTERN")]
        pub intercept: Vec<String>,
        /// Tunnel hosts matching PATTERN untouched (repeatable; wins over --intercept).
        #[arg(long, value_name = "PATTERN")]
        pub passthrough: Vec<String>,
        /// Identity for hosts matching PATTERN: CERT,KEY or FILE.p12 (repeatable; several for
        /// one pattern: the first whose chain matches the server's CA names is presented). In
        /// the config file: `[[host]]` tables, which may also pick the engine.
        #[arg(long = "host-identity", value_name = "PATTERN=CERT,KEY|FILE.p12")]
        pub host: Vec<HostEntry>,
        /// A directory of `<host>.pem` (or `<host>:<port>.pem`) files holding certificate,
        /// chain and key, for hosts no other rule names.
        #[arg(long, value_name = "DIR")]
        pub identity_dir: Option<PathBuf>,
        /// Require `Proxy-Authorization: Basic` with these credentials (answer 407 otherwise):
        /// USER:PASS, @FILE (its first line) or env:NAME (kept out of the process list).
        #[arg(long, value_name = "USER:PASS")]
        pub proxy_auth: Option<String>,
        /// Close a passthrough tunnel on which no byte moved for SECS, either way (default
        /// 300), and an intercepted client connection idle for SECS with no request in flight,
        /// with its upstream connection (default 75); both recorded.
        #[arg(long, value_name = "SECS")]
        pub idle_timeout: Option<u64>,
    }
}

/// `mtlscope forward` flags.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The shared proxy flags (`--identity` is the default identity for every host).
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Scope and per-host rules.
    #[command(flatten)]
    pub forward: ForwardOnly,
}

/// Seconds a passthrough tunnel may idle when not told.
pub const DEFAULT_IDLE_SECS: u64 = 300;

/// Run `mtlscope forward` until interrupted.
pub fn run(mut args: ForwardArgs) -> Result<(), CommandError> {
    let origins = args.proxy.load("forward", &mut [&mut args.forward])?;
    let mut ca: Option<Arc<LocalCa>> = None;
    let built = args.proxy.build(&origins, "127.0.0.1:8080", |inputs| {
        let local = Arc::new(super::certs::open_local_ca(inputs.ca_dir.as_deref())?);
        ca = Some(local.clone());
        Ok(Arc::new(LocalCaResolver {
            ca: local,
            default_host: "localhost".into(),
            only: None,
        }))
    })?;
    let ca = ca.ok_or_else(|| CommandError::runtime("local CA missing"))?;
    let fwd = &args.forward;

    let allow_remote = args.proxy.ui.allow_remote;
    let proxy_auth = fwd
        .proxy_auth
        .as_deref()
        .map(|pa| super::secret::resolve(&origins.name("proxy_auth"), pa))
        .transpose()?;
    let exposed = !built.listen.ip().is_loopback();
    let remote_allowed = allow_remote && proxy_auth.is_some();
    if exposed && !remote_allowed {
        return Err(CommandError::usage(format!(
            "--listen {}: a forward proxy on a non-loopback address needs both --allow-remote and --proxy-auth USER:PASS",
            built.listen
        )));
    }

    let patterns = |key: &str, list: &[String]| -> Result<Vec<HostPattern>, CommandError> {
        list.iter()
            .map(|p| {
                HostPattern::parse(p)
                    .map_err(|e| CommandError::usage(format!("{}: {e}", origins.name(key))))
            })
            .collect()
    };
    let scope = Scope {
        intercept: patterns("intercept", &fwd.intercept)?,
        passthrough: patterns("passthrough", &fwd.passthrough)?,
    };
    if scope.passthrough.is_empty() && built.faults.has(&crate::faults::Fault::BlockRenegotiation) {
        eprintln!(
            "mtlscope: warning: --fault block-renegotiation acts only on --passthrough tunnels, \
             and none is configured: add --passthrough PATTERN"
        );
    }
    let identities = IdentityMap {
        rules: host_rules(&args.proxy.upstream, &fwd.host, &origins)?,
        dir: fwd.identity_dir.clone(),
        default: built.identity.clone(),
    };
    if let Some(dir) = &identities.dir {
        if !dir.is_dir() {
            return Err(CommandError::usage(format!(
                "{} {}: not a directory",
                origins.name("identity_dir"),
                dir.display()
            )));
        }
    }

    let leaves: LeafFactory = {
        let ca = ca.clone();
        Arc::new(move |host: &str| {
            Arc::new(LocalCaResolver {
                ca: ca.clone(),
                default_host: host.to_string(),
                only: None,
            }) as _
        })
    };
    let ui = args.proxy.ui.options(built.keylog_path.clone())?;
    let engines = host_engines(&fwd.host, &built.engines, &origins)?;
    let idle_timeout = Duration::from_secs(fwd.idle_timeout.unwrap_or(DEFAULT_IDLE_SECS).max(1));
    let session_idle = Duration::from_secs(
        fwd.idle_timeout
            .unwrap_or(crate::proxy::context::DEFAULT_IDLE_SECS)
            .max(1),
    );
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sink = built.open_sink()?;
        let (sink, ui) = super::ui::attach(ui, sink).await?;
        let mut session = built.session_context(Mode::Forward, sink.clone());
        session.idle_timeout = session_idle;
        let opts = ForwardOptions {
            own_listeners: ui.iter().map(|u| u.local_addr).collect(),
            session,
            leaves,
            identities,
            engines,
            scope,
            proxy_auth: proxy_auth.as_deref().map(basic_credentials),
            allow_remote,
            resolve: built.resolve.clone(),
            idle_timeout,
        };
        let proxy = ForwardProxy::start(built.listen, opts, built.max_connections)
            .await
            .map_err(|e| CommandError::usage(format!("--listen {}: {e}", built.listen)))?;
        eprintln!(
            "mtlscope forward: listening on http://{} (local CA: {})",
            proxy.local_addr,
            ca.cert_path().display()
        );
        super::until_interrupted(proxy.wait(), &built.life, built.grace, &sink).await;
        Ok(())
    })
}

/// `[[host]] engine = "…"` entries.
fn host_engines(
    entries: &[HostEntry],
    engines: &super::proxy_args::Engines,
    origins: &Origins,
) -> Result<HostEngines, CommandError> {
    let mut rules = Vec::new();
    for entry in entries {
        if let Some(choice) = entry.engine {
            rules.push((host_pattern(entry, origins)?, engines.get(choice)));
        }
    }
    Ok(HostEngines { rules })
}

/// A rule's pattern, parsed; errors name the flag, or the file, line and pattern.
fn host_pattern(entry: &HostEntry, origins: &Origins) -> Result<HostPattern, CommandError> {
    HostPattern::parse(&entry.pattern).map_err(|e| {
        let named = origins.name_with("host", &format!("host {}", entry.pattern));
        CommandError::usage(format!("{named}: {e}"))
    })
}

/// `--host-identity PATTERN=CERT,KEY` flags (or `[[host]]` entries), grouped by pattern.
fn host_rules(
    upstream: &UpstreamArgs,
    entries: &[HostEntry],
    origins: &Origins,
) -> Result<Vec<(HostPattern, IdentityPolicy)>, CommandError> {
    let mut grouped: Vec<(HostPattern, Vec<Arc<Identity>>)> = Vec::new();
    for entry in entries {
        let pattern = host_pattern(entry, origins)?;
        let named = origins.name_with("host", &format!("host {}", entry.pattern));
        for ck in entry.identities() {
            let id = ck
                .load(|| {
                    upstream.pkcs12_password(
                        entry.password_env.as_deref(),
                        entry.password_file.as_deref(),
                    )
                })
                .map_err(|e| CommandError::usage(format!("{named}: {e}")))?;
            match grouped.iter_mut().find(|(p, _)| *p == pattern) {
                Some((_, ids)) => ids.push(Arc::new(id)),
                None => grouped.push((pattern.clone(), vec![Arc::new(id)])),
            }
        }
    }
    Ok(grouped
        .into_iter()
        .map(|(p, mut ids)| {
            let policy = if ids.len() == 1 {
                IdentityPolicy::Fixed(ids.remove(0))
            } else {
                IdentityPolicy::Auto(ids)
            };
            (p, policy)
        })
        .collect())
}
