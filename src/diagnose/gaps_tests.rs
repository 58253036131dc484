//! Tests of the "Gaps and non-TLS peers" rules, the silent close after a CertificateRequest,
//! and the property that no failure is left without a finding.

use super::super::test_support::*;
use crate::facts::{AlertLevel, Direction, Event, FailureKind, Flow, LegFailure, Severity, Stage};
use time::macros::datetime;

/// A client that sent a lone newline to the TLS port.
fn newline_client() -> Flow {
    FlowBuilder::reverse()
        .connection()
        .client(|l| {
            l.tls_version = None;
            l.alerts = vec![alert(Direction::Sent, 50, 0.4)];
            l.failure = Some(LegFailure {
                stage: Stage::ClientHello,
                kind: FailureKind::NotTls,
            });
            l.error = Some("the client did not send a TLS ClientHello: 1 byte: 0a".into());
        })
        .build()
}

#[test]
fn a_health_check_newline_is_client_not_tls_not_handshake_rejected() {
    let flow = newline_client();
    assert_eq!(ids(&flow), ["client-not-tls"]);
    let f = find(&flow, "client-not-tls").unwrap();
    assert!(
        f.evidence.iter().any(|e| e.contains("0a")),
        "{:?}",
        f.evidence
    );
}

/// The server asked in the handshake, mtlscope presented `chain`, and the server closed the
/// connection without an alert; mtlscope answered 502.
fn silent_close(chain: Vec<crate::facts::CertSummary>, stage: Stage) -> Flow {
    success_builder()
        .upstream(|l| {
            l.chain = chain;
            l.handshake_done_ms = None;
            l.alerts = vec![];
            l.failure = Some(LegFailure {
                stage,
                kind: FailureKind::Eof,
            });
            l.error = Some("the peer closed the connection".into());
            l.events
                .push(Event::new(9.5, crate::facts::EventKind::Error, None));
        })
        .own_response(502)
        .build()
}

#[test]
fn a_silent_close_after_an_empty_certificate_is_no_client_cert() {
    for stage in [Stage::Handshake, Stage::AfterHandshake] {
        let flow = silent_close(vec![], stage);
        assert_eq!(ids(&flow)[0], "no-client-cert", "{stage}: {:?}", ids(&flow));
        let f = find(&flow, "no-client-cert").unwrap();
        assert!(
            f.evidence.iter().any(|e| e.contains("silent close")),
            "{:?}",
            f.evidence
        );
    }
}

#[test]
fn a_silent_close_after_an_expired_certificate_is_cert_expired() {
    let mut chain = good_chain();
    chain[0].not_after = datetime!(2020-01-01 0:00 UTC);
    let flow = silent_close(chain, Stage::AfterHandshake);
    assert_eq!(ids(&flow)[0], "cert-expired", "{:?}", ids(&flow));
}

#[test]
fn a_failure_no_rule_explains_is_unexplained_with_its_facts() {
    let flow = success_builder().response(418, "I'm a teapot", &[]).build();
    assert_eq!(ids(&flow), ["unexplained"]);
    let f = find(&flow, "unexplained").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.evidence.iter().any(|e| e.contains("418")),
        "{:?}",
        f.evidence
    );
}

#[test]
fn success_is_not_unexplained() {
    assert!(find(&success(), "unexplained").is_none());
    assert!(find(&success_wire(), "unexplained").is_none());
}

#[test]
fn a_close_notify_is_not_a_failure() {
    let flow = success_builder()
        .upstream(|l| {
            let mut a = alert(Direction::Received, 0, 20.0);
            a.level = AlertLevel::Warning;
            l.alerts = vec![a];
        })
        .build();
    assert!(!has_error(&flow), "{:?}", ids(&flow));
}

