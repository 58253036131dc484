//! `mtlscope probe URL`: flags into a [`ProbePlan`], the probe run, and its report (written by
//! [`crate::render::probe`]) as text or JSON. Exit codes: 0 when the probe ran (whatever it
//! found), 2 for bad usage, 1 when the server could not be reached at all.

use super::proxy_args::provider;
use super::upstream_args::UpstreamArgs;
use crate::capture::server_auth::UpstreamTrust;
use crate::error::CommandError;
use crate::facts::TlsVersion;
use crate::paths::Via;
use crate::probe::ProbePlan;
use crate::record::Sink;
use crate::render::probe::{to_json, to_text};
use crate::settings::Origins;
use crate::upstream::RustlsSettings;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

crate::settings::settings_group! {
    /// `probe`'s own settings.
    #[derive(Clone, Debug, Default, Args, serde::Deserialize)]
    #[serde(default)]
    pub struct ProbeOnly {
        /// Path to GET, each on its own connections (repeatable; default: the URL's path, or
        /// /).
        #[arg(long, value_name = "/PATH")]
        pub path: Vec<String>,
        /// Probe TLS 1.2 only (default: TLS 1.3 and TLS 1.2, each on its own connections).
        #[arg(long, conflicts_with = "tls13")]
        pub tls12: bool,
        /// Probe TLS 1.3 only.
        #[arg(long)]
        pub tls13: bool,
        /// Probe over this path too, and compare it with the direct path (repeatable):
        /// `http://[USER:PASS@]HOST:PORT` (an HTTP CONNECT proxy), `env` (the proxy an HTTPS
        /// client would take from https_proxy / HTTPS_PROXY / ALL_PROXY, honouring NO_PROXY as
        /// curl does), or `direct`. The direct path is the reference whatever the order
        /// (added when not named); every other path is compared with it.
        #[arg(long, value_name = "PROXY|env|direct")]
        pub via: Vec<String>,
        /// The attempts' TLS client: rustls, openssl (completes TLS 1.2 renegotiation and
        /// TLS 1.3 post-handshake auth, so an identity asked for late is judged), or auto
        /// (rustls; an attempt the server then asks a certificate for late is made again over
        /// openssl).
        #[arg(long, value_enum, value_name = "ENGINE")]
        pub upstream_engine: Option<crate::upstream::EngineChoice>,
        /// Do not add the throw-away identity (from a CA made for this run) to the attempts
        /// when the server asks; by default it shows whether the server verifies at all.
        #[arg(long)]
        pub no_throwaway_identity: bool,
        /// Print a machine-readable summary instead of the text report.
        #[arg(long)]
        pub json: bool,
        /// Append every attempt's flow to FILE (JSON Lines).
        #[arg(long, value_name = "FILE")]
        pub record: Option<PathBuf>,
    }
}

