//! Folding what the wire tap saw below TLS into a leg's facts: the real ClientHello offer,
//! plaintext alerts, TLS 1.2 renegotiations and late certificate requests with their timing.
//!
//! The TLS library reports what it decided; the tap reports what crossed the wire. Each fact is
//! taken from the side that knows it: the library for decrypted alerts and errors, the tap for
//! record timing, plaintext alerts and the peer's ClientHello.

use crate::facts::{
    Alert, AlertDescription, AlertLevel, CertRequest, Direction, EventKind, Initiator, Leg, Phase,
};
use crate::facts::{AlertSource, FailureKind, RenegotiationOutcome};
use crate::wire::TapFacts;

/// Leg-specific knowledge the merge needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MergeContext {
    /// The upstream engine refuses renegotiation (rustls does, always, with no_renegotiation).
    pub refuses_renegotiation: bool,
    /// When the latest HTTP request went out on this leg, ms (for the delay of a late request).
    pub last_request_ms: Option<f64>,
    /// mtlscope is the TLS server of this leg (the client leg).
    pub tls_server: bool,
}

/// Merge `tap` into `leg`.
pub fn merge(leg: &mut Leg, tap: &TapFacts, ctx: MergeContext) {
    if let Some(hello) = &tap.client_hello {
        leg.client_hello = Some(hello.clone());
    }
    if tap.client_random.is_some() {
        leg.client_random = tap.client_random.clone();
    }
    // An encrypted alert's description is the TLS library's to report (it decrypted it).
    for alert in tap.alerts.iter().filter(|a| !a.encrypted) {
        let known = leg
            .alerts
            .iter()
            .any(|a| a.direction == alert.direction && a.description == alert.description);
        if !known {
            leg.alerts.push(alert.clone());
        }
    }

    for reneg in &tap.renegotiations {
        let mut reneg = reneg.clone();
        if ctx.refuses_renegotiation
            && reneg.initiated_by == Initiator::Server
            && reneg.outcome != Some(RenegotiationOutcome::Completed)
        {
            // rustls does not renegotiate: it answered no_renegotiation.
            reneg.outcome = Some(RenegotiationOutcome::RefusedByMtlscope);
            reneg.refused_by_mtlscope = true;
            let refusal = AlertDescription::NoRenegotiation;
            if !leg.alerts.iter().any(|a| a.description == refusal) {
                leg.alerts.push(Alert {
                    direction: Direction::Sent,
                    level: AlertLevel::Warning,
                    description: refusal,
                    at_ms: reneg.at_ms,
                    source: AlertSource::Inferred,
                    encrypted: false,
                });
            }
        }
        if leg.cert_request.is_none() && reneg.initiated_by == Initiator::Server {
            // A server that renegotiates after the request is asking for the certificate late
            // (IIS without client-certificate negotiation, Apache per-location SSLVerifyClient).
            let ca_names = tap
                .cert_request
                .as_ref()
                .filter(|cr| cr.phase == Phase::Renegotiation)
                .and_then(|cr| cr.ca_names.clone());
            leg.cert_request = Some(late_request(
                Phase::Renegotiation,
                ca_names,
                reneg.at_ms,
                ctx,
            ));
            if ctx.refuses_renegotiation {
                withheld_because(leg, "the server asked only later, by renegotiation, which mtlscope's TLS engine (rustls) cannot complete");
            }
        }
        if !leg.renegotiations.iter().any(|r| r.at_ms == reneg.at_ms) {
            leg.renegotiations.push(reneg);
        }
    }

    // TLS 1.3: rustls fails on a post-handshake CertificateRequest it never offered to accept.
    if leg.cert_request.is_none() {
        if let Some(f) = &leg.failure {
            if f.kind == FailureKind::PostHandshakeCertificateRequest {
                let at = leg
                    .events
                    .iter()
                    .rev()
                    .find(|e| e.kind == EventKind::Error)
                    .map_or(0.0, |e| e.at_ms);
                leg.cert_request = Some(late_request(Phase::PostHandshake, None, at, ctx));
                withheld_because(leg, "the server asked only after the handshake (TLS 1.3 post-handshake auth), which mtlscope's TLS engine (rustls) cannot answer");
            }
        }
    }

    let own: Vec<EventKind> = leg.events.iter().map(|e| e.kind.clone()).collect();
    leg.events.extend(
        tap.events
            .iter()
            // The wire's CertificateRequest is kept beside the hook's: it was on the wire
            // first (TLS 1.2, before ServerHelloDone), where the ladder draws it.
            .filter(|e| !own.contains(&e.kind) || e.kind == EventKind::CertificateRequest)
            .cloned(),
    );
    leg.events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    super::flights::add(leg, tap, ctx.tls_server);
}

