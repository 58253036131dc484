//! The rules' view of a flow: every TLS session where a client certificate is at stake, as a
//! [`Hop`] with a client side and a server side, whether it was recorded as a proxy leg or seen
//! on the wire, plus the server's HTTP answer. Rules are written once against this view.

use super::alerts::alert_usual_meaning;
pub(crate) use super::http::HttpAnswer;
use crate::facts::{
    Alert, AlertDescription, AlertLevel, CertRequest, CertSummary, ChainVerdict, Direction, Event,
    EventKind, FailureKind, Flow, IdentityChoice, Initiator, IssuerLookup, Leg, LegFailure, Phase,
    Renegotiation, ResponseSource, RevocationCheck, RevocationStatus, ServerVerification, Stage,
    TlsEngine, TlsVersion,
};
use time::OffsetDateTime;

/// Which recorded shape a hop comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HopKind {
    /// Client ⇄ mtlscope: mtlscope is the TLS server.
    Client,
    /// mtlscope ⇄ server: mtlscope is the TLS client.
    Upstream,
    /// observe mode: the real client and the real server, seen on the wire.
    Wire,
}

/// One TLS session, from the point of view of client-certificate authentication.
pub(crate) struct Hop<'a> {
    /// Where the facts come from.
    pub kind: HopKind,
    /// Negotiated version, if known.
    pub version: Option<TlsVersion>,
    /// Negotiated ALPN, if known.
    pub alpn: Option<&'a str>,
    /// The CertificateRequest the server side sent, if any.
    pub cert_request: Option<&'a CertRequest>,
    /// The chain the client side presented: empty = none, `None` = not visible.
    pub chain: Option<&'a [CertSummary]>,
    /// Upstream only: the configured identities and the choice among them.
    pub identity: Option<&'a IdentityChoice>,
    /// Client leg only: mtlscope's verdict on the client's chain.
    pub verdict: Option<&'a ChainVerdict>,
    /// What mtlscope's configured certificates say about the issuer the presented chain lacks.
    pub issuer_lookup: Option<&'a IssuerLookup>,
    /// Upstream only: whether the server's certificate verified.
    pub server_verification: Option<&'a ServerVerification>,
    /// The server side's chain, when known.
    pub server_chain: &'a [CertSummary],
    /// Alerts in both directions.
    pub alerts: &'a [Alert],
    /// Renegotiations after the first handshake.
    pub renegotiations: &'a [Renegotiation],
    /// Whether the ClientHello offered post_handshake_auth, if known.
    pub offered_pha: Option<bool>,
    /// When the handshake completed, ms from connection start.
    pub handshake_done_ms: Option<f64>,
    /// The classified end of the session.
    pub failure: Option<&'a LegFailure>,
    /// The end of the session in words.
    pub error: Option<&'a str>,
    /// Timed steps.
    pub events: &'a [Event],
    /// The instant validity is judged at: the handshake time, else the connection start.
    pub now: OffsetDateTime,
    /// Upstream only: the late request mtlscope's TLS engine completed, by phase.
    pub completed_late: Option<Phase>,
    /// Upstream only: mtlscope's TLS engine on this leg.
    pub engine: Option<TlsEngine>,
    /// The session was resumed: no CertificateRequest and no Certificate on the wire; `chain`
    /// is the one of the handshake that created the session.
    pub resumed: bool,
    /// Client leg: what revocation sources said about the presented chain.
    pub revocation: &'a [RevocationCheck],
}

