//! `mtlscope probe`: a one-shot check of a server's client-certificate behaviour.
//!
//! The probe owns the plan of attempts and their summary, nothing else: each attempt is one
//! upstream connection through the ordinary [`Engine`] (its wire tap, its recording resolver, its
//! TLS 1.3 verdict wait) with one identity (or none), one protocol version offered alone, and one
//! `GET` of one path. Every attempt becomes a [`Flow`] (`mode: probe`) diagnosed like any other,
//! so the probe's answers — asked in the handshake or only later, with which CA names, what each
//! identity got — are read from the same facts and findings as a proxied connection's.

use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{
    CertRequest, Flow, Mode, Phase, RecordKind, Request, Response, ResponseSource, TlsVersion,
};
use crate::facts::{FailureKind, Stage};
use crate::pki::load::Identity;
use crate::proxy::headers::{kept_request, kept_response};
use crate::record::Sink;
use crate::upstream::{
    Connected, Engine, EngineChoice, OpensslEngine, OpensslSettings, RustlsEngine, RustlsSettings,
    Target,
};

pub mod throwaway;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
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
        let look = Engine::Rustls(RustlsEngine {
            settings: Arc::new(RustlsSettings {
                trust: look_trust,
                ..(*settings).clone()
            }),
        });
        let rustls = Engine::Rustls(RustlsEngine { settings });
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
    second.replayed = Some(crate::facts::Replay {
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
    });
    second
}

fn protocol(v: TlsVersion) -> &'static rustls::SupportedProtocolVersion {
    match v {
        TlsVersion::Tls12 => &rustls::version::TLS12,
        _ => &rustls::version::TLS13,
    }
}

/// One connection: handshake with `identity` on offer, then `GET path`.
pub(crate) async fn attempt(
    plan: &ProbePlan,
    engine: &Engine,
    identity: Option<&Arc<Identity>>,
    path: &str,
    id: u64,
) -> Flow {
    let clock = ConnClock::start();
    let rec = LegRecorder::new(clock);
    let policy = identity.map_or(IdentityPolicy::None, |i| IdentityPolicy::Fixed(i.clone()));
    let mut flow = Flow::new(Mode::Probe, id, clock.started_at());
    flow.upstream = Some(plan.target.authority());
    match engine.connect(&plan.target, &policy, &rec).await {
        Err(failed) => {
            flow.kind = RecordKind::Connection;
            flow.error = Some(failed.0);
        }
        Ok(conn) => {
            flow.kind = RecordKind::Exchange;
            flow.exchange_index = Some(0);
            let (request, response) = exchange(conn, plan, path, &rec, clock).await;
            flow.request = Some(request);
            if response.is_none() {
                flow.error = rec.with(|l| l.error.clone());
            }
            flow.response = response;
        }
    }
    flow.upstream_leg = Some(rec.snapshot());
    flow
}

/// `GET path` over HTTP/1.1 on the established leg, bounded by the plan's timeout; a failure is
/// recorded on the leg (the TLS stream records its own errors first).
async fn exchange(
    conn: Connected,
    plan: &ProbePlan,
    path: &str,
    rec: &LegRecorder,
    clock: ConnClock,
) -> (Request, Option<Response>) {
    let authority = plan.target.authority();
    let built = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(
            http::header::USER_AGENT,
            concat!("mtlscope-probe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new());
    let mut request = Request {
        method: "GET".into(),
        uri: path.to_string(),
        version: "HTTP/1.1".into(),
        headers: Vec::new(),
        at_ms: clock.ms(),
        forwarded_at_ms: None,
        body_excerpt: None,
        forwarded_identity: None,
    };
    let req = match built {
        Ok(r) => r,
        Err(e) => {
            fail(
                rec,
                format!("cannot form the request: {e}"),
                FailureKind::BadRequest,
            );
            return (request, None);
        }
    };
    request.headers = kept_request(req.headers(), true);
    let work = async {
        let (mut sender, driver) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(conn.io)).await?;
        // Driven here and dropped with this future, so a timeout leaves nothing running.
        let driver = Driver(tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "probe connection ended");
            }
        }));
        request.forwarded_at_ms = Some(clock.ms());
        rec.note_request();
        let resp = sender.send_request(req).await?;
        let (parts, mut body) = resp.into_parts();
        let mut excerpt = None;
        if parts.status.is_client_error() || parts.status.is_server_error() {
            let mut text = Vec::new();
            while text.len() < EXCERPT_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            text.extend_from_slice(&d[..d.len().min(EXCERPT_BYTES - text.len())]);
                        }
                    }
                    _ => break,
                }
            }
            excerpt = Some(String::from_utf8_lossy(&text).into_owned());
        }
        drop(driver);
        Ok::<_, hyper::Error>(Response {
            status: parts.status.as_u16(),
            source: ResponseSource::Upstream,
            headers: kept_response(&parts.headers, true),
            body_excerpt: excerpt,
            removed_headers: Vec::new(),
            at_ms: clock.ms(),
        })
    };
    let response = match tokio::time::timeout(plan.timeout, work).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            match crate::capture::tls_error::find_io_error(&e) {
                Some(io) => rec.fail(&crate::capture::tls_error::classify_io(
                    Stage::AfterHandshake,
                    io,
                )),
                None if e.is_incomplete_message() => fail(
                    rec,
                    "the server closed the connection before sending a response".into(),
                    FailureKind::Eof,
                ),
                None => fail(
                    rec,
                    format!("the HTTP exchange failed: {e}"),
                    FailureKind::Http,
                ),
            }
            None
        }
        Err(_) => {
            fail(
                rec,
                format!(
                    "no response within {} ms of the request",
                    plan.timeout.as_millis()
                ),
                FailureKind::TimedOut,
            );
            None
        }
    };
    (request, response)
}

