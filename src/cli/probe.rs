//! `mtlscope probe URL`: flags into a [`ProbePlan`], the probe run, and its report as text or
//! JSON. Exit codes: 0 when the probe ran (whatever it found), 2 for bad usage, 1 when the
//! server could not be reached at all.

use super::proxy_args::provider;
use super::upstream_args::UpstreamArgs;
use crate::capture::server_auth::UpstreamTrust;
use crate::error::CommandError;
use crate::facts::Stage;
use crate::facts::{CertRequest, TlsVersion};
use crate::paths::Via;
use crate::probe::{Asked, Attempt, PathSummary, ProbePlan, ProbeReport};
use crate::record::Sink;
use crate::settings::Origins;
use crate::upstream::RustlsSettings;
use clap::Args;
use serde_json::{json, Value};
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
        Ok::<_, CommandError>(crate::paths::run(plan, &vias, &sink).await)
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
    let mut target = super::reverse::parse_upstream(&args.url)
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

/// One line saying how an attempt ended — could not connect, handshake failed, or the HTTP
/// status — and its most severe finding with every finding's id.
pub fn verdict(a: &Attempt) -> String {
    let f = &a.flow;
    if let Some(refused) = refused_throwaway(a) {
        return refused;
    }
    let leg = f.upstream_leg.as_ref();
    let error = leg
        .and_then(|l| l.error.clone())
        .or_else(|| f.error.clone())
        .unwrap_or_else(|| "no reason recorded".into());
    let outcome = match (&f.response, &f.request) {
        (Some(r), _) => format!("HTTP {}", r.status),
        (None, Some(_)) => format!("no HTTP answer: {error}"),
        (None, None)
            if leg
                .and_then(|l| l.failure.as_ref())
                .is_some_and(|x| x.stage == Stage::Connect) =>
        {
            format!("could not connect: {error}")
        }
        (None, None) => format!("handshake failed: {error}"),
    };
    match f.findings.first() {
        None => format!("{outcome}; no findings"),
        Some(top) => {
            let ids: Vec<&str> = f.findings.iter().map(|x| x.id.as_str()).collect();
            format!(
                "{outcome}; {} [{}]",
                first_sentence(&top.summary),
                ids.join(", ")
            )
        }
    }
}

/// The throw-away identity refused: what a server that verifies client certificates does, so
/// the line says that rather than why the certificate is not trusted (the findings keep it).
fn refused_throwaway(a: &Attempt) -> Option<String> {
    let f = &a.flow;
    let throwaway = a.identity.as_deref() == Some(crate::probe::throwaway::LABEL);
    let accepted = f.status().is_some_and(|s| s < 400);
    if !throwaway
        || accepted
        || f.findings
            .iter()
            .any(|x| x.id == crate::facts::FindingId::ClientCertNotVerified)
    {
        return None;
    }
    let how = match f.status() {
        Some(s) => format!("HTTP {s}"),
        None => "the handshake or request failed".to_string(),
    };
    Some(format!(
        "{how}; the server refused mtlscope's throw-away identity, as a server that verifies client certificates should"
    ))
}

/// A summary's first sentence as a clause: no final period, lowercase start unless an acronym.
fn first_sentence(s: &str) -> String {
    let first = match s.find(". ") {
        Some(i) => &s[..i],
        None => s.trim_end_matches('.'),
    };
    let mut chars = first.chars();
    match (chars.next(), first.chars().nth(1)) {
        (Some(c), Some(n)) if c.is_uppercase() && n.is_lowercase() => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => first.to_string(),
    }
}

fn identity_name(a: &Attempt) -> &str {
    a.identity.as_deref().unwrap_or("no identity")
}

fn asked_words(p: &PathSummary) -> &'static str {
    match (p.asked, p.inferred) {
        (Asked::Handshake, _) => "asked in the handshake",
        (Asked::Renegotiation, _) => "asked only after the request, by TLS 1.2 renegotiation",
        (Asked::PostHandshake, false) => {
            "asked only after the request, by TLS 1.3 post-handshake authentication"
        }
        (Asked::PostHandshake, true) => {
            "likely asked only after the request (TLS 1.3 post-handshake authentication, inferred from the answer)"
        }
        (Asked::No, _) => "not asked",
        (Asked::Unknown, _) => "unknown: no attempt got an answer",
    }
}