impl<'a> Hop<'a> {
    fn from_leg(kind: HopKind, leg: &'a Leg, started_at: OffsetDateTime) -> Hop<'a> {
        let offered_pha = match (kind, &leg.client_hello) {
            (_, Some(hello)) => Some(hello.offered_pha),
            // rustls never offers post_handshake_auth on the upstream leg.
            (HopKind::Upstream, None) => Some(false),
            _ => None,
        };
        Hop {
            kind,
            version: leg.tls_version,
            alpn: leg.alpn.as_deref(),
            cert_request: leg.cert_request.as_ref(),
            // The handshake ended before mtlscope's Certificate: nothing went on the wire.
            chain: (leg.certificate_sent != Some(false)).then_some(leg.chain.as_slice()),
            identity: leg.identity.as_ref(),
            verdict: leg.chain_verdict.as_ref(),
            issuer_lookup: leg.issuer_lookup.as_ref(),
            server_verification: leg.server_verification.as_ref(),
            server_chain: &leg.server_chain,
            alerts: &leg.alerts,
            renegotiations: &leg.renegotiations,
            offered_pha,
            handshake_done_ms: leg.handshake_done_ms,
            failure: leg.failure.as_ref(),
            error: leg.error.as_deref(),
            events: &leg.events,
            now: leg.handshake_at.unwrap_or(started_at),
            completed_late: leg.completed_late_request,
            engine: leg.engine,
            resumed: leg.resumed,
            revocation: &leg.revocation,
        }
    }

    /// Which leg, in words.
    pub fn name(&self) -> &'static str {
        match self.kind {
            HopKind::Client => "client leg",
            HopKind::Upstream => "upstream leg",
            HopKind::Wire => "wire",
        }
    }

