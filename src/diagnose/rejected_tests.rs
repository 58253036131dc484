//! Tests of the "Certificate sent and rejected" rules.

use super::super::test_support::*;
use crate::facts::{
    CertSummary, ChainVerdict, Direction, Flow, LegFailure, Phase, Severity, TlsVersion,
};
use crate::facts::{FailureKind, Stage};
use time::macros::datetime;

/// The upstream presented `chain`; the server answered `code` and mtlscope produced a 502.
fn upstream_alert(chain: Vec<CertSummary>, code: u8) -> Flow {
    success_builder()
        .upstream(|l| {
            l.chain = chain;
            l.handshake_done_ms = None;
            l.alerts = vec![alert(Direction::Received, code, 4.0)];
            l.failure = Some(LegFailure {
                stage: Stage::Handshake,
                kind: FailureKind::AlertReceived,
            });
        })
        .own_response(502)
        .build()
}

#[test]
fn unknown_ca_for_a_complete_chain_is_chain_untrusted() {
    let flow = upstream_alert(good_chain(), 48);
    assert_eq!(ids(&flow), ["chain-untrusted"]);
    let f = find(&flow, "chain-untrusted").unwrap();
    assert!(f.summary.contains("OpenSSL"), "{}", f.summary);
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("unknown_ca (48) sent by the server")));
}

#[test]
fn nginx_certificate_error_page_is_chain_untrusted() {
    let flow = success_builder()
        .response(400, "<title>400 The SSL certificate error</title>", &[])
        .build();
    let f = find(&flow, "chain-untrusted").unwrap();
    assert!(f.evidence.iter().any(|e| e.contains("internal 495")));
    assert!(find(&flow, "access-denied-after-auth").is_none());
}

#[test]
fn mtlscope_enforced_verdict_is_chain_untrusted_on_the_client_leg() {
    let flow = FlowBuilder::reverse()
        .connection()
        .client(|l| {
            l.cert_request = Some(cr(Phase::Handshake, &["Root"]));
            l.chain = good_chain();
            l.chain_verdict = Some(ChainVerdict {
                trusted: false,
                reason: Some("unknown issuer".into()),
                problem: None,
                enforced: true,
            });
            l.alerts = vec![alert(Direction::Sent, 48, 4.0)];
            l.handshake_done_ms = None;
        })
        .build();
    assert_eq!(ids(&flow), ["chain-untrusted"]);
    let f = find(&flow, "chain-untrusted").unwrap();
    assert!(f.summary.starts_with("mtlscope does not trust"));
    assert!(f.fix.contains("--client-ca"));
}

#[test]
fn chain_untrusted_not_on_success_nor_for_a_missing_certificate() {
    assert!(find(&success(), "chain-untrusted").is_none());
    // Not enforced: mtlscope let the chain through and the exchange succeeded.
    let flow = success_builder()
        .client(|l| {
            l.chain_verdict = Some(ChainVerdict {
                trusted: false,
                reason: Some("unknown issuer".into()),
                problem: None,
                enforced: false,
            })
        })
        .build();
    assert!(!has_error(&flow));
    // bad_certificate with no certificate sent means "missing", not "untrusted".
    let flow = upstream_alert(vec![], 42);
    assert!(find(&flow, "chain-untrusted").is_none());
    assert!(find(&flow, "no-client-cert").is_some());
}

#[test]
fn leaf_without_intermediate_rejected_is_chain_incomplete() {
    let flow = success_builder()
        .upstream(|l| {
            l.cert_request = Some(cr(Phase::Handshake, &["Root"]));
            l.chain = vec![leaf("client", "Inter")];
            l.issuer_lookup = Some(inter_lookup());
            l.alerts = vec![alert(Direction::Received, 48, 4.0)];
        })
        .own_response(502)
        .build();
    let got = ids(&flow);
    assert!(got.contains(&"chain-incomplete".to_string()), "{got:?}");
    assert!(!got.contains(&"chain-untrusted".to_string()));
    let f = find(&flow, "chain-incomplete").unwrap();
    assert!(f.summary.contains("\"CN=Inter\""));
    assert!(!f.inferred, "decided from the configured certificates");
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("mtlscope has from --upstream-ca ca.pem")));
}

