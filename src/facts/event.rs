//! One timed step of a leg or of the wire: [`Event`], its [`EventKind`] and the [`Peer`] that
//! sent the message it is about.
//!
//! The recording keeps the words it always had: `{"at_ms", "name", "detail"}`, the sender
//! written at the start of the detail ("from client, …"). This module owns that spelling in
//! both directions, so everything past the reader matches on the kind and the sender.

use serde::{Deserialize, Serialize};

/// The endpoint of a TLS connection that sent a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The TLS client.
    Client,
    /// The TLS server.
    Server,
}

impl Peer {
    /// The recorded spelling: `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Server => "server",
        }
    }

    /// The sender named at the start of a recorded detail (`from client…`, `from server…`).
    fn leading(detail: &str) -> Option<Peer> {
        [Peer::Client, Peer::Server].into_iter().find(|p| {
            detail
                .strip_prefix("from ")
                .is_some_and(|d| d.starts_with(p.as_str()))
        })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

super::named::named_words! {
    /// What a timed step was, recorded as its `name`; one variant per name mtlscope writes.
    pub enum EventKind {
        // TCP and proxying.
        /// The client's TCP connection was accepted.
        TcpAccept = "tcp_accept",
        /// mtlscope started connecting upstream.
        TcpConnectStart = "tcp_connect_start",
        /// The upstream TCP connection was established.
        TcpConnect = "tcp_connect",
        /// `observe`: the upstream TCP connection closed.
        TcpClose = "tcp_close",
        /// A capture: a SYN.
        TcpSyn = "tcp_syn",
        /// A capture: a reset.
        TcpReset = "tcp_reset",
        /// A capture: a FIN.
        TcpFin = "tcp_fin",
        /// mtlscope connected through an upstream HTTP proxy.
        ProxyConnect = "proxy_connect",
        /// `forward`: the client's CONNECT.
        Connect = "connect",
        /// `forward`: the CONNECT tunnel was relayed without terminating TLS.
        Tunnel = "tunnel",
        // TLS handshake messages as the wire shows them (RFC 8446 §4, RFC 5246 §7.4).
        /// HelloRequest (TLS 1.2).
        HelloRequest = "hello_request",
        /// ClientHello.
        ClientHello = "client_hello",
        /// ServerHello.
        ServerHello = "server_hello",
        /// A HelloRetryRequest (TLS 1.3).
        HelloRetryRequest = "hello_retry_request",
        /// NewSessionTicket.
        NewSessionTicket = "new_session_ticket",
        /// EndOfEarlyData.
        EndOfEarlyData = "end_of_early_data",
        /// EncryptedExtensions.
        EncryptedExtensions = "encrypted_extensions",
        /// Certificate.
        Certificate = "certificate",
        /// ServerKeyExchange.
        ServerKeyExchange = "server_key_exchange",
        /// CertificateRequest.
        CertificateRequest = "certificate_request",
        /// ServerHelloDone.
        ServerHelloDone = "server_hello_done",
        /// CertificateVerify.
        CertificateVerify = "certificate_verify",
        /// ClientKeyExchange.
        ClientKeyExchange = "client_key_exchange",
        /// Finished.
        Finished = "finished",
        /// CertificateStatus.
        CertificateStatus = "certificate_status",
        /// KeyUpdate.
        KeyUpdate = "key_update",
        /// A handshake message of a type the wire reader does not name.
        HandshakeMessage = "handshake_message",
        /// ChangeCipherSpec.
        ChangeCipherSpec = "change_cipher_spec",
        /// A TLS alert (the leg's `alerts` hold it typed).
        Alert = "alert",
        // What the wire reader concluded.
        /// TLS 1.3: the client's first encrypted flight (its Finished or an alert).
        ClientEncryptedFlight = "client_encrypted_flight",
        /// The handshake completed.
        HandshakeDone = "handshake_done",
        /// A TLS 1.2 renegotiation started (encrypted).
        RenegotiationRequest = "renegotiation_request",
        /// A TLS 1.2 renegotiation completed.
        RenegotiationDone = "renegotiation_done",
        /// Bytes that are not TLS.
        NotTls = "not_tls",
        /// A message the wire reader could not parse.
        WireAnomaly = "wire_anomaly",
        // What mtlscope's own TLS engine did or saw.
        /// mtlscope's own Certificate on the client leg (its server certificate).
        OwnCertificate = "own_certificate",
        /// The client's certificate, as the client leg's verifier saw it.
        ClientCertificate = "client_certificate",
        /// The client's CertificateVerify, as the client leg's verifier checked it.
        ClientCertificateVerify = "client_certificate_verify",
        /// The server's certificate, as the upstream leg's verifier saw it.
        ServerCertificate = "server_certificate",
        /// TLS 1.2: the server's ServerKeyExchange signature was checked.
        ServerKeyExchangeSignature = "server_key_exchange_signature",
        /// TLS 1.3: the server's CertificateVerify was checked.
        ServerCertificateVerify = "server_certificate_verify",
        /// The identity mtlscope's resolver chose to present upstream.
        CertificatePresented = "certificate_presented",
        /// Which upstream identity was chosen, and why.
        IdentityChosen = "identity_chosen",
        /// An identity was withheld (no common signature scheme).
        CertificateWithheld = "certificate_withheld",
        /// An identity's key cannot sign with any scheme the server accepts.
        IdentityKeyUnusable = "identity_key_unusable",
        /// mtlscope's Certificate went on the upstream wire.
        CertificateSent = "certificate_sent",
        /// mtlscope's CertificateVerify went on the upstream wire.
        CertificateVerifySent = "certificate_verify_sent",
        /// OpenSSL refused the identity mtlscope gave it.
        CertificateNotSet = "certificate_not_set",
        /// mtlscope answered a late certificate request.
        LateRequestCompleted = "late_request_completed",
        /// The session resumed an earlier one.
        SessionResumed = "session_resumed",
        /// The server did a full handshake instead of resuming.
        ResumptionRefused = "resumption_refused",
        /// The server issued a session ticket.
        SessionTicket = "session_ticket",
        /// The leg ended with an error.
        Error = "error",
        /// A request replayed over a new upstream leg.
        Replay = "replay",
        /// A new upstream leg after an earlier one.
        NewUpstreamLeg = "new_upstream_leg",
        /// mtlscope answered plain HTTP on a TLS port.
        PlainHttpAnswer = "plain_http_answer",
        // A capture read offline (`analyze`).
        /// Bytes missing from a capture.
        CaptureGap = "capture_gap",
        /// Renegotiations whose keys the key log lacks.
        DecryptionGap = "decryption_gap",
        /// A decrypted HTTP request.
        HttpRequest = "http_request",
        /// A decrypted HTTP response.
        HttpResponse = "http_response",
    }
    /// A name this version does not write (a newer recording), kept as read.
}

/// One timed step.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(from = "EventRecord")]
pub struct Event {
    /// Ms from connection start.
    pub at_ms: f64,
    /// What happened (recorded as `name`).
    pub kind: EventKind,
    /// Who sent the message the step is about, when the detail names one at its start
    /// (`from client…`); not a field of its own in the recording.
    pub sender: Option<Peer>,
    /// Detail in words as recorded, the sender included, if any.
    pub detail: Option<String>,
}

impl Event {
    /// A step no peer sent (a TCP accept, a replay, an error), with its detail in words.
    pub fn new(at_ms: f64, kind: EventKind, detail: Option<String>) -> Event {
        Event {
            at_ms,
            kind,
            sender: None,
            detail,
        }
    }

    /// A message `peer` sent, with more words after the sender if any (`from client, {rest}`).
    pub fn from_peer(at_ms: f64, kind: EventKind, peer: Peer, rest: Option<&str>) -> Event {
        let detail = match rest {
            Some(r) => format!("from {peer}, {r}"),
            None => format!("from {peer}"),
        };
        Event {
            at_ms,
            kind,
            sender: Some(peer),
            detail: Some(detail),
        }
    }

    /// A message `peer` sent, its sender followed by a note in parentheses
    /// (`from client (compatibility)`).
    pub fn from_peer_noting(at_ms: f64, kind: EventKind, peer: Peer, note: &str) -> Event {
        Event {
            at_ms,
            kind,
            sender: Some(peer),
            detail: Some(format!("from {peer} ({note})")),
        }
    }

    /// A step read from a recording: the sender, if any, is the one its detail names first.
    fn read(at_ms: f64, kind: EventKind, detail: Option<String>) -> Event {
        let sender = detail.as_deref().and_then(Peer::leading);
        Event {
            at_ms,
            kind,
            sender,
            detail,
        }
    }

    /// The detail without the sender it names first: the words after `from client, `; the
    /// whole detail when it names no sender.
    pub fn words(&self) -> Option<&str> {
        let d = self.detail.as_deref()?;
        let Some(p) = self.sender else {
            return Some(d);
        };
        let after = d.strip_prefix("from ")?.strip_prefix(p.as_str())?;
        // A note in parentheses (`from client (compatibility)`) qualifies the sender, it is not
        // words about the message.
        after
            .strip_prefix(", ")
            .or_else(|| after.strip_prefix(": "))
            .filter(|w| !w.is_empty())
    }
}

/// The recorded form of an [`Event`], read.
#[derive(Deserialize)]
struct EventRecord {
    at_ms: f64,
    name: EventKind,
    #[serde(default)]
    detail: Option<String>,
}

/// The recorded form of an [`Event`], written (borrowed: a record is written without copying).
#[derive(Serialize)]
struct EventRecordRef<'a> {
    at_ms: f64,
    name: &'a EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: &'a Option<String>,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventRecordRef {
            at_ms: self.at_ms,
            name: &self.kind,
            detail: &self.detail,
        }
        .serialize(s)
    }
}