/// Aborts the HTTP connection task when dropped.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn fail(rec: &LegRecorder, words: String, kind: FailureKind) {
    rec.fail(&crate::capture::tls_error::Classified::new(
        Stage::AfterHandshake,
        kind,
        words,
    ));
}

impl ProbeReport {
    /// Whether any attempt got past the TCP connection (and was not reset before TLS).
    pub fn reachable(&self) -> bool {
        self.attempts.iter().any(|a| {
            !a.flow
                .findings
                .iter()
                .any(|f| f.id == "upstream-unreachable")
        })
    }

    /// The versions probed, in the plan's order, with the handshake's CertificateRequest.
    pub fn versions(&self) -> Vec<VersionSummary> {
        let mut out: Vec<VersionSummary> = Vec::new();
        for a in &self.attempts {
            let leg = a.flow.upstream_leg.clone().unwrap_or_default();
            let i = match out.iter().position(|v| v.version == a.offered) {
                Some(i) => i,
                None => {
                    out.push(VersionSummary {
                        version: a.offered,
                        negotiated: false,
                        cert_request: None,
                        error: None,
                    });
                    out.len() - 1
                }
            };
            let v = &mut out[i];
            v.negotiated |= leg.tls_version == Some(a.offered);
            if v.cert_request.is_none() {
                v.cert_request = leg
                    .cert_request
                    .clone()
                    .filter(|cr| cr.phase == Phase::Handshake);
            }
            if v.error.is_none() && leg.tls_version.is_none() {
                v.error = leg.error.clone().or_else(|| a.flow.error.clone());
            }
        }
        for v in &mut out {
            if v.negotiated {
                v.error = None;
            }
        }
        out
    }

    /// For each negotiated version and each path (in the order probed): when the certificate
    /// was asked for.
    pub fn paths(&self) -> Vec<PathSummary> {
        let negotiated: Vec<TlsVersion> = self
            .versions()
            .into_iter()
            .filter(|v| v.negotiated)
            .map(|v| v.version)
            .collect();
        let mut out: Vec<PathSummary> = Vec::new();
        for a in &self.attempts {
            if !negotiated.contains(&a.offered)
                || out
                    .iter()
                    .any(|p| p.version == a.offered && p.path == a.path)
            {
                continue;
            }
            let same: Vec<&Attempt> = self
                .attempts
                .iter()
                .filter(|b| b.offered == a.offered && b.path == a.path)
                .collect();
            let (asked, inferred) = asked(&same);
            out.push(PathSummary {
                path: a.path.clone(),
                version: a.offered,
                asked,
                inferred,
            });
        }
        out
    }
}

