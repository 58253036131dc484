//! The facts line of each leg for the 502 body and the terminal (`upstream TLSv1.3 h2: server
//! asked for a cert (CA: …); mtlscope presented CN=client; alerts: …`) and where a flow broke.

use crate::facts::{AlertDescription, CertRequest, CertSummary, Direction, Flow, Leg, Phase};

/// Who did something on a leg, as the facts line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Party {
    /// The real client.
    Client,
    /// mtlscope itself.
    Mtlscope,
    /// The real server.
    Server,
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Party::Client => "client",
            Party::Mtlscope => "mtlscope",
            Party::Server => "server",
        })
    }
}

/// Where the flow broke, in words.
pub(crate) fn what_failed(flow: &Flow) -> String {
    let legs = [
        ("upstream leg", &flow.upstream_leg),
        ("client leg", &flow.client_leg),
    ];
    for (name, leg) in legs {
        if let Some(leg) = leg {
            if let Some(f) = &leg.failure {
                let mut s = format!("the {name}, at {} ({})", f.stage, f.kind);
                if let Some(e) = &leg.error {
                    s.push_str(&format!(": {e}"));
                }
                return s;
            }
            if let Some(e) = &leg.error {
                return format!("the {name}: {e}");
            }
        }
    }
    match (&flow.error, &flow.upstream_leg) {
        (Some(e), _) => e.clone(),
        (None, None) => "the upstream leg was never opened".into(),
        (None, Some(_)) => "the upstream exchange did not complete".into(),
    }
}

/// Key TLS facts per leg, e.g. `upstream TLSv1.3: server asked for a cert (CA: CN=Root);
/// presented CN=client`.
pub(crate) fn tls_facts(flow: &Flow) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(leg) = &flow.client_leg {
        out.push(leg_facts("client", Party::Mtlscope, Party::Client, leg));
    }
    if let Some(leg) = &flow.upstream_leg {
        out.push(leg_facts("upstream", Party::Server, Party::Mtlscope, leg));
    }
    if let Some(w) = &flow.wire {
        out.push(facts_line(
            "wire",
            w.tls_version.map(|v| v.as_str()),
            w.alpn.as_deref(),
            Party::Server,
            if w.cert_request_hidden() {
                Asked::Hidden
            } else if w.tls_version.is_none() && w.cert_request.is_none() {
                Asked::NotReached
            } else {
                Asked::Seen(w.cert_request.as_ref())
            },
            Party::Client,
            w.client_chain.as_deref(),
            &w.alerts
                .iter()
                .filter(|a| a.description != AlertDescription::CloseNotify)
                .map(|a| {
                    let who = match a.direction {
                        Direction::Sent => Party::Client,
                        Direction::Received => Party::Server,
                    };
                    format!("{} from {who}", a.name())
                })
                .collect::<Vec<_>>(),
        ));
    }
    out
}

fn leg_facts(name: &str, asker: Party, presenter: Party, leg: &Leg) -> String {
    let alerts: Vec<String> = leg
        .alerts
        .iter()
        .filter(|a| a.description != AlertDescription::CloseNotify)
        .map(|a| {
            // `sent` is always mtlscope; `received` is its peer on this leg.
            let who = match a.direction {
                Direction::Sent => Party::Mtlscope,
                Direction::Received if asker == Party::Mtlscope => presenter,
                Direction::Received => asker,
            };
            format!("{} from {who}", a.name())
        })
        .collect();
    facts_line(
        name,
        leg.protocol(),
        leg.alpn.as_deref(),
        asker,
        Asked::Seen(leg.cert_request.as_ref()),
        presenter,
        // What went on the wire: nothing when the handshake ended before the Certificate.
        (leg.certificate_sent != Some(false)).then_some(leg.chain.as_slice()),
        &alerts,
    )
}

/// What is known of a certificate request.
enum Asked<'a> {
    /// Seen (or known to be absent).
    Seen(Option<&'a CertRequest>),
    /// Encrypted on the wire (TLS 1.3): cannot tell.
    Hidden,
    /// The handshake never got that far: nothing to say.
    NotReached,
}

#[allow(clippy::too_many_arguments)] // one line, many small facts
fn facts_line(
    name: &str,
    version: Option<&str>,
    alpn: Option<&str>,
    asker: Party,
    asked: Asked<'_>,
    presenter: Party,
    chain: Option<&[CertSummary]>,
    alerts: &[String],
) -> String {
    let mut head = name.to_string();
    head.push(' ');
    head.push_str(version.unwrap_or("no TLS"));
    if let Some(a) = alpn {
        head.push_str(&format!(" {a}"));
    }
    let mut parts = Vec::new();
    let cr = match &asked {
        Asked::Seen(cr) => *cr,
        Asked::Hidden => {
            parts.push(format!(
                "whether the {asker} asked for a cert: encrypted: cannot tell"
            ));
            None
        }
        Asked::NotReached => None,
    };
    match cr {
        None if matches!(asked, Asked::Seen(_)) => parts.push(format!("{asker} asked for no cert")),
        None => {}
        Some(cr) => {
            let when = match cr.phase {
                Phase::Handshake => "",
                Phase::Renegotiation => " by renegotiation",
                Phase::PostHandshake => " after the handshake",
            };
            let cas = match &cr.ca_names {
                None => "not visible".to_string(),
                Some(n) if n.is_empty() => "empty list".to_string(),
                Some(n) if n.len() > 3 => format!("{}, … ({} names)", n[..3].join("; "), n.len()),
                Some(n) => n.join("; "),
            };
            parts.push(format!("{asker} asked for a cert{when} (CA: {cas})"));
        }
    }
    match chain {
        Some([]) if cr.is_some() => parts.push(format!("{presenter} presented none")),
        Some([]) => {}
        Some(chain) => parts.push(format!(
            "{presenter} presented {}",
            chain.first().map(|c| c.subject.as_str()).unwrap_or("")
        )),
        None if presenter == Party::Mtlscope => parts
            .push("mtlscope presented nothing (the handshake ended before its Certificate)".into()),
        None => parts.push(format!("{presenter}'s chain not visible")),
    }
    if !alerts.is_empty() {
        parts.push(format!("alerts: {}", alerts.join(", ")));
    }
    format!("{head}: {}", parts.join("; "))
}
