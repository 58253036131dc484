//! The handshake ladder: every TLS message, alert and HTTP step of a flow's legs on one time
//! axis, across three lanes (client · mtlscope · server). [`ladder`] turns the facts into steps
//! (a view, deciding nothing); [`svg`] draws them for `report --html`, and the web view draws the
//! same steps from their JSON.
//!
//! Sources: each leg's `events` (the wire tap's handshake messages, "from client" / "from
//! server"), its `cert_request` (with the CA names), `alerts`, `renegotiations`, chains and
//! `error`, and the exchange's request and response times. Every `at_ms` counts from the client
//! connection's accept, so both legs share the axis.

use super::html::esc;
use crate::facts::{
    Alert, AlertLevel, CertRequest, CertSummary, Direction, Event, Flow, Initiator, Leg, Phase,
    Renegotiation, ResponseSource,
};
use serde::Serialize;
use std::fmt::Write as _;

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
    fn index(self) -> usize {
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

/// A wire event's sender, from its detail ("from client…" / "from server…").
fn sender(e: &Event) -> Option<bool> {
    let d = e.detail.as_deref()?;
    if d.starts_with("from client") {
        Some(true)
    } else if d.starts_with("from server") {
        Some(false)
    } else {
        None
    }
}

/// `client_hello` → `ClientHello`.
fn message_name(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn leg_steps(out: &mut Vec<Step>, ends: Ends, v: LegView<'_>) {
    // Certificates seen on the wire make the TLS hooks' reports of the same chain redundant.
    let wire_cert = |client: bool| {
        v.events
            .iter()
            .any(|e| e.name == "certificate" && sender(e) == Some(client))
    };
    let (wire_client_cert, wire_server_cert) = (wire_cert(true), wire_cert(false));
    let wire_hello = v
        .events
        .iter()
        .any(|e| e.name == "client_hello" && sender(e) == Some(true));
    // A TLS hook's report of a CertificateVerify the wire also showed (TLS 1.2) is redundant.
    let wire_verify = v
        .events
        .iter()
        .any(|e| e.name == "certificate_verify" && sender(e) == Some(true));
    let mut cr_drawn = false;
    let mut last_ms: f64 = 0.0;
    for e in v.events {
        last_ms = last_ms.max(e.at_ms);
        let chain_step = |client: bool, label: String| {
            let (from, to) = ends.dir(client);
            let mut s = ends.step(e.at_ms, from, to, StepKind::Certificate, label);
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
        let step = match (e.name.as_str(), sender(e)) {
            // Shown from the structured facts instead, with names and levels.
            ("alert", _) => continue,
            // Drawn where the request went on the wire (or the hook read it), with its names.
            ("certificate_request", _) if cr_drawn => continue,
            ("certificate_request", _) => match v.cert_request {
                Some(cr) if cr.phase == Phase::Handshake => {
                    cr_drawn = true;
                    let mut s = cert_request_step(ends, cr);
                    s.at_ms = e.at_ms.max(cr.at_ms);
                    s
                }
                Some(_) => continue,
                None => {
                    let (from, to) = ends.dir(false);
                    ends.step(
                        e.at_ms,
                        from,
                        to,
                        StepKind::CertRequest,
                        "CertificateRequest".into(),
                    )
                }
            },
            // On a proxy leg mtlscope knows what the flight carried (drawn from its hooks).
            (crate::wire::CLIENT_ENCRYPTED_FLIGHT, _) if ends.side != LegSide::Wire => continue,
            (crate::wire::CLIENT_ENCRYPTED_FLIGHT, _) => {
                let (from, to) = ends.dir(true);
                let mut s = ends.step(
                    e.at_ms,
                    from,
                    to,
                    StepKind::Handshake,
                    "encrypted flight".into(),
                );
                s.details
                    .push("Finished (and Certificate, if asked) or an alert: cannot tell".into());
                s
            }
            // mtlscope's own Certificate on the client leg: its server certificate.
            (crate::capture::flights::OWN_CERTIFICATE, _) => {
                let (from, to) = ends.dir(false);
                let mut s = ends.step(
                    e.at_ms,
                    from,
                    to,
                    StepKind::Certificate,
                    "Certificate".into(),
                );
                s.details
                    .push("mtlscope's server certificate (encrypted)".into());
                s
            }
            // What mtlscope sent upstream (TLS hooks): `chain` is what the Certificate carried.
            (crate::capture::upstream_auth::CERTIFICATE_SENT, _) if !wire_client_cert => {
                chain_step(true, "Certificate".into())
            }
            (crate::capture::upstream_auth::CERTIFICATE_SENT, _) => continue,
            (
                crate::capture::upstream_auth::CERTIFICATE_VERIFY_SENT
                | crate::capture::flights::CLIENT_CERTIFICATE_VERIFY,
                _,
            ) if !wire_verify => {
                let (from, to) = ends.dir(true);
                let mut s = ends.step(
                    e.at_ms,
                    from,
                    to,
                    StepKind::Handshake,
                    "CertificateVerify".into(),
                );
                s.details.extend(
                    e.detail
                        .clone()
                        .map(|d| d.trim_start_matches("from client, ").to_string()),
                );
                s
            }
            (
                crate::capture::upstream_auth::CERTIFICATE_VERIFY_SENT
                | crate::capture::flights::CLIENT_CERTIFICATE_VERIFY,
                _,
            ) => continue,
            // TLS 1.2: the ServerKeyExchange the wire shows; its check is no message.
            ("server_key_exchange_signature", _) => continue,
            ("server_certificate_verify", _) => {
                let (from, to) = ends.dir(false);
                let mut s = ends.step(
                    e.at_ms,
                    from,
                    to,
                    StepKind::Handshake,
                    "CertificateVerify".into(),
                );
                s.details.extend(
                    e.detail
                        .clone()
                        .map(|d| d.trim_start_matches("from server, ").to_string()),
                );
                s
            }
            ("tcp_connect_start", _) => continue,
            ("tcp_accept", _) => {
                let (from, to) = ends.dir(true);
                ends.step(e.at_ms, from, to, StepKind::Tcp, "TCP connect".into())
            }
            ("tcp_connect", _) => {
                let (from, to) = ends.dir(true);
                ends.step(e.at_ms, from, to, StepKind::Tcp, "TCP connect".into())
            }
            ("connect", _) => {
                let (from, to) = ends.dir(true);
                let mut s = ends.step(e.at_ms, from, to, StepKind::Http, "CONNECT".into());
                s.details.extend(e.detail.clone());
                s
            }
            ("certificate", Some(client)) => chain_step(client, "Certificate".into()),
            ("client_certificate", _) if !wire_client_cert => {
                chain_step(true, "Certificate".into())
            }
            ("certificate_presented", _) if !wire_client_cert => {
                chain_step(true, "Certificate".into())
            }
            ("server_certificate", _) if !wire_server_cert => {
                chain_step(false, "Certificate".into())
            }
            ("client_certificate" | "certificate_presented" | "server_certificate", _) => continue,
            // The TLS engine's own note that it sent or read the ClientHello.
            ("client_hello", None) if wire_hello => continue,
            ("client_hello", None) => {
                let (from, to) = ends.dir(true);
                ends.step(e.at_ms, from, to, StepKind::Handshake, "ClientHello".into())
            }
            (name, Some(client)) => {
                let (from, to) = ends.dir(client);
                let mut s = ends.step(e.at_ms, from, to, StepKind::Handshake, message_name(name));
                let rest = e.detail.as_deref().and_then(|d| d.split_once(", "));
                s.details.extend(rest.map(|(_, r)| r.to_string()));
                s
            }
            (name, None) => {
                let mut s = ends.note(e.at_ms, name.replace('_', " "));
                s.details.extend(e.detail.clone());
                s
            }
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
        format!("Alert: {level} {} ({})", a.description, a.code),
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

/// Lane centres in the SVG.
const LANE_X: [u32; 3] = [120, 430, 740];
const SVG_WIDTH: u32 = 900;
const ROW: u32 = 30;
const DETAIL_LINE: u32 = 14;
const LANE_NAMES: [&str; 3] = ["client", "mtlscope", "server"];

/// The ladder as a self-contained SVG (no scripts; certificate facts in `<title>` tooltips).
pub fn svg(l: &Ladder) -> String {
    let rows: u32 = l
        .steps
        .iter()
        .map(|s| ROW + DETAIL_LINE * s.details.len() as u32 + DETAIL_LINE * s.certs.len() as u32)
        .sum();
    let height = 50 + rows + 20;
    let mut h = String::new();
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\" width=\"{SVG_WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {SVG_WIDTH} {height}\" font-family=\"system-ui,sans-serif\" \
         font-size=\"12\"><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" \
         fill=\"#555\"/></marker></defs>"
    );
    for (i, x) in LANE_X.iter().enumerate() {
        let _ = write!(
            h,
            "<text x=\"{x}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\
             <line x1=\"{x}\" y1=\"30\" x2=\"{x}\" y2=\"{}\" stroke=\"#999\"/>",
            LANE_NAMES[i],
            height - 10
        );
    }
    let mut y = 50;
    for s in &l.steps {
        let colour = colour(s);
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{}\" fill=\"#777\">{:.1} ms</text>",
            y + 4,
            s.at_ms
        );
        let (x1, x2) = (LANE_X[s.from.index()], LANE_X[s.to.index()]);
        let mid = (x1 + x2) / 2;
        if s.kind == StepKind::Note {
            let _ = write!(
                h,
                "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" \
                 stroke-dasharray=\"3 3\"/>"
            );
        } else {
            let _ = write!(
                h,
                "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{colour}\" \
                 stroke-width=\"{}\" marker-end=\"url(#arrow)\"/>",
                if s.late || s.fatal { 2.5 } else { 1.5 }
            );
        }
        let _ = write!(
            h,
            "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" fill=\"{colour}\">{}{}</text>",
            y - 5,
            esc(&s.label),
            if s.late { " — late" } else { "" }
        );
        let mut dy = y + DETAIL_LINE;
        for d in &s.details {
            let _ = write!(
                h,
                "<text x=\"{mid}\" y=\"{dy}\" text-anchor=\"middle\" fill=\"#444\" font-size=\"11\">{}</text>",
                esc(d)
            );
            dy += DETAIL_LINE;
        }
        for c in &s.certs {
            let _ = write!(
                h,
                "<text x=\"{mid}\" y=\"{dy}\" text-anchor=\"middle\" fill=\"#046\" font-size=\"11\">\
                 <title>{}</title>{}</text>",
                esc(&cert_tooltip(c)),
                esc(&c.subject)
            );
            dy += DETAIL_LINE;
        }
        y = dy - DETAIL_LINE + ROW;
    }
    h.push_str("</svg>");
    h
}

/// Subject, issuer, validity, EKU and fingerprint, one per line.
pub fn cert_tooltip(c: &CertSummary) -> String {
    format!(
        "subject: {}\nissuer: {}\nvalid: {} – {}\nEKU: {}\nSHA-256: {}",
        c.subject,
        c.issuer,
        c.not_before.date(),
        c.not_after.date(),
        if c.has_eku {
            c.eku.join(", ")
        } else {
            "(absent: any)".into()
        },
        c.sha256
    )
}

fn colour(s: &Step) -> &'static str {
    match s.kind {
        _ if s.fatal => "#b00",
        StepKind::Alert => "#c60",
        StepKind::CertRequest | StepKind::Renegotiation if s.late => "#a0a",
        StepKind::CertRequest | StepKind::Renegotiation => "#06c",
        StepKind::Certificate => "#046",
        StepKind::Http => "#070",
        StepKind::Tcp | StepKind::Note => "#777",
        StepKind::Handshake => "#333",
    }
}

#[cfg(test)]
#[path = "ladder_tests.rs"]
mod tests;