/// A TCP connect that sent nothing (`nc -z`, a load balancer's TCP check).
fn port_check_flow() -> Flow {
    FlowBuilder::reverse()
        .connection()
        .client(|l| {
            l.tls_version = None;
            l.handshake_done_ms = None;
            l.failure = Some(LegFailure {
                stage: Stage::ClientHello,
                kind: FailureKind::NothingSent,
            });
            l.error = Some(
                "the client closed the connection without sending a byte (a port check)".into(),
            );
        })
        .with(|f| f.error = f.client_leg.as_ref().and_then(|l| l.error.clone()))
        .build()
}

#[test]
fn a_connection_that_sent_nothing_is_a_port_check_not_a_failure() {
    let flow = port_check_flow();
    assert_eq!(ids(&flow), ["port-check"]);
    let f = find(&flow, "port-check").unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert!(!has_error(&flow));
    let view = crate::diagnose::view::View::new(&flow);
    assert!(!crate::diagnose::gaps::is_failure(&view));
}

#[test]
fn a_completed_handshake_without_a_request_is_no_failure() {
    let flow = success_builder().connection().build();
    assert!(ids(&flow).is_empty(), "{:?}", ids(&flow));
}

#[test]
fn a_404_with_a_clean_certificate_story_is_not_certificate_related() {
    for status in [404, 405, 410, 413, 415, 429] {
        let flow = success_builder()
            .get("/favicon.ico")
            .response(status, "not found", &[])
            .build();
        assert_eq!(ids(&flow), ["not-certificate-related"], "{status}");
        let f = find(&flow, "not-certificate-related").unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.summary.contains(&status.to_string()), "{}", f.summary);
        assert!(
            f.evidence.iter().any(|e| e.contains("GET /favicon.ico")),
            "{:?}",
            f.evidence
        );
    }
}

#[test]
fn a_404_after_a_failing_leg_or_an_auth_status_is_no_such_thing() {
    // A leg with a failing alert: the certificate story is not clean.
    let flow = success_builder()
        .get("/x")
        .response(404, "", &[])
        .upstream(|l| l.alerts = vec![alert(Direction::Received, 42, 3.0)])
        .build();
    assert!(
        find(&flow, "not-certificate-related").is_none(),
        "{:?}",
        ids(&flow)
    );
    // 403 is about who the client is: never "not certificate related".
    let flow = success_builder().get("/x").response(403, "", &[]).build();
    assert!(
        find(&flow, "not-certificate-related").is_none(),
        "{:?}",
        ids(&flow)
    );
}

#[test]
fn an_upstream_handshake_ended_before_the_certificate_presented_nothing() {
    // mtlscope aborted at the server's untrusted certificate: the identity was chosen but
    // never sent, so no rule may say it was presented or not presented.
    let flow = success_builder()
        .upstream(|l| {
            l.certificate_sent = Some(false);
            l.chain = vec![];
            l.handshake_done_ms = None;
            l.failure = Some(LegFailure {
                stage: Stage::Handshake,
                kind: FailureKind::PeerCertificateInvalid,
            });
            l.error = Some("the peer's certificate was rejected: UnknownIssuer".into());
        })
        .own_response(502)
        .build();
    let found = ids(&flow);
    assert!(
        found.contains(&"server-cert-untrusted".to_string()),
        "{found:?}"
    );
    assert!(!found.contains(&"no-client-cert".to_string()), "{found:?}");
    let view = crate::diagnose::view::View::new(&flow);
    let up = view.hop(crate::diagnose::view::HopKind::Upstream).unwrap();
    assert!(up.describe_presented().contains("presented nothing"));
}

mod property {
    //! Generated leg facts: every failure gets an error finding, and no rule panics.

    use super::*;
    use crate::facts::{Alert, AlertSource, Phase};
    use proptest::prelude::*;

    fn stage() -> impl Strategy<Value = Stage> {
        prop_oneof![
            Just(Stage::Connect),
            Just(Stage::ClientHello),
            Just(Stage::Handshake),
            Just(Stage::AfterHandshake),
            Just(Stage::Http),
        ]
    }

