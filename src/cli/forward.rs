//! `mtlscope forward`: an HTTP proxy (plain HTTP and CONNECT) that intercepts TLS to hosts in
//! scope, with per-host upstream identities.

use super::proxy_args::ProxyArgs;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::config::{HostEntry, Loaded};
use crate::error::CommandError;
use crate::facts::Mode;
use crate::pki::load::Identity;
use crate::pki::{LocalCa, LocalCaResolver};
use crate::proxy::forward::{basic_credentials, ForwardOptions, ForwardProxy, LeafFactory};
use crate::proxy::hosts::{HostEngines, HostPattern, IdentityMap, Scope};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `mtlscope forward` flags.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The shared proxy flags (`--identity` is the default identity for every host).
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Intercept only hosts matching PATTERN (repeatable; default: all). `host`, `host:port`,
    /// `*.domain`, `*`.
    #[arg(long, value_name = "PATTERN")]
    pub intercept: Vec<String>,
    /// Tunnel hosts matching PATTERN untouched (repeatable; wins over --intercept).
    #[arg(long, value_name = "PATTERN")]
    pub passthrough: Vec<String>,
    /// Identity for hosts matching PATTERN: CERT,KEY or FILE.p12 (repeatable; several for one
    /// pattern: the first whose chain matches the server's CA names is presented).
    #[arg(long, value_name = "PATTERN=CERT,KEY|FILE.p12")]
    pub host_identity: Vec<String>,
    /// A directory of `<host>.pem` (or `<host>:<port>.pem`) files holding certificate, chain and
    /// key, for hosts no other rule names.
    #[arg(long, value_name = "DIR")]
    pub identity_dir: Option<PathBuf>,
    /// Require `Proxy-Authorization: Basic` with these credentials (answer 407 otherwise).
    #[arg(long, value_name = "USER:PASS")]
    pub proxy_auth: Option<String>,
    /// Listen on, and accept clients from, non-loopback addresses (requires --proxy-auth; the
    /// --ui web view on such an address requires --ui-auth).
    #[arg(long)]
    pub allow_remote: bool,
    /// Close a passthrough tunnel on which no byte moved for SECS, either way (recorded).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u64,
}

