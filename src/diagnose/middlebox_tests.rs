//! Tests of the "Middleboxes and proxies" rules.

use super::super::test_support::*;
use crate::facts::{Direction, FaultEffect, LegFailure, Phase, ServerVerification, Severity};
use crate::facts::{FailureKind, Stage};

#[test]
fn stripped_identity_rejected_upstream() {
    let flow = success_builder()
        .upstream(|l| {
            l.chain = vec![];
            l.identity = None;
            l.alerts = vec![alert(Direction::Received, 116, 12.0)];
        })
        .own_response(502)
        .build();
    let f = find(&flow, "identity-not-forwarded").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.evidence[0].contains("\"CN=client\""));
    assert!(f.evidence[1].contains("no certificate upstream"));
    assert!(f.fix.contains("RFC 9440"));
}

#[test]
fn identity_not_forwarded_not_when_the_same_or_unasked() {
    assert!(find(&success(), "identity-not-forwarded").is_none());
    let flow = success_builder()
        .upstream(|l| {
            l.cert_request = None;
            l.chain = vec![];
        })
        .build();
    assert!(find(&flow, "identity-not-forwarded").is_none());
    // A different identity upstream that the server accepted: worth knowing, not an error.
    let flow = success_builder()
        .upstream(|l| l.chain = vec![leaf("proxy", "Inter"), ca("Inter", "Root")])
        .build();
    assert_eq!(
        find(&flow, "identity-not-forwarded").unwrap().severity,
        Severity::Info
    );
    assert!(!has_error(&flow));
}

#[test]
fn inspection_ca_in_the_server_chain() {
    let flow = success_builder()
        .upstream(|l| l.server_chain = vec![leaf("server.test", "Zscaler Intermediate Root CA")])
        .build();
    let f = find(&flow, "intercepted-upstream").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.evidence[0].contains("zscaler"));
    assert!(find(&success(), "intercepted-upstream").is_none());
}

#[test]
fn unverified_upstream_certificate() {
    let flow = success_builder()
        .upstream(|l| {
            l.server_verification = Some(ServerVerification {
                ok: false,
                reason: Some("unknown issuer".into()),
                problem: None,
                enforced: true,
            });
            l.failure = Some(LegFailure {
                stage: Stage::Handshake,
                kind: FailureKind::PeerCertificateInvalid,
            });
            l.alerts = vec![alert(Direction::Sent, 48, 3.0)];
            l.handshake_done_ms = None;
        })
        .own_response(502)
        .build();
    assert_eq!(ids(&flow), ["server-cert-untrusted"]);
    let f = find(&flow, "server-cert-untrusted").unwrap();
    assert!(f.summary.contains("unknown issuer"));
    assert!(f.fix.contains("--upstream-ca"));
}

#[test]
fn insecure_upstream_is_a_warning_and_verified_is_nothing() {
    let flow = success_builder()
        .upstream(|l| {
            l.server_verification = Some(ServerVerification {
                ok: false,
                reason: Some("name mismatch".into()),
                problem: None,
                enforced: false,
            })
        })
        .build();
    assert_eq!(
        find(&flow, "server-cert-untrusted").unwrap().severity,
        Severity::Warning
    );
    let flow = success_builder()
        .upstream(|l| {
            l.server_verification = Some(ServerVerification {
                ok: true,
                reason: None,
                problem: None,
                enforced: true,
            })
        })
        .build();
    assert!(find(&flow, "server-cert-untrusted").is_none());
}

#[test]
fn proxy_407() {
    let flow = FlowBuilder::reverse()
        .with(|f| f.mode = crate::facts::Mode::Forward)
        .get("https://server.test/")
        .response(407, "", &[("proxy-authenticate", "Basic realm=\"corp\"")])
        .build();
    assert_eq!(ids(&flow), ["proxy-auth-required"]);
    assert!(find(&flow, "proxy-auth-required").unwrap().evidence[0].contains("Basic realm"));
    assert!(find(&success(), "proxy-auth-required").is_none());
}

#[test]
fn connection_refused_upstream() {
    let flow = FlowBuilder::reverse()
        .client(|_| {})
        .upstream(|l| {
            *l = Default::default();
            l.error = Some("Connection refused (os error 111)".into());
            l.failure = Some(LegFailure {
                stage: Stage::Connect,
                kind: FailureKind::ConnectionRefused,
            });
        })
        .get("/")
        .own_response(502)
        .build();
    assert_eq!(ids(&flow), ["upstream-unreachable"]);
    let f = find(&flow, "upstream-unreachable").unwrap();
    assert!(f.summary.contains("server.test:8443 refused"));
    assert!(find(&success(), "upstream-unreachable").is_none());
    // A reset after TLS began is not "unreachable".
    let flow = success_builder()
        .upstream(|l| {
            l.failure = Some(LegFailure {
                stage: Stage::Handshake,
                kind: FailureKind::Reset,
            })
        })
        .build();
    assert!(find(&flow, "upstream-unreachable").is_none());
}

#[test]
fn injected_fault_comes_first_and_names_the_effect() {
    let flow = success_builder()
        .upstream(|l| {
            l.chain = vec![];
            l.alerts = vec![alert(Direction::Received, 116, 12.0)];
        })
        .with(|f| {
            f.faults = vec![FaultEffect {
                name: "strip-client-cert".into(),
                effect: "presented no certificate upstream".into(),
            }]
        })
        .own_response(502)
        .build();
    let got = ids(&flow);
    assert_eq!(got[0], "injected-fault", "{got:?}");
    let f = find(&flow, "injected-fault").unwrap();
    assert!(f.evidence[0].contains("strip-client-cert"));
    assert!(find(&success(), "injected-fault").is_none());
    let quiet = success_builder()
        .with(|f| {
            f.faults = vec![FaultEffect {
                name: "delay".into(),
                effect: "delayed ServerHello by 50 ms".into(),
            }]
        })
        .build();
    assert_eq!(
        find(&quiet, "injected-fault").unwrap().severity,
        Severity::Info
    );
    let _ = Phase::Handshake;
}

#[test]
fn a_connection_refused_by_max_connections_is_mtlscopes_own_failure() {
    let mut flow = crate::facts::Flow::new(
        crate::facts::Mode::Reverse,
        7,
        time::OffsetDateTime::UNIX_EPOCH,
    );
    flow.kind = crate::facts::RecordKind::Connection;
    flow.error = Some("closed at accept".into());
    flow.own_limit = Some(crate::facts::OwnLimit::MaxConnections { max: 3 });
    assert_eq!(ids(&flow), vec!["proxy-limit-reached"]);
    let f = find(&flow, "proxy-limit-reached").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("--max-connections 3"), "{}", f.summary);
    assert!(!f.summary.contains("reproduction"));
    assert!(find(&success(), "proxy-limit-reached").is_none());
}
