//! Rules of the catalogue section "Asked for late": `renegotiation-requested`,
//! `post-handshake-auth`, `http2-blocks-late-auth`.

use super::finding::{finding, inferred};
use super::signals::{pha_inference, pha_inferred};
use super::view::{capital, ms, Hop, HopKind, View};
use crate::facts::{AlertDescription, FailureKind, RenegotiationOutcome};
use crate::facts::{Finding, FindingId, Initiator, Phase, Severity, TlsEngine};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for hop in &v.hops {
        out.extend(renegotiation_requested(v, hop));
        out.extend(post_handshake_auth(v, hop));
        out.extend(http2_blocks_late_auth(v, hop));
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Refused,
    /// mtlscope's OpenSSL engine took the request on and did not complete it.
    NotCompleted,
    Unknown,
}

/// Why completing a late request is fragile even when mtlscope managed it.
const RENEGOTIATION_DESIGN: &str = "completing it needs a client that renegotiates: HTTP/2 clients cannot (RFC 7540 section 9.2.1), many clients and middleboxes refuse, and a request body larger than the server's renegotiation buffer fails (Apache answers 413 above `SSLRenegBufferSize`, 128 KiB by default)";
const PHA_DESIGN: &str = "completing it needs a client that offers post_handshake_auth over HTTP/1.1: browsers (Chrome) never offer it, and HTTP/2 forbids it (RFC 8740)";

/// What mtlscope's engine did with a late request of `phase` on `hop`, as evidence.
fn engine_evidence(v: &View<'_>, hop: &Hop<'_>, phase: Phase) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = v.flow.replayed.as_ref().filter(|r| r.reason == phase) {
        let first = match (&r.first_leg.error, r.first_status) {
            (_, Some(status)) => format!("the server answered {status}"),
            (Some(e), None) => e.clone(),
            (None, None) => "it failed".into(),
        };
        out.push(format!(
            "the first attempt over rustls could not answer the request ({first}); mtlscope replayed it once over a new OpenSSL upstream leg at {}",
            ms(r.at_ms)
        ));
    }
    if hop.completed_late == Some(phase) {
        let presented = hop
            .identity
            .and_then(|i| i.chosen.as_deref())
            .map_or("with no certificate".to_string(), |c| {
                format!("presenting {c}")
            });
        out.push(format!(
            "mtlscope's OpenSSL engine answered it {presented} and completed it"
        ));
    }
    out
}

