//! Comparing network paths to one server: the same server seen directly and through a device
//! (`probe --via`, `diff --paths`). This module turns recorded flows into [`PathFacts`] (one
//! [`PathCheck`] per connection); `diagnose::paths` decides from two of them and
//! `render::paths` shows them side by side; `probe::via` runs the probe over each path.
//! [`via`] names the paths; [`recordings`] pairs the hosts of two recordings.

pub mod recordings;
pub mod via;

use crate::facts::path::{Asked, PathCheck, PathFacts};
use crate::facts::{Direction, FailureKind, FindingId, Flow, Initiator, Phase, TlsVersion};
pub use via::Via;

/// When the flows of one path and version saw the certificate asked for, most telling first:
/// a late request (seen, then inferred), then one in the handshake, then an answer without one.
/// The boolean says whether the answer is inferred.
pub fn asked(flows: &[&Flow]) -> (Asked, bool) {
    let legs: Vec<_> = flows
        .iter()
        .filter_map(|f| f.upstream_leg.as_ref())
        .collect();
    let phase = |p: Phase| {
        legs.iter()
            .any(|l| l.cert_request.as_ref().is_some_and(|cr| cr.phase == p))
    };
    if phase(Phase::Renegotiation)
        || legs.iter().any(|l| {
            l.renegotiations
                .iter()
                .any(|r| r.initiated_by == Initiator::Server)
        })
    {
        return (Asked::Renegotiation, false);
    }
    if phase(Phase::PostHandshake)
        || legs.iter().any(|l| {
            l.failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::PostHandshakeCertificateRequest)
        })
    {
        return (Asked::PostHandshake, false);
    }
    if flows.iter().any(|f| {
        f.findings
            .iter()
            .any(|x| x.id == FindingId::PostHandshakeAuth)
    }) {
        return (Asked::PostHandshake, true);
    }
    if phase(Phase::Handshake) {
        return (Asked::Handshake, false);
    }
    if flows.iter().any(|f| f.response.is_some()) {
        return (Asked::No, false);
    }
    (Asked::Unknown, false)
}

/// One connection's check: `None` for a flow without an upstream leg (nothing was tried).
pub fn check_of(flow: &Flow) -> Option<PathCheck> {
    let leg = flow.upstream_leg.as_ref()?;
    let offered = match leg.client_hello.as_ref().map(|h| h.versions.as_slice()) {
        Some([only]) => Some(*only),
        _ => leg.tls_version,
    };
    let identity = leg.identity.as_ref().and_then(|i| {
        i.chosen
            .clone()
            .or_else(|| i.candidates.first().map(|c| c.label.clone()))
    });
    let (asked, asked_inferred) = asked(&[flow]);
    let alerts = leg
        .alerts
        .iter()
        .map(|a| {
            let dir = match a.direction {
                Direction::Received => "received",
                Direction::Sent => "sent",
            };
            format!("{dir} {:?} {}", a.level, a.name()).to_lowercase()
        })
        .collect();
    Some(PathCheck {
        offered,
        path: flow
            .request
            .as_ref()
            .map(|r| r.uri.clone())
            .unwrap_or_else(|| "/".into()),
        identity,
        negotiated: leg.tls_version,
        alpn: leg.alpn.clone(),
        asked,
        asked_inferred,
        cert_request: leg.cert_request.clone(),
        presented: !leg.chain.is_empty(),
        alerts,
        status: flow.status(),
        failure: leg.failure.clone(),
        error: leg.error.clone().or_else(|| flow.error.clone()),
    })
}

/// The facts of one path from its flows (in order): the first server chain seen and every
/// connection's check.
pub fn facts_of<'a>(label: &str, flows: impl IntoIterator<Item = &'a Flow>) -> PathFacts {
    let mut out = PathFacts {
        label: label.to_string(),
        ..PathFacts::default()
    };
    for flow in flows {
        if out.server_chain.is_empty() {
            if let Some(leg) = &flow.upstream_leg {
                out.server_chain = leg.server_chain.clone();
            }
        }
        out.checks.extend(check_of(flow));
    }
    out
}

/// The paths with the reference first: the first direct one (`direct`, or `env` when the
/// environment names no proxy), whatever the order they were given in; without one, the first
/// path. The others keep their order, each compared with the reference.
pub fn reference_first(vias: &[Via]) -> Vec<Via> {
    let mut out = vias.to_vec();
    if let Some(i) = out.iter().position(|v| v.proxy().is_none()) {
        let direct = out.remove(i);
        out.insert(0, direct);
    }
    out
}

/// `TLSv1.3`-style name of an optional version, for tables.
pub fn version_word(v: Option<TlsVersion>) -> &'static str {
    v.map_or("-", |v| v.as_str())
}
