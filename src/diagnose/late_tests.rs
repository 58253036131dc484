//! Tests of the "Asked for late" rules.

use super::super::test_support::*;
use crate::facts::{
    CertRequest, Direction, Flow, Initiator, LegFailure, Phase, Renegotiation, Severity, TlsVersion,
};
use crate::facts::{FailureKind, Stage};

/// Apache asking by TLS 1.2 renegotiation after `GET /secure`; `outcome` as recorded.
fn renegotiation(outcome: crate::facts::RenegotiationOutcome, refused: bool) -> Flow {
    let b = success_builder().upstream(|l| {
        l.tls_version = Some(TlsVersion::Tls12);
        l.cert_request = None;
        l.renegotiations = vec![Renegotiation {
            at_ms: 13.0,
            initiated_by: Initiator::Server,
            after_app_data_ms: Some(3.0),
            outcome: Some(outcome),
            refused_by_mtlscope: false,
        }];
        if refused {
            l.alerts = vec![
                alert(Direction::Sent, 100, 13.1),
                alert(Direction::Received, 40, 13.3),
            ];
        }
    });
    if refused {
        b.response(403, "", &[]).build()
    } else {
        b.build()
    }
}

#[test]
fn refused_renegotiation_is_an_error_with_the_delay() {
    let flow = renegotiation(crate::facts::RenegotiationOutcome::RefusedByMtlscope, true);
    assert_eq!(ids(&flow), ["renegotiation-requested"]);
    let f = find(&flow, "renegotiation-requested").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(
        f.summary,
        "The server asked for a client certificate by renegotiation 3 ms after the request; mtlscope refused it."
    );
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("no_renegotiation (100)")));
    assert!(f.fix.contains("SSLVerifyClient"));
}

#[test]
fn completed_renegotiation_on_success_is_a_warning() {
    let flow = renegotiation(crate::facts::RenegotiationOutcome::Completed, false);
    let f = find(&flow, "renegotiation-requested").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("mtlscope completed it"));
    assert!(!has_error(&flow));
}

#[test]
fn renegotiation_not_without_one() {
    assert!(find(&success(), "renegotiation-requested").is_none());
    // A client-initiated renegotiation is not the server asking.
    let flow = success_builder()
        .upstream(|l| {
            l.renegotiations = vec![Renegotiation {
                at_ms: 13.0,
                initiated_by: Initiator::Client,
                after_app_data_ms: None,
                outcome: None,
                refused_by_mtlscope: false,
            }]
        })
        .build();
    assert!(find(&flow, "renegotiation-requested").is_none());
}

#[test]
fn renegotiation_seen_on_the_wire() {
    let flow = FlowBuilder::observe()
        .wire(|w| {
            w.renegotiations = vec![Renegotiation {
                at_ms: 40.0,
                initiated_by: Initiator::Server,
                after_app_data_ms: Some(0.2),
                outcome: None,
                refused_by_mtlscope: false,
            }];
            w.alerts = vec![alert(Direction::Received, 40, 41.0)];
        })
        .build();
    assert_eq!(ids(&flow), ["renegotiation-requested"]);
    assert!(find(&flow, "renegotiation-requested")
        .unwrap()
        .summary
        .contains("0.2 ms after"));
}

/// TLS 1.3 upstream with no request in the handshake, and Apache's 403.
fn apache_pha_403() -> Flow {
    success_builder()
        .upstream(|l| {
            l.cert_request = None;
            l.chain = vec![];
        })
        .response(
            403,
            "<title>403 Forbidden</title><p>You don't have permission to access this resource.</p><address>Apache/2.4.62 (Debian) Server at localhost</address>",
            &[],
        )
        .build()
}

#[test]
fn apache_403_after_tls13_without_request_is_likely_post_handshake_auth() {
    let flow = apache_pha_403();
    assert_eq!(ids(&flow), ["post-handshake-auth"]);
    let f = find(&flow, "post-handshake-auth").unwrap();
    assert!(f.summary.starts_with("Likely"));
    assert!(f.summary.contains("GET /secure"));
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("did not offer post_handshake_auth")));
    assert!(f.evidence.iter().any(|e| e.contains("retry with TLS 1.2")));
}