#[test]
fn a_foreign_issuer_nobody_configured_is_not_chain_incomplete() {
    let flow = success_builder()
        .upstream(|l| {
            l.chain = vec![leaf("client", "Elsewhere")];
            l.issuer_lookup = Some(crate::facts::IssuerLookup {
                issuer: "CN=Elsewhere".into(),
                found: vec![],
            });
            l.alerts = vec![alert(Direction::Received, 48, 4.0)];
        })
        .own_response(502)
        .build();
    let got = ids(&flow);
    assert!(!got.contains(&"chain-incomplete".to_string()), "{got:?}");
    assert!(got.contains(&"chain-untrusted".to_string()), "{got:?}");
}

#[test]
fn chain_incomplete_not_for_full_chains_or_accepted_leaves() {
    assert!(find(&upstream_alert(good_chain(), 48), "chain-incomplete").is_none());
    let flow = success_builder()
        .upstream(|l| l.chain = vec![leaf("client", "Inter")])
        .build();
    assert!(find(&flow, "chain-incomplete").is_none());
    // The leaf's issuer is a CA the server named: the issuer is known there.
    let flow = success_builder()
        .upstream(|l| {
            l.cert_request = Some(cr(Phase::Handshake, &["Inter"]));
            l.chain = vec![leaf("client", "Inter")];
            l.alerts = vec![alert(Direction::Received, 48, 4.0)];
        })
        .build();
    assert!(find(&flow, "chain-incomplete").is_none());
    assert!(find(&flow, "chain-untrusted").is_some());
}

fn expired_chain() -> Vec<CertSummary> {
    let mut chain = good_chain();
    chain[0].not_after = datetime!(2026-01-01 0:00 UTC);
    chain
}

#[test]
fn expired_leaf_rejected_is_cert_expired() {
    let flow = upstream_alert(expired_chain(), 45);
    assert_eq!(ids(&flow), ["cert-expired"]);
    let f = find(&flow, "cert-expired").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("14 days before the handshake")));
    // OpenSSL's generic unknown_ca is explained by the expiry, not by trust.
    let flow = upstream_alert(expired_chain(), 42);
    assert_eq!(ids(&flow), ["cert-expired"]);
}

#[test]
fn validity_is_judged_at_the_recorded_handshake_time() {
    // The leg's handshake_at is inside validity although started_at would not be.
    let flow = success_builder()
        .upstream(|l| {
            l.chain = expired_chain();
            l.handshake_at = Some(datetime!(2025-12-01 0:00 UTC));
        })
        .with(|f| f.started_at = datetime!(2026-06-01 0:00 UTC))
        .build();
    assert!(find(&flow, "cert-expired").is_none());
}

#[test]
fn certificate_expired_for_a_valid_certificate_points_at_the_crl() {
    let flow = upstream_alert(good_chain(), 45);
    let f = find(&flow, "cert-expired").unwrap();
    assert!(f.summary.contains("CRL"), "{}", f.summary);
    assert!(f.fix.starts_with("Server"));
}

#[test]
fn expired_but_accepted_is_only_a_warning() {
    let flow = success_builder()
        .upstream(|l| l.chain = expired_chain())
        .build();
    assert_eq!(
        find(&flow, "cert-expired").unwrap().severity,
        Severity::Warning
    );
    assert!(!has_error(&flow));
    assert!(find(&success(), "cert-expired").is_none());
}

#[test]
fn not_yet_valid_rejected_is_cert_not_yet_valid() {
    let mut chain = good_chain();
    chain[0].not_before = datetime!(2026-02-01 0:00 UTC);
    let flow = upstream_alert(chain.clone(), 42);
    assert_eq!(ids(&flow), ["cert-not-yet-valid"]);
    assert_eq!(
        find(&flow, "cert-not-yet-valid").unwrap().severity,
        Severity::Error
    );
    let ok = success_builder().upstream(|l| l.chain = chain).build();
    assert_eq!(
        find(&ok, "cert-not-yet-valid").unwrap().severity,
        Severity::Warning
    );
    assert!(find(&success(), "cert-not-yet-valid").is_none());
}