    /// Who played the TLS client.
    pub fn client_name(&self) -> &'static str {
        match self.kind {
            HopKind::Upstream => "mtlscope",
            _ => "the client",
        }
    }

    /// Who played the TLS server.
    pub fn server_name(&self) -> &'static str {
        match self.kind {
            HopKind::Client => "mtlscope",
            _ => "the server",
        }
    }

    /// Where a fix to the client side goes.
    pub fn client_fix_target(&self) -> &'static str {
        match self.kind {
            HopKind::Upstream => "mtlscope's upstream identity (`--identity CERT,KEY`)",
            _ => "the client",
        }
    }

    /// Whether the server side sent `alert`.
    pub fn sent_by_server(&self, alert: &Alert) -> bool {
        match self.kind {
            HopKind::Client => alert.direction == Direction::Sent,
            HopKind::Upstream | HopKind::Wire => alert.direction == Direction::Received,
        }
    }

    /// Alerts that end a connection (fatal, or of unknown level), close_notify excluded.
    pub fn failing_alerts(&self) -> impl Iterator<Item = &'a Alert> + '_ {
        self.alerts.iter().filter(|a| {
            a.level != AlertLevel::Warning && a.description != AlertDescription::CloseNotify
        })
    }

    /// The failing alerts the server side sent.
    pub fn server_failing_alerts(&self) -> impl Iterator<Item = &'a Alert> + '_ {
        self.failing_alerts().filter(|a| self.sent_by_server(a))
    }

    /// The first failing alert from the server whose description is `want`.
    pub fn server_alert(&self, want: impl Fn(AlertDescription) -> bool) -> Option<&'a Alert> {
        self.server_failing_alerts().find(|a| want(a.description))
    }

    /// The presented chain, when one was presented.
    pub fn presented(&self) -> Option<&'a [CertSummary]> {
        self.chain.filter(|c| !c.is_empty())
    }

    /// Whether the client side is known to have presented no certificate.
    pub fn sent_none(&self) -> bool {
        self.chain.is_some_and(|c| c.is_empty())
    }

    /// Whether the client side may have presented a certificate (presented, or not visible).
    pub fn may_have_sent(&self) -> bool {
        !self.sent_none()
    }

    /// When the server asked late (renegotiation or post-handshake), ms from connection start.
    pub fn late_since(&self) -> Option<f64> {
        let reneg = self
            .renegotiations
            .iter()
            .filter(|r| r.initiated_by == Initiator::Server)
            .map(|r| r.at_ms);
        let late_cr = self
            .cert_request
            .filter(|cr| cr.phase != Phase::Handshake)
            .map(|cr| cr.at_ms);
        reneg.chain(late_cr).reduce(f64::min)
    }

    /// Whether `alert` came after a late certificate request (the late rules explain it).
    pub fn is_late(&self, alert: &Alert) -> bool {
        alert.description == AlertDescription::NoRenegotiation
            || self.late_since().is_some_and(|t| alert.at_ms >= t)
    }

    /// Whether the session failed (a classified failure or a failing alert).
    pub fn failed(&self) -> bool {
        self.failure.is_some() || self.failing_alerts().next().is_some()
    }

    /// The client side's first bytes were not TLS (plain HTTP, a health check's newline).
    pub fn peer_not_tls(&self) -> bool {
        self.failure.is_some_and(|f| {
            matches!(f.kind, FailureKind::NotTls | FailureKind::PlainHttp)
                && f.stage == Stage::ClientHello
        })
    }

    /// The verdict on a certificate the server side did not refuse visibly: on a proxy leg
    /// mtlscope saw the handshake go on; on the wire the server's answer is encrypted, so
    /// whether it accepted cannot be told.
    pub fn no_visible_refusal(&self) -> String {
        match self.kind {
            HopKind::Wire => format!(
                "whether {} accepted it cannot be told from the wire (its answer is encrypted)",
                self.server_name()
            ),
            _ => format!("{} accepted it here", self.server_name()),
        }
    }

    /// The client opened the connection and closed it without sending a byte (a port check).
    pub fn sent_nothing(&self) -> bool {
        self.failure
            .is_some_and(|f| f.kind == FailureKind::NothingSent && f.stage == Stage::ClientHello)
    }

    /// The server side asked for a certificate in the handshake, then ended the session
    /// without a word: no alert, only a close or a reset (some stacks do this instead of
    /// sending an alert). The time from the request to the close, in ms.
    pub fn silent_close_after_request(&self) -> Option<f64> {
        let cr = self
            .cert_request
            .filter(|cr| cr.phase == Phase::Handshake)?;
        let f = self.failure?;
        let closed = matches!(
            f.kind,
            FailureKind::Eof | FailureKind::Reset | FailureKind::BrokenPipe | FailureKind::Aborted
        ) && matches!(
            f.stage,
            Stage::Handshake | Stage::AfterHandshake | Stage::Http
        );
        if !closed || self.server_failing_alerts().next().is_some() {
            return None;
        }
        let at = self
            .events
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::Error)
            .map_or(cr.at_ms, |e| e.at_ms);
        Some((at - cr.at_ms).max(0.0))
    }

    /// The evidence line for a silent close.
    pub fn describe_silent_close(&self, after_ms: f64) -> String {
        format!(
            "{} closed the connection {} after its CertificateRequest, with no alert and no HTTP answer (a silent close){}",
            capital(self.server_name()),
            ms(after_ms),
            self.error.map(|e| format!(": {e}")).unwrap_or_default()
        )
    }

    /// The intermediates the presented chain lacks, as mtlscope's configured certificates show
    /// them (issuer first), when they link it to a CA the server named (or the server named
    /// none): the chain is incomplete, observed rather than guessed.
    pub fn missing_intermediates(&self) -> Option<Vec<&'a crate::facts::KnownIssuer>> {
        let lookup = self.issuer_lookup?;
        let intermediates: Vec<_> = lookup.found.iter().filter(|k| !k.self_issued).collect();
        if intermediates.is_empty() {
            return None;
        }
        let names = self
            .cert_request
            .and_then(|cr| cr.ca_names.as_deref())
            .unwrap_or(&[]);
        let links_to_named = names.is_empty()
            || lookup
                .found
                .iter()
                .any(|k| names.iter().any(|n| n == &k.subject))
            || names.iter().any(|n| n == &lookup.issuer);
        links_to_named.then_some(intermediates)
    }

    /// The revocation answers that say a certificate of the presented chain is revoked: the
    /// client leg's own checks, or the start-up check of the identity mtlscope presented.
    pub fn revoked(&self) -> Vec<&'a RevocationCheck> {
        let mut out: Vec<&'a RevocationCheck> = self.revocation.iter().collect();
        if let Some(id) = self.identity {
            if let Some(c) = id
                .candidates
                .iter()
                .find(|c| id.chosen.as_deref() == Some(c.label.as_str()))
            {
                out.extend(c.revocation.iter());
            }
        }
        let presented = self.presented().unwrap_or(&[]);
        out.retain(|r| {
            r.status == RevocationStatus::Revoked
                && presented
                    .iter()
                    .any(|c| c.serial == r.serial && c.subject == r.subject)
        });
        out
    }

    /// The identities configured but not presented, with their chains.
    pub fn withheld(&self) -> Vec<(&'a str, &'a [CertSummary])> {
        let Some(id) = self.identity else {
            return Vec::new();
        };
        id.candidates
            .iter()
            .filter(|c| id.chosen.as_deref() != Some(c.label.as_str()))
            .map(|c| (c.label.as_str(), c.chain.as_slice()))
            .collect()
    }

    /// One alert as evidence: name, code, level, who sent it, when, and its usual meaning.
    pub fn describe_alert(&self, a: &Alert) -> String {
        let who = if self.sent_by_server(a) {
            self.server_name()
        } else {
            self.client_name()
        };
        let when = match self.handshake_done_ms {
            Some(done) if a.at_ms >= done => {
                format!("{} after the handshake finished", ms(a.at_ms - done))
            }
            Some(_) => "before the handshake finished".to_string(),
            None => "during the handshake".to_string(),
        };
        let level = match a.level {
            AlertLevel::Fatal => "fatal ",
            AlertLevel::Warning => "warning ",
            AlertLevel::Unknown => "",
        };
        let how = if a.source == crate::facts::AlertSource::Inferred {
            ", inferred from the error"
        } else {
            ""
        };
        let mut s = format!(
            "{level}alert {} ({}) sent by {who} on the {} at {} ({when}{how})",
            a.name(),
            a.code(),
            self.name(),
            ms(a.at_ms)
        );
        if let Some(m) = alert_usual_meaning(a.description) {
            s.push_str(&format!("; usually: {m}"));
        }
        s
    }

    /// The certificate request as evidence.
    pub fn describe_cr(&self, cr: &CertRequest) -> String {
        let phase = match cr.phase {
            Phase::Handshake => "in the handshake",
            Phase::Renegotiation => "by renegotiation",
            Phase::PostHandshake => "by post-handshake authentication",
        };
        let mut s = format!(
            "{} asked for a client certificate {phase} at {}",
            self.server_name(),
            ms(cr.at_ms)
        );
        if let Some(after) = cr.after_request_ms {
            s.push_str(&format!(", {} after the request", ms(after)));
        }
        if cr.mandatory == Some(true) {
            s.push_str(", as required");
        } else if cr.mandatory == Some(false) {
            s.push_str(", as optional");
        }
        s.push_str(&format!("; acceptable CAs: {}", ca_list(cr)));
        s
    }

    /// The presented chain as evidence.
    pub fn describe_presented(&self) -> String {
        match self.chain {
            None if self.kind == HopKind::Upstream => {
                "the handshake ended before mtlscope's Certificate: mtlscope presented nothing"
                    .to_string()
            }
            None => format!(
                "the chain {} presented is not visible (encrypted)",
                self.client_name()
            ),
            Some([]) if self.resumed => format!(
                "{} resumed a session in which it had presented no certificate",
                self.client_name()
            ),
            Some([]) => format!("{} presented no certificate", self.client_name()),
            Some(chain) if self.resumed => format!(
                "{} resumed a session (no certificate on the wire) in which it had presented {}",
                self.client_name(),
                chain_text(chain)
            ),
            Some(chain) => format!("{} presented {}", self.client_name(), chain_text(chain)),
        }
    }
}

