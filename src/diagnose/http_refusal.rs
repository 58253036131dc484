//! Rules of the catalogue section "Accepted by TLS, refused by HTTP":
//! `access-denied-after-auth`, `cert-not-registered`, `iis-substatus`.

use super::finding::finding;
use super::view::{cert_text, ms, Hop, HttpAnswer, View};
use crate::facts::{CertSummary, Finding, FindingId, Severity};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(hop) = v.server_hop() else {
        return out;
    };
    let Some(http) = v.http_on(hop) else {
        return out;
    };
    out.extend(access_denied_after_auth(hop, &http));
    out.extend(cert_not_registered(hop, &http));
    out.extend(iis_substatus(&http));
    out
}

/// The leaf the server accepted in the handshake: one was presented, the handshake completed,
/// and the server sent no failing alert.
fn accepted_leaf<'a>(hop: &Hop<'a>) -> Option<&'a CertSummary> {
    let leaf = hop.presented()?.first()?;
    let ok = hop.handshake_done_ms.is_some() && hop.server_failing_alerts().next().is_none();
    ok.then_some(leaf)
}

fn tls_accepted(hop: &Hop<'_>, leaf: &CertSummary) -> String {
    format!(
        "{} presented {} on the {}; the handshake finished at {} with no alert from {}",
        hop.client_name(),
        cert_text(leaf),
        hop.name(),
        ms(hop.handshake_done_ms.unwrap_or_default()),
        hop.server_name()
    )
}

/// IIS sub-statuses that name a certificate problem another finding explains.
fn certificate_substatus(http: &HttpAnswer<'_>) -> bool {
    matches!(http.iis_substatus(), Some(7 | 13 | 16 | 17))
}

fn access_denied_after_auth(hop: &Hop<'_>, http: &HttpAnswer<'_>) -> Option<Finding> {
    if !matches!(http.status, 401 | 403)
        || http.names_unknown_cert()
        || certificate_substatus(http)
        || http.says_cert_invalid().is_some()
    {
        return None;
    }
    let leaf = accepted_leaf(hop)?;
    let mut evidence = vec![tls_accepted(hop, leaf), http.evidence()];
    if http.iis_substatus() == Some(12) {
        evidence.push("IIS 403.12: the certificate mapper denied access (mappings only count when set at site level)".into());
    }
    Some(finding(
        FindingId::AccessDeniedAfterAuth,
        Severity::Error,
        format!(
            "TLS accepted the certificate, then the server's application refused the identity with {}.",
            http.status_line()
        ),
        evidence,
        "Server: the application's authorization or certificate-mapping rules (an allow-list, a SAN or fingerprint check, IIS one-to-one/many-to-one mappings at site level) refused this identity; change those rules, not the certificate.",
    ))
}

fn cert_not_registered(hop: &Hop<'_>, http: &HttpAnswer<'_>) -> Option<Finding> {
    if !(400..500).contains(&http.status) || !http.names_unknown_cert() {
        return None;
    }
    let leaf = accepted_leaf(hop)?;
    let evidence = vec![
        tls_accepted(hop, leaf),
        http.evidence(),
        format!(
            "presented leaf: subject \"{}\", issuer \"{}\", serial {}, SHA-256 {}, SHA-1 {}",
            leaf.subject, leaf.issuer, leaf.serial, leaf.sha256, leaf.sha1
        ),
    ];
    Some(finding(
        FindingId::CertNotRegistered,
        Severity::Error,
        "TLS accepted the certificate, but the service's own certificate registry does not know it.",
        evidence,
        "Service (server side): compare the presented SHA-256 and SHA-1 fingerprints (quoted) and issuer + subject with the certificate registered for this client, and re-upload the certificate in use.",
    ))
}

fn substatus_meaning(n: u8) -> &'static str {
    match n {
        1 => "execute access forbidden",
        2 => "read access forbidden",
        4 => "SSL required",
        5 => "SSL 128 required",
        6 => "IP address rejected",
        7 => "client certificate required",
        8 => "site access denied",
        12 => "mapper denied access (the certificate mapping refused this identity)",
        13 => "client certificate revoked",
        14 => "directory listing denied",
        16 => "client certificate untrusted or invalid",
        17 => "client certificate expired or not yet valid",
        18 => "cannot execute requested URL in the current application pool",
        20 => "Passport logon failed",
        _ => "an IIS-specific reason",
    }
}

