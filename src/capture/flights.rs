//! The TLS 1.3 handshake messages that mtlscope's own TLS engine wrote or read inside encrypted
//! records. The wire tap sees every encrypted record as `application_data`; mtlscope, being the
//! endpoint, knows which messages they carried. They are added to the leg's events at the time
//! their records crossed the wire (or the TLS hook handled them), so the ladder shows every
//! handshake message of the leg in true order:
//!
//! - client leg (mtlscope is the TLS server): its first flight (EncryptedExtensions, the
//!   CertificateRequest, its Certificate, CertificateVerify, Finished) went out with the
//!   ServerHello; the client's answer is its Certificate (or an empty one), CertificateVerify
//!   (seen by the verifier) and Finished (the handshake completed);
//! - upstream leg (mtlscope is the TLS client): the server's EncryptedExtensions came with its
//!   ServerHello and its Finished after its CertificateVerify; mtlscope's own Certificate and
//!   CertificateVerify are recorded by the identity's signer, its Finished when the handshake
//!   completed.
//!
//! Nothing is added for a step that did not happen: a leg that ended before a message has no
//! event for it.

use crate::facts::{Event, EventKind, FailureKind, Leg, Peer, TlsVersion};
use crate::wire::TapFacts;

/// Add the encrypted TLS 1.3 handshake messages mtlscope handled to `leg`'s events.
/// `tls_server`: mtlscope is the TLS server of this leg (the client leg).
pub fn add(leg: &mut Leg, tap: &TapFacts, tls_server: bool) {
    if tap.tls_version != Some(TlsVersion::Tls13) {
        return;
    }
    let Some(server_hello) = tap_time(tap, &EventKind::ServerHello, Some(Peer::Server)) else {
        return;
    };
    let mut added = Vec::new();
    let mut push = |at_ms: f64, kind: EventKind, peer: Peer, rest: &str| {
        added.push(Event::from_peer(at_ms, kind, peer, Some(rest)))
    };
    let asked = leg
        .cert_request
        .as_ref()
        .is_some_and(|cr| cr.phase == crate::facts::Phase::Handshake);
    let done = leg.handshake_done_ms;
    if tls_server {
        const OWN: &str = "encrypted: written by mtlscope";
        push(
            server_hello,
            EventKind::EncryptedExtensions,
            Peer::Server,
            OWN,
        );
        if asked {
            // The request went on the wire in this flight, not when rustls composed it.
            if let Some(cr) = leg.cert_request.as_mut() {
                cr.at_ms = cr.at_ms.max(server_hello);
            }
            push(
                server_hello,
                EventKind::CertificateRequest,
                Peer::Server,
                OWN,
            );
        }
        push(server_hello, EventKind::OwnCertificate, Peer::Server, OWN);
        push(
            server_hello,
            EventKind::CertificateVerify,
            Peer::Server,
            OWN,
        );
        push(server_hello, EventKind::Finished, Peer::Server, OWN);
        let flight = tap_time(tap, &EventKind::ClientEncryptedFlight, None);
        let answered_empty = asked
            && leg.chain.is_empty()
            && !has(leg, &EventKind::ClientCertificate)
            && (done.is_some()
                || leg
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.kind == FailureKind::NoCertificatesPresented));
        if answered_empty {
            let at = flight.or(done).unwrap_or(server_hello);
            let empty = "empty: no certificate".to_string();
            added.push(Event::new(at, EventKind::ClientCertificate, Some(empty)));
        }
        if let Some(at) = done {
            let read = "encrypted: read by mtlscope";
            added.push(Event::from_peer(
                at,
                EventKind::Finished,
                Peer::Client,
                Some(read),
            ));
        }
    } else {
        const READ: &str = "encrypted: read by mtlscope";
        push(
            server_hello,
            EventKind::EncryptedExtensions,
            Peer::Server,
            READ,
        );
        if let Some(checked) = own_time(leg, &EventKind::ServerCertificateVerify) {
            push(checked, EventKind::Finished, Peer::Server, READ);
        }
        if let Some(at) = done {
            let written = "encrypted: written by mtlscope";
            push(at, EventKind::Finished, Peer::Client, written);
        }
    }
    leg.events.extend(added);
    leg.events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
}

/// When the tap saw `kind` (sent by `from`, when given).
fn tap_time(tap: &TapFacts, kind: &EventKind, from: Option<Peer>) -> Option<f64> {
    tap.events
        .iter()
        .find(|e| &e.kind == kind && from.is_none_or(|p| e.sender == Some(p)))
        .map(|e| e.at_ms)
}

/// When the leg's own hooks recorded `kind`.
fn own_time(leg: &Leg, kind: &EventKind) -> Option<f64> {
    leg.events.iter().find(|e| &e.kind == kind).map(|e| e.at_ms)
}

fn has(leg: &Leg, kind: &EventKind) -> bool {
    leg.events.iter().any(|e| &e.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CertRequest, Phase};

    fn ev(at_ms: f64, name: &str, peer: Peer, rest: Option<&str>) -> Event {
        Event::from_peer(at_ms, EventKind::from_name(name), peer, rest)
    }

    fn tap13() -> TapFacts {
        TapFacts {
            tls_version: Some(TlsVersion::Tls13),
            events: vec![
                ev(1.0, "client_hello", Peer::Client, None),
                ev(2.5, "server_hello", Peer::Server, None),
                ev(
                    3.0,
                    "client_encrypted_flight",
                    Peer::Client,
                    Some("encrypted"),
                ),
            ],
            ..TapFacts::default()
        }
    }

    fn asked_at(at_ms: f64) -> CertRequest {
        CertRequest {
            phase: Phase::Handshake,
            ca_names: Some(vec![]),
            ca_names_der: vec![],
            signature_schemes: vec![],
            mandatory: Some(false),
            at_ms,
            after_request_ms: None,
        }
    }

    fn names(leg: &Leg) -> Vec<(String, String)> {
        leg.events
            .iter()
            .map(|e| (e.kind.to_string(), e.detail.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_client_leg_that_asked_shows_its_flight_after_the_server_hello_and_an_empty_answer() {
        let mut leg = Leg {
            cert_request: Some(asked_at(1.9)),
            handshake_done_ms: Some(3.2),
            events: tap13().events,
            ..Leg::default()
        };
        add(&mut leg, &tap13(), true);
        assert_eq!(leg.cert_request.as_ref().unwrap().at_ms, 2.5);
        let order: Vec<String> = names(&leg).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            order,
            [
                "client_hello",
                "server_hello",
                "encrypted_extensions",
                "certificate_request",
                "own_certificate",
                "certificate_verify",
                "finished",
                "client_encrypted_flight",
                "client_certificate",
                "finished"
            ]
        );
        assert!(
            names(&leg).contains(&("client_certificate".into(), "empty: no certificate".into()))
        );
    }

    #[test]
    fn a_client_that_answered_with_an_alert_sent_no_certificate_and_no_finished() {
        let mut leg = Leg {
            cert_request: Some(asked_at(1.9)),
            handshake_done_ms: None,
            ..Leg::default()
        };
        add(&mut leg, &tap13(), true);
        assert!(!has(&leg, &EventKind::ClientCertificate));
        assert!(!leg
            .events
            .iter()
            .any(|e| e.kind == EventKind::Finished && e.sender == Some(Peer::Client)));
    }

    #[test]
    fn tls12_is_left_to_the_wire() {
        let mut tap = tap13();
        tap.tls_version = Some(TlsVersion::Tls12);
        let mut leg = Leg::default();
        add(&mut leg, &tap, true);
        assert!(leg.events.is_empty());
    }
}
