//! Classifying the error that ended a leg: words for people, a [`LegFailure`] for rules, and the
//! alert it implies when the TLS library reports one it received or sent.

use crate::facts::{Alert, AlertLevel, Direction, LegFailure};
use std::io;

/// What an error says about a leg.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    /// The error in words.
    pub words: String,
    /// Stage and kind.
    pub failure: LegFailure,
    /// An alert the error reports (received) or implies (sent by us), without its time.
    pub alert: Option<(Direction, rustls::AlertDescription)>,
}

impl Classified {
    /// A failure with no alert: `stage` and `kind` as in [`LegFailure`], `words` for people.
    pub fn new(stage: &str, kind: &str, words: impl Into<String>) -> Classified {
        Classified {
            words: words.into(),
            failure: failure(stage, kind),
            alert: None,
        }
    }
}

/// The rustls error inside an I/O error, if any.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Find an I/O error anywhere in an error's source chain (hyper wraps them).
pub fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Classify an I/O error that ended `stage` (`connect`, `handshake`, `after_handshake`, …).
pub fn classify_io(stage: &str, e: &io::Error) -> Classified {
    if let Some(tls) = rustls_error(e) {
        return classify_tls(stage, tls);
    }
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection_refused",
        io::ErrorKind::TimedOut => "timed_out",
        io::ErrorKind::ConnectionReset => "reset",
        io::ErrorKind::ConnectionAborted => "aborted",
        io::ErrorKind::UnexpectedEof => "eof",
        io::ErrorKind::BrokenPipe => "broken_pipe",
        io::ErrorKind::NotFound => "not_found",
        io::ErrorKind::InvalidData => "invalid_data",
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
        io::ErrorKind::AddrNotAvailable => "address_not_available",
        _ if e.to_string().contains("failed to lookup") => "dns",
        _ => "io",
    };
    let words = match kind {
        "eof" => "the peer closed the connection".to_string(),
        _ => e.to_string(),
    };
    Classified {
        words,
        failure: failure(stage, kind),
        alert: None,
    }
}

/// Classify a rustls error.
pub fn classify_tls(stage: &str, e: &rustls::Error) -> Classified {
    use rustls::{AlertDescription as A, Error as E, PeerMisbehaved};
    let (kind, alert) = match e {
        E::AlertReceived(desc) => ("alert_received", Some((Direction::Received, *desc))),
        E::NoCertificatesPresented => (
            "no_certificates_presented",
            Some((Direction::Sent, A::CertificateRequired)),
        ),
        E::InvalidCertificate(ce) => (
            "peer_certificate_invalid",
            Some((Direction::Sent, A::from(ce.clone()))),
        ),
        E::PeerMisbehaved(PeerMisbehaved::TooManyRenegotiationRequests) => {
            ("renegotiation_refused", None)
        }
        // TLS 1.3 post-handshake auth that rustls never offered to accept.
        E::InappropriateHandshakeMessage {
            got_type: rustls::HandshakeType::CertificateRequest,
            ..
        } => (
            "post_handshake_certificate_request",
            Some((Direction::Sent, A::UnexpectedMessage)),
        ),
        E::InappropriateHandshakeMessage { .. } | E::InappropriateMessage { .. } => (
            "unexpected_message",
            Some((Direction::Sent, A::UnexpectedMessage)),
        ),
        E::InvalidMessage(_) => ("not_tls", Some((Direction::Sent, A::DecodeError))),
        E::PeerIncompatible(_) => ("incompatible", Some((Direction::Sent, A::HandshakeFailure))),
        E::NoApplicationProtocol => (
            "no_application_protocol",
            Some((Direction::Sent, A::NoApplicationProtocol)),
        ),
        E::DecryptError => ("decrypt_error", Some((Direction::Sent, A::DecryptError))),
        _ => ("tls", None),
    };
    Classified {
        words: tls_words(e),
        failure: failure(stage, kind),
        alert,
    }
}

/// A recorded alert from a classified error (source `tls` when received, `inferred` when sent).
pub fn alert_fact(direction: Direction, desc: rustls::AlertDescription, at_ms: f64) -> Alert {
    Alert {
        direction,
        level: AlertLevel::Fatal,
        description: alert_name(desc),
        code: u8::from(desc),
        at_ms,
        source: match direction {
            Direction::Received => "tls".into(),
            Direction::Sent => "inferred".into(),
        },
        encrypted: false,
    }
}

/// RFC snake_case name of an alert.
pub fn alert_name(desc: rustls::AlertDescription) -> String {
    crate::wire::alert_names::alert_name(u8::from(desc)).to_string()
}

fn failure(stage: &str, kind: &str) -> LegFailure {
    LegFailure {
        stage: stage.into(),
        kind: kind.into(),
    }
}

fn tls_words(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::AlertReceived(desc) => format!("the peer sent a fatal {} alert", alert_name(*desc)),
        E::NoCertificatesPresented => "the client presented no certificate".into(),
        E::InvalidCertificate(ce) => format!("the peer's certificate was rejected: {ce:?}"),
        E::PeerMisbehaved(rustls::PeerMisbehaved::TooManyRenegotiationRequests) => {
            "the server asked to renegotiate again after mtlscope refused".into()
        }
        E::InappropriateHandshakeMessage { got_type, .. } => {
            format!("unexpected handshake message {got_type:?} (rustls cannot answer it)")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_alert_is_named_and_kept() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        );
        let c = classify_io("handshake", &e);
        assert_eq!(c.failure.kind, "alert_received");
        assert_eq!(
            c.alert,
            Some((
                Direction::Received,
                rustls::AlertDescription::BadCertificate
            ))
        );
        assert!(c.words.contains("bad_certificate"), "{}", c.words);
    }

    #[test]
    fn plain_io_errors_keep_their_kind() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify_io("connect", &e).failure.kind,
            "connection_refused"
        );
        let e = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            classify_io("handshake", &e).words,
            "the peer closed the connection"
        );
    }

    #[test]
    fn rejected_certificate_implies_the_alert_we_sent() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let c = classify_tls("handshake", &e);
        assert_eq!(
            c.alert,
            Some((Direction::Sent, rustls::AlertDescription::UnknownCA))
        );
    }
}