fn iis_substatus(http: &HttpAnswer<'_>) -> Option<Finding> {
    let n = http.iis_substatus()?;
    let (severity, see) = match n {
        7 => (Severity::Error, " (see no-client-cert)"),
        12 => (Severity::Error, " (see access-denied-after-auth)"),
        13 => (Severity::Error, " (see cert-revoked)"),
        16 => (Severity::Error, " (see chain-untrusted)"),
        17 => (Severity::Error, " (see cert-expired)"),
        _ => (Severity::Info, ""),
    };
    Some(finding(
        FindingId::IisSubstatus,
        severity,
        format!("IIS answered 403.{n}: {}{see}.", substatus_meaning(n)),
        vec![http.evidence()],
        "Server: act on the sub-status (403.7 send a certificate, 403.12 fix the mapping, 403.13 reissue, 403.16 trust the issuer, 403.17 renew). IIS shows sub-statuses to remote clients only with detailed errors on; otherwise read `sc-substatus` and `sc-win32-status` in the server's log.",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::facts::{Direction, Severity};

    #[test]
    fn forbidden_after_an_accepted_certificate() {
        let flow = success_builder().response(403, "Forbidden", &[]).build();
        assert_eq!(ids(&flow), ["access-denied-after-auth"]);
        let f = find(&flow, "access-denied-after-auth").unwrap();
        assert!(f.summary.contains("403 Forbidden"));
        assert!(f.evidence[0].contains("\"CN=client\""));
        assert!(f.fix.contains("not the certificate"));
    }

    #[test]
    fn access_denied_not_without_a_certificate_or_on_success_or_after_an_alert() {
        assert!(find(&success(), "access-denied-after-auth").is_none());
        let flow = success_builder()
            .upstream(|l| l.chain = vec![])
            .response(403, "", &[])
            .build();
        assert!(find(&flow, "access-denied-after-auth").is_none());
        let flow = success_builder()
            .upstream(|l| l.alerts = vec![alert(Direction::Received, 48, 6.0)])
            .response(403, "", &[])
            .build();
        assert!(find(&flow, "access-denied-after-auth").is_none());
    }

    #[test]
    fn sap_unknown_certificate_body() {
        let body = r#"{"error":{"code":"AUTH0032","message":"Invalid client certificate"}}"#;
        let flow = success_builder().response(401, body, &[]).build();
        assert_eq!(ids(&flow), ["cert-not-registered"]);
        let f = find(&flow, "cert-not-registered").unwrap();
        let leaf = &good_chain()[0];
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains(&leaf.sha256) && e.contains(&leaf.sha1)));
        assert!(f.evidence.iter().any(|e| e.contains("AUTH0032")));
    }

    #[test]
    fn cert_not_registered_not_for_other_bodies_or_success() {
        assert!(find(&success(), "cert-not-registered").is_none());
        let flow = success_builder()
            .response(403, r#"{"error":"insufficient scope"}"#, &[])
            .build();
        assert!(find(&flow, "cert-not-registered").is_none());
    }

    #[test]
    fn iis_sub_status_is_named() {
        let flow = success_builder()
            .response(
                403,
                "<h3>HTTP Error 403.12 - Forbidden</h3>",
                &[("server", "Microsoft-IIS/10.0")],
            )
            .build();
        let got = ids(&flow);
        assert_eq!(got, ["access-denied-after-auth", "iis-substatus"]);
        let f = find(&flow, "iis-substatus").unwrap();
        assert!(f.summary.contains("403.12"));
        assert!(f.fix.contains("sc-substatus"));
    }

    #[test]
    fn iis_untrusted_substatus_is_chain_untrusted_not_access_denied() {
        let flow = success_builder()
            .response(403, "HTTP Error 403.16 - Forbidden", &[])
            .build();
        let got = ids(&flow);
        assert!(got.contains(&"chain-untrusted".to_string()), "{got:?}");
        assert!(got.contains(&"iis-substatus".to_string()));
        assert!(!got.contains(&"access-denied-after-auth".to_string()));
        assert_eq!(
            find(&flow, "iis-substatus").unwrap().severity,
            Severity::Error
        );
    }

    #[test]
    fn iis_substatus_not_for_plain_403_or_success() {
        assert!(find(&success(), "iis-substatus").is_none());
        let flow = success_builder()
            .response(403, "403 - Forbidden: Access is denied.", &[])
            .build();
        assert!(find(&flow, "iis-substatus").is_none());
    }
}
