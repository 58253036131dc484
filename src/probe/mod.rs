//! `mtlscope probe`: a one-shot check of a server's client-certificate behaviour.
//!
//! The probe owns the plan of attempts and their summary, nothing else: each attempt is one
//! upstream connection through the ordinary [`Engine`] (its wire tap, its recording resolver, its
//! TLS 1.3 verdict wait) with one identity (or none), one protocol version offered alone, and one
//! `GET` of one path. Every attempt becomes a [`Flow`] (`mode: probe`) diagnosed like any other,
//! so the probe's answers — asked in the handshake or only later, with which CA names, what each
//! identity got — are read from the same facts and findings as a proxied connection's.

use crate::facts::Stage;
use crate::facts::{CertRequest, Flow, TlsVersion};
use crate::pki::load::Identity;
use crate::record::Sink;
use crate::upstream::{
    Engine, EngineChoice, OpensslEngine, OpensslSettings, RustlsEngine, RustlsSettings, Target,
};

mod attempt;
mod summary;
#[cfg(test)]
pub(crate) mod tests;
pub mod throwaway;
pub mod via;

pub(crate) use attempt::attempt;
use std::sync::Arc;
use std::time::Duration;

/// The most of an error body kept for the record and the diagnosis (as the relay keeps).
const EXCERPT_BYTES: usize = 4096;

/// What to probe.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    /// The URL as given, for the report.
    pub url: String,
    /// Where to connect (with any `--resolve` applied).
    pub target: Target,
    /// Paths to `GET`, each on its own connection.
    pub paths: Vec<String>,
    /// Protocol versions to probe, each offered alone on its own connections.
    pub versions: Vec<TlsVersion>,
    /// Identities to present, each on its own connections, besides presenting none.
    pub identities: Vec<Arc<Identity>>,
    /// Engine settings every attempt shares (`versions` is set per attempt).
    pub settings: RustlsSettings,
    /// Bound on each HTTP exchange (the engine bounds connect and handshake).
    pub timeout: Duration,
    /// `--upstream-engine`: the attempts' TLS client (`auto`: rustls, and an attempt the
    /// server then asks a certificate for late is made again over OpenSSL).
    pub engine: EngineChoice,
    /// The OpenSSL engine's settings (`version` is set per attempt).
    pub openssl: OpensslSettings,
    /// The throw-away identity tried on a path that asks for a certificate (none with
    /// `--no-throwaway-identity`).
    pub throwaway: Option<Arc<Identity>>,
}

/// One connection of the probe.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The version offered (alone) in the ClientHello.
    pub offered: TlsVersion,
    /// Label of the identity on offer; `None` for none.
    pub identity: Option<String>,
    /// The path requested.
    pub path: String,
    /// The diagnosed facts of the connection (`kind: exchange` once a request went out).
    pub flow: Flow,
}

impl Attempt {
    /// Whether the server refused mtlscope's throw-away identity — what a server that verifies
    /// client certificates does — and with which HTTP status, if it answered at all. A refusal
    /// the findings attribute to an unverified certificate is not one.
    pub fn throwaway_refused(&self) -> Option<ThrowawayRefused> {
        let f = &self.flow;
        let throwaway = self.identity.as_deref() == Some(throwaway::LABEL);
        let accepted = f.status().is_some_and(|s| s < 400);
        let unverified = f
            .findings
            .iter()
            .any(|x| x.id == crate::facts::FindingId::ClientCertNotVerified);
        (throwaway && !accepted && !unverified).then(|| ThrowawayRefused { status: f.status() })
    }
}

/// The server refused the throw-away identity (see [`Attempt::throwaway_refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrowawayRefused {
    /// The HTTP status it answered with; `None` when the handshake or the request failed.
    pub status: Option<u16>,
}

/// Everything the probe did.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// The URL as given.
    pub url: String,
    /// `host:port` probed.
    pub target: String,
    /// The attempts made, in order.
    pub attempts: Vec<Attempt>,
    /// Attempts not made, and why (in words).
    pub skipped: Vec<String>,
    /// What the probe warns about before any attempt (a revoked identity), in words.
    pub warnings: Vec<String>,
}

