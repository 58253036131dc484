//! The handshake ladder: every TLS message, alert and HTTP step of a flow's legs on one time
//! axis, across three lanes (client · mtlscope · server). [`ladder`] turns the facts into steps
//! (a view, deciding nothing); [`svg`] draws them for `report --html`, and the web view draws the
//! same steps from their JSON ([`super::ladder_svg`] draws them).
//!
//! Sources: each leg's `events` (the wire tap's handshake messages, with their sender), its
//! `cert_request` (with the CA names), `alerts`, `renegotiations`, chains and
//! `error`, and the exchange's request and response times. Every `at_ms` counts from the client
//! connection's accept, so both legs share the axis.

use crate::diagnose::view::capital;
use crate::facts::{
    Alert, AlertLevel, CertRequest, CertSummary, Direction, Event, EventKind, Flow, Initiator, Leg,
    Peer, Phase, Renegotiation, ResponseSource,
};
use serde::Serialize;

/// A vertical line of the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The real client.
    Client,
    /// mtlscope itself (on `observe`, the wire it relays).
    Mtlscope,
    /// The real server.
    Server,
}

impl Lane {
    /// Left to right: client, mtlscope, server.
    pub(crate) fn index(self) -> usize {
        match self {
            Lane::Client => 0,
            Lane::Mtlscope => 1,
            Lane::Server => 2,
        }
    }
}

/// What a step shows, for colouring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// TCP accept or connect.
    Tcp,
    /// A TLS handshake message.
    Handshake,
    /// A CertificateRequest, with its CA names.
    CertRequest,
    /// A Certificate message (or a chain a TLS hook saw), with the certificates.
    Certificate,
    /// A TLS alert.
    Alert,
    /// A renegotiation starting.
    Renegotiation,
    /// An HTTP request or response.
    Http,
    /// Something that happened at one leg, not a message (handshake done, an error, the end).
    Note,
}

/// Which leg a step belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegSide {
    /// Client ⇄ mtlscope.
    Client,
    /// mtlscope ⇄ server.
    Upstream,
    /// `observe`: client ⇄ server through mtlscope.
    Wire,
}

/// One row of the ladder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// When, ms from the connection's start.
    pub at_ms: f64,
    /// The leg it happened on.
    pub leg: LegSide,
    /// Sender's lane (for a note: the left end of the leg).
    pub from: Lane,
    /// Receiver's lane (for a note: the right end of the leg).
    pub to: Lane,
    /// What kind of step.
    pub kind: StepKind,
    /// The label on the arrow.
    pub label: String,
    /// Lines shown under the arrow (CA names, an outcome, a detail).
    pub details: Vec<String>,
    /// The certificates carried (Certificate steps), leaf first.
    pub certs: Vec<CertSummary>,
    /// A certificate request or renegotiation after the handshake (after the HTTP request).
    pub late: bool,
    /// A fatal alert, an error that ended the leg, or an error status (400–599).
    pub fatal: bool,
}

/// The steps of one flow in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ladder {
    /// Steps sorted by `at_ms` (ties keep the order they were found in).
    pub steps: Vec<Step>,
}

/// The TLS client and server lanes of one leg.
#[derive(Clone, Copy)]
struct Ends {
    side: LegSide,
    tls_client: Lane,
    tls_server: Lane,
}

impl Ends {
    fn step(&self, at_ms: f64, from: Lane, to: Lane, kind: StepKind, label: String) -> Step {
        Step {
            at_ms,
            leg: self.side,
            from,
            to,
            kind,
            label,
            details: Vec::new(),
            certs: Vec::new(),
            late: false,
            fatal: false,
        }
    }

    fn note(&self, at_ms: f64, label: String) -> Step {
        let (a, b) = if self.tls_client.index() < self.tls_server.index() {
            (self.tls_client, self.tls_server)
        } else {
            (self.tls_server, self.tls_client)
        };
        self.step(at_ms, a, b, StepKind::Note, label)
    }

