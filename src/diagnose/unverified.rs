//! `client-cert-not-verified`: the server asked for a certificate and accepted one it could
//! not have verified (from `probe`'s throw-away CA, expired, not yet valid, or not meant for
//! client authentication). Such a server checks nothing, or leaves every decision to its
//! application.

use super::finding::finding;
use super::view::{capital, cert_text, when, Hop, HopKind, View};
use crate::cert::reason::{client_purpose_problems, validity_at, Validity};
use crate::facts::{Finding, FindingId, Severity};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    v.hops
        .iter()
        .filter_map(|hop| client_cert_not_verified(v, hop))
        .collect()
}

fn client_cert_not_verified(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    // Only a real server's verdict counts: mtlscope's own client leg verifies only when told.
    if hop.kind == HopKind::Client {
        return None;
    }
    let cr = hop.cert_request?;
    let chain = hop.presented()?;
    let http = v.http_on(hop)?;
    if http.status >= 400 || hop.failed() {
        return None;
    }
    let mut why = Vec::new();
    if let Some(id) = hop.identity {
        let chosen = id
            .candidates
            .iter()
            .find(|c| id.chosen.as_deref() == Some(c.label.as_str()));
        if chosen.is_some_and(|c| c.throwaway) {
            why.push(format!(
                "the certificate is mtlscope's throw-away identity, issued for this run by a CA created a moment before ({}): no server can trust that CA",
                chain.last().map(cert_text).unwrap_or_default()
            ));
        }
    }
    for c in chain {
        match validity_at(c, hop.now) {
            Validity::Expired => why.push(format!(
                "{} had expired at {} (handshake at {})",
                cert_text(c),
                when(c.not_after),
                when(hop.now)
            )),
            Validity::NotYetValid => why.push(format!(
                "{} is valid only from {} (handshake at {})",
                cert_text(c),
                when(c.not_before),
                when(hop.now)
            )),
            _ => {}
        }
    }
    if let Some(leaf) = chain.first() {
        for p in client_purpose_problems(leaf) {
            why.push(format!("the leaf's {p}"));
        }
    }
    if why.is_empty() {
        return None;
    }
    let mut evidence = vec![hop.describe_cr(cr), hop.describe_presented()];
    evidence.extend(why);
    evidence.push(format!("{}: the certificate was accepted", http.evidence()));
    Some(finding(
        FindingId::ClientCertNotVerified,
        Severity::Warning,
        format!(
            "{} asks for a client certificate but accepted one it could not have verified: it does not check client certificates (or leaves it to the application).",
            capital(hop.server_name())
        ),
        evidence,
        "Server: verify client certificates against the intended CA (Caddy `mode require_and_verify` with `trusted_ca_cert_file`; nginx `ssl_verify_client on` instead of `optional_no_ca`; Node `rejectUnauthorized: true`), or make sure the application checks the certificate itself.",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::facts::{Phase, Severity};

    #[test]
    fn a_throwaway_identity_accepted_is_a_warning() {
        let flow = success_builder()
            .upstream(|l| {
                l.cert_request = Some(cr(Phase::Handshake, &[]));
                l.chain = vec![leaf("throw-away", "Throw-away CA")];
                let mut id = identity(
                    Some("throw-away"),
                    &[("throw-away", l.chain.clone())],
                    "the only identity",
                );
                id.candidates[0].throwaway = true;
                l.identity = Some(id);
            })
            .build();
        let f = find(&flow, "client-cert-not-verified").expect("client-cert-not-verified");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.evidence.iter().any(|e| e.contains("throw-away identity")));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("200") && e.contains("accepted")));
    }

    #[test]
    fn an_expired_certificate_accepted_is_not_verified() {
        let flow = success_builder()
            .upstream(|l| l.chain[0].not_after = time::macros::datetime!(2025-06-01 0:00 UTC))
            .build();
        assert!(find(&flow, "client-cert-not-verified").is_some());
    }

    #[test]
    fn not_when_refused_or_the_certificate_is_sound() {
        assert!(find(&success(), "client-cert-not-verified").is_none());
        let flow = success_builder()
            .upstream(|l| {
                let mut id = l.identity.clone().unwrap();
                id.candidates[0].throwaway = true;
                l.identity = Some(id);
            })
            .response(400, "The SSL certificate error", &[("server", "nginx")])
            .build();
        assert!(find(&flow, "client-cert-not-verified").is_none());
    }
}