/// What one protocol version showed about the handshake's CertificateRequest.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionSummary {
    /// The version.
    pub version: TlsVersion,
    /// Whether any attempt negotiated it.
    pub negotiated: bool,
    /// The CertificateRequest of the handshake, if the server sent one.
    pub cert_request: Option<CertRequest>,
    /// Why no attempt negotiated it (the first attempt's error).
    pub error: Option<String>,
}

pub use crate::facts::path::Asked;

/// When one path, on one version, gets its certificate request.
#[derive(Clone, Debug, PartialEq)]
pub struct PathSummary {
    /// The path.
    pub path: String,
    /// The version offered.
    pub version: TlsVersion,
    /// When the certificate was asked for.
    pub asked: Asked,
    /// Whether `asked` is inferred from the server's answer rather than seen.
    pub inferred: bool,
}

/// Run the plan: every version × path × identity (none first), one connection each. Stops at
/// once when the server cannot be reached, and skips the rest of a version whose first
/// handshake failed before the server could ask for a certificate. The attempt without an
/// identity finishes its handshake even with a server it does not trust; the identities of a
/// path whose server did not verify are not presented (unless `--insecure-upstream`). Flows go
/// to `sink`.
pub async fn run(plan: &ProbePlan, sink: &Sink) -> ProbeReport {
    let mut report = ProbeReport {
        url: plan.url.clone(),
        target: plan.target.authority(),
        attempts: Vec::new(),
        skipped: Vec::new(),
        warnings: plan
            .identities
            .iter()
            .flat_map(|id| {
                id.revocation
                    .iter()
                    .filter_map(|c| crate::revocation::warning(&id.label, c))
            })
            .collect(),
    };
    let identities: Vec<Option<&Arc<Identity>>> = std::iter::once(None)
        .chain(plan.identities.iter().map(Some))
        .collect();
    'versions: for &version in &plan.versions {
        let settings = Arc::new(RustlsSettings {
            versions: Some(vec![protocol(version)]),
            ..plan.settings.clone()
        });
        // Without an identity on offer nothing secret is at stake, so that attempt finishes
        // its handshake with a server it does not trust (recording the verdict) and still sees
        // whether the server, or a device on the path, asks for a certificate.
        let mut look_trust = settings.trust.clone();
        look_trust.insecure = true;
        let look = Engine::Rustls(RustlsEngine::new(Arc::new(RustlsSettings {
            trust: look_trust,
            ..(*settings).clone()
        })));
        let rustls = Engine::Rustls(RustlsEngine::new(settings));
        let openssl = match plan.engine {
            EngineChoice::Rustls => None,
            _ => match OpensslEngine::new(OpensslSettings {
                version: Some(version),
                ..plan.openssl.clone()
            }) {
                Ok(e) => Some(Engine::Openssl(e)),
                Err(e) => {
                    report
                        .skipped
                        .push(format!("the {} attempts: {e}", version.as_str()));
                    continue 'versions;
                }
            },
        };
        let (engine, replay) = match (plan.engine, openssl) {
            (EngineChoice::Openssl, Some(o)) => (o, None),
            (_, o) => (rustls, o),
        };
        for path in &plan.paths {
            let mut untrusted: Option<String> = None;
            let mut queue = identities.clone();
            let mut i = 0;
            while let Some(identity) = queue.get(i).copied() {
                i += 1;
                if let (Some(_), Some(why)) = (identity, &untrusted) {
                    report.skipped.push(format!(
                        "the {} attempts of {path} with an identity: the server's certificate did not verify ({why}), and mtlscope presents no identity to a server it does not trust (--upstream-ca, or --insecure-upstream to present it anyway)",
                        version.as_str()
                    ));
                    break;
                }
                let id = report.attempts.len() as u64 + 1;
                let this = match (&engine, identity) {
                    (Engine::Rustls(_), None) => &look,
                    _ => &engine,
                };
                let mut flow = attempt(plan, this, identity, path, id).await;
                if let Some(replay) = &replay {
                    flow = again_if_asked_late(plan, replay, identity, path, flow).await;
                }
                let flow = sink.emit_returning(flow).await;
                let first_of_version = report
                    .attempts
                    .iter()
                    .all(|a: &Attempt| a.offered != version);
                let leg = flow.upstream_leg.clone().unwrap_or_default();
                if identity.is_none() && !plan.settings.trust.insecure {
                    untrusted = leg
                        .server_verification
                        .as_ref()
                        .filter(|v| !v.ok)
                        .map(|v| v.reason.clone().unwrap_or_else(|| "not verified".into()));
                }
                report.attempts.push(Attempt {
                    offered: version,
                    identity: identity.map(|i| i.label.clone()),
                    path: path.clone(),
                    flow: std::sync::Arc::unwrap_or_clone(flow),
                });
                if leg
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.stage == Stage::Connect)
                {
                    report.skipped.push(format!(
                        "every other attempt: the TCP connection to {} failed",
                        report.target
                    ));
                    break 'versions;
                }
                let before_ask = leg.tls_version.is_none()
                    && leg.cert_request.is_none()
                    && leg.failure.is_some();
                if first_of_version && before_ask {
                    report.skipped.push(format!(
                        "the other {} attempts: the handshake failed before the server could ask for a certificate",
                        version.as_str()
                    ));
                    continue 'versions;
                }
                if i == identities.len() {
                    if let Some(t) = plan
                        .throwaway
                        .as_ref()
                        .filter(|_| asks(&report, version, path))
                    {
                        queue.push(Some(t));
                    }
                }
            }
        }
    }
    sink.flush().await;
    fit_advice(&mut report);
    report
}