/// `mtlscope probe` flags.
#[derive(Clone, Debug, Args)]
pub struct ProbeArgs {
    /// The server to check: https://HOST[:PORT][/PATH] (the path is requested unless --path is
    /// given).
    pub url: String,
    /// TOML file holding any of these settings under the same names (see
    /// config/example.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to probe and how to report.
    #[command(flatten)]
    pub probe: ProbeOnly,
    /// The identities to try, trust, name overrides, time bound.
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

/// Run `mtlscope probe`.
pub fn run(mut args: ProbeArgs) -> Result<(), CommandError> {
    args.upstream.fold_curl_spellings()?;
    let origins = crate::settings::load(
        args.config.as_deref(),
        "probe",
        &mut [&mut args.probe, &mut args.upstream],
    )
    .map_err(CommandError::usage)?;
    let plan = plan(&args, &origins)?;
    let args = &args.probe;
    if !args.via.is_empty() {
        return run_paths(args, &plan);
    }
    let rt = super::runtime()?;
    let report = rt.block_on(async {
        let sink = Sink::open(&crate::record::RecordSettings {
            path: args.record.clone(),
            max_size: None,
        })
        .map_err(|e| CommandError::usage(format!("--record: {e}")))?;
        Ok::<_, CommandError>(crate::probe::run(&plan, &sink).await)
    })?;
    if args.json {
        crate::outln!("{:#}", to_json(&report));
    } else {
        crate::out!("{}", to_text(&report));
    }
    if report.reachable() {
        Ok(())
    } else {
        Err(CommandError::runtime(format!(
            "{} could not be reached",
            report.target
        )))
    }
}

/// The `--via` paths, in order, `direct` first unless named.
fn vias(args: &ProbeOnly, host: &str) -> Result<Vec<Via>, CommandError> {
    let env = |name: &str| std::env::var(name).ok();
    let mut out = Vec::new();
    for v in &args.via {
        let via = Via::parse(v, host, &env)
            .map_err(|e| CommandError::usage(format!("--via {v:?}: {e}")))?;
        out.push(via);
    }
    if !out.contains(&Via::Direct) {
        out.insert(0, Via::Direct);
    }
    Ok(out)
}

/// `probe --via`: the same probe over every path, then each path compared with the direct one.
fn run_paths(args: &ProbeOnly, plan: &ProbePlan) -> Result<(), CommandError> {
    let vias = vias(args, &plan.target.host)?;
    let rt = super::runtime()?;
    let report = rt.block_on(async {
        let sink = Sink::open(&crate::record::RecordSettings {
            path: args.record.clone(),
            max_size: None,
        })
        .map_err(|e| CommandError::usage(format!("--record: {e}")))?;
        Ok::<_, CommandError>(crate::probe::via::run(plan, &vias, &sink).await)
    })?;
    if args.json {
        crate::outln!("{:#}", crate::render::paths::probe_json(&report));
    } else {
        crate::out!("{}", crate::render::paths::probe_text(&report));
    }
    if report.runs.iter().any(|r| r.report.reachable()) {
        Ok(())
    } else {
        Err(CommandError::runtime(format!(
            "{} could not be reached over any path",
            plan.target.authority()
        )))
    }
}

/// The flags, checked and loaded.
pub(crate) fn plan(args: &ProbeArgs, origins: &Origins) -> Result<ProbePlan, CommandError> {
    let up = &args.upstream;
    let mut target = crate::upstream::parse_upstream(&args.url)
        .map_err(|e| CommandError::usage(format!("URL {e}")))?;
    up.resolve(origins)?.apply(&mut target);
    let url_path = args
        .url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let paths = if args.probe.path.is_empty() {
        vec![url_path]
    } else {
        args.probe.path.clone()
    };
    for p in &paths {
        let ok = p.starts_with('/') && p.parse::<http::uri::PathAndQuery>().is_ok();
        if !ok {
            return Err(CommandError::usage(format!(
                "{} {p:?}: expected an absolute path such as /secure",
                origins.name("path")
            )));
        }
    }
    let timeout = up.timeout(origins)?;
    let versions = match (args.probe.tls12, args.probe.tls13) {
        (true, _) => vec![TlsVersion::Tls12],
        (_, true) => vec![TlsVersion::Tls13],
        _ => vec![TlsVersion::Tls13, TlsVersion::Tls12],
    };
    let identities: Vec<Arc<crate::pki::load::Identity>> = up
        .checked_identities(origins)?
        .into_iter()
        .map(Arc::new)
        .collect();
    // Where a chain that lacks its intermediate is completed from, as reverse does: the
    // identities' own chains and the trust anchors named.
    let mut known = crate::cert::KnownCerts::new();
    for id in &identities {
        known.add(&id.chain, &format!("identity {}", id.cert_path.display()));
    }
    for (named, path) in up.ca_files(origins) {
        if let Ok(certs) = crate::pki::load::load_certs(&path) {
            known.add(&certs, &format!("{named} {}", path.display()));
        }
    }
    let throwaway = if args.probe.no_throwaway_identity {
        None
    } else {
        Some(Arc::new(
            crate::probe::throwaway::identity()
                .map_err(|e| CommandError::runtime(e.to_string()))?,
        ))
    };
    let engine = args.probe.upstream_engine.unwrap_or_default();
    let openssl = crate::upstream::OpensslSettings {
        roots: up.root_certs(origins)?,
        insecure: up.insecure_upstream,
        keylog: None,
        timeout,
        version: None,
    };
    let provider = provider();
    let trust = UpstreamTrust::new(
        super::flag_values::load_roots(&up.ca_files(origins))?,
        up.insecure_upstream,
        provider.clone(),
    );
    Ok(ProbePlan {
        url: args.url.clone(),
        target,
        paths,
        versions,
        identities,
        settings: RustlsSettings {
            provider,
            trust,
            // HTTP/1.1 only: HTTP/2 forbids the late requests the probe looks for.
            alpn: vec![b"http/1.1".to_vec()],
            keylog: None,
            timeout,
            versions: None,
            known: Arc::new(known),
        },
        timeout,
        engine,
        openssl,
        throwaway,
    })
}
