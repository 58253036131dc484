//! Tests of the handshake ladder: lanes, order, marks, and escaping in the SVG.

use super::svg;
use crate::diagnose::test_support::*;
use crate::facts::{Alert, AlertLevel, CertRequest, Direction, Phase};
use crate::render::ladder::*;

#[test]
fn both_legs_share_one_axis_with_names_and_chains() {
    let flow = success();
    let l = ladder(&flow);
    assert!(l.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    let cr = l
        .steps
        .iter()
        .find(|s| s.kind == StepKind::CertRequest && s.leg == LegSide::Upstream)
        .expect("upstream certificate request");
    assert_eq!((cr.from, cr.to), (Lane::Server, Lane::Mtlscope));
    assert!(cr.details.iter().any(|d| d == "CN=Root"), "{cr:?}");
    let http: Vec<&str> = l
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Http)
        .map(|s| s.label.as_str())
        .collect();
    assert!(http.iter().any(|h| h.starts_with("GET ")), "{http:?}");
    assert!(http.contains(&"HTTP 200"), "{http:?}");
    let svg = svg(&l);
    assert!(
        svg.contains("CertificateRequest (handshake, 1 CA name)"),
        "{svg}"
    );
}

#[test]
fn late_requests_and_fatal_alerts_are_marked_and_text_is_escaped() {
    let mut flow = success_builder()
        .upstream(|l| {
            if let Some(cr) = l.cert_request.as_mut() {
                cr.phase = Phase::Renegotiation;
                cr.at_ms = 1000.0;
                cr.ca_names = Some(vec!["CN=<script>x</script>".into()]);
            }
            l.alerts.push(Alert {
                direction: Direction::Received,
                level: AlertLevel::Fatal,
                description: crate::facts::AlertDescription::BadCertificate,
                at_ms: 1001.0,
                source: crate::facts::AlertSource::Wire,
                encrypted: false,
            });
        })
        .build();
    flow.request.as_mut().unwrap().at_ms = 900.0;
    let l = ladder(&flow);
    let cr = l
        .steps
        .iter()
        .position(|s| s.kind == StepKind::CertRequest && s.late);
    let req = l.steps.iter().position(|s| s.label.starts_with("GET "));
    assert!(cr.unwrap() > req.unwrap(), "{l:#?}");
    let alert = l.steps.iter().find(|s| s.kind == StepKind::Alert).unwrap();
    assert!(alert.fatal && alert.label.contains("bad_certificate"));
    assert_eq!((alert.from, alert.to), (Lane::Server, Lane::Mtlscope));
    let svg = svg(&l);
    assert!(!svg.contains("<script>"), "{svg}");
    assert!(svg.contains("— late"), "{svg}");
    assert!(svg.contains("CN=&lt;script&gt;x&lt;/script&gt;"));
}

#[test]
fn an_observed_session_runs_from_client_to_server() {
    let flow = FlowBuilder::observe()
        .wire(|w| {
            w.cert_request = Some(CertRequest {
                phase: Phase::Handshake,
                ca_names: None,
                ca_names_der: vec![],
                signature_schemes: vec![],
                mandatory: None,
                at_ms: 3.0,
                after_request_ms: None,
            });
            w.alerts.push(Alert {
                direction: Direction::Sent,
                level: AlertLevel::Fatal,
                description: crate::facts::AlertDescription::UnknownCa,
                at_ms: 4.0,
                source: crate::facts::AlertSource::Wire,
                encrypted: false,
            });
        })
        .build();
    let l = ladder(&flow);
    let cr = &l.steps[0];
    assert_eq!(
        (cr.leg, cr.from, cr.to),
        (LegSide::Wire, Lane::Server, Lane::Client)
    );
    assert_eq!(
        cr.label,
        "CertificateRequest (handshake, CA names encrypted)"
    );
    let alert = &l.steps[1];
    assert_eq!((alert.from, alert.to), (Lane::Client, Lane::Server));
    assert_eq!(l.steps[2].kind, StepKind::Note);
}

/// A recording written by mtlscope before events and alerts were typed draws the same ladders
/// as that binary did (`before-typed-facts.ladders.json`, cut from its `report --html`): the
/// senders, kinds and alert names read from the old JSON make the same steps.
#[test]
fn an_old_recording_draws_the_same_ladders() {
    const RECORDING: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/recordings/before-typed-facts.jsonl"
    ));
    const LADDERS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/recordings/before-typed-facts.ladders.json"
    ));
    let before: Vec<String> = serde_json::from_str(LADDERS).expect("ladders");
    let flows: Vec<crate::facts::Flow> = RECORDING
        .lines()
        .map(|l| serde_json::from_str(l).expect("a Flow"))
        .collect();
    assert_eq!((before.len(), flows.len()), (14, 14));
    for (i, (flow, old)) in flows.iter().zip(&before).enumerate() {
        assert_eq!(&svg(&ladder(flow)), old, "ladder of record {}", i + 1);
    }
}