/// ", after replaying the request over OpenSSL" when the flow was replayed for `phase`.
fn replay_words(v: &View<'_>, phase: Phase) -> &'static str {
    match &v.flow.replayed {
        Some(r) if r.reason == phase => " after replaying the request over OpenSSL",
        _ => "",
    }
}

/// Whether mtlscope's OpenSSL engine saw a late request of `phase` and did not complete it.
fn not_completed(hop: &Hop<'_>, phase: Phase) -> bool {
    hop.engine == Some(TlsEngine::Openssl)
        && hop.completed_late != Some(phase)
        && hop.cert_request.is_some_and(|cr| cr.phase == phase)
}

/// The confirmation a `post-handshake-auth` inference suggests; `probe` replaces it when its
/// own attempts showed the server refusing TLS 1.2.
pub const RETRY_TLS12: &str = "retry with TLS 1.2 (the server would then renegotiate)";

/// Fix text for a late request rustls could not answer.
const ENGINE_FIX: &str =
    " Through mtlscope meanwhile: `--upstream-engine openssl` (or `auto`) completes it.";

fn renegotiation_requested(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let renegs: Vec<_> = hop
        .renegotiations
        .iter()
        .filter(|r| r.initiated_by == Initiator::Server)
        .collect();
    let late_cr = hop
        .cert_request
        .filter(|cr| cr.phase == Phase::Renegotiation);
    let refused_alert = hop
        .alerts
        .iter()
        .find(|a| a.description == AlertDescription::NoRenegotiation);
    if renegs.is_empty() && late_cr.is_none() && refused_alert.is_none() {
        return None;
    }
    let outcome_text = renegs
        .iter()
        .filter_map(|r| r.outcome.map(RenegotiationOutcome::as_str))
        .collect::<Vec<_>>();
    let refused_by_mtlscope = renegs.iter().any(|r| r.refused_by_mtlscope);
    let outcome = if hop.completed_late == Some(Phase::Renegotiation) {
        Outcome::Completed
    } else if not_completed(hop, Phase::Renegotiation) {
        Outcome::NotCompleted
    } else if refused_alert.is_some() || refused_by_mtlscope {
        Outcome::Refused
    } else if late_cr.is_some() || outcome_text.contains(&"completed") {
        Outcome::Completed
    } else {
        Outcome::Unknown
    };
    let at = renegs
        .first()
        .map(|r| r.at_ms)
        .or(late_cr.map(|cr| cr.at_ms))
        .or(refused_alert.map(|a| a.at_ms))
        .unwrap_or_default();
    let delay = late_cr
        .and_then(|cr| cr.after_request_ms)
        .or_else(|| v.request_at().map(|r| at - r).filter(|d| *d >= 0.0))
        .or_else(|| renegs.first().and_then(|r| r.after_app_data_ms));
    let request = v
        .request_line()
        .map(|l| format!(" for {l}"))
        .unwrap_or_default();
    let delay_text = delay
        .map(|d| format!("{} after the request", ms(d)))
        .unwrap_or_else(|| format!("at {}", ms(at)));
    let mut evidence = vec![format!(
        "{} started a TLS 1.2 renegotiation (HelloRequest) on the {} at {}{request}, {delay_text}",
        hop.server_name(),
        hop.name(),
        ms(at)
    )];
    evidence.extend(
        outcome_text
            .iter()
            .map(|o| format!("renegotiation outcome: {o}")),
    );
    if let Some(cr) = late_cr {
        evidence.push(hop.describe_cr(cr));
    }
    for a in hop.alerts.iter().filter(|a| hop.is_late(a)) {
        evidence.push(hop.describe_alert(a));
    }
    evidence.extend(engine_evidence(v, hop, Phase::Renegotiation));
    if outcome == Outcome::Completed && hop.kind == HopKind::Upstream {
        evidence.push(format!(
            "the server's design is fragile: {RENEGOTIATION_DESIGN}"
        ));
    }
    let http = v.http_on(hop);
    if let Some(h) = &http {
        if h.status == 413 {
            evidence.push(format!(
                "{} — the request body did not fit the server's renegotiation buffer (Apache `SSLRenegBufferSize`)",
                h.evidence()
            ));
        } else if h.status >= 400 {
            evidence.push(h.evidence());
        }
    }
    let failed =
        hop.failed() || http.as_ref().is_some_and(|h| h.status >= 400) || v.flow.error.is_some();
    let (how, severity) = match outcome {
        Outcome::Refused => (format!("{} refused it", hop.client_name()), Severity::Error),
        Outcome::Completed => (
            format!(
                "{} completed it{}",
                hop.client_name(),
                replay_words(v, Phase::Renegotiation)
            ),
            Severity::Warning,
        ),
        Outcome::NotCompleted => (
            format!(
                "mtlscope's OpenSSL engine answered it but could not complete it: {}",
                hop.error.unwrap_or("the connection failed")
            ),
            Severity::Error,
        ),
        Outcome::Unknown if failed => ("the connection then failed".to_string(), Severity::Error),
        Outcome::Unknown => (
            "it is not known how it ended".to_string(),
            Severity::Warning,
        ),
    };
    Some(finding(
        FindingId::RenegotiationRequested,
        severity,
        format!(
            "{} asked for a client certificate by renegotiation {delay_text}; {how}.",
            capital(hop.server_name())
        ),
        evidence,
        format!("Server: ask for the certificate in the initial handshake (IIS: enable client-certificate negotiation on the binding; Apache: `SSLVerifyClient` at virtual-host level, not per location), or raise the renegotiation buffer (Apache `SSLRenegBufferSize`) for large bodies. Clients, middleboxes and HTTP/2 that refuse renegotiation cannot be fixed from the client side.{}", if refused_by_mtlscope { ENGINE_FIX } else { "" }),
    ))
}

fn post_handshake_auth(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let fix = "Server: ask for the certificate in the initial handshake (Apache: `SSLVerifyClient` at virtual-host level; IIS: client-certificate negotiation on the binding), or disable TLS 1.3 for that site so it can renegotiate; clients must offer post_handshake_auth (Chrome never does; OpenSSL clients must opt in), and HTTP/2 cannot use it.";
    let offered = match hop.offered_pha {
        Some(true) => "the ClientHello offered post_handshake_auth",
        Some(false) => "the ClientHello did not offer post_handshake_auth",
        None => "whether the ClientHello offered post_handshake_auth is not known",
    };
    if let Some(cr) = hop
        .cert_request
        .filter(|cr| cr.phase == Phase::PostHandshake)
    {
        let failed = hop.failed() || v.http_on(hop).is_some_and(|h| h.status >= 400);
        let completed = hop.completed_late == Some(Phase::PostHandshake);
        let mut evidence = vec![hop.describe_cr(cr), offered.to_string()];
        evidence.extend(
            hop.alerts
                .iter()
                .filter(|a| hop.is_late(a))
                .map(|a| hop.describe_alert(a)),
        );
        evidence.extend(engine_evidence(v, hop, Phase::PostHandshake));
        if completed {
            evidence.push(format!("the server's design is fragile: {PHA_DESIGN}"));
        }
        let replayed = replay_words(v, Phase::PostHandshake);
        let how = match (completed, failed) {
            (true, false) => format!("; mtlscope completed it{replayed}"),
            (true, true) => "; mtlscope completed it, and the exchange still failed".to_string(),
            (false, true) if not_completed(hop, Phase::PostHandshake) => format!(
                "; mtlscope's OpenSSL engine answered it but could not complete it: {}",
                hop.error.unwrap_or("the exchange failed")
            ),
            (false, true) => ", and the exchange failed".to_string(),
            (false, false) => String::new(),
        };
        return Some(finding(
            FindingId::PostHandshakeAuth,
            if failed { Severity::Error } else { Severity::Warning },
            format!(
                "{} asked for a client certificate after the TLS 1.3 handshake (post-handshake authentication){how}.",
                capital(hop.server_name()),
            ),
            evidence,
            fix,
        ));
    }
    let signal = pha_inference(v, hop)?;
    let request = v.request_line().unwrap_or_else(|| "the request".into());
    Some(finding(
        FindingId::PostHandshakeAuth,
        Severity::Error,
        format!(
            "Likely the server wants a client certificate for {request} only after the TLS 1.3 handshake, which {} cannot give without post_handshake_auth.",
            hop.client_name()
        ),
        vec![
            format!("TLS 1.3 on the {}, and the server sent no CertificateRequest in the handshake", hop.name()),
            offered.to_string(),
            signal,
            inferred(format!("to confirm, {RETRY_TLS12}, or watch a client that offers post_handshake_auth (curl) with `mtlscope observe`")),
        ],
        format!("{fix}{}", if hop.kind == HopKind::Upstream { ENGINE_FIX } else { "" }),
    ))
}

/// The late certificate request the upstream leg of `flow` could not answer, if the facts say
/// so: a TLS 1.2 renegotiation mtlscope's engine refused, a post-handshake CertificateRequest
/// it could not take, or an answer these rules attribute to missing post-handshake auth.
/// `--upstream-engine auto` replays such a request over OpenSSL.
pub fn unanswered_late_request(flow: &crate::facts::Flow) -> Option<Phase> {
    let v = View::new(flow);
    let hop = v.hop(HopKind::Upstream)?;
    if hop.renegotiations.iter().any(|r| r.refused_by_mtlscope) {
        return Some(Phase::Renegotiation);
    }
    let pha_refused = hop
        .failure
        .is_some_and(|f| f.kind == FailureKind::PostHandshakeCertificateRequest);
    (pha_refused || pha_inferred(&v, hop)).then_some(Phase::PostHandshake)
}

fn http2_blocks_late_auth(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let h2 = hop.alpn == Some("h2");
    let http11_required = hop
        .failure
        .is_some_and(|f| f.kind == FailureKind::Http11Required);
    let late = hop.late_since().is_some() || pha_inferred(v, hop);
    if !(http11_required || h2 && late) {
        return None;
    }
    let mut evidence = vec![format!(
        "the {} negotiated ALPN {}",
        hop.name(),
        hop.alpn.unwrap_or("(none recorded)")
    )];
    if let Some(t) = hop.late_since() {
        evidence.push(format!(
            "{} asked for the certificate late, at {}",
            hop.server_name(),
            ms(t)
        ));
    }
    let mut summary = format!(
        "{} asked for a client certificate after the handshake on an HTTP/2 connection, which HTTP/2 forbids (RFC 7540 §9.2.1, RFC 8740).",
        capital(hop.server_name())
    );
    if let Some(e) = hop.error.filter(|_| http11_required) {
        evidence.push(format!("the {} ended: {e}", hop.name()));
        if !late {
            evidence.push(inferred("HTTP_1_1_REQUIRED is how Apache refuses a per-location client-certificate request over HTTP/2; to confirm, retry over HTTP/1.1"));
            summary = format!("Likely: {}", summary.replacen("asked", "wants", 1));
        }
    }
    Some(finding(
        FindingId::Http2BlocksLateAuth,
        Severity::Error,
        summary,
        evidence,
        "Server: ask for the certificate in the handshake; or force HTTP/1.1 for that site (client: offer only http/1.1 in ALPN).",
    ))
}

#[cfg(test)]
#[path = "late_tests.rs"]
mod tests;