    /// (from, to) for something the TLS client (`true`) or server sent.
    fn dir(&self, from_client: bool) -> (Lane, Lane) {
        if from_client {
            (self.tls_client, self.tls_server)
        } else {
            (self.tls_server, self.tls_client)
        }
    }

    /// (from, to) for something `peer` sent.
    fn from(&self, peer: Peer) -> (Lane, Lane) {
        self.dir(peer == Peer::Client)
    }
}

/// The ladder of `flow`: both legs (or the observed wire) and the HTTP exchange.
pub fn ladder(flow: &Flow) -> Ladder {
    let mut steps = Vec::new();
    if let Some(l) = &flow.client_leg {
        let ends = Ends {
            side: LegSide::Client,
            tls_client: Lane::Client,
            tls_server: Lane::Mtlscope,
        };
        leg_steps(&mut steps, ends, LegView::of_leg(l));
    }
    if let Some(l) = &flow.upstream_leg {
        let ends = Ends {
            side: LegSide::Upstream,
            tls_client: Lane::Mtlscope,
            tls_server: Lane::Server,
        };
        leg_steps(&mut steps, ends, LegView::of_leg(l));
    }
    if let Some(w) = &flow.wire {
        let ends = Ends {
            side: LegSide::Wire,
            tls_client: Lane::Client,
            tls_server: Lane::Server,
        };
        let view = LegView {
            events: &w.events,
            alerts: &w.alerts,
            cert_request: w.cert_request.as_ref(),
            renegotiations: &w.renegotiations,
            client_chain: w.client_chain.as_deref().unwrap_or(&[]),
            server_chain: w.server_chain.as_deref().unwrap_or(&[]),
            error: None,
        };
        leg_steps(&mut steps, ends, view);
    }
    http_steps(&mut steps, flow);
    steps.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    Ladder { steps }
}

/// What one leg (or the wire) contributes, borrowed.
struct LegView<'a> {
    events: &'a [Event],
    alerts: &'a [Alert],
    cert_request: Option<&'a CertRequest>,
    renegotiations: &'a [Renegotiation],
    /// What the TLS client presented.
    client_chain: &'a [CertSummary],
    /// What the TLS server presented.
    server_chain: &'a [CertSummary],
    error: Option<&'a str>,
}

