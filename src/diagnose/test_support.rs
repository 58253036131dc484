//! Hand-built flows for rule tests: a small builder over [`Flow`] and the common shapes
//! (a successful mutual-TLS exchange through the proxy, and one seen on the wire).

pub(crate) use crate::cert::reason::test_support::{ca, der_of, leaf};
use crate::facts::AlertSource;
use crate::facts::{
    Alert, AlertLevel, CertRequest, CertSummary, Direction, Flow, Header, IdentityCandidate,
    IdentityChoice, Leg, Mode, Phase, RecordKind, Request, Response, ResponseSource, TlsVersion,
    Wire,
};
use time::macros::datetime;

/// Builds a flow step by step.
pub(crate) struct FlowBuilder {
    flow: Flow,
}

impl FlowBuilder {
    /// An empty reverse-mode exchange record, connection started 2026-01-15.
    pub fn reverse() -> FlowBuilder {
        let mut flow = Flow::new(Mode::Reverse, 7, datetime!(2026-01-15 10:00 UTC));
        flow.kind = RecordKind::Exchange;
        flow.exchange_index = Some(0);
        flow.client_addr = Some("127.0.0.1:5555".into());
        flow.upstream = Some("server.test:8443".into());
        FlowBuilder { flow }
    }

    /// An observe-mode connection record.
    pub fn observe() -> FlowBuilder {
        let mut b = FlowBuilder::reverse();
        b.flow.mode = Mode::Observe;
        b.flow.kind = RecordKind::Connection;
        b.flow.exchange_index = None;
        b
    }

    /// Make it a connection record (no exchange).
    pub fn connection(mut self) -> FlowBuilder {
        self.flow.kind = RecordKind::Connection;
        self.flow.exchange_index = None;
        self.flow.request = None;
        self.flow.response = None;
        self
    }

    /// Set or edit the client leg (created as a completed TLS 1.3 leg).
    pub fn client(mut self, f: impl FnOnce(&mut Leg)) -> FlowBuilder {
        f(std::sync::Arc::make_mut(
            self.flow
                .client_leg
                .get_or_insert_with(|| std::sync::Arc::new(leg(TlsVersion::Tls13))),
        ));
        self
    }

    /// Set or edit the upstream leg (created as a completed TLS 1.3 leg).
    pub fn upstream(mut self, f: impl FnOnce(&mut Leg)) -> FlowBuilder {
        f(std::sync::Arc::make_mut(
            self.flow
                .upstream_leg
                .get_or_insert_with(|| std::sync::Arc::new(leg(TlsVersion::Tls13))),
        ));
        self
    }

    /// Set or edit the wire session (created as a completed TLS 1.2 session).
    pub fn wire(mut self, f: impl FnOnce(&mut Wire)) -> FlowBuilder {
        f(self.flow.wire.get_or_insert_with(|| {
            Box::new(Wire {
                tls_version: Some(TlsVersion::Tls12),
                client_chain: Some(vec![]),
                events: vec![crate::facts::Event::new(
                    5.0,
                    crate::facts::EventKind::HandshakeDone,
                    None,
                )],
                ..Wire::default()
            })
        }));
        self
    }

    /// `GET <uri>` at 10 ms.
    pub fn get(mut self, uri: &str) -> FlowBuilder {
        self.flow.request = Some(Request {
            method: "GET".into(),
            uri: uri.into(),
            version: crate::facts::HttpVersion::Http11,
            headers: vec![],
            at_ms: 10.0,
            forwarded_at_ms: Some(10.1),
            body_excerpt: None,
            forwarded_identity: None,
        });
        self
    }

    /// A relayed response with a body excerpt and headers.
    pub fn response(mut self, status: u16, body: &str, headers: &[(&str, &str)]) -> FlowBuilder {
        self.flow.response = Some(Response {
            status,
            source: ResponseSource::Upstream,
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            body_excerpt: (!body.is_empty()).then(|| body.to_string()),
            removed_headers: Vec::new(),
            at_ms: 20.0,
        });
        self
    }

    /// A response produced by mtlscope itself.
    pub fn own_response(self, status: u16) -> FlowBuilder {
        let mut b = self.response(status, "", &[]);
        if let Some(r) = b.flow.response.as_mut() {
            r.source = ResponseSource::Mtlscope;
        }
        b
    }

    /// Edit anything else.
    pub fn with(mut self, f: impl FnOnce(&mut Flow)) -> FlowBuilder {
        f(&mut self.flow);
        self
    }

    /// The flow.
    pub fn build(self) -> Flow {
        self.flow
    }
}