/// Run `mtlscope forward` until interrupted.
pub fn run(args: ForwardArgs) -> Result<(), CommandError> {
    let mut ca: Option<Arc<LocalCa>> = None;
    let built = args.proxy.build("forward", "127.0.0.1:8080", |inputs| {
        let local = Arc::new(super::certs::open_local_ca(inputs.ca_dir.as_deref())?);
        ca = Some(local.clone());
        Ok(Arc::new(LocalCaResolver {
            ca: local,
            default_host: "localhost".into(),
        }))
    })?;
    let ca = ca.ok_or_else(|| CommandError::runtime("local CA missing"))?;
    let loaded = built.loaded.clone();
    let c = &loaded.config;

    let allow_remote = args.allow_remote || c.allow_remote.unwrap_or(false);
    let proxy_auth = args.proxy_auth.clone().or(c.proxy_auth.clone());
    if let Some(pa) = &proxy_auth {
        if !pa.contains(':') {
            return Err(CommandError::usage("--proxy-auth: expected USER:PASS"));
        }
    }
    let exposed = !built.listen.ip().is_loopback();
    let remote_allowed = allow_remote && proxy_auth.is_some();
    if exposed && !remote_allowed {
        return Err(CommandError::usage(format!(
            "--listen {}: a forward proxy on a non-loopback address needs both --allow-remote and --proxy-auth USER:PASS",
            built.listen
        )));
    }

    let patterns = |flag: &str,
                    flags: &[String],
                    file: &[String]|
     -> Result<Vec<HostPattern>, CommandError> {
        let (src, list) = if flags.is_empty() {
            (loaded.key(flag.trim_start_matches("--")), file)
        } else {
            (flag.to_string(), flags)
        };
        list.iter()
            .map(|p| HostPattern::parse(p).map_err(|e| CommandError::usage(format!("{src}: {e}"))))
            .collect()
    };
    let scope = Scope {
        intercept: patterns("--intercept", &args.intercept, &c.intercept)?,
        passthrough: patterns("--passthrough", &args.passthrough, &c.passthrough)?,
    };
    if scope.passthrough.is_empty() && built.faults.has(&crate::faults::Fault::BlockRenegotiation) {
        eprintln!(
            "mtlscope: warning: --fault block-renegotiation acts only on --passthrough tunnels, \
             and none is configured: add --passthrough PATTERN"
        );
    }
    let identities = IdentityMap {
        rules: host_rules(&args.proxy, &args.host_identity, &c.host, &loaded)?,
        dir: args
            .identity_dir
            .clone()
            .or(c.identity_dir.as_ref().map(|d| loaded.resolve(d))),
        default: built.identity.clone(),
    };
    if let Some(dir) = &identities.dir {
        if !dir.is_dir() {
            return Err(CommandError::usage(format!(
                "--identity-dir {}: not a directory",
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
            }) as _
        })
    };
    let ui = args
        .proxy
        .ui
        .options(allow_remote, built.keylog_path.clone())?;
    let engines = host_engines(&c.host, &built.engines, &loaded)?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sink = built.open_sink()?.explaining(built.explain);
        let (sink, _ui) = super::ui::attach(ui, sink).await?;
        let opts = ForwardOptions {
            session: built.session_context(Mode::Forward, sink.clone()),
            leaves,
            identities,
            engines,
            scope,
            proxy_auth: proxy_auth.as_deref().map(basic_credentials),
            allow_remote,
            resolve: built.resolve.clone(),
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
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
    loaded: &Loaded,
) -> Result<HostEngines, CommandError> {
    let mut rules = Vec::new();
    for entry in entries {
        if let Some(choice) = entry.engine {
            let key = loaded.key(&format!("host {}", entry.pattern));
            let pattern = HostPattern::parse(&entry.pattern)
                .map_err(|e| CommandError::usage(format!("{key}: {e}")))?;
            rules.push((pattern, engines.get(choice)));
        }
    }
    Ok(HostEngines { rules })
}

/// `--host-identity PATTERN=CERT,KEY` flags (or `[[host]]` entries), grouped by pattern.
fn host_rules(
    proxy: &ProxyArgs,
    flags: &[String],
    entries: &[HostEntry],
    loaded: &Loaded,
) -> Result<Vec<(HostPattern, IdentityPolicy)>, CommandError> {
    let mut grouped: Vec<(HostPattern, Vec<Arc<Identity>>)> = Vec::new();
    let mut add = |pattern: HostPattern, id: Identity| match grouped
        .iter_mut()
        .find(|(p, _)| *p == pattern)
    {
        Some((_, ids)) => ids.push(Arc::new(id)),
        None => grouped.push((pattern, vec![Arc::new(id)])),
    };
    if !flags.is_empty() {
        for f in flags {
            let (pattern, pair) = f.split_once('=').ok_or_else(|| {
                CommandError::usage(format!("--host-identity {f:?}: expected PATTERN=CERT,KEY"))
            })?;
            let pattern = HostPattern::parse(pattern)
                .map_err(|e| CommandError::usage(format!("--host-identity: {e}")))?;
            add(
                pattern,
                proxy
                    .load_identity_arg(pair)
                    .map_err(|e| CommandError::usage(format!("--host-identity: {e}")))?,
            );
        }
    } else {
        for entry in entries {
            let key = loaded.key(&format!("host {}", entry.pattern));
            let pattern = HostPattern::parse(&entry.pattern)
                .map_err(|e| CommandError::usage(format!("{key}: {e}")))?;
            for ck in &entry.identity {
                let (cert, k) = ck
                    .paths(&loaded.base)
                    .map_err(|e| CommandError::usage(format!("{key}: {e}")))?;
                add(
                    pattern.clone(),
                    Identity::load(&cert, &k)
                        .map_err(|e| CommandError::usage(format!("{key}: {e}")))?,
                );
            }
            if let Some(p12) = &entry.pkcs12 {
                let password = super::proxy_args::pkcs12_password(
                    entry.password_env.as_deref(),
                    entry
                        .password_file
                        .as_ref()
                        .map(|f| loaded.resolve(f))
                        .as_deref(),
                )
                .map_err(|e| CommandError::usage(format!("{key}: {e}")))?;
                let path = loaded.resolve(p12);
                add(
                    pattern.clone(),
                    Identity::load_pkcs12(&path, &password)
                        .map_err(|e| CommandError::usage(format!("{key}: {e}")))?,
                );
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