    fn kind() -> impl Strategy<Value = FailureKind> {
        prop_oneof![
            Just(FailureKind::ConnectionRefused),
            Just(FailureKind::TimedOut),
            Just(FailureKind::Reset),
            Just(FailureKind::Eof),
            Just(FailureKind::AlertReceived),
            Just(FailureKind::NoCertificatesPresented),
            Just(FailureKind::PeerCertificateInvalid),
            Just(FailureKind::PostHandshakeCertificateRequest),
            Just(FailureKind::NotTls),
            Just(FailureKind::PlainHttp),
            Just(FailureKind::DecryptError),
            Just(FailureKind::Tls),
            Just(FailureKind::Http),
            Just(FailureKind::Dns),
            Just(FailureKind::NothingSent),
        ]
    }

    fn alerts() -> impl Strategy<Value = Vec<Alert>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                prop_oneof![
                    Just(0u8),
                    Just(40),
                    Just(42),
                    Just(45),
                    Just(46),
                    Just(48),
                    Just(49),
                    Just(51),
                    Just(80),
                    Just(100),
                    Just(116),
                    any::<u8>()
                ],
                0.0f64..50.0,
            ),
            0..3,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(sent, code, at)| {
                    let mut a = alert(
                        if sent {
                            Direction::Sent
                        } else {
                            Direction::Received
                        },
                        code,
                        at,
                    );
                    a.source = AlertSource::Wire;
                    a
                })
                .collect()
        })
    }

    fn phase() -> impl Strategy<Value = Option<Phase>> {
        prop_oneof![
            Just(None),
            Just(Some(Phase::Handshake)),
            Just(Some(Phase::Renegotiation)),
            Just(Some(Phase::PostHandshake)),
        ]
    }

    prop_compose! {
        fn flow()(
            up_failure in proptest::option::of((stage(), kind())),
            client_failure in proptest::option::of((stage(), kind())),
            up_alerts in alerts(),
            client_alerts in alerts(),
            up_phase in phase(),
            presented in any::<bool>(),
            status in prop_oneof![Just(None), Just(Some(200u16)), Just(Some(302)), Just(Some(400)), Just(Some(401)), Just(Some(403)), Just(Some(404)), Just(Some(500)), Just(Some(502))],
            own in any::<bool>(),
        ) -> Flow {
            let mut b = success_builder().upstream(|l| {
                l.failure = up_failure.map(|(stage, kind)| LegFailure { stage, kind });
                if l.failure.is_some() {
                    l.error = Some("an error".into());
                }
                l.alerts = up_alerts;
                l.cert_request = up_phase.map(|p| cr(p, &["Root"]));
                if !presented {
                    l.chain = vec![];
                }
            })
            .client(|l| {
                l.failure = client_failure.map(|(stage, kind)| LegFailure { stage, kind });
                l.alerts = client_alerts;
            });
            match (status, own) {
                (Some(s), true) => b = b.own_response(s),
                (Some(s), false) => b = b.response(s, "", &[]),
                (None, _) => b = b.connection(),
            }
            b.build()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_failure_has_an_error_finding(flow in flow()) {
            let findings = crate::diagnose::diagnose(&flow);
            let view = crate::diagnose::view::View::new(&flow);
            if crate::diagnose::gaps::is_failure(&view) {
                // An error explains it, or an info finding that says it is no certificate
                // failure (an HTTP answer about the URL with a clean certificate story).
                prop_assert!(
                    findings.iter().any(|f| f.severity == Severity::Error
                        || f.id == crate::facts::FindingId::NotCertificateRelated),
                    "no error finding for {flow:#?}: {findings:#?}"
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for f in &findings {
                prop_assert!(seen.insert(f.id), "duplicate {}", f.id);
                prop_assert!(crate::facts::FindingId::ALL.contains(&f.id));
            }
        }
    }
}