/// A completed leg: handshake done at 5 ms, no request for a certificate, nothing presented.
pub(crate) fn leg(version: TlsVersion) -> Leg {
    Leg {
        tls_version: Some(version),
        handshake_done_ms: Some(5.0),
        handshake_at: Some(datetime!(2026-01-15 10:00 UTC)),
        ..Leg::default()
    }
}

/// A CertificateRequest at 3 ms naming CAs by CN (empty slice = empty list).
pub(crate) fn cr(phase: Phase, cas: &[&str]) -> CertRequest {
    CertRequest {
        phase,
        ca_names: Some(cas.iter().map(|c| format!("CN={c}")).collect()),
        ca_names_der: cas.iter().map(|c| der_of(c)).collect(),
        signature_schemes: vec![],
        mandatory: None,
        at_ms: 3.0,
        after_request_ms: None,
    }
}

/// A fatal alert (named from the table) in `direction` at `at_ms`, read on the wire.
pub(crate) fn alert(direction: Direction, code: u8, at_ms: f64) -> Alert {
    Alert {
        direction,
        level: if code == 100 {
            AlertLevel::Warning
        } else {
            AlertLevel::Fatal
        },
        description: crate::facts::AlertDescription::from_code(code),
        at_ms,
        source: AlertSource::Wire,
        encrypted: false,
    }
}

/// The good client chain: `CN=client` ← `CN=Inter` ← `CN=Root`.
pub(crate) fn good_chain() -> Vec<CertSummary> {
    vec![leaf("client", "Inter"), ca("Inter", "Root")]
}

/// An upstream identity choice: `chosen` among labelled candidate chains.
pub(crate) fn identity(
    chosen: Option<&str>,
    candidates: &[(&str, Vec<CertSummary>)],
    reason: &str,
) -> IdentityChoice {
    IdentityChoice {
        candidates: candidates
            .iter()
            .map(|(label, chain)| IdentityCandidate {
                label: label.to_string(),
                chain: chain.clone(),
                matches_ca_names: None,
                throwaway: false,
                revocation: vec![],
            })
            .collect(),
        chosen: chosen.map(str::to_string),
        reason: reason.into(),
    }
}

/// A successful mutual-TLS exchange through the proxy: both legs asked for and got a
/// certificate from the CA named, and the server answered 200.
pub(crate) fn success() -> Flow {
    success_builder().build()
}

/// [`success`] as a builder, to change one fact.
pub(crate) fn success_builder() -> FlowBuilder {
    FlowBuilder::reverse()
        .client(|l| {
            l.cert_request = Some(CertRequest {
                mandatory: Some(false),
                ..cr(Phase::Handshake, &["Root"])
            });
            l.chain = good_chain();
        })
        .upstream(|l| {
            l.cert_request = Some(cr(Phase::Handshake, &["Root"]));
            l.chain = good_chain();
            l.identity = Some(identity(
                Some("client.pem"),
                &[("client.pem", good_chain())],
                "first identity matching the CA names",
            ));
            l.alpn = Some("http/1.1".into());
            l.server_chain = vec![leaf("server.test", "Root")];
        })
        .get("/secure")
        .response(200, "", &[])
}

/// A successful TLS 1.2 mutual-TLS session seen on the wire.
pub(crate) fn success_wire() -> Flow {
    FlowBuilder::observe()
        .wire(|w| {
            w.cert_request = Some(cr(Phase::Handshake, &["Root"]));
            w.client_chain = Some(good_chain());
        })
        .build()
}

/// The finding ids of a flow, in order.
pub(crate) fn ids(flow: &Flow) -> Vec<String> {
    super::diagnose(flow)
        .into_iter()
        .map(|f| f.id.to_string())
        .collect()
}

/// The finding with `id`, if the diagnosis emitted it.
pub(crate) fn find(flow: &Flow, id: &str) -> Option<crate::facts::Finding> {
    super::diagnose(flow).into_iter().find(|f| f.id == id)
}

/// Whether the diagnosis carries any error finding.
pub(crate) fn has_error(flow: &Flow) -> bool {
    super::diagnose(flow)
        .iter()
        .any(|f| f.severity == crate::facts::Severity::Error)
}

/// What mtlscope's configuration says about `CN=Inter`, the issuer a leaf-only chain lacks:
/// the intermediate (from `--upstream-ca ca.pem`), then the root.
pub(crate) fn inter_lookup() -> crate::facts::IssuerLookup {
    let known = |name: &str, root: bool| crate::facts::KnownIssuer {
        subject: format!("CN={name}"),
        sha256: format!("{name}-sha256"),
        self_issued: root,
        source: "--upstream-ca ca.pem".into(),
    };
    crate::facts::IssuerLookup {
        issuer: "CN=Inter".into(),
        found: vec![known("Inter", false), known("Root", true)],
    }
}
