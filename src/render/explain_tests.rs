//! Tests of the explaining views: header, 502 bodies, terminal line.

use super::*;
use crate::diagnose::diagnose;
use crate::diagnose::test_support::*;
use crate::facts::{
    CertRequest, Direction, Initiator, LegFailure, Phase, Renegotiation, TlsVersion,
};

// The renderers format what the diagnosis stage recorded; these tests diagnose first, as
// the sink does, and shadow the renderers under test with that step.
fn diagnosed(flow: &Flow) -> Flow {
    let mut flow = flow.clone();
    flow.findings = diagnose(&flow);
    flow
}
fn terminal_line(flow: &Flow) -> String {
    super::terminal_line(&diagnosed(flow))
}
fn error_body_text(flow: &Flow) -> String {
    super::error_body_text(&diagnosed(flow))
}
fn error_body_json(flow: &Flow) -> serde_json::Value {
    super::error_body_json(&diagnosed(flow))
}

fn no_identity_502() -> Flow {
    success_builder()
        .upstream(|l| {
            l.chain = vec![];
            l.identity = None;
            l.alerts = vec![alert(Direction::Received, 116, 12.0)];
            l.error = Some("received fatal alert: CertificateRequired".into());
            l.failure = Some(LegFailure {
                stage: crate::facts::Stage::AfterHandshake,
                kind: crate::facts::FailureKind::AlertReceived,
            });
        })
        .own_response(502)
        .build()
}

#[test]
fn header_value_lists_ids_in_order() {
    let flow = no_identity_502();
    let findings = diagnose(&flow);
    assert_eq!(
        diagnosis_header_value(&findings).as_deref(),
        Some("no-client-cert, identity-not-forwarded")
    );
    assert_eq!(diagnosis_header_value(&[]), None);
}

#[test]
fn text_body_explains_failure_findings_and_fix() {
    let body = error_body_text(&no_identity_502());
    assert!(body.starts_with(
        "mtlscope could not establish the connection to server.test:8443 for GET /secure."
    ));
    assert!(body.contains("What failed: the upstream leg, at after_handshake (alert_received)"));
    assert!(body.contains("upstream TLSv1.3 http/1.1: server asked for a cert (CA: CN=Root); mtlscope presented none; alerts: certificate_required from server"), "{body}");
    assert!(body.contains("1. [error] no-client-cert: "));
    assert!(body.contains("certificate_required (116)"));
    assert!(body.contains("Fix: mtlscope (client side): give it an upstream identity"));
}

#[test]
fn json_body_carries_the_findings() {
    let v = error_body_json(&no_identity_502());
    assert_eq!(v["failure"]["kind"], "alert_received");
    assert_eq!(v["findings"][0]["id"], "no-client-cert");
    assert_eq!(v["findings"][0]["severity"], "error");
    assert_eq!(v["diagnosis"], "no-client-cert, identity-not-forwarded");
    assert_eq!(v["request"]["uri"], "/secure");
}

#[test]
fn renderers_use_recorded_findings_when_present() {
    let mut flow = no_identity_502();
    flow.findings = vec![Finding {
        id: crate::facts::FindingId::InjectedFault,
        inferred: false,
        severity: Severity::Error,
        summary: "Recorded.".into(),
        evidence: vec![],
        fix: "none".into(),
    }];
    // Straight to the renderers: they show what was recorded, and decide nothing.
    assert!(super::terminal_line(&flow).contains("[injected-fault]"));
    assert_eq!(super::error_body_json(&flow)["diagnosis"], "injected-fault");
    flow.findings.clear();
    assert!(!super::terminal_line(&flow).contains('['));
}

#[test]
fn terminal_line_for_a_refused_renegotiation() {
    let flow = success_builder()
        .upstream(|l| {
            l.tls_version = Some(TlsVersion::Tls12);
            l.cert_request = None;
            l.chain = vec![];
            l.renegotiations = vec![Renegotiation {
                at_ms: 13.0,
                initiated_by: Initiator::Server,
                after_app_data_ms: None,
                outcome: Some(crate::facts::RenegotiationOutcome::RefusedByMtlscope),
                refused_by_mtlscope: true,
            }];
            l.alerts = vec![alert(Direction::Sent, 100, 13.1)];
        })
        .response(403, "", &[])
        .build();
    let line = terminal_line(&flow);
    let first = line.lines().next().unwrap();
    assert_eq!(
        first,
        "403 GET /secure ← the server asked for a client certificate by renegotiation 3 ms after the request; mtlscope refused it [renegotiation-requested]"
    );
    assert!(line.contains("upstream TLSv1.2 http/1.1: server asked for no cert; alerts: no_renegotiation from mtlscope"), "{line}");
}

#[test]
fn terminal_line_for_a_failed_connection() {
    let flow = FlowBuilder::reverse()
        .connection()
        .client(|l| {
            l.cert_request = Some(CertRequest {
                mandatory: Some(true),
                ..cr(Phase::Handshake, &["Root"])
            });
            l.handshake_done_ms = None;
            l.alerts = vec![alert(Direction::Sent, 116, 4.0)];
            l.failure = Some(LegFailure {
                stage: crate::facts::Stage::Handshake,
                kind: crate::facts::FailureKind::NoCertificatesPresented,
            });
        })
        .build();
    let line = terminal_line(&flow);
    assert!(
        line.starts_with("conn 7 127.0.0.1:5555 ✗ handshake: mtlscope asked for a client certificate and the client sent none"),
        "{line}"
    );
    assert!(line.lines().next().unwrap().ends_with("[no-client-cert]"));
    assert!(line.contains(
        "client TLSv1.3: mtlscope asked for a cert (CA: CN=Root); client presented none"
    ));
}

#[test]
fn terminal_line_for_a_success_has_no_ids() {
    let line = terminal_line(&success());
    assert!(line.starts_with("200 GET /secure\n"), "{line}");
    assert!(line.contains("upstream TLSv1.3 http/1.1: server asked for a cert (CA: CN=Root); mtlscope presented CN=client"));
    assert!(!line.contains('['));
}

#[test]
fn tls13_wire_says_the_request_cannot_be_seen() {
    let flow = FlowBuilder::observe()
        .wire(|w| {
            w.tls_version = Some(TlsVersion::Tls13);
            w.cert_request = None;
            w.client_chain = None;
        })
        .build();
    let line = terminal_line(&flow);
    assert!(line.contains("encrypted: cannot tell"), "{line}");
    assert!(!line.contains("asked for no cert"), "{line}");
    let tls12 = FlowBuilder::observe()
        .wire(|w| {
            w.tls_version = Some(TlsVersion::Tls12);
            w.cert_request = None;
        })
        .build();
    assert!(terminal_line(&tls12).contains("server asked for no cert"));
}

#[test]
fn escape_sequences_in_a_certificate_never_reach_the_terminal() {
    let evil = "CN=evil\u{1b}]0;PWNED\u{7}\u{1b}[2J";
    let flow = FlowBuilder::reverse()
        .client(|l| {
            let mut chain = good_chain();
            chain[0].subject = evil.to_string();
            l.chain = chain;
        })
        .get("/x\u{1b}[31m")
        .response(403, "", &[])
        .build();
    for text in [
        terminal_line(&flow),
        error_body_text(&flow),
        super::explained_block(&diagnosed(&flow)),
    ] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }
    assert!(
        terminal_line(&flow).contains("CN=evil\u{fffd}]0;PWNED"),
        "{}",
        terminal_line(&flow)
    );
}