/// Say why a configured identity was never presented when the request came too late for it.
fn withheld_because(leg: &mut Leg, why: &str) {
    if let Some(choice) = &mut leg.identity {
        if choice.chosen.is_none() && !choice.candidates.is_empty() {
            choice.reason = why.to_string();
        }
    }
}

fn late_request(
    phase: Phase,
    ca_names: Option<Vec<String>>,
    at_ms: f64,
    ctx: MergeContext,
) -> CertRequest {
    CertRequest {
        phase,
        ca_names,
        ca_names_der: Vec::new(),
        signature_schemes: Vec::new(),
        mandatory: None,
        at_ms,
        after_request_ms: ctx
            .last_request_ms
            .filter(|r| *r <= at_ms)
            .map(|r| ((at_ms - r) * 1000.0).round() / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{LegFailure, Renegotiation};

    fn reneg(at_ms: f64) -> Renegotiation {
        Renegotiation {
            at_ms,
            initiated_by: Initiator::Server,
            after_app_data_ms: Some(0.2),
            outcome: None,
            refused_by_mtlscope: false,
        }
    }

    #[test]
    fn a_refused_server_renegotiation_becomes_a_late_request_with_its_delay() {
        let mut leg = Leg::default();
        let tap = TapFacts {
            renegotiations: vec![reneg(12.5)],
            ..TapFacts::default()
        };
        merge(
            &mut leg,
            &tap,
            MergeContext {
                refuses_renegotiation: true,
                last_request_ms: Some(12.0),
                tls_server: false,
            },
        );
        let cr = leg.cert_request.as_ref().unwrap();
        assert_eq!(cr.phase, Phase::Renegotiation);
        assert_eq!(cr.ca_names, None);
        assert_eq!(cr.after_request_ms, Some(0.5));
        assert_eq!(
            leg.renegotiations[0].outcome,
            Some(RenegotiationOutcome::RefusedByMtlscope)
        );
        assert!(leg.renegotiations[0].refused_by_mtlscope);
        assert_eq!(leg.alerts[0].description, AlertDescription::NoRenegotiation);
        // Merging the same facts again (a later snapshot) adds nothing.
        merge(
            &mut leg,
            &tap,
            MergeContext {
                refuses_renegotiation: true,
                last_request_ms: Some(12.0),
                tls_server: false,
            },
        );
        assert_eq!((leg.renegotiations.len(), leg.alerts.len()), (1, 1));
    }

    #[test]
    fn a_handshake_request_is_kept_when_the_server_also_renegotiates() {
        let mut leg = Leg {
            cert_request: Some(late_request(
                Phase::Handshake,
                Some(vec![]),
                1.0,
                MergeContext::default(),
            )),
            ..Leg::default()
        };
        let tap = TapFacts {
            renegotiations: vec![reneg(9.0)],
            ..TapFacts::default()
        };
        merge(&mut leg, &tap, MergeContext::default());
        assert_eq!(leg.cert_request.unwrap().phase, Phase::Handshake);
        assert_eq!(leg.renegotiations.len(), 1);
    }

    #[test]
    fn a_post_handshake_request_is_read_from_the_failure() {
        let mut leg = Leg {
            failure: Some(LegFailure {
                stage: crate::facts::Stage::AfterHandshake,
                kind: FailureKind::PostHandshakeCertificateRequest,
            }),
            ..Leg::default()
        };
        leg.events
            .push(crate::facts::Event::new(7.0, EventKind::Error, None));
        merge(
            &mut leg,
            &TapFacts::default(),
            MergeContext {
                refuses_renegotiation: true,
                last_request_ms: Some(6.5),
                tls_server: false,
            },
        );
        let cr = leg.cert_request.unwrap();
        assert_eq!(
            (cr.phase, cr.after_request_ms),
            (Phase::PostHandshake, Some(0.5))
        );
    }

    #[test]
    fn encrypted_alerts_are_left_to_the_tls_library() {
        let mut leg = Leg::default();
        let enc = Alert {
            direction: Direction::Received,
            level: AlertLevel::Unknown,
            description: AlertDescription::Unknown(crate::facts::ENCRYPTED_ALERT_CODE),
            at_ms: 3.0,
            source: AlertSource::Wire,
            encrypted: true,
        };
        merge(
            &mut leg,
            &TapFacts {
                alerts: vec![
                    enc.clone(),
                    // A presumed close_notify (encrypted, after application data).
                    Alert {
                        description: AlertDescription::CloseNotify,
                        ..enc
                    },
                ],
                ..TapFacts::default()
            },
            MergeContext::default(),
        );
        assert!(leg.alerts.is_empty());
    }
}