/// Advice in the report names only what the server accepted in this probe's own attempts: a
/// suggestion to retry with TLS 1.2 is replaced when every TLS 1.2 attempt failed before a
/// version was agreed. (The recorded flows keep the diagnosis as made.)
fn fit_advice(report: &mut ProbeReport) {
    let tried_tls12 = report
        .attempts
        .iter()
        .any(|a| a.offered == TlsVersion::Tls12);
    let refused_tls12 = tried_tls12
        && !report.attempts.iter().any(|a| {
            a.offered == TlsVersion::Tls12
                && a.flow
                    .upstream_leg
                    .as_ref()
                    .is_some_and(|l| l.tls_version == Some(TlsVersion::Tls12))
        });
    if !refused_tls12 {
        return;
    }
    let instead = "retry with `--upstream-engine auto` (it completes post-handshake authentication; this server refused TLS 1.2 in this probe's own attempts)";
    for a in &mut report.attempts {
        for f in &mut a.flow.findings {
            for e in &mut f.evidence {
                if e.contains(crate::diagnose::RETRY_TLS12) {
                    *e = e.replace(crate::diagnose::RETRY_TLS12, instead);
                }
            }
        }
    }
}

/// Whether the attempts so far on `version` and `path` saw the server ask for a certificate.
fn asks(report: &ProbeReport, version: TlsVersion, path: &str) -> bool {
    let flows: Vec<&Flow> = report
        .attempts
        .iter()
        .filter(|a| a.offered == version && a.path == path)
        .map(|a| &a.flow)
        .collect();
    matches!(
        crate::paths::asked(&flows).0,
        Asked::Handshake | Asked::Renegotiation | Asked::PostHandshake
    )
}

/// `--upstream-engine auto`: when the server asked late and rustls could not answer, the same
/// attempt once more over OpenSSL; the record is the second one, with the first in `replayed`.
async fn again_if_asked_late(
    plan: &ProbePlan,
    openssl: &Engine,
    identity: Option<&Arc<Identity>>,
    path: &str,
    first: Flow,
) -> Flow {
    let Some(reason) = crate::diagnose::unanswered_late_request(&first) else {
        return first;
    };
    let mut second = attempt(plan, openssl, identity, path, first.connection_id).await;
    second.replayed = Some(Box::new(crate::facts::Replay {
        reason,
        first_leg: first
            .upstream_leg
            .clone()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default(),
        first_status: first.status(),
        at_ms: second
            .request
            .as_ref()
            .and_then(|r| r.forwarded_at_ms)
            .unwrap_or(0.0),
    }));
    second
}

fn protocol(v: TlsVersion) -> &'static rustls::SupportedProtocolVersion {
    match v {
        TlsVersion::Tls12 => &rustls::version::TLS12,
        _ => &rustls::version::TLS13,
    }
}