impl<'a> LegView<'a> {
    fn of_leg(l: &'a Leg) -> LegView<'a> {
        LegView {
            events: &l.events,
            alerts: &l.alerts,
            cert_request: l.cert_request.as_ref(),
            renegotiations: &l.renegotiations,
            client_chain: &l.chain,
            server_chain: &l.server_chain,
            error: l.error.as_deref(),
        }
    }
}

/// `client_hello` → `ClientHello`: a message's name as the RFCs write it.
fn message_name(kind: &EventKind) -> String {
    kind.as_str().split('_').map(capital).collect()
}

/// A step the wire showed with its sender (an arrow), or a note at the leg.
fn message_or_note(ends: Ends, e: &Event) -> Step {
    match e.sender {
        Some(peer) => {
            let (from, to) = ends.from(peer);
            let label = message_name(&e.kind);
            let mut s = ends.step(e.at_ms, from, to, StepKind::Handshake, label);
            s.details.extend(e.words().map(str::to_string));
            s
        }
        None => {
            let mut s = ends.note(e.at_ms, e.kind.as_str().replace('_', " "));
            s.details.extend(e.detail.clone());
            s
        }
    }
}

fn leg_steps(out: &mut Vec<Step>, ends: Ends, v: LegView<'_>) {
    // Certificates seen on the wire make the TLS hooks' reports of the same chain redundant.
    let on_wire = |kind: EventKind, peer: Peer| {
        v.events
            .iter()
            .any(|e| e.kind == kind && e.sender == Some(peer))
    };
    let wire_client_cert = on_wire(EventKind::Certificate, Peer::Client);
    let wire_server_cert = on_wire(EventKind::Certificate, Peer::Server);
    let wire_hello = on_wire(EventKind::ClientHello, Peer::Client);
    // A TLS hook's report of a CertificateVerify the wire also showed (TLS 1.2) is redundant.
    let wire_verify = on_wire(EventKind::CertificateVerify, Peer::Client);
    let mut cr_drawn = false;
    let mut last_ms: f64 = 0.0;
    for e in v.events {
        last_ms = last_ms.max(e.at_ms);
        let chain_step = |client: bool| {
            let (from, to) = ends.dir(client);
            let mut s = ends.step(
                e.at_ms,
                from,
                to,
                StepKind::Certificate,
                "Certificate".into(),
            );
            s.certs = if client {
                v.client_chain
            } else {
                v.server_chain
            }
            .to_vec();
            if s.certs.is_empty() {
                s.details.push("empty: no certificate".into());
            }
            s
        };
        let verify_step = |peer: Peer| {
            let (from, to) = ends.from(peer);
            let label = "CertificateVerify".to_string();
            let mut s = ends.step(e.at_ms, from, to, StepKind::Handshake, label);
            s.details.extend(e.words().map(str::to_string));
            s
        };
        let step = match &e.kind {
            // Shown from the structured facts instead, with names and levels.
            EventKind::Alert => continue,
            // Drawn where the request went on the wire (or the hook read it), with its names.
            EventKind::CertificateRequest if cr_drawn => continue,
            EventKind::CertificateRequest => match v.cert_request {
                Some(cr) if cr.phase == Phase::Handshake => {
                    cr_drawn = true;
                    let mut s = cert_request_step(ends, cr);
                    s.at_ms = e.at_ms.max(cr.at_ms);
                    s
                }
                Some(_) => continue,
                None => {
                    let (from, to) = ends.from(Peer::Server);
                    let label = "CertificateRequest".to_string();
                    ends.step(e.at_ms, from, to, StepKind::CertRequest, label)
                }
            },
            // On a proxy leg mtlscope knows what the flight carried (drawn from its hooks).
            EventKind::ClientEncryptedFlight if ends.side != LegSide::Wire => continue,
            EventKind::ClientEncryptedFlight => {
                let (from, to) = ends.from(Peer::Client);
                let label = "encrypted flight".to_string();
                let mut s = ends.step(e.at_ms, from, to, StepKind::Handshake, label);
                s.details
                    .push("Finished (and Certificate, if asked) or an alert: cannot tell".into());
                s
            }
            // mtlscope's own Certificate on the client leg: its server certificate.
            EventKind::OwnCertificate => {
                let (from, to) = ends.from(Peer::Server);
                let label = "Certificate".to_string();
                let mut s = ends.step(e.at_ms, from, to, StepKind::Certificate, label);
                s.details
                    .push("mtlscope's server certificate (encrypted)".into());
                s
            }
            // What mtlscope sent upstream (TLS hooks): `chain` is what the Certificate carried.
            EventKind::CertificateSent if !wire_client_cert => chain_step(true),
            EventKind::CertificateSent => continue,
            EventKind::CertificateVerifySent | EventKind::ClientCertificateVerify
                if !wire_verify =>
            {
                verify_step(Peer::Client)
            }
            EventKind::CertificateVerifySent | EventKind::ClientCertificateVerify => continue,
            // TLS 1.2: the ServerKeyExchange the wire shows; its check is no message.
            EventKind::ServerKeyExchangeSignature => continue,
            EventKind::ServerCertificateVerify => verify_step(Peer::Server),
            EventKind::TcpConnectStart => continue,
            EventKind::TcpAccept | EventKind::TcpConnect => {
                let (from, to) = ends.from(Peer::Client);
                ends.step(e.at_ms, from, to, StepKind::Tcp, "TCP connect".into())
            }
            EventKind::Connect => {
                let (from, to) = ends.from(Peer::Client);
                let mut s = ends.step(e.at_ms, from, to, StepKind::Http, "CONNECT".into());
                s.details.extend(e.detail.clone());
                s
            }
            EventKind::Certificate if e.sender.is_some() => {
                chain_step(e.sender == Some(Peer::Client))
            }
            EventKind::ClientCertificate | EventKind::CertificatePresented if !wire_client_cert => {
                chain_step(true)
            }
            EventKind::ServerCertificate if !wire_server_cert => chain_step(false),
            EventKind::ClientCertificate
            | EventKind::CertificatePresented
            | EventKind::ServerCertificate => continue,
            // The TLS engine's own note that it sent or read the ClientHello.
            EventKind::ClientHello if e.sender.is_none() && wire_hello => continue,
            EventKind::ClientHello if e.sender.is_none() => {
                let (from, to) = ends.from(Peer::Client);
                ends.step(e.at_ms, from, to, StepKind::Handshake, "ClientHello".into())
            }
            EventKind::Certificate
            | EventKind::ClientHello
            | EventKind::TcpClose
            | EventKind::TcpSyn
            | EventKind::TcpReset
            | EventKind::TcpFin
            | EventKind::ProxyConnect
            | EventKind::Tunnel
            | EventKind::HelloRequest
            | EventKind::ServerHello
            | EventKind::HelloRetryRequest
            | EventKind::NewSessionTicket
            | EventKind::EndOfEarlyData
            | EventKind::EncryptedExtensions
            | EventKind::ServerKeyExchange
            | EventKind::ServerHelloDone
            | EventKind::CertificateVerify
            | EventKind::ClientKeyExchange
            | EventKind::Finished
            | EventKind::CertificateStatus
            | EventKind::KeyUpdate
            | EventKind::HandshakeMessage
            | EventKind::ChangeCipherSpec
            | EventKind::HandshakeDone
            | EventKind::RenegotiationRequest
            | EventKind::RenegotiationDone
            | EventKind::NotTls
            | EventKind::WireAnomaly
            | EventKind::IdentityChosen
            | EventKind::CertificateWithheld
            | EventKind::IdentityKeyUnusable
            | EventKind::CertificateNotSet
            | EventKind::LateRequestCompleted
            | EventKind::SessionResumed
            | EventKind::ResumptionRefused
            | EventKind::SessionTicket
            | EventKind::Error
            | EventKind::Replay
            | EventKind::NewUpstreamLeg
            | EventKind::PlainHttpAnswer
            | EventKind::CaptureGap
            | EventKind::DecryptionGap
            | EventKind::HttpRequest
            | EventKind::HttpResponse
            | EventKind::Other(_) => message_or_note(ends, e),
        };
        out.push(step);
    }
    if let Some(cr) = v.cert_request.filter(|_| !cr_drawn) {
        last_ms = last_ms.max(cr.at_ms);
        out.push(cert_request_step(ends, cr));
    }
    for a in v.alerts {
        last_ms = last_ms.max(a.at_ms);
        out.push(alert_step(ends, a));
    }
    for r in v.renegotiations {
        last_ms = last_ms.max(r.at_ms);
        let (from, to) = ends.dir(r.initiated_by == Initiator::Client);
        let label = match r.initiated_by {
            Initiator::Server => "HelloRequest (renegotiation)",
            Initiator::Client => "ClientHello (renegotiation)",
        };
        let mut s = ends.step(r.at_ms, from, to, StepKind::Renegotiation, label.into());
        s.late = true;
        if let Some(after) = r.after_app_data_ms {
            s.details.push(format!("{after} ms after application data"));
        }
        s.details.extend(r.outcome.map(|o| o.to_string()));
        out.push(s);
    }
    if let Some(err) = v.error {
        let mut s = ends.note(last_ms, "leg ended".into());
        s.details.push(err.to_string());
        s.fatal = true;
        out.push(s);
    }
}

fn cert_request_step(ends: Ends, cr: &CertRequest) -> Step {
    let (from, to) = ends.dir(false);
    let phase = match cr.phase {
        Phase::Handshake => "handshake",
        Phase::Renegotiation => "renegotiation",
        Phase::PostHandshake => "post-handshake",
    };
    let names = match &cr.ca_names {
        None => "CA names encrypted".to_string(),
        Some(n) if n.len() == 1 => "1 CA name".to_string(),
        Some(n) => format!("{} CA names", n.len()),
    };
    let mut s = ends.step(
        cr.at_ms,
        from,
        to,
        StepKind::CertRequest,
        format!("CertificateRequest ({phase}, {names})"),
    );
    s.details = cr.ca_names.clone().unwrap_or_default();
    if cr.ca_names.as_ref().is_some_and(Vec::is_empty) {
        s.details.push("(empty list: any CA)".into());
    }
    if let Some(m) = cr.mandatory {
        s.details
            .push(if m { "mandatory" } else { "optional" }.to_string());
    }
    if let Some(after) = cr.after_request_ms {
        s.details.push(format!("{after} ms after the HTTP request"));
    }
    s.late = cr.phase != Phase::Handshake;
    s
}

fn alert_step(ends: Ends, a: &Alert) -> Step {
    // `sent` is mtlscope's (on the wire: the TLS client's) alert.
    let sent = a.direction == Direction::Sent;
    let (from, to) = match ends.side {
        LegSide::Wire => ends.dir(sent),
        LegSide::Client if sent => (Lane::Mtlscope, Lane::Client),
        LegSide::Client => (Lane::Client, Lane::Mtlscope),
        LegSide::Upstream if sent => (Lane::Mtlscope, Lane::Server),
        LegSide::Upstream => (Lane::Server, Lane::Mtlscope),
    };
    let level = match a.level {
        AlertLevel::Warning => "warning",
        AlertLevel::Fatal => "fatal",
        AlertLevel::Unknown => "alert",
    };
    let mut s = ends.step(
        a.at_ms,
        from,
        to,
        StepKind::Alert,
        format!("Alert: {level} {} ({})", a.name(), a.code()),
    );
    s.details.push(format!("known from: {}", a.source));
    s.fatal = a.level == AlertLevel::Fatal;
    s
}

fn http_steps(out: &mut Vec<Step>, flow: &Flow) {
    let client = Ends {
        side: LegSide::Client,
        tls_client: Lane::Client,
        tls_server: Lane::Mtlscope,
    };
    let upstream = Ends {
        side: LegSide::Upstream,
        tls_client: Lane::Mtlscope,
        tls_server: Lane::Server,
    };
    if let Some(q) = &flow.request {
        let line = format!("{} {}", q.method, q.uri);
        out.push(client.step(
            q.at_ms,
            Lane::Client,
            Lane::Mtlscope,
            StepKind::Http,
            line.clone(),
        ));
        if let Some(fw) = q.forwarded_at_ms {
            out.push(upstream.step(fw, Lane::Mtlscope, Lane::Server, StepKind::Http, line));
        }
    }
    if let Some(p) = &flow.response {
        let label = format!("HTTP {}", p.status);
        let failed = p.status >= 400;
        if p.source == ResponseSource::Upstream {
            let mut s = upstream.step(
                p.at_ms,
                Lane::Server,
                Lane::Mtlscope,
                StepKind::Http,
                label.clone(),
            );
            s.fatal = failed;
            out.push(s);
        }
        let mut s = client.step(p.at_ms, Lane::Mtlscope, Lane::Client, StepKind::Http, label);
        if p.source == ResponseSource::Mtlscope {
            s.details.push("produced by mtlscope".into());
        }
        s.fatal = failed;
        out.push(s);
    }
}
