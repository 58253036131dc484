//! `mtlscope certs choose --for URL|RECORDING[:N] CANDIDATE…`: the CertificateRequest from a
//! live server (one probe connection, as `probe` makes it) or from a recorded flow, the
//! candidates from files, and [`crate::choose::choose`]'s answer as text or JSON.

use crate::choose::{self, candidates, render, Request};
use crate::error::CommandError;
use crate::facts::{Flow, Leg, TlsVersion};
use crate::paths::Via;
use crate::recording::{self, Selector};
use clap::Args;
use std::path::PathBuf;

/// `certs choose` flags.
#[derive(Debug, Args)]
pub struct ChooseArgs {
    /// Where the request comes from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The certificates the client holds, in its order: CERT,KEY pairs, PEM or DER files (key
    /// in the same PEM or beside it as NAME.key), PKCS#12 files, Java keystores (JKS or
    /// PKCS#12, every key entry in the store's order), or directories of them.
    #[arg(required = true, value_name = "CANDIDATE")]
    pub candidates: Vec<String>,
    /// Password of PKCS#12 files and Java keystores: the text, @FILE, or env:NAME.
    #[arg(long, value_name = "P|@FILE|env:NAME")]
    pub password: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Where the CertificateRequest comes from, and how to reach a live server.
#[derive(Debug, Default, Args)]
pub struct SourceArgs {
    /// Where the CertificateRequest comes from: https://HOST[:PORT]/ (asked live), or a
    /// recording FILE[:N] (the N-th record, default the first that has a request; the
    /// upstream leg's request when it has one, else the client leg's).
    #[arg(long = "for", value_name = "URL|RECORDING[:N]")]
    pub for_: String,
    /// Which leg's request to use from a recording (default: upstream, else client).
    #[arg(long, value_name = "client|upstream")]
    pub leg: Option<String>,
    /// Live: PEM file of CA certificates to verify the server against (repeatable).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Live: do not verify the server's certificate.
    #[arg(long)]
    pub insecure_upstream: bool,
    /// Live: connect to ADDR for HOST:PORT (repeatable).
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Live: reach the server through this HTTP CONNECT proxy (`http://HOST:PORT`, or `env`).
    #[arg(long, value_name = "PROXY|env")]
    pub via: Option<String>,
    /// Live: time bound in seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Live: `openssl` also sends a GET over OpenSSL, which completes a late request (TLS 1.2
    /// renegotiation, TLS 1.3 post-handshake auth) that rustls refuses, when the handshake
    /// asked for none; `rustls` (the default) sees handshake requests only.
    #[arg(long, value_name = "rustls|openssl")]
    pub upstream_engine: Option<String>,
}

/// Run `certs choose`.
pub fn run(args: ChooseArgs) -> Result<(), CommandError> {
    let password = args.password.as_deref().map(secret).transpose()?;
    let cands = candidates::load(&args.candidates, password.as_deref())
        .map_err(|e| CommandError::usage(format!("candidate {e}")))?;
    let (source, request) = request_from(&args.source)?;
    let answers = choose::choose(&request, &cands);
    if args.json {
        let v = render::to_json(&source, &request, &cands, &answers);
        crate::outln!("{v:#}");
    } else {
        crate::out!("{}", render::to_text(&source, &request, &cands, &answers));
    }
    Ok(())
}

/// The request named by `--for`: asked live, or read from a recording.
pub fn request_from(args: &SourceArgs) -> Result<(String, Request), CommandError> {
    if args.for_.starts_with("https://") {
        live(args)
    } else {
        recorded(args)
    }
}

/// `certs inspect --for`: `files` as candidates (the first one's key from `key`, else beside
/// each file) against the request named by `for_`; JSON, or the text table as a JSON string.
pub fn would_send(
    for_: &str,
    files: &[PathBuf],
    key: Option<&std::path::Path>,
    json: bool,
) -> Result<serde_json::Value, CommandError> {
    let (source, request) = request_from(&SourceArgs {
        for_: for_.to_string(),
        ..Default::default()
    })?;
    let mut args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if let (Some(key), Some(first)) = (key, args.first_mut()) {
        *first = format!("{first},{}", key.display());
    }
    let cands = candidates::load(&args, None)
        .map_err(|e| CommandError::usage(format!("certs inspect --for: {e}")))?;
    let answers = choose::choose(&request, &cands);
    Ok(if json {
        render::to_json(&source, &request, &cands, &answers)
    } else {
        serde_json::Value::String(render::to_text(&source, &request, &cands, &answers))
    })
}

/// `--password`: the text itself, `@FILE` (first line), or `env:NAME`.
fn secret(v: &str) -> Result<String, CommandError> {
    if let Some(file) = v.strip_prefix('@') {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CommandError::usage(format!("--password @{file}: {e}")))?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    if let Some(name) = v.strip_prefix("env:") {
        return std::env::var(name)
            .map_err(|_| CommandError::usage(format!("--password env:{name}: not set")));
    }
    Ok(v.to_string())
}

/// The request in a recorded flow's leg, judged at its handshake's instant.
pub fn request_of_leg(leg: &Leg, flow: &Flow) -> Option<Request> {
    let cr = leg.cert_request.as_ref()?;
    Request::from_recorded(
        cr,
        leg.tls_version,
        leg.handshake_at.unwrap_or(flow.started_at),
    )
}

fn recorded(args: &SourceArgs) -> Result<(String, Request), CommandError> {
    let (file, selector) = recording::split_file_selector(&args.for_);
    let rec = recording::read(&file).map_err(|e| {
        CommandError::usage(format!(
            "--for {}: cannot read: {}",
            file.display(),
            e.source
        ))
    })?;
    let legs = |f: &Flow| -> Vec<(&'static str, std::sync::Arc<Leg>)> {
        let up = f.upstream_leg.clone().map(|l| ("upstream", l));
        let client = f.client_leg.clone().map(|l| ("client", l));
        let both = [up, client].into_iter().flatten();
        both.filter(|(name, l)| {
            l.cert_request.is_some() && args.leg.as_deref().is_none_or(|want| want == *name)
        })
        .collect()
    };
    if let Some(l) = args.leg.as_deref() {
        if l != "client" && l != "upstream" {
            return Err(CommandError::usage(format!(
                "--leg {l:?}: expected client or upstream"
            )));
        }
    }
    let record = match &selector {
        Some(sel) => recording::select(&rec, sel)
            .map_err(|e| CommandError::usage(format!("--for {}: {e}", args.for_)))?,
        None => rec
            .records
            .iter()
            .find(|r| !legs(&r.flow).is_empty())
            .or_else(|| recording::select(&rec, &Selector::Default).ok())
            .ok_or_else(|| CommandError::usage(format!("--for {}: no records", args.for_)))?,
    };
    let Some((leg_name, leg)) = legs(&record.flow).into_iter().next() else {
        return Err(CommandError::usage(format!(
            "--for {}: record {} has no CertificateRequest on {} leg",
            args.for_,
            record.index,
            args.leg.as_deref().unwrap_or("either")
        )));
    };
    let request = request_of_leg(&leg, &record.flow).ok_or_else(|| {
        CommandError::usage(format!(
            "--for {}: the {leg_name} leg's CA names are not known (encrypted on the wire; \
             record with --keylog)",
            record.label()
        ))
    })?;
    Ok((format!("{} ({leg_name} leg)", record.label()), request))
}

/// One probe connection per version (TLS 1.3 first) without a certificate, until a server
/// asks for one in the handshake.
fn live(args: &SourceArgs) -> Result<(String, Request), CommandError> {
    let probe = super::probe::ProbeArgs {
        url: args.for_.clone(),
        config: None,
        probe: super::probe::ProbeOnly::default(),
        upstream: super::upstream_args::UpstreamArgs {
            upstream_ca: args.upstream_ca.clone(),
            insecure_upstream: args.insecure_upstream,
            resolve: args.resolve.clone(),
            timeout: args.timeout,
            ..Default::default()
        },
    };
    match args.upstream_engine.as_deref() {
        None | Some("rustls") | Some("openssl") => {}
        Some(other) => {
            return Err(CommandError::usage(format!(
                "--upstream-engine {other:?}: expected rustls or openssl"
            )))
        }
    }
    let origins = crate::settings::Origins::default();
    let mut plan = super::probe::plan(&probe, &origins)?;
    if let Some(v) = &args.via {
        let env = |name: &str| std::env::var(name).ok();
        let via = Via::parse(v, &plan.target.host, &env)
            .map_err(|e| CommandError::usage(format!("--via {v:?}: {e}")))?;
        plan.target.via = via.proxy().map(std::sync::Arc::new);
    }
    let rt = super::runtime()?;
    let sink = crate::record::Sink::open(&crate::record::RecordSettings {
        path: None,
        max_size: None,
    })
    .map_err(|e| CommandError::runtime(format!("cannot start: {e}")))?;
    let mut last_error = None;
    for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
        plan.versions = vec![version];
        let report = rt.block_on(crate::probe::run(&plan, &sink));
        for a in &report.attempts {
            if let Some(leg) = &a.flow.upstream_leg {
                let cr = leg
                    .cert_request
                    .as_ref()
                    .or(leg.later_cert_requests.first());
                if let Some(cr) = cr {
                    let at = leg.handshake_at.unwrap_or(a.flow.started_at);
                    if let Some(req) = Request::from_recorded(cr, leg.tls_version, at) {
                        return Ok((args.for_.clone(), req));
                    }
                }
                last_error = leg.error.clone().or(last_error);
            }
            last_error = a.flow.error.clone().map(|e| e.to_string()).or(last_error);
        }
    }
    if args.upstream_engine.as_deref() == Some("openssl") {
        if let Some(found) = late(args, &plan, &probe, &origins, &rt)? {
            return Ok(found);
        }
    }
    Err(CommandError::runtime(format!(
        "{}: the server asked for no client certificate in the handshake{}",
        args.for_,
        last_error.map(|e| format!(" ({e})")).unwrap_or_default()
    )))
}

