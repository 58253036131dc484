//! The probe's summaries on hand-built attempts.

use super::*;
use crate::facts::{
    FailureKind, Finding, FindingId, Initiator, Leg, LegFailure, Mode, Phase, RecordKind,
    Renegotiation, Request, Response, Severity,
};

/// An attempt on TLS 1.2 for `path` with `leg`, an answer `status`, and error findings `ids`.
pub(crate) fn attempt(path: &str, leg: Leg, status: Option<u16>, ids: &[&str]) -> Attempt {
    let mut flow = Flow::new(Mode::Probe, 1, time::OffsetDateTime::UNIX_EPOCH);
    flow.kind = RecordKind::Exchange;
    flow.request = Some(Request {
        method: "GET".into(),
        uri: path.into(),
        ..Request::default()
    });
    flow.response = status.map(|s| Response {
        status: s,
        ..Response::default()
    });
    flow.upstream_leg = Some(std::sync::Arc::new(leg));
    flow.findings = ids
        .iter()
        .map(|id| Finding {
            id: serde_json::from_value(serde_json::json!(id)).unwrap_or(FindingId::Other),
            inferred: false,
            severity: Severity::Error,
            summary: format!("{id} happened. More words."),
            evidence: vec![],
            fix: String::new(),
        })
        .collect();
    Attempt {
        offered: TlsVersion::Tls12,
        identity: None,
        path: path.into(),
        flow,
    }
}

fn cr(phase: Phase) -> CertRequest {
    CertRequest {
        phase,
        ca_names: Some(vec!["CN=Root".into()]),
        ca_names_der: vec![],
        signature_schemes: vec![],
        mandatory: None,
        at_ms: 1.0,
        after_request_ms: None,
    }
}

fn summary(attempts: Vec<Attempt>) -> ProbeReport {
    ProbeReport {
        url: "https://x".into(),
        target: "x:443".into(),
        attempts,
        skipped: vec![],
        warnings: vec![],
    }
}

#[test]
fn asked_prefers_late_requests_then_the_handshake_then_an_answer() {
    let tls12 = |cr: Option<CertRequest>| Leg {
        tls_version: Some(TlsVersion::Tls12),
        cert_request: cr,
        ..Leg::default()
    };
    let reneg = Leg {
        renegotiations: vec![Renegotiation {
            at_ms: 2.0,
            initiated_by: Initiator::Server,
            after_app_data_ms: None,
            outcome: None,
            refused_by_mtlscope: false,
        }],
        ..tls12(None)
    };
    let r = summary(vec![
        attempt("/", tls12(None), Some(200), &[]),
        attempt("/hs", tls12(Some(cr(Phase::Handshake))), Some(400), &[]),
        attempt("/late", reneg, None, &["renegotiation-requested"]),
        attempt("/pha", tls12(None), Some(403), &["post-handshake-auth"]),
        attempt("/gone", Leg::default(), None, &[]),
    ]);
    let got: Vec<_> = r.paths().iter().map(|p| (p.asked, p.inferred)).collect();
    assert_eq!(
        got,
        [
            (Asked::No, false),
            (Asked::Handshake, false),
            (Asked::Renegotiation, false),
            (Asked::PostHandshake, true),
            (Asked::Unknown, false),
        ]
    );
    let v = r.versions();
    assert_eq!(v.len(), 1);
    assert!(v[0].negotiated);
    assert_eq!(v[0].cert_request, Some(cr(Phase::Handshake)));
}

#[test]
fn advice_to_retry_with_tls12_is_replaced_when_the_server_refused_it() {
    let inferred = format!(
        "inferred: to confirm, {}, or …",
        crate::diagnose::RETRY_TLS12
    );
    let with_advice = |offered: TlsVersion, negotiated: Option<TlsVersion>| {
        let mut a = attempt(
            "/secure",
            Leg {
                tls_version: negotiated,
                ..Leg::default()
            },
            negotiated.map(|_| 403),
            &["post-handshake-auth"],
        );
        a.offered = offered;
        a.flow.findings[0].evidence = vec![inferred.clone()];
        a
    };
    // TLS 1.2 refused in the probe's own attempts: the advice changes.
    let mut r = summary(vec![
        with_advice(TlsVersion::Tls13, Some(TlsVersion::Tls13)),
        with_advice(TlsVersion::Tls12, None),
    ]);
    fit_advice(&mut r);
    let e = &r.attempts[0].flow.findings[0].evidence[0];
    assert!(!e.contains("retry with TLS 1.2"), "{e}");
    assert!(e.contains("--upstream-engine auto"), "{e}");
    // TLS 1.2 accepted: the advice stands.
    let mut r = summary(vec![
        with_advice(TlsVersion::Tls13, Some(TlsVersion::Tls13)),
        with_advice(TlsVersion::Tls12, Some(TlsVersion::Tls12)),
    ]);
    fit_advice(&mut r);
    assert!(r.attempts[0].flow.findings[0].evidence[0].contains("retry with TLS 1.2"));
}

#[test]
fn a_refused_connection_is_unreachable_and_not_negotiated() {
    let mut b = attempt("/", Leg::default(), None, &["upstream-unreachable"]);
    b.flow.request = None;
    b.flow.upstream_leg = Some(std::sync::Arc::new(Leg {
        error: Some("refused".into()),
        failure: Some(LegFailure {
            stage: Stage::Connect,
            kind: FailureKind::ConnectionRefused,
        }),
        ..Leg::default()
    }));
    let r = summary(vec![b]);
    assert!(!r.reachable());
    assert!(!r.versions()[0].negotiated);
    assert_eq!(r.versions()[0].error.as_deref(), Some("refused"));
    assert!(
        r.paths().is_empty(),
        "no path summary for a version never negotiated"
    );
}

#[test]
fn the_throwaway_identity_refused_is_what_a_verifying_server_does() {
    let mut a = attempt("/", Leg::default(), Some(403), &["client-cert-rejected"]);
    a.identity = Some(super::throwaway::LABEL.to_string());
    assert_eq!(
        a.throwaway_refused(),
        Some(super::ThrowawayRefused { status: Some(403) })
    );
    // Accepted, or refused as unverified, or another identity: not that.
    let mut ok = attempt("/", Leg::default(), Some(200), &[]);
    ok.identity = a.identity.clone();
    assert_eq!(ok.throwaway_refused(), None);
    let mut unverified = attempt(
        "/",
        Leg::default(),
        Some(403),
        &["client-cert-not-verified"],
    );
    unverified.identity = a.identity.clone();
    assert_eq!(unverified.throwaway_refused(), None);
    let mut named = a.clone();
    named.identity = Some("alice".into());
    assert_eq!(named.throwaway_refused(), None);
}