/// The one capitaliser: the first letter upper-case (`the server` → `The server`), except
/// `mtlscope`, which is always written lower-case.
pub(crate) fn capital(s: &str) -> String {
    if s.starts_with("mtlscope") {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The first letter lower-case when the word is not an acronym (`The server` → `the server`,
/// `TLS` stays): a sentence's start made a clause.
pub(crate) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match (c.next(), s.chars().nth(1)) {
        (Some(f), Some(n)) if n.is_lowercase() => f.to_lowercase().chain(c).collect(),
        _ => s.to_string(),
    }
}

/// The CA names of a request, quoted.
pub(crate) fn ca_list(cr: &CertRequest) -> String {
    match &cr.ca_names {
        None => "not visible (encrypted)".into(),
        Some(names) if names.is_empty() => "an empty list".into(),
        Some(names) => names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A chain, leaf first, as `subject (issuer …, SHA-256 …) → …`.
pub(crate) fn chain_text(chain: &[CertSummary]) -> String {
    chain.iter().map(cert_text).collect::<Vec<_>>().join(" → ")
}

/// One certificate, briefly.
pub(crate) fn cert_text(c: &CertSummary) -> String {
    format!(
        "\"{}\" (issuer \"{}\", SHA-256 {})",
        c.subject,
        c.issuer,
        c.sha256.get(..16).unwrap_or(&c.sha256)
    )
}

/// Milliseconds for people: `3 ms`, `0.14 ms`, `1.5 ms`.
pub(crate) fn ms(v: f64) -> String {
    let s = if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s} ms")
}

/// An instant as RFC 3339.
pub(crate) fn when(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A flow as the rules see it.
pub(crate) struct View<'a> {
    /// The flow itself, for request, response and faults.
    pub flow: &'a Flow,
    /// Client leg, upstream leg, or the wire session, in that order where present.
    pub hops: Vec<Hop<'a>>,
}

impl<'a> View<'a> {
    /// Build the view of `flow`.
    pub fn new(flow: &'a Flow) -> View<'a> {
        let mut hops = Vec::new();
        if let Some(leg) = &flow.client_leg {
            hops.push(Hop::from_leg(HopKind::Client, leg, flow.started_at));
        }
        if let Some(leg) = &flow.upstream_leg {
            hops.push(Hop::from_leg(HopKind::Upstream, leg, flow.started_at));
        }
        if let Some(w) = &flow.wire {
            hops.push(Hop {
                kind: HopKind::Wire,
                version: w.tls_version,
                alpn: w.alpn.as_deref(),
                cert_request: w.cert_request.as_ref(),
                chain: w.client_chain.as_deref(),
                identity: None,
                verdict: None,
                issuer_lookup: None,
                server_verification: None,
                server_chain: w.server_chain.as_deref().unwrap_or(&[]),
                alerts: &w.alerts,
                renegotiations: &w.renegotiations,
                offered_pha: Some(w.client_offered_pha),
                handshake_done_ms: w
                    .events
                    .iter()
                    .find(|e| e.kind == EventKind::HandshakeDone)
                    .map(|e| e.at_ms),
                failure: None,
                error: flow.error.as_deref(),
                events: &w.events,
                now: flow.started_at,
                completed_late: None,
                engine: None,
                resumed: false,
                revocation: &[],
            });
        }
        View { flow, hops }
    }

    /// The hop facing the real server: the upstream leg, or the wire session.
    pub fn server_hop(&self) -> Option<&Hop<'a>> {
        self.hops.iter().find(|h| h.kind != HopKind::Client)
    }

    /// The hop of a kind.
    pub fn hop(&self, kind: HopKind) -> Option<&Hop<'a>> {
        self.hops.iter().find(|h| h.kind == kind)
    }

    /// The server's HTTP answer (responses mtlscope produced itself are not the server's).
    pub fn http(&self) -> Option<HttpAnswer<'a>> {
        let r = self.flow.response.as_ref()?;
        (r.source == ResponseSource::Upstream).then(|| HttpAnswer {
            status: r.status,
            body: r.body_excerpt.as_deref().unwrap_or(""),
            headers: &r.headers,
        })
    }

    /// The HTTP answer, if `hop` is the hop it came over.
    pub fn http_on(&self, hop: &Hop<'_>) -> Option<HttpAnswer<'a>> {
        (hop.kind != HopKind::Client).then(|| self.http()).flatten()
    }

    /// The request line, as `GET /path`.
    pub fn request_line(&self) -> Option<String> {
        self.flow
            .request
            .as_ref()
            .map(|r| format!("{} {}", r.method, r.uri))
    }

    /// When the request arrived, ms from connection start.
    pub fn request_at(&self) -> Option<f64> {
        self.flow.request.as_ref().map(|r| r.at_ms)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_read_naturally() {
        assert_eq!(ms(3.0), "3 ms");
        assert_eq!(ms(0.14), "0.14 ms");
        assert_eq!(ms(1.5), "1.5 ms");
        assert_eq!(ms(123.4), "123 ms");
    }
}