/// One GET over the OpenSSL engine: a request the server makes after it (renegotiation or
/// post-handshake auth) is recorded on the leg as a later request.
fn late(
    args: &SourceArgs,
    plan: &crate::probe::ProbePlan,
    probe: &super::probe::ProbeArgs,
    origins: &crate::settings::Origins,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<(String, Request)>, CommandError> {
    use crate::upstream::openssl::{OpensslEngine, OpensslSettings};
    let engine = OpensslEngine::new(OpensslSettings {
        roots: probe.upstream.root_certs(origins)?,
        insecure: args.insecure_upstream,
        keylog: None,
        timeout: plan.timeout,
        version: None,
    })
    .map_err(|e| CommandError::runtime(format!("--upstream-engine openssl: {e}")))?;
    let engine = crate::upstream::Engine::Openssl(engine);
    let path = plan.paths.first().map_or("/", String::as_str);
    let flow = rt.block_on(crate::probe::attempt(plan, &engine, None, path, 1));
    let Some(leg) = &flow.upstream_leg else {
        return Ok(None);
    };
    let cr = leg
        .cert_request
        .as_ref()
        .or(leg.later_cert_requests.first());
    let at = leg.handshake_at.unwrap_or(flow.started_at);
    Ok(cr
        .and_then(|cr| Request::from_recorded(cr, leg.tls_version, at))
        .map(|req| {
            let phase = cr
                .and_then(|c| serde_json::to_value(c.phase).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (format!("{} (asked in {phase})", args.for_), req)
        }))
}
