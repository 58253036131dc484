//! Rules of the catalogue section "Gaps and non-TLS peers": `client-not-tls`, `port-check`
//! (a connection that sent nothing), `not-certificate-related` (an HTTP answer about the URL,
//! not the certificate), and `unexplained`, the rule of last resort that makes a gap in the
//! catalogue visible.

use super::finding::finding;
use super::view::{Hop, HopKind, View};
use crate::facts::{Finding, FindingId, Severity};

/// `client-not-tls` and `port-check`, per hop.
pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    let client = v.hops.iter().filter(|h| h.kind == HopKind::Client);
    client
        .filter_map(|h| {
            if h.peer_not_tls() {
                Some(client_not_tls(h))
            } else if h.sent_nothing() {
                Some(port_check(h))
            } else {
                None
            }
        })
        .collect()
}

fn port_check(hop: &Hop<'_>) -> Finding {
    let seen = hop
        .error
        .unwrap_or("the client closed the connection without sending a byte");
    finding(
        FindingId::PortCheck,
        Severity::Info,
        "A port check: the client opened a TCP connection and closed it without sending a byte.",
        vec![seen.to_string()],
        "Nothing to fix: a load balancer's or Kubernetes' TCP check, `nc -z` or a port scanner does this. To see the TLS side too, make the check a TLS or HTTPS check.",
    )
}

/// Statuses that answer the URL, the method, the size, the media type or the rate.
const NOT_CERTIFICATE_STATUSES: &[u16] = &[404, 405, 410, 413, 415, 429];

/// `not-certificate-related`: a 404/405/410/413/415/429 with a clean certificate story on
/// every hop (no failure, no failing alert, and no other rule found anything to warn about).
pub(super) fn not_certificate_related(v: &View<'_>, found: &[Finding]) -> Option<Finding> {
    let status = v.flow.status()?;
    if !NOT_CERTIFICATE_STATUSES.contains(&status)
        || v.hops.iter().any(|h| h.failed())
        || found.iter().any(|f| f.severity >= Severity::Warning)
    {
        return None;
    }
    let mut evidence = Vec::new();
    if let Some(line) = v.request_line() {
        evidence.push(format!("{line} → {status}"));
    }
    for h in &v.hops {
        let asked = match h.cert_request {
            Some(cr) => h.describe_cr(cr),
            None => format!("{} asked for no certificate", h.server_name()),
        };
        evidence.push(format!(
            "{}: {asked}; {}; no failure, no failing alert",
            h.name(),
            h.describe_presented()
        ));
    }
    let what = match status {
        404 => "no such resource",
        405 => "the method is not allowed there",
        410 => "the resource is gone",
        413 => "the request body is too large",
        415 => "the media type is not supported",
        _ => "too many requests (rate limited)",
    };
    Some(finding(
        FindingId::NotCertificateRelated,
        Severity::Info,
        format!("The server answered {status} ({what}) and both legs' certificate story is clean: not a certificate problem."),
        evidence,
        "Check the URL, the method, the body or the request rate; the client certificate is not the cause.",
    ))
}

fn client_not_tls(hop: &Hop<'_>) -> Finding {
    let seen = hop
        .error
        .unwrap_or("the client's first bytes were not a TLS record");
    finding(
        FindingId::ClientNotTls,
        Severity::Error,
        "The client did not speak TLS to mtlscope's TLS port.",
        vec![seen.to_string()],
        "Client: use `https://` (not `http://`) for this port; a load balancer's or port checker's health check: make it a TLS check, or point it at a plain port.",
    )
}

/// Whether the flow is a failure the catalogue owes an explanation: a 4xx/5xx, a leg that
/// failed (a classified failure or a failing alert), or a connection that ended in error.
pub(super) fn is_failure(v: &View<'_>) -> bool {
    // A port check's only "error" is that the client sent nothing.
    let port_check = v.hops.iter().any(|h| h.sent_nothing());
    v.flow.status().is_some_and(|s| s >= 400)
        || v.hops.iter().any(|h| h.failed() && !h.sent_nothing())
        || (v.flow.error.is_some() && !port_check && v.flow.status().is_none_or(|s| s >= 400))
}

/// `unexplained`: a failure and no finding of error severity, with the facts that were there.
pub(super) fn unexplained(v: &View<'_>, found: &[Finding]) -> Option<Finding> {
    let explained = found
        .iter()
        .any(|f| f.severity == Severity::Error || f.id == FindingId::NotCertificateRelated);
    if !is_failure(v) || explained {
        return None;
    }
    let mut evidence = Vec::new();
    if let (Some(line), Some(status)) = (v.request_line(), v.flow.status()) {
        evidence.push(format!("{line} → {status}"));
    }
    for h in &v.hops {
        let phase = h
            .cert_request
            .map(|cr| format!("certificate requested ({:?})", cr.phase).to_lowercase())
            .unwrap_or_else(|| "no certificate request seen".into());
        evidence.push(format!("{}: {phase}; {}", h.name(), h.describe_presented()));
        for a in h.failing_alerts() {
            evidence.push(h.describe_alert(a));
        }
        if let Some(f) = h.failure {
            evidence.push(format!(
                "the {} ended at {} ({}): {}",
                h.name(),
                f.stage,
                f.kind,
                h.error.unwrap_or("no details")
            ));
        }
    }
    if let Some(e) = &v.flow.error {
        evidence.push(format!("the connection ended: {e}"));
    }
    Some(finding(
        FindingId::Unexplained,
        Severity::Error,
        "This failure matches no rule of the catalogue; the facts that were there are quoted.",
        evidence,
        "Compare with a working flow (`mtlscope diff`), and report the case so the catalogue can explain it.",
    ))
}

#[cfg(test)]
#[path = "gaps_tests.rs"]
mod tests;
