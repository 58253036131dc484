//! Rules of the catalogue section "Certificate not sent": `no-client-cert`,
//! `issuer-not-in-ca-list`, `empty-ca-list`.

use super::finding::finding;
use super::finding::inferred;
use super::signals::{no_cert_alert, rejection};
use super::view::{ca_list, capital, chain_text, lower_first, Hop, HopKind, View};
use crate::cert::reason::match_ca_names;
use crate::facts::FailureKind;
use crate::facts::{Finding, FindingId, Phase, Severity};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for hop in &v.hops {
        out.extend(no_client_cert(v, hop));
        out.extend(issuer_not_in_ca_list(v, hop));
        out.extend(empty_ca_list(v, hop));
    }
    out
}

/// The server asked late and mtlscope's TLS engine could not answer: the certificate was never
/// sent because the late request was refused, which `renegotiation-requested` or
/// `post-handshake-auth` explains; "no certificate" would send the reader to the wrong fix.
fn late_request_refused_by_mtlscope(hop: &Hop<'_>) -> bool {
    hop.kind == HopKind::Upstream
        && hop
            .cert_request
            .is_some_and(|cr| cr.phase != Phase::Handshake)
        && (hop.renegotiations.iter().any(|r| r.refused_by_mtlscope)
            || hop
                .failure
                .is_some_and(|f| f.kind == FailureKind::PostHandshakeCertificateRequest))
}

fn no_client_cert(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    if hop.presented().is_some() || late_request_refused_by_mtlscope(hop) {
        return None;
    }
    let mut signals = Vec::new();
    let mut inference = None;
    for a in hop
        .server_failing_alerts()
        .filter(|a| no_cert_alert(hop, a))
    {
        signals.push(hop.describe_alert(a));
    }
    if hop
        .failure
        .is_some_and(|f| f.kind == FailureKind::NoCertificatesPresented)
    {
        signals.push(format!(
            "the {} ended: {}",
            hop.name(),
            hop.error.unwrap_or("no certificates presented")
        ));
    }
    if hop.sent_none() && v.http_on(hop).is_none() {
        if let Some(after) = hop.silent_close_after_request() {
            signals.push(hop.describe_silent_close(after));
        }
    }
    if let Some(http) = v.http_on(hop) {
        if let Some(who) = http.says_no_cert() {
            signals.push(format!("{} — {who}", http.evidence()));
        } else if matches!(http.status, 401 | 403)
            && hop.sent_none()
            && hop
                .cert_request
                .is_some_and(|cr| cr.phase == Phase::Handshake)
            && http.iis_substatus().is_none()
            && !http.names_unknown_cert()
        {
            signals.push(http.evidence());
            inference = Some(inferred(format!("likely the server verifies client certificates as optional and its application refused the request without one; to confirm, check the server's log or retry with a certificate{}",
                if hop.kind == HopKind::Upstream { " (`--identity`)" } else { "" }
            )));
        }
    }
    if signals.is_empty() {
        return None;
    }
    let mut evidence = Vec::new();
    if let Some(cr) = hop.cert_request {
        evidence.push(hop.describe_cr(cr));
    }
    evidence.push(hop.describe_presented());
    let withheld = hop.withheld();
    if hop.kind == HopKind::Upstream {
        match hop.identity {
            Some(id) if !id.candidates.is_empty() => {
                for (label, chain) in &withheld {
                    evidence.push(format!(
                        "configured identity `{label}` ({}) was withheld: {}",
                        chain_text(chain),
                        id.reason
                    ));
                }
            }
            _ => evidence.push("no upstream identity is configured".into()),
        }
    }
    evidence.extend(signals);
    evidence.extend(inference.clone());
    evidence.extend(stacks_line(hop));
    let mut summary = format!(
        "{} asked for a client certificate and {} sent none; {} then refused the {}.",
        capital(hop.server_name()),
        hop.client_name(),
        hop.server_name(),
        if v.http_on(hop).is_some_and(|h| h.status >= 400) {
            "request"
        } else {
            "handshake"
        }
    );
    if inference.is_some() {
        summary = format!("Likely: {}", lower_first(&summary));
    }
    let fix = match hop.kind {
        HopKind::Upstream if !withheld.is_empty() => "mtlscope (client side): an upstream identity is configured but was withheld; see issuer-not-in-ca-list, wrong-purpose and key-unusable for why, and fix that identity (`--identity`) rather than the server.".to_string(),
        HopKind::Upstream => "mtlscope (client side): give it an upstream identity with `--identity CERT,KEY` (or per host in the config), issued by a CA the server trusts.".to_string(),
        HopKind::Client => "Client: configure it to send its certificate (curl `--cert`/`--key`, a keystore, a browser certificate store); if it has one, it likely withheld it: check that it matches the CA names mtlscope sent (issuer-not-in-ca-list), its purpose (wrong-purpose) and its private key (key-unusable).".to_string(),
        HopKind::Wire => "Client: configure it to send its certificate; if it has one, it likely withheld it: compare its issuer with the server's CA names (issuer-not-in-ca-list), its purpose (wrong-purpose) and its private key (key-unusable).".to_string(),
    };
    Some(finding(
        FindingId::NoClientCert,
        Severity::Error,
        summary,
        evidence,
        fix,
    ))
}

