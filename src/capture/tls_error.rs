//! Classifying the error that ended a leg: words for people, a [`LegFailure`] for rules, and the
//! alert it implies when the TLS library reports one it received or sent.

use crate::facts::{Alert, AlertLevel, AlertSource, Direction, FailureKind, LegFailure, Stage};
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
    pub fn new(stage: Stage, kind: FailureKind, words: impl Into<String>) -> Classified {
        Classified {
            words: words.into(),
            failure: LegFailure { stage, kind },
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

/// A name that did not resolve; carried inside the `io::Error` that `Target::connect_tcp`
/// returns, so the failure is classified by type, not by the resolver's words.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
pub struct DnsError {
    /// The host name.
    pub host: String,
    /// The resolver's error.
    pub source: io::Error,
}

/// Classify an I/O error that ended `stage`.
pub fn classify_io(stage: Stage, e: &io::Error) -> Classified {
    if let Some(tls) = rustls_error(e) {
        return classify_tls(stage, tls);
    }
    let dns = e.get_ref().is_some_and(|inner| inner.is::<DnsError>());
    let kind = match e.kind() {
        _ if dns => FailureKind::Dns,
        io::ErrorKind::ConnectionRefused => FailureKind::ConnectionRefused,
        io::ErrorKind::TimedOut => FailureKind::TimedOut,
        io::ErrorKind::ConnectionReset => FailureKind::Reset,
        io::ErrorKind::ConnectionAborted => FailureKind::Aborted,
        io::ErrorKind::UnexpectedEof => FailureKind::Eof,
        io::ErrorKind::BrokenPipe => FailureKind::BrokenPipe,
        io::ErrorKind::NotFound => FailureKind::NotFound,
        io::ErrorKind::InvalidData => FailureKind::InvalidData,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            FailureKind::Unreachable
        }
        io::ErrorKind::AddrNotAvailable => FailureKind::AddressNotAvailable,
        _ => FailureKind::Io,
    };
    let words = match kind {
        FailureKind::Eof => "the peer closed the connection".to_string(),
        _ => e.to_string(),
    };
    Classified {
        words,
        failure: LegFailure { stage, kind },
        alert: None,
    }
}

/// Classify a rustls error.
pub fn classify_tls(stage: Stage, e: &rustls::Error) -> Classified {
    use rustls::{AlertDescription as A, Error as E, PeerMisbehaved};
    let (kind, alert) = match e {
        E::AlertReceived(desc) => (
            FailureKind::AlertReceived,
            Some((Direction::Received, *desc)),
        ),
        E::NoCertificatesPresented => (
            FailureKind::NoCertificatesPresented,
            Some((Direction::Sent, A::CertificateRequired)),
        ),
        E::InvalidCertificate(ce) => (
            FailureKind::PeerCertificateInvalid,
            Some((Direction::Sent, A::from(ce.clone()))),
        ),
        E::PeerMisbehaved(PeerMisbehaved::TooManyRenegotiationRequests) => {
            (FailureKind::RenegotiationRefused, None)
        }
        // TLS 1.3 post-handshake auth that rustls never offered to accept.
        E::InappropriateHandshakeMessage {
            got_type: rustls::HandshakeType::CertificateRequest,
            ..
        } => (
            FailureKind::PostHandshakeCertificateRequest,
            Some((Direction::Sent, A::UnexpectedMessage)),
        ),
        E::InappropriateHandshakeMessage { .. } | E::InappropriateMessage { .. } => (
            FailureKind::UnexpectedMessage,
            Some((Direction::Sent, A::UnexpectedMessage)),
        ),
        E::InvalidMessage(_) => (FailureKind::NotTls, Some((Direction::Sent, A::DecodeError))),
        E::PeerIncompatible(_) => (
            FailureKind::Incompatible,
            Some((Direction::Sent, A::HandshakeFailure)),
        ),
        E::NoApplicationProtocol => (
            FailureKind::NoApplicationProtocol,
            Some((Direction::Sent, A::NoApplicationProtocol)),
        ),
        E::DecryptError => (
            FailureKind::DecryptError,
            Some((Direction::Sent, A::DecryptError)),
        ),
        _ => (FailureKind::Tls, None),
    };
    Classified {
        words: tls_words(e),
        failure: LegFailure { stage, kind },
        alert,
    }
}

/// A recorded alert from a classified error (source `tls` when received, `inferred` when sent).
pub fn alert_fact(direction: Direction, desc: rustls::AlertDescription, at_ms: f64) -> Alert {
    Alert {
        direction,
        level: AlertLevel::Fatal,
        description: desc.into(),
        at_ms,
        source: match direction {
            Direction::Received => AlertSource::Tls,
            Direction::Sent => AlertSource::Inferred,
        },
        encrypted: false,
    }
}

/// RFC snake_case name of an alert.
pub fn alert_name(desc: rustls::AlertDescription) -> String {
    crate::wire::alert_names::alert_name(u8::from(desc)).to_string()
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
        let c = classify_io(Stage::Handshake, &e);
        assert_eq!(c.failure.kind, FailureKind::AlertReceived);
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
            classify_io(Stage::Connect, &e).failure.kind,
            FailureKind::ConnectionRefused
        );
        let e = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            classify_io(Stage::Handshake, &e).words,
            "the peer closed the connection"
        );
    }

    #[test]
    fn rejected_certificate_implies_the_alert_we_sent() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let c = classify_tls(Stage::Handshake, &e);
        assert_eq!(
            c.alert,
            Some((Direction::Sent, rustls::AlertDescription::UnknownCA))
        );
    }
}