#[test]
fn revoked_alert_and_iis_403_13() {
    let flow = upstream_alert(good_chain(), 44);
    assert_eq!(ids(&flow), ["cert-revoked"]);
    let flow = success_builder()
        .response(403, "HTTP Error 403.13 - Forbidden", &[])
        .build();
    assert!(find(&flow, "cert-revoked").is_some());
    assert!(find(&success(), "cert-revoked").is_none());
}

fn server_auth_leaf() -> CertSummary {
    CertSummary {
        eku: vec![crate::facts::ExtKeyUsage::ServerAuth],
        ..leaf("client", "Inter")
    }
}

#[test]
fn server_only_certificate_rejected_is_wrong_purpose() {
    let flow = upstream_alert(vec![server_auth_leaf(), ca("Inter", "Root")], 43);
    assert_eq!(ids(&flow), ["wrong-purpose"]);
    let f = find(&flow, "wrong-purpose").unwrap();
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("lacks clientAuth (has: serverAuth)")));
    assert!(f.fix.contains("1.3.6.1.5.5.7.3.2"));
}

#[test]
fn withheld_identity_with_wrong_purpose() {
    let flow = success_builder()
        .upstream(|l| {
            l.chain = vec![];
            l.identity = Some(identity(
                None,
                &[("server.pem", vec![server_auth_leaf()])],
                "no usable identity",
            ));
            l.alerts = vec![alert(Direction::Received, 116, 9.0)];
        })
        .own_response(502)
        .build();
    let f = find(&flow, "wrong-purpose").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.evidence[0].contains("`server.pem`"));
}

#[test]
fn wrong_purpose_not_for_client_auth_certificates() {
    assert!(find(&success(), "wrong-purpose").is_none());
    // unsupported_certificate without a purpose problem stays generic.
    let flow = upstream_alert(good_chain(), 43);
    assert_eq!(ids(&flow), ["handshake-rejected"]);
}

#[test]
fn decrypt_error_is_key_unusable() {
    let flow = upstream_alert(good_chain(), 51);
    assert_eq!(ids(&flow), ["key-unusable"]);
    let f = find(&flow, "key-unusable").unwrap();
    assert!(f.summary.contains("likely"));
    assert!(f.fix.starts_with("mtlscope's upstream identity"));
    assert!(find(&success(), "key-unusable").is_none());
}

#[test]
fn other_alerts_are_handshake_rejected() {
    let flow = upstream_alert(good_chain(), 70);
    assert_eq!(ids(&flow), ["handshake-rejected"]);
    let f = find(&flow, "handshake-rejected").unwrap();
    assert!(f.summary.contains("protocol_version (70)"));
    assert!(f.evidence[0].contains("sent by the server on the upstream leg at 4 ms"));
}

#[test]
fn client_refusing_mtlscope_certificate_is_handshake_rejected() {
    let flow = FlowBuilder::reverse()
        .connection()
        .client(|l| {
            l.tls_version = Some(TlsVersion::Tls12);
            l.handshake_done_ms = None;
            l.alerts = vec![alert(Direction::Received, 48, 2.0)];
        })
        .build();
    assert_eq!(ids(&flow), ["handshake-rejected"]);
    let f = find(&flow, "handshake-rejected").unwrap();
    assert!(f
        .summary
        .contains("does not accept mtlscope's own server certificate"));
    assert!(f.fix.contains("mtlscope ca"));
}

#[test]
fn handshake_rejected_not_on_success_nor_for_close_notify() {
    assert!(find(&success(), "handshake-rejected").is_none());
    let flow = success_builder()
        .upstream(|l| {
            let mut a = alert(Direction::Received, 0, 30.0);
            a.level = crate::facts::AlertLevel::Warning;
            l.alerts = vec![a];
        })
        .build();
    assert!(ids(&flow).is_empty());
}