impl From<EventRecord> for Event {
    fn from(r: EventRecord) -> Event {
        Event::read(r.at_ms, r.name, r.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_kept() {
        for name in [
            "client_hello",
            "client_encrypted_flight",
            "tcp_accept",
            "error",
        ] {
            assert_eq!(EventKind::from_name(name).as_str(), name);
            assert!(!matches!(EventKind::from_name(name), EventKind::Other(_)));
        }
        assert_eq!(
            EventKind::from_name("from_the_future"),
            EventKind::Other("from_the_future".into())
        );
    }

    #[test]
    fn the_sender_is_read_from_the_recorded_words_and_written_back_unchanged() {
        let json = r#"{"at_ms":1.5,"name":"certificate","detail":"from server, 2 certs"}"#;
        let e: Event = serde_json::from_str(json).unwrap();
        assert_eq!(e.kind, EventKind::Certificate);
        assert_eq!(e.sender, Some(Peer::Server));
        assert_eq!(e.words(), Some("2 certs"));
        assert_eq!(serde_json::to_string(&e).unwrap(), json);
        let e = Event::from_peer(1.5, EventKind::Certificate, Peer::Server, Some("2 certs"));
        assert_eq!(serde_json::to_string(&e).unwrap(), json);
        let bare = Event::new(0.0, EventKind::Replay, Some("over a new leg".into()));
        assert_eq!((bare.sender, bare.words()), (None, Some("over a new leg")));
        let ccs = Event::from_peer_noting(
            0.0,
            EventKind::ChangeCipherSpec,
            Peer::Client,
            "compatibility",
        );
        let json =
            r#"{"at_ms":0.0,"name":"change_cipher_spec","detail":"from client (compatibility)"}"#;
        assert_eq!(serde_json::to_string(&ccs).unwrap(), json);
        let read: Event = serde_json::from_str(json).unwrap();
        assert_eq!(read, ccs);
        assert_eq!((ccs.sender, ccs.words()), (Some(Peer::Client), None));
        let done = Event::from_peer(2.0, EventKind::Finished, Peer::Server, None);
        assert_eq!((done.sender, done.words()), (Some(Peer::Server), None));
    }

    #[test]
    fn a_step_built_in_process_never_reads_a_sender_out_of_its_words() {
        // Words that happen to start like a sender are only words: the sender is given, typed.
        let e = Event::new(
            0.0,
            EventKind::Error,
            Some("from client code: refused".into()),
        );
        assert_eq!(
            (e.sender, e.words()),
            (None, Some("from client code: refused"))
        );
    }
}