#[test]
fn observed_post_handshake_request() {
    let flow = success_builder()
        .upstream(|l| {
            l.cert_request = Some(CertRequest {
                after_request_ms: Some(0.28),
                at_ms: 10.3,
                ..cr(Phase::PostHandshake, &["Root"])
            });
            l.chain = vec![];
            l.alerts = vec![alert(Direction::Sent, 10, 10.4)];
            l.failure = Some(LegFailure {
                stage: Stage::AfterHandshake,
                kind: FailureKind::UnexpectedMessage,
            });
        })
        .own_response(502)
        .build();
    let got = ids(&flow);
    assert_eq!(got, ["post-handshake-auth"], "{got:?}");
    let f = find(&flow, "post-handshake-auth").unwrap();
    assert!(f.evidence[0].contains("0.28 ms after the request"));
}

#[test]
fn post_handshake_auth_not_for_other_403s_or_tls12_or_success() {
    assert!(find(&success(), "post-handshake-auth").is_none());
    // A non-Apache 403 without a request for a certificate: no guess.
    let flow = success_builder()
        .upstream(|l| {
            l.cert_request = None;
            l.chain = vec![];
        })
        .response(403, "denied", &[])
        .build();
    assert!(find(&flow, "post-handshake-auth").is_none());
    let mut flow = apache_pha_403();
    if let Some(l) = flow.upstream_leg.as_mut().map(std::sync::Arc::make_mut) {
        l.tls_version = Some(TlsVersion::Tls12);
    }
    assert!(find(&flow, "post-handshake-auth").is_none());
}

#[test]
fn late_request_over_h2() {
    let mut flow = renegotiation(crate::facts::RenegotiationOutcome::RefusedByMtlscope, true);
    if let Some(l) = flow.upstream_leg.as_mut().map(std::sync::Arc::make_mut) {
        l.alpn = Some("h2".into());
    }
    let f = find(&flow, "http2-blocks-late-auth").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("RFC 7540"));
    // The same over HTTP/1.1 is not an HTTP/2 problem.
    assert!(find(
        &renegotiation(crate::facts::RenegotiationOutcome::RefusedByMtlscope, true),
        "http2-blocks-late-auth"
    )
    .is_none());
    let mut ok = success();
    if let Some(l) = ok.upstream_leg.as_mut().map(std::sync::Arc::make_mut) {
        l.alpn = Some("h2".into());
    }
    assert!(find(&ok, "http2-blocks-late-auth").is_none());
}

/// An OpenSSL upstream leg that answered a late request of `phase`.
fn completed_by_openssl(phase: Phase, version: TlsVersion) -> Flow {
    success_builder()
        .upstream(|l| {
            l.tls_version = Some(version);
            l.engine = Some(crate::facts::TlsEngine::Openssl);
            l.cert_request = Some(CertRequest {
                after_request_ms: Some(0.3),
                ..cr(phase, &["Root"])
            });
            l.completed_late_request = Some(phase);
            l.client_hello = Some(crate::facts::ClientHelloFacts {
                offered_pha: true,
                ..Default::default()
            });
        })
        .build()
}

#[test]
fn a_late_request_completed_by_mtlscope_is_a_warning_about_the_server_design() {
    let flow = completed_by_openssl(Phase::PostHandshake, TlsVersion::Tls13);
    let f = find(&flow, "post-handshake-auth").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.summary.ends_with("; mtlscope completed it."),
        "{}",
        f.summary
    );
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("presenting client.pem and completed it")));
    assert!(f.evidence.iter().any(|e| e.contains("HTTP/2 forbids it")));
    assert!(f
        .evidence
        .iter()
        .any(|e| e == "the ClientHello offered post_handshake_auth"));
    assert!(!has_error(&flow));

    let flow = completed_by_openssl(Phase::Renegotiation, TlsVersion::Tls12);
    let f = find(&flow, "renegotiation-requested").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("mtlscope completed it"), "{}", f.summary);
    assert!(
        f.evidence.iter().any(|e| e.contains("413")),
        "{:?}",
        f.evidence
    );
}

#[test]
fn a_late_request_openssl_could_not_complete_says_why() {
    let mut flow = completed_by_openssl(Phase::Renegotiation, TlsVersion::Tls12);
    let up = std::sync::Arc::make_mut(flow.upstream_leg.as_mut().unwrap());
    up.completed_late_request = None;
    up.error = Some("the peer sent a fatal unknown_ca alert".into());
    up.failure = Some(LegFailure {
        stage: crate::facts::Stage::AfterHandshake,
        kind: crate::facts::FailureKind::AlertReceived,
    });
    let f = find(&flow, "renegotiation-requested").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary
            .contains("could not complete it: the peer sent a fatal unknown_ca alert"),
        "{}",
        f.summary
    );
}