fn issuer_not_in_ca_list(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let cr = hop.cert_request?;
    let names = cr.ca_names.as_ref().filter(|n| !n.is_empty())?;
    let presented = hop.presented();
    let offered: Vec<(String, &[_])> = match presented {
        Some(chain) => vec![(format!("{} presented", hop.client_name()), chain)],
        None => hop
            .withheld()
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(l, c)| (format!("configured identity `{l}` (withheld)"), c))
            .collect(),
    };
    if offered.is_empty()
        || offered
            .iter()
            .any(|(_, c)| match_ca_names(c, names, &cr.ca_names_der).is_some())
    {
        return None;
    }
    let mut evidence = vec![format!(
        "{} named these acceptable CAs: {}",
        hop.server_name(),
        ca_list(cr)
    )];
    for (what, chain) in &offered {
        evidence.push(format!(
            "{what}: {}; no certificate's subject or issuer is among the names",
            chain_text(chain)
        ));
    }
    if let Some(missing) = hop.missing_intermediates() {
        for k in missing {
            evidence.push(format!(
                "the presented chain lacks the intermediate \"{}\" (mtlscope has it from {}), which links it to a listed CA",
                k.subject, k.source
            ));
        }
    }
    evidence.extend(stacks_line(hop));
    let (summary, severity) = if presented.is_some() {
        let severity = match rejection(v, hop) {
            Some(rej) => {
                evidence.extend(rej.evidence);
                Severity::Error
            }
            None => Severity::Warning,
        };
        (
            format!(
                "The certificate {} presented was issued by none of the CAs {} named; it was sent anyway here, but clients that choose by CA names (Go, Java, browsers, Apache) send nothing.",
                hop.client_name(),
                hop.server_name()
            ),
            severity,
        )
    } else {
        let failed = hop.failed()
            || v.http_on(hop)
                .is_some_and(|h| (400..500).contains(&h.status));
        (
            format!(
                "{} withheld its configured certificate because no certificate in its chain matches the CAs {} named.",
                capital(hop.client_name()),
                hop.server_name()
            ),
            if failed { Severity::Error } else { Severity::Warning },
        )
    };
    let completes = hop.missing_intermediates().is_some();
    let fix = match hop.kind {
        _ if completes => "Client: send the full chain including the missing intermediate (it links the certificate to a CA the server named); or server: also advertise the intermediate's name.",
        HopKind::Client => "mtlscope: list the client's CA with `--client-ca` (or use `--client-auth mirror`), or give the client a certificate from a listed CA; send the full chain.",
        _ => "Server: advertise the CA that issues the client certificates (nginx advertises `ssl_client_certificate` only, never `ssl_trusted_certificate`; HAProxy `ca-file`, not `ca-verify-file`; Apache `SSLCACertificateFile` unless `SSLCADNRequestFile`); or client: send the full chain including the intermediate, or use a certificate issued by a listed CA.",
    };
    Some(finding(
        FindingId::IssuerNotInCaList,
        severity,
        summary,
        evidence,
        fix,
    ))
}