/// When the attempts on one path and version saw the certificate asked for.
fn asked(attempts: &[&Attempt]) -> (Asked, bool) {
    let flows: Vec<&Flow> = attempts.iter().map(|a| &a.flow).collect();
    crate::paths::asked(&flows)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facts::{Finding, FindingId, Initiator, Leg, LegFailure, Renegotiation, Severity};

    /// An attempt on TLS 1.2 for `path` with `leg`, an answer `status`, and error findings `ids`.
    pub(crate) fn attempt(path: &str, leg: Leg, status: Option<u16>, ids: &[&str]) -> Attempt {
        let mut flow = Flow::new(Mode::Probe, 1, time::OffsetDateTime::UNIX_EPOCH);
        flow.kind = RecordKind::Exchange;
        flow.request = Some(Request {
            method: "GET".into(),
            uri: path.into(),
            ..Request::default()
        });
        flow.response = status.map(|s| Response {
            status: s,
            ..Response::default()
        });
        flow.upstream_leg = Some(std::sync::Arc::new(leg));
        flow.findings = ids
            .iter()
            .map(|id| Finding {
                id: serde_json::from_value(serde_json::json!(id)).unwrap_or(FindingId::Other),
                inferred: false,
                severity: Severity::Error,
                summary: format!("{id} happened. More words."),
                evidence: vec![],
                fix: String::new(),
            })
            .collect();
        Attempt {
            offered: TlsVersion::Tls12,
            identity: None,
            path: path.into(),
            flow,
        }
    }

    fn cr(phase: Phase) -> CertRequest {
        CertRequest {
            phase,
            ca_names: Some(vec!["CN=Root".into()]),
            ca_names_der: vec![],
            signature_schemes: vec![],
            mandatory: None,
            at_ms: 1.0,
            after_request_ms: None,
        }
    }

    fn summary(attempts: Vec<Attempt>) -> ProbeReport {
        ProbeReport {
            url: "https://x".into(),
            target: "x:443".into(),
            attempts,
            skipped: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn asked_prefers_late_requests_then_the_handshake_then_an_answer() {
        let tls12 = |cr: Option<CertRequest>| Leg {
            tls_version: Some(TlsVersion::Tls12),
            cert_request: cr,
            ..Leg::default()
        };
        let reneg = Leg {
            renegotiations: vec![Renegotiation {
                at_ms: 2.0,
                initiated_by: Initiator::Server,
                after_app_data_ms: None,
                outcome: None,
                refused_by_mtlscope: false,
            }],
            ..tls12(None)
        };
        let r = summary(vec![
            attempt("/", tls12(None), Some(200), &[]),
            attempt("/hs", tls12(Some(cr(Phase::Handshake))), Some(400), &[]),
            attempt("/late", reneg, None, &["renegotiation-requested"]),
            attempt("/pha", tls12(None), Some(403), &["post-handshake-auth"]),
            attempt("/gone", Leg::default(), None, &[]),
        ]);
        let got: Vec<_> = r.paths().iter().map(|p| (p.asked, p.inferred)).collect();
        assert_eq!(
            got,
            [
                (Asked::No, false),
                (Asked::Handshake, false),
                (Asked::Renegotiation, false),
                (Asked::PostHandshake, true),
                (Asked::Unknown, false),
            ]
        );
        let v = r.versions();
        assert_eq!(v.len(), 1);
        assert!(v[0].negotiated);
        assert_eq!(v[0].cert_request, Some(cr(Phase::Handshake)));
    }

    #[test]
    fn advice_to_retry_with_tls12_is_replaced_when_the_server_refused_it() {
        let inferred = format!(
            "inferred: to confirm, {}, or …",
            crate::diagnose::RETRY_TLS12
        );
        let with_advice = |offered: TlsVersion, negotiated: Option<TlsVersion>| {
            let mut a = attempt(
                "/secure",
                Leg {
                    tls_version: negotiated,
                    ..Leg::default()
                },
                negotiated.map(|_| 403),
                &["post-handshake-auth"],
            );
            a.offered = offered;
            a.flow.findings[0].evidence = vec![inferred.clone()];
            a
        };
        // TLS 1.2 refused in the probe's own attempts: the advice changes.
        let mut r = summary(vec![
            with_advice(TlsVersion::Tls13, Some(TlsVersion::Tls13)),
            with_advice(TlsVersion::Tls12, None),
        ]);
        fit_advice(&mut r);
        let e = &r.attempts[0].flow.findings[0].evidence[0];
        assert!(!e.contains("retry with TLS 1.2"), "{e}");
        assert!(e.contains("--upstream-engine auto"), "{e}");
        // TLS 1.2 accepted: the advice stands.
        let mut r = summary(vec![
            with_advice(TlsVersion::Tls13, Some(TlsVersion::Tls13)),
            with_advice(TlsVersion::Tls12, Some(TlsVersion::Tls12)),
        ]);
        fit_advice(&mut r);
        assert!(r.attempts[0].flow.findings[0].evidence[0].contains("retry with TLS 1.2"));
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_not_negotiated() {
        let mut b = attempt("/", Leg::default(), None, &["upstream-unreachable"]);
        b.flow.request = None;
        b.flow.upstream_leg = Some(std::sync::Arc::new(Leg {
            error: Some("refused".into()),
            failure: Some(LegFailure {
                stage: Stage::Connect,
                kind: FailureKind::ConnectionRefused,
            }),
            ..Leg::default()
        }));
        let r = summary(vec![b]);
        assert!(!r.reachable());
        assert!(!r.versions()[0].negotiated);
        assert_eq!(r.versions()[0].error.as_deref(), Some("refused"));
        assert!(
            r.paths().is_empty(),
            "no path summary for a version never negotiated"
        );
    }
}
