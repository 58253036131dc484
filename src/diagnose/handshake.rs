//! The catch-all of the catalogue section "Certificate sent and rejected": `handshake-rejected`,
//! for a fatal alert during or right after a handshake that no more specific rule explains.

use super::finding;
use super::not_sent::{capital, no_cert_alert};
use super::view::{Hop, HopKind, View};
use crate::cert::reason::client_purpose_problems;
use crate::facts::{Alert, FailureKind, Finding, FindingId, Severity};

/// Whether a more specific rule explains `a`.
fn explained(v: &View<'_>, hop: &Hop<'_>, a: &Alert) -> bool {
    if hop.is_late(a) || no_cert_alert(hop, a) {
        return true;
    }
    if hop.sent_by_server(a) {
        if !hop.may_have_sent() {
            return false;
        }
        return match a.code {
            42 | 44 | 45 | 46 | 48 | 51 => true,
            43 => hop
                .presented()
                .and_then(|c| c.first())
                .is_some_and(|l| !client_purpose_problems(l).is_empty()),
            _ => false,
        };
    }
    // The client side's own alerts: on the upstream leg, mtlscope refusing the server.
    hop.kind == HopKind::Upstream
        && (hop.server_verification.is_some_and(|s| !s.ok)
            || hop
                .failure
                .is_some_and(|f| f.kind == FailureKind::PeerCertificateInvalid)
            || super::late::pha_inferred(v, hop))
}

pub(super) fn handshake_rejected(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    // mtlscope's decode_error to a client that does not speak TLS is client-not-tls.
    if hop.peer_not_tls() {
        return None;
    }
    let open: Vec<&Alert> = hop
        .failing_alerts()
        .filter(|a| !explained(v, hop, a))
        .collect();
    let first = *open.first()?;
    let who = if hop.sent_by_server(first) {
        capital(hop.server_name())
    } else {
        capital(hop.client_name())
    };
    let mut evidence: Vec<String> = open.iter().map(|a| hop.describe_alert(a)).collect();
    if let Some(cr) = hop.cert_request {
        evidence.push(hop.describe_cr(cr));
    }
    evidence.push(hop.describe_presented());
    if let Some(e) = hop.error {
        evidence.push(format!("the {} ended: {e}", hop.name()));
    }
    let client_distrusts_us = hop.kind == HopKind::Client
        && !hop.sent_by_server(first)
        && matches!(first.code, 42 | 43 | 45 | 46 | 48);
    let (detail, fix) = if client_distrusts_us {
        (
            " The client does not accept mtlscope's own server certificate.".to_string(),
            "Client: trust mtlscope's CA (`mtlscope ca` prints where it is), or run mtlscope with `--server-cert` and a certificate the client trusts.".to_string(),
        )
    } else {
        match first.code {
            40 => (
                " With a certificate sent (or none asked for), likely no common cipher suite, signature scheme or key type; to confirm, read the sender's log.".to_string(),
                format!("Compare the TLS versions, cipher suites and signature schemes both sides allow; read {}'s log for the reason.", if hop.sent_by_server(first) { hop.server_name() } else { hop.client_name() }),
            ),
            49 => (
                " The certificate was valid but refused by policy.".to_string(),
                "Server: its access rules (allow-lists, pins) refused this identity; change them, not the certificate.".to_string(),
            ),
            70 => (
                " The two sides share no TLS version.".to_string(),
                "Enable a TLS version both sides support (TLS 1.2 or 1.3).".to_string(),
            ),
            _ => (
                String::new(),
                format!(
                    "Read the log of {} for why it sent {}{}.",
                    if hop.sent_by_server(first) { hop.server_name() } else { hop.client_name() },
                    first.description,
                    crate::diagnose::alert_usual_meaning(first.code)
                        .map(|m| format!(" (usually: {m})"))
                        .unwrap_or_default()
                ),
            ),
        }
    };
    Some(finding(
        FindingId::HandshakeRejected,
        Severity::Error,
        format!(
            "{who} ended the {} with the alert {} ({}).{detail}",
            hop.name(),
            first.description,
            first.code
        ),
        evidence,
        fix,
    ))
}
