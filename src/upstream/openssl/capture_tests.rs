//! The capture fed hand-made messages, as OpenSSL's message callback would report them.

use super::*;
use crate::capture::ConnClock;

/// `CN=Root` as DER.
const ROOT_DN: [u8; 17] = [
    0x30, 0x0f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x04, b'R', b'o', b'o',
    b't',
];

fn message(ty: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut m = vec![ty, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    m.extend_from_slice(body);
    m
}

fn server_hello(tls13: bool) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([7u8; 32]);
    b.extend([0, 0x13, 0x01, 0]);
    if tls13 {
        b.extend([0, 6, 0, 43, 0, 2, 3, 4]);
    }
    message(2, &b)
}

fn cert_request(tls13: bool) -> Vec<u8> {
    let mut names = vec![0, ROOT_DN.len() as u8];
    names.extend(ROOT_DN);
    let mut list = vec![0, names.len() as u8];
    list.extend(&names);
    let body = if tls13 {
        // context "", extensions: certificate_authorities.
        let mut ext = vec![0, 47, 0, list.len() as u8];
        ext.extend(&list);
        let mut b = vec![0, 0, ext.len() as u8];
        b.extend(ext);
        b
    } else {
        // types [1], sigalgs [0x0403], CA names.
        let mut b = vec![1, 1, 0, 2, 4, 3];
        b.extend(&list);
        b
    };
    message(13, &body)
}

fn capture() -> (Capture, LegRecorder) {
    let rec = LegRecorder::new(ConnClock::start());
    (
        Capture::new(rec.clone(), IdentityPolicy::None, Vec::new()),
        rec,
    )
}

fn handshake(c: &Capture, sent: bool, m: &[u8]) {
    c.message(sent, CONTENT_HANDSHAKE, m);
}

#[test]
fn a_tls13_request_after_the_handshake_is_post_handshake_and_completed_by_our_finished() {
    let (c, rec) = capture();
    handshake(&c, false, &server_hello(true));
    c.established();
    rec.note_request();
    handshake(&c, false, &cert_request(true));
    let leg = rec.snapshot();
    let cr = leg.cert_request.as_ref().expect("recorded");
    assert_eq!(cr.phase, Phase::PostHandshake);
    assert_eq!(cr.ca_names, Some(vec!["CN=Root".to_string()]));
    assert!(cr.after_request_ms.is_some());
    assert_eq!(leg.completed_late_request, None);
    handshake(&c, true, &message(FINISHED, &[0; 32]));
    assert_eq!(
        rec.snapshot().completed_late_request,
        Some(Phase::PostHandshake)
    );
}

#[test]
fn tls12_requests_in_the_handshake_and_in_a_renegotiation_are_both_kept() {
    let (c, rec) = capture();
    handshake(&c, false, &server_hello(false));
    handshake(&c, false, &cert_request(false));
    handshake(&c, true, &message(FINISHED, &[0; 12]));
    handshake(&c, false, &message(FINISHED, &[0; 12]));
    c.established();
    handshake(&c, false, &cert_request(false));
    // Our Finished is not enough in TLS 1.2: the server's says it accepted.
    handshake(&c, true, &message(FINISHED, &[0; 12]));
    assert_eq!(rec.snapshot().completed_late_request, None);
    handshake(&c, false, &message(FINISHED, &[0; 12]));
    assert_eq!(
        rec.snapshot().completed_late_request,
        Some(Phase::Renegotiation)
    );
    let leg = rec.snapshot();
    assert_eq!(leg.cert_request.as_ref().unwrap().phase, Phase::Handshake);
    assert_eq!(leg.cert_request.as_ref().unwrap().after_request_ms, None);
    assert_eq!(leg.later_cert_requests.len(), 1);
    assert_eq!(leg.later_cert_requests[0].phase, Phase::Renegotiation);
}

#[test]
fn a_fatal_alert_ends_a_late_request_uncompleted_and_names_the_error() {
    let (c, rec) = capture();
    handshake(&c, false, &server_hello(true));
    c.established();
    handshake(&c, false, &cert_request(true));
    c.message(true, CONTENT_ALERT, &[2, 116]);
    c.message(false, CONTENT_ALERT, &[2, 48]);
    handshake(&c, true, &message(FINISHED, &[0; 32]));
    let leg = rec.snapshot();
    assert_eq!(leg.completed_late_request, None);
    let names: Vec<&str> = leg.alerts.iter().map(|a| a.description.as_str()).collect();
    assert_eq!(names, ["certificate_required", "unknown_ca"]);
    assert_eq!(c.fatal_alerts(), (Some(48), Some(116)));
    // close_notify is not an event worth a record; malformed alerts are ignored.
    c.message(false, CONTENT_ALERT, &[1, 0]);
    c.message(false, CONTENT_ALERT, &[2]);
    assert_eq!(rec.snapshot().alerts.len(), 2);
}

#[test]
fn a_post_handshake_answer_the_server_then_refuses_is_not_completed() {
    let (c, rec) = capture();
    handshake(&c, false, &server_hello(true));
    c.established();
    handshake(&c, false, &cert_request(true));
    handshake(&c, true, &message(FINISHED, &[0; 32]));
    c.message(false, CONTENT_ALERT, &[2, 48]);
    assert_eq!(rec.snapshot().completed_late_request, None);
    // Accepted: data from the server after our Finished makes it stick.
    let (c, rec) = capture();
    handshake(&c, false, &server_hello(true));
    c.established();
    handshake(&c, false, &cert_request(true));
    handshake(&c, true, &message(FINISHED, &[0; 32]));
    c.message(false, CONTENT_INNER_TYPE, &[APPLICATION_DATA]);
    c.message(false, CONTENT_ALERT, &[2, 80]);
    assert_eq!(
        rec.snapshot().completed_late_request,
        Some(Phase::PostHandshake)
    );
}

#[test]
fn truncated_messages_are_ignored() {
    let (c, rec) = capture();
    for m in [&[][..], &[13][..], &[13, 0, 0][..], &[11, 0, 0, 5, 1][..]] {
        handshake(&c, false, m);
    }
    let leg = rec.snapshot();
    assert!(leg.server_chain.is_empty());
    assert!(leg.cert_request.is_none());
    // A whole CertificateRequest message whose body does not parse still counts as a request
    // (the server did ask), with no names.
    handshake(&c, false, &message(13, &[9, 9]));
    let cr = rec.snapshot().cert_request.clone().expect("a request");
    assert_eq!(cr.ca_names, Some(vec![]));
}