#[test]
fn a_replayed_exchange_says_so() {
    let mut flow = completed_by_openssl(Phase::PostHandshake, TlsVersion::Tls13);
    let first = std::sync::Arc::unwrap_or_clone(apache_pha_403().upstream_leg.unwrap());
    flow.replayed = Some(Box::new(crate::facts::Replay {
        reason: Phase::PostHandshake,
        first_leg: first,
        first_status: Some(403),
        at_ms: 12.0,
    }));
    let f = find(&flow, "post-handshake-auth").unwrap();
    assert!(
        f.summary
            .contains("after replaying the request over OpenSSL"),
        "{}",
        f.summary
    );
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("the server answered 403); mtlscope replayed it once")));
}

#[test]
fn what_auto_replays() {
    use super::unanswered_late_request;
    // Apache's 403 for missing post-handshake auth.
    assert_eq!(
        unanswered_late_request(&apache_pha_403()),
        Some(Phase::PostHandshake)
    );
    // A renegotiation rustls refused.
    let mut flow = renegotiation(crate::facts::RenegotiationOutcome::RefusedByMtlscope, true);
    std::sync::Arc::make_mut(flow.upstream_leg.as_mut().unwrap()).renegotiations[0]
        .refused_by_mtlscope = true;
    assert_eq!(unanswered_late_request(&flow), Some(Phase::Renegotiation));
    // Not a success, not a completed late request, not the client leg's business.
    assert_eq!(unanswered_late_request(&success()), None);
    assert_eq!(
        unanswered_late_request(&completed_by_openssl(
            Phase::PostHandshake,
            TlsVersion::Tls13
        )),
        None
    );
}

#[test]
fn a_refused_renegotiation_names_the_engine_that_completes_it() {
    let mut flow = renegotiation(crate::facts::RenegotiationOutcome::RefusedByMtlscope, true);
    std::sync::Arc::make_mut(flow.upstream_leg.as_mut().unwrap()).renegotiations[0]
        .refused_by_mtlscope = true;
    let f = find(&flow, "renegotiation-requested").unwrap();
    assert!(f.fix.contains("--upstream-engine openssl"), "{}", f.fix);
    let f = find(&apache_pha_403(), "post-handshake-auth").unwrap();
    assert!(f.fix.contains("--upstream-engine openssl"), "{}", f.fix);
}

/// `--upstream-engine auto` against a server that asks late with an empty CA list: the
/// headline is what happened (mtlscope completed the late request), not the CA-list advisory.
#[test]
fn a_completed_late_request_comes_before_the_empty_ca_list_advisory() {
    for (phase, version, id) in [
        (
            Phase::Renegotiation,
            TlsVersion::Tls12,
            "renegotiation-requested",
        ),
        (
            Phase::PostHandshake,
            TlsVersion::Tls13,
            "post-handshake-auth",
        ),
    ] {
        let mut flow = completed_by_openssl(phase, version);
        if let Some(l) = flow.upstream_leg.as_mut().map(std::sync::Arc::make_mut) {
            let cr = l.cert_request.as_mut().unwrap();
            cr.ca_names = Some(vec![]);
            cr.ca_names_der.clear();
        }
        let got = ids(&flow);
        assert_eq!(got.first().map(String::as_str), Some(id), "{got:?}");
        assert!(got.contains(&"empty-ca-list".to_string()), "{got:?}");
    }
}

#[test]
fn an_http2_reset_asking_for_http11_is_a_late_request_blocked_by_http2() {
    // Apache resets the request over HTTP/2 where it would ask for the certificate late; no
    // CertificateRequest reaches the wire, so the typed failure is the evidence.
    let flow = success_builder()
        .upstream(|l| {
            l.alpn = Some("h2".into());
            l.error = Some("the server reset the request".into());
            l.failure = Some(crate::facts::LegFailure {
                stage: Stage::AfterHandshake,
                kind: FailureKind::Http11Required,
            });
        })
        .own_response(502)
        .build();
    let f = find(&flow, "http2-blocks-late-auth").expect("http2-blocks-late-auth");
    assert!(
        f.evidence.iter().any(|e| e.contains("HTTP_1_1_REQUIRED")),
        "{f:#?}"
    );
    // The same words without the typed failure are not read as one.
    let mut words = flow.clone();
    if let Some(l) = words.upstream_leg.as_mut().map(std::sync::Arc::make_mut) {
        l.failure = None;
        l.alpn = Some("http/1.1".into());
        l.error = Some("stream error: HTTP_1_1_REQUIRED".into());
    }
    assert!(find(&words, "http2-blocks-late-auth").is_none());
}