fn request_words(cr: &CertRequest) -> String {
    let names = match &cr.ca_names {
        None => "not visible".to_string(),
        Some(n) if n.is_empty() => "an empty list (any certificate)".to_string(),
        Some(n) => n
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut s = format!("asked for a client certificate; CA names: {names}");
    if !cr.signature_schemes.is_empty() {
        s.push_str(&format!(
            "; signature schemes: {}",
            cr.signature_schemes.join(", ")
        ));
    }
    s
}

/// The report for people: the handshake's request per version, when each path is asked for,
/// one verdict line per attempt, then the findings (repeated findings referred back).
pub fn to_text(r: &ProbeReport) -> String {
    let mut s = format!("mtlscope probe {} ({})\n", r.url, r.target);
    for w in &r.warnings {
        s.push_str(&format!("\nWarning: {w}\n"));
    }
    s.push_str("\nIn the handshake:\n");
    for v in r.versions() {
        let line = match (&v.cert_request, v.negotiated) {
            (Some(cr), _) => request_words(cr),
            (None, true) => "did not ask for a client certificate".into(),
            (None, false) => format!(
                "not negotiated: {}",
                v.error.as_deref().unwrap_or("no reason recorded")
            ),
        };
        s.push_str(&format!("  {}: {line}\n", v.version.as_str()));
    }
    s.push_str("\nPer path:\n");
    for p in r.paths() {
        s.push_str(&format!(
            "  {} GET {}: {}\n",
            p.version.as_str(),
            p.path,
            asked_words(&p)
        ));
    }
    s.push_str("\nAttempts:\n");
    for (i, a) in r.attempts.iter().enumerate() {
        s.push_str(&format!(
            "  {}. {}, {}, GET {}: {}\n",
            i + 1,
            a.offered.as_str(),
            identity_name(a),
            a.path,
            verdict(a)
        ));
    }
    for skipped in &r.skipped {
        s.push_str(&format!("  skipped {skipped}\n"));
    }
    let mut shown: Vec<(usize, Vec<(&str, &str)>)> = Vec::new();
    for (i, a) in r.attempts.iter().enumerate() {
        let f = &a.flow.findings;
        if f.is_empty() {
            continue;
        }
        let key: Vec<(&str, &str)> = f
            .iter()
            .map(|x| (x.id.as_str(), x.summary.as_str()))
            .collect();
        s.push_str(&format!(
            "\nAttempt {} ({}, {}, GET {}):\n",
            i + 1,
            a.offered.as_str(),
            identity_name(a),
            a.path
        ));
        if let Some((n, _)) = shown.iter().find(|(_, k)| *k == key) {
            s.push_str(&format!("  the same findings as attempt {n}\n"));
            continue;
        }
        for line in crate::render::explain::findings_text(f).lines() {
            match line.is_empty() {
                true => s.push('\n'),
                false => s.push_str(&format!("  {line}\n")),
            }
        }
        shown.push((i + 1, key));
    }
    s
}

/// The machine-readable summary.
pub fn to_json(r: &ProbeReport) -> Value {
    let versions: Vec<Value> = r
        .versions()
        .iter()
        .map(|v| {
            json!({
                "tls_version": v.version,
                "negotiated": v.negotiated,
                "asked_in_handshake": v.cert_request.is_some(),
                "cert_request": v.cert_request,
                "error": v.error,
            })
        })
        .collect();
    let paths: Vec<Value> = r
        .paths()
        .iter()
        .map(|p| {
            json!({
                "path": p.path,
                "tls_version": p.version,
                "asked": p.asked.as_str(),
                "inferred": p.inferred,
            })
        })
        .collect();
    let attempts: Vec<Value> = r
        .attempts
        .iter()
        .map(|a| {
            let leg = a.flow.upstream_leg.as_ref();
            json!({
                "tls_version": a.offered,
                "negotiated": leg.and_then(|l| l.tls_version),
                "identity": a.identity,
                "path": a.path,
                "handshake": if leg.is_some_and(|l| l.handshake_done_ms.is_some()) { "completed" } else { "failed" },
                "cert_request": leg.and_then(|l| l.cert_request.as_ref()),
                "presented": leg.and_then(|l| l.chain.first()).map(|c| &c.subject),
                "alerts": leg.map(|l| l.alerts.as_slice()).unwrap_or_default(),
                "status": a.flow.status(),
                "error": leg.and_then(|l| l.error.as_ref()).or(a.flow.error.as_ref()),
                "failure": leg.and_then(|l| l.failure.as_ref()),
                "findings": a.flow.findings,
                "verdict": verdict(a),
            })
        })
        .collect();
    json!({
        "url": r.url,
        "target": r.target,
        "reachable": r.reachable(),
        "versions": versions,
        "paths": paths,
        "attempts": attempts,
        "skipped": r.skipped,
        "warnings": r.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::verdict;
    use crate::facts::{Leg, LegFailure};
    use crate::probe::tests::attempt;

    #[test]
    fn verdicts_name_the_outcome_and_the_findings() {
        let a = attempt(
            "/",
            Leg::default(),
            Some(400),
            &["no-client-cert", "empty-ca-list"],
        );
        assert_eq!(
            verdict(&a),
            "HTTP 400; no-client-cert happened [no-client-cert, empty-ca-list]"
        );
        let mut b = attempt("/", Leg::default(), None, &["upstream-unreachable"]);
        b.flow.request = None;
        b.flow.upstream_leg = Some(std::sync::Arc::new(Leg {
            error: Some("refused".into()),
            failure: Some(LegFailure {
                stage: crate::facts::Stage::Connect,
                kind: crate::facts::FailureKind::ConnectionRefused,
            }),
            ..Leg::default()
        }));
        assert_eq!(
            verdict(&b),
            "could not connect: refused; upstream-unreachable happened [upstream-unreachable]"
        );
        b.flow.upstream_leg = Some(std::sync::Arc::new(Leg {
            error: Some("the peer sent a fatal protocol_version alert".into()),
            failure: Some(LegFailure {
                stage: crate::facts::Stage::Handshake,
                kind: crate::facts::FailureKind::AlertReceived,
            }),
            ..Leg::default()
        }));
        b.flow.findings.clear();
        assert_eq!(
            verdict(&b),
            "handshake failed: the peer sent a fatal protocol_version alert; no findings"
        );
        let mut c = attempt("/secure", Leg::default(), None, &[]);
        c.flow.error = Some("the server closed the connection".into());
        assert_eq!(
            verdict(&c),
            "no HTTP answer: the server closed the connection; no findings"
        );
    }
}
