//! `mtlscope probe`'s report: the text for people and the JSON summary, one verdict line per
//! attempt. It only shows what the probe found; `crate::probe` decides.

use crate::facts::{CertRequest, Stage};
use crate::probe::{Asked, Attempt, PathSummary, ProbeReport, ThrowawayRefused};
use serde_json::{json, Value};

/// One line saying how an attempt ended — could not connect, handshake failed, or the HTTP
/// status — and its most severe finding with every finding's id.
pub fn verdict(a: &Attempt) -> String {
    let f = &a.flow;
    if let Some(refused) = a.throwaway_refused() {
        return throwaway_refused(refused);
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
                super::explain::headline(&top.summary),
                ids.join(", ")
            )
        }
    }
}

/// The throw-away identity refused: the line says the server did what it should rather than
/// why the certificate is not trusted (the findings keep it).
fn throwaway_refused(refused: ThrowawayRefused) -> String {
    let how = match refused.status {
        Some(s) => format!("HTTP {s}"),
        None => "the handshake or request failed".to_string(),
    };
    format!(
        "{how}; the server refused mtlscope's throw-away identity, as a server that verifies client certificates should"
    )
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
        let mut d = attempt("/", Leg::default(), Some(403), &["client-cert-rejected"]);
        d.identity = Some(crate::probe::throwaway::LABEL.to_string());
        assert_eq!(
            verdict(&d),
            "HTTP 403; the server refused mtlscope's throw-away identity, as a server that verifies client certificates should"
        );
    }
}
