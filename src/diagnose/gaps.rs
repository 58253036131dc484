//! Rules of the catalogue section "Gaps and non-TLS peers": `client-not-tls`, and
//! `unexplained`, the rule of last resort that makes a gap in the catalogue visible.

use super::finding;
use super::view::{Hop, HopKind, View};
use crate::facts::{Finding, FindingId, Severity};

/// `client-not-tls`, per hop.
pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    v.hops
        .iter()
        .filter(|h| h.kind == HopKind::Client && h.peer_not_tls())
        .map(client_not_tls)
        .collect()
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
    v.flow.status().is_some_and(|s| s >= 400)
        || v.hops.iter().any(|h| h.failed())
        || (v.flow.error.is_some() && v.flow.status().is_none_or(|s| s >= 400))
}

/// `unexplained`: a failure and no finding of error severity, with the facts that were there.
pub(super) fn unexplained(v: &View<'_>, found: &[Finding]) -> Option<Finding> {
    if !is_failure(v) || found.iter().any(|f| f.severity == Severity::Error) {
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