fn empty_ca_list(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let cr = hop.cert_request?;
    if !cr.ca_names.as_ref().is_some_and(|n| n.is_empty()) {
        return None;
    }
    let rejected = hop.presented().is_some() && rejection(v, hop).is_some();
    // mtlscope's own empty list is its configuration: worth a finding only when it mattered or
    // was injected on purpose.
    if hop.kind == HopKind::Client && !rejected && v.flow.faults.is_empty() {
        return None;
    }
    let mut evidence = vec![hop.describe_cr(cr), hop.describe_presented()];
    if let Some(r) = rejection(v, hop) {
        evidence.extend(r.evidence);
    }
    evidence.extend(stacks_line(hop));
    let summary = if rejected {
        format!(
            "{} named no acceptable CA, and the certificate {} picked was rejected: likely the wrong one of several.",
            capital(hop.server_name()),
            hop.client_name()
        )
    } else {
        format!(
            "{} asked for a client certificate without naming any acceptable CA; clients holding several certificates may pick the wrong one or prompt the user.",
            capital(hop.server_name())
        )
    };
    let fix = match hop.kind {
        HopKind::Client => "mtlscope: pass `--client-ca` so the request names the CAs (or `--client-auth mirror`), unless reproducing an empty list on purpose.",
        _ => "Server: send a trimmed CA list (Windows/IIS: `SendTrustedIssuerList=1` with the Client Authentication Issuers store; AWS ALB: `advertiseTrustStoreCaNames`), or client: pin the certificate to use for this server.",
    };
    Some(finding(
        FindingId::EmptyCaList,
        if rejected {
            Severity::Error
        } else {
            Severity::Warning
        },
        summary,
        evidence,
        fix,
    ))
}