#[test]
fn wire_tls12_rejection_is_diagnosed_like_a_leg() {
    let flow = FlowBuilder::observe()
        .wire(|w| {
            w.cert_request = Some(cr(Phase::Handshake, &["Root"]));
            w.client_chain = Some(vec![leaf("client", "Inter")]);
            w.alerts = vec![alert(Direction::Received, 48, 4.0)];
        })
        .build();
    // The wire shows no configuration to complete the chain from: untrusted, not "incomplete".
    assert!(find(&flow, "chain-incomplete").is_none());
    let f = find(&flow, "chain-untrusted").unwrap();
    assert!(f.summary.contains("the client presented"), "{}", f.summary);
    assert!(f.fix.starts_with("Client"));
}

fn revoked(subject: &str, serial: &str) -> crate::facts::RevocationCheck {
    crate::facts::RevocationCheck {
        subject: subject.into(),
        serial: serial.into(),
        status: crate::facts::RevocationStatus::Revoked,
        source: crate::facts::RevocationSource::CrlUrl,
        location: "http://crl.test/inter.crl".into(),
        this_update: Some(time::macros::datetime!(2026-01-15 09:00 UTC)),
        next_update: Some(time::macros::datetime!(2026-01-22 09:00 UTC)),
        revoked_at: Some(time::macros::datetime!(2026-01-10 12:00 UTC)),
        reason: Some("keyCompromise".into()),
        error: None,
    }
}

/// nginx with `ssl_crl`: a revoked identity gets the generic 400; mtlscope's start-up check
/// of the identity names the cause.
#[test]
fn a_revoked_identity_behind_a_generic_error_is_cert_revoked_not_chain_untrusted() {
    let flow = success_builder()
        .upstream(|l| {
            let id = l.identity.as_mut().unwrap();
            id.candidates[0].revocation = vec![revoked("CN=client", "01")];
            l.issuer_lookup = Some(crate::facts::IssuerLookup {
                issuer: "CN=Root".into(),
                found: vec![crate::facts::KnownIssuer {
                    subject: "CN=Root".into(),
                    sha256: "r".into(),
                    self_issued: true,
                    source: "--upstream-ca root.pem".into(),
                }],
            });
        })
        .response(
            400,
            "<html><head><title>400 The SSL certificate error</title></head></html>",
            &[("server", "nginx")],
        )
        .build();
    let got = ids(&flow);
    assert_eq!(
        got.first().map(String::as_str),
        Some("cert-revoked"),
        "{got:?}"
    );
    assert!(!got.contains(&"chain-untrusted".to_string()), "{got:?}");
    let f = find(&flow, "cert-revoked").unwrap();
    assert_eq!(f.severity, Severity::Error);
    let all = f.evidence.join("\n");
    for want in [
        "http://crl.test/inter.crl",
        "keyCompromise",
        "2026-01-10T12:00:00Z",
        "thisUpdate 2026-01-15T09:00:00Z",
        "The SSL certificate error",
    ] {
        assert!(all.contains(want), "{want} missing from {all}");
    }
}

#[test]
fn a_revoked_client_certificate_accepted_is_a_warning_and_a_chain_to_a_named_ca_is_not_untrusted() {
    let flow = success_builder()
        .client(|l| l.revocation = vec![revoked("CN=client", "01")])
        .build();
    let f = find(&flow, "cert-revoked").expect("cert-revoked");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("mtlscope's own check"), "{}", f.summary);
    // A revocation answer about another certificate says nothing about this chain.
    let flow = success_builder()
        .client(|l| l.revocation = vec![revoked("CN=someone else", "99")])
        .build();
    assert!(find(&flow, "cert-revoked").is_none());
    // Refused with a generic error although the chain links to the root the server named
    // and mtlscope holds: not "untrusted" (revocation, depth or policy instead).
    let flow = success_builder()
        .upstream(|l| {
            l.issuer_lookup = Some(crate::facts::IssuerLookup {
                issuer: "CN=Root".into(),
                found: vec![crate::facts::KnownIssuer {
                    subject: "CN=Root".into(),
                    sha256: "r".into(),
                    self_issued: true,
                    source: "--upstream-ca root.pem".into(),
                }],
            });
        })
        .response(400, "The SSL certificate error", &[("server", "nginx")])
        .build();
    assert!(find(&flow, "chain-untrusted").is_none(), "{:?}", ids(&flow));
}
