//! The catch-all of the catalogue section "Certificate sent and rejected": `handshake-rejected`,
//! for a fatal alert during or right after a handshake that no more specific rule explains.

use super::alerts::{alert_usual_meaning, cert_verdict, CertVerdict};
use super::finding::finding;
use super::signals::{no_cert_alert, pha_inferred};
use super::view::{capital, Hop, HopKind, View};
use crate::cert::reason::client_purpose_problems;
use crate::facts::{Alert, AlertDescription, FailureKind, Finding, FindingId, Severity};

/// Whether a more specific rule explains `a`.
fn explained(v: &View<'_>, hop: &Hop<'_>, a: &Alert) -> bool {
    if hop.is_late(a) || no_cert_alert(hop, a) {
        return true;
    }
    if hop.sent_by_server(a) {
        if !hop.may_have_sent() {
            return false;
        }
        return match cert_verdict(a.description) {
            CertVerdict::Untrusted
            | CertVerdict::Revoked
            | CertVerdict::Expired
            | CertVerdict::BadSignature => true,
            CertVerdict::WrongPurpose => hop
                .presented()
                .and_then(|c| c.first())
                .is_some_and(|l| !client_purpose_problems(l).is_empty()),
            CertVerdict::RefusedByPolicy | CertVerdict::NotACertificateRefusal => false,
        };
    }
    // The client side's own alerts: on the upstream leg, mtlscope refusing the server.
    hop.kind == HopKind::Upstream
        && (hop.server_verification.is_some_and(|s| !s.ok)
            || hop
                .failure
                .is_some_and(|f| f.kind == FailureKind::PeerCertificateInvalid)
            || pha_inferred(v, hop))
}

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    v.hops
        .iter()
        .filter_map(|hop| handshake_rejected(v, hop))
        .collect()
}

fn handshake_rejected(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
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
        && matches!(
            cert_verdict(first.description),
            CertVerdict::Untrusted | CertVerdict::WrongPurpose | CertVerdict::Expired
        );
    let (detail, fix) = if client_distrusts_us {
        (
            " The client does not accept mtlscope's own server certificate.".to_string(),
            "Client: trust mtlscope's CA (`mtlscope ca` prints where it is), or run mtlscope with `--server-cert` and a certificate the client trusts.".to_string(),
        )
    } else {
        match first.description {
            AlertDescription::HandshakeFailure => (
                " With a certificate sent (or none asked for), likely no common cipher suite, signature scheme or key type; to confirm, read the sender's log.".to_string(),
                format!("Compare the TLS versions, cipher suites and signature schemes both sides allow; read {}'s log for the reason.", if hop.sent_by_server(first) { hop.server_name() } else { hop.client_name() }),
            ),
            AlertDescription::AccessDenied => (
                " The certificate was valid but refused by policy.".to_string(),
                "Server: its access rules (allow-lists, pins) refused this identity; change them, not the certificate.".to_string(),
            ),
            AlertDescription::ProtocolVersion => (
                " The two sides share no TLS version.".to_string(),
                "Enable a TLS version both sides support (TLS 1.2 or 1.3).".to_string(),
            ),
            _ => (
                String::new(),
                format!(
                    "Read the log of {} for why it sent {}{}.",
                    if hop.sent_by_server(first) { hop.server_name() } else { hop.client_name() },
                    first.name(),
                    alert_usual_meaning(first.description)
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
            first.name(),
            first.code()
        ),
        evidence,
        fix,
    ))
}