/// Which client stacks would have sent what, for the certificate presented or the identities
/// withheld (the `certs choose` model, `crate::choose`).
fn stacks_line(hop: &Hop<'_>) -> Option<String> {
    let cr = hop.cert_request?;
    let offered: Vec<(&str, &[crate::facts::CertSummary])> = match hop.presented() {
        // mtlscope's own identity is named by its label, a client's by its subject.
        Some(chain) => {
            let label = hop.identity.and_then(|i| i.chosen.as_deref());
            vec![(label.unwrap_or(chain[0].subject.as_str()), chain)]
        }
        None => hop.withheld(),
    };
    crate::choose::flow::stacks_evidence(cr, hop.version, hop.now, &offered)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::facts::{CertRequest, Direction, Phase, Severity, TlsVersion};

    fn no_identity_flow() -> crate::facts::Flow {
        success_builder()
            .upstream(|l| {
                l.chain = vec![];
                l.identity = Some(identity(None, &[], "no identity configured"));
                l.alerts = vec![alert(Direction::Received, 116, 12.0)];
                l.failure = Some(crate::facts::LegFailure {
                    stage: crate::facts::Stage::AfterHandshake,
                    kind: crate::facts::FailureKind::AlertReceived,
                });
            })
            .own_response(502)
            .build()
    }

    #[test]
    fn certificate_required_without_a_certificate_is_no_client_cert() {
        let f = find(&no_identity_flow(), "no-client-cert").expect("no-client-cert");
        assert_eq!(f.severity, Severity::Error);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("certificate_required (116)")));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("no upstream identity is configured")));
        assert!(f.fix.contains("--identity"));
        // The specific finding explains the alert; nothing generic is added.
        assert!(find(&no_identity_flow(), "handshake-rejected").is_none());
    }

    #[test]
    fn client_leg_without_certificate_when_mtlscope_requires_one() {
        let flow = FlowBuilder::reverse()
            .connection()
            .client(|l| {
                l.cert_request = Some(CertRequest {
                    mandatory: Some(true),
                    ..cr(Phase::Handshake, &["Root"])
                });
                l.handshake_done_ms = None;
                l.alerts = vec![alert(Direction::Sent, 116, 4.0)];
                l.error = Some("peer sent no certificates".into());
                l.failure = Some(crate::facts::LegFailure {
                    stage: crate::facts::Stage::Handshake,
                    kind: crate::facts::FailureKind::NoCertificatesPresented,
                });
            })
            .build();
        assert_eq!(ids(&flow), ["no-client-cert"]);
        let f = find(&flow, "no-client-cert").unwrap();
        assert!(f.summary.starts_with("mtlscope asked"), "{}", f.summary);
        assert!(f.fix.starts_with("Client"));
    }

    #[test]
    fn nginx_no_certificate_page_is_no_client_cert() {
        let flow = success_builder()
            .upstream(|l| {
                l.chain = vec![];
                l.identity = None;
                l.tls_version = Some(TlsVersion::Tls12);
            })
            .response(
                400,
                "<html><head><title>400 No required SSL certificate was sent</title></head></html>",
                &[("server", "nginx")],
            )
            .build();
        let f = find(&flow, "no-client-cert").unwrap();
        assert!(f.evidence.iter().any(|e| e.contains("nginx's 400")));
        assert!(!f.summary.starts_with("Likely"));
        assert!(has_error(&flow));
    }

    #[test]
    fn optional_verification_403_is_likely_no_client_cert() {
        let flow = success_builder()
            .upstream(|l| l.chain = vec![])
            .response(403, "Forbidden", &[])
            .build();
        let f = find(&flow, "no-client-cert").unwrap();
        assert!(f.summary.starts_with("Likely"), "{}", f.summary);
        assert!(f.evidence.iter().any(|e| e.contains("to confirm")));
    }

    #[test]
    fn no_client_cert_not_on_success_or_when_a_certificate_was_sent() {
        assert!(find(&success(), "no-client-cert").is_none());
        // A certificate was optional and none was sent, but the server answered 200.
        let flow = success_builder().upstream(|l| l.chain = vec![]).build();
        assert!(find(&flow, "no-client-cert").is_none());
        // handshake_failure after a certificate was sent is not "not sent".
        let flow = success_builder()
            .upstream(|l| l.alerts = vec![alert(Direction::Received, 40, 6.0)])
            .own_response(502)
            .build();
        assert!(find(&flow, "no-client-cert").is_none());
    }

    #[test]
    fn no_client_cert_defers_to_a_late_request_mtlscope_refused() {
        let flow = success_builder()
            .upstream(|l| {
                l.cert_request = Some(cr(Phase::Renegotiation, &[]));
                l.cert_request.as_mut().unwrap().ca_names = None;
                l.chain = vec![];
                l.renegotiations = vec![crate::facts::Renegotiation {
                    at_ms: 12.0,
                    initiated_by: crate::facts::Initiator::Server,
                    after_app_data_ms: Some(0.2),
                    outcome: Some(crate::facts::RenegotiationOutcome::RefusedByMtlscope),
                    refused_by_mtlscope: true,
                }];
                l.alerts = vec![alert(Direction::Received, 40, 12.5)];
            })
            .own_response(502)
            .build();
        assert!(find(&flow, "no-client-cert").is_none());
        assert!(find(&flow, "renegotiation-requested").is_some());
    }

    #[test]
    fn withheld_identity_is_issuer_not_in_ca_list() {
        let flow = success_builder()
            .upstream(|l| {
                l.cert_request = Some(cr(Phase::Handshake, &["Other Root"]));
                l.chain = vec![];
                l.identity = Some(identity(
                    None,
                    &[("client.pem", good_chain())],
                    "no identity matches the CA names",
                ));
                l.alerts = vec![alert(Direction::Received, 116, 12.0)];
            })
            .own_response(502)
            .build();
        let f = find(&flow, "issuer-not-in-ca-list").unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(f.evidence.iter().any(|e| e.contains("\"CN=Other Root\"")));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("`client.pem` (withheld)")));
        let n = find(&flow, "no-client-cert").unwrap();
        assert!(n.evidence.iter().any(|e| e.contains("was withheld")));
        assert!(n.fix.contains("issuer-not-in-ca-list"));
        // Both say what each client stack would have done with that identity.
        for f in [f, n] {
            assert!(
                f.evidence.iter().any(|e| e.starts_with("with `client.pem` on offer, openssl would send `client.pem`")
                    && e.contains("java, java-pkix, go, schannel, chrome, firefox would send nothing (issuer not among the CA names")),
                "{:?}",
                f.evidence
            );
        }
    }

    #[test]
    fn presented_chain_outside_the_list_names_who_would_have_withheld_it() {
        let flow = success_builder()
            .upstream(|l| l.cert_request = Some(cr(Phase::Handshake, &["Other Root"])))
            .build();
        let f = find(&flow, "issuer-not-in-ca-list").unwrap();
        let line = f
            .evidence
            .iter()
            .find(|e| e.contains("would send nothing"))
            .unwrap_or_else(|| panic!("{:?}", f.evidence));
        assert!(line.contains("openssl would send"), "{line}");
        assert!(line.contains("OpenSSL does not look"), "{line}");
        assert!(line.contains("java, java-pkix, go"), "{line}");
    }

    #[test]
    fn presented_chain_outside_the_list_is_a_warning_when_accepted() {
        let flow = success_builder()
            .upstream(|l| l.cert_request = Some(cr(Phase::Handshake, &["Other Root"])))
            .build();
        let f = find(&flow, "issuer-not-in-ca-list").unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert!(!has_error(&flow));
    }

    #[test]
    fn leaf_without_intermediate_against_a_root_only_list() {
        let flow = success_builder()
            .upstream(|l| {
                l.chain = vec![leaf("client", "Inter")];
                l.issuer_lookup = Some(inter_lookup());
            })
            .build();
        let f = find(&flow, "issuer-not-in-ca-list").unwrap();
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("lacks the intermediate \"CN=Inter\"")),
            "{:?}",
            f.evidence
        );
    }

    #[test]
    fn issuer_not_in_ca_list_not_when_the_chain_matches() {
        assert!(find(&success(), "issuer-not-in-ca-list").is_none());
        assert!(find(&success_wire(), "issuer-not-in-ca-list").is_none());
        // The intermediate's subject is named: a match.
        let flow = success_builder()
            .upstream(|l| l.cert_request = Some(cr(Phase::Handshake, &["Inter"])))
            .build();
        assert!(find(&flow, "issuer-not-in-ca-list").is_none());
    }

    #[test]
    fn empty_ca_list_is_a_warning_then_an_error_when_the_pick_is_rejected() {
        let flow = success_builder()
            .upstream(|l| l.cert_request = Some(cr(Phase::Handshake, &[])))
            .build();
        let f = find(&flow, "empty-ca-list").unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert!(!has_error(&flow));
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("openssl, java, java-pkix, go, schannel would send")),
            "{:?}",
            f.evidence
        );

        let flow = success_builder()
            .upstream(|l| {
                l.cert_request = Some(cr(Phase::Handshake, &[]));
                l.alerts = vec![alert(Direction::Received, 48, 6.0)];
            })
            .own_response(502)
            .build();
        assert_eq!(
            find(&flow, "empty-ca-list").unwrap().severity,
            Severity::Error
        );
    }

    #[test]
    fn mtlscope_own_empty_list_only_when_it_mattered() {
        let flow = success_builder()
            .client(|l| l.cert_request = Some(cr(Phase::Handshake, &[])))
            .build();
        assert!(find(&flow, "empty-ca-list").is_none());
        let flow = success_builder()
            .client(|l| l.cert_request = Some(cr(Phase::Handshake, &[])))
            .with(|f| {
                f.faults = vec![crate::facts::FaultEffect {
                    name: "empty-ca-list".into(),
                    effect: "sent the client an empty CA list".into(),
                }]
            })
            .build();
        let f = find(&flow, "empty-ca-list").unwrap();
        assert!(f.fix.starts_with("mtlscope"));
    }

    #[test]
    fn empty_ca_list_on_the_wire() {
        let flow = FlowBuilder::observe()
            .wire(|w| w.cert_request = Some(cr(Phase::Handshake, &[])))
            .build();
        assert_eq!(ids(&flow), ["empty-ca-list"]);
        assert!(find(&success_wire(), "empty-ca-list").is_none());
    }
}
