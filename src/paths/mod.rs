//! Comparing network paths to one server: the same server seen directly and through a device
//! (`probe --via`, `diff --paths`). This module turns recorded flows into [`PathFacts`] (one
//! [`PathCheck`] per connection); `diagnose::paths` decides from two of them and
//! `render::paths` shows them side by side. [`via`] names the paths; [`recordings`] pairs the
//! hosts of two recordings.

pub mod recordings;
pub mod via;

use crate::facts::path::{Asked, PathCheck, PathFacts};
use crate::facts::{Direction, FailureKind, Flow, Initiator, Phase, TlsVersion};
use crate::facts::{Finding, FindingId};
use crate::probe::{ProbePlan, ProbeReport};
use crate::record::Sink;
use std::sync::Arc;
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

/// One path's probe.
#[derive(Clone, Debug)]
pub struct PathRun {
    /// Which path.
    pub via: Via,
    /// What the probe did over it.
    pub report: ProbeReport,
    /// Its facts.
    pub facts: PathFacts,
}

/// Everything `probe --via` found: each path's run, and the findings of each path compared
/// with the first (the reference: `direct` whenever it is among the paths).
#[derive(Clone, Debug)]
pub struct PathsReport {
    /// The runs, the reference first.
    pub runs: Vec<PathRun>,
    /// For each path after the first: its findings against the reference.
    pub findings: Vec<Vec<Finding>>,
}

/// Probe the plan over every path in turn (same identities, versions and request paths), then
/// compare each path with the reference, the direct path (see [`reference_first`]).
pub async fn run(plan: &ProbePlan, vias: &[Via], sink: &Sink) -> PathsReport {
    let mut runs = Vec::new();
    for via in reference_first(vias) {
        let mut p = plan.clone();
        p.target.via = via.proxy().map(Arc::new);
        let report = crate::probe::run(&p, sink).await;
        let facts = facts_of(&via.label(), report.attempts.iter().map(|a| &a.flow));
        runs.push(PathRun {
            via: via.clone(),
            report,
            facts,
        });
    }
    let findings = match runs.split_first() {
        Some((first, rest)) => rest
            .iter()
            .map(|r| crate::diagnose::paths::compare(&first.facts, &r.facts))
            .collect(),
        None => Vec::new(),
    };
    PathsReport { runs, findings }
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
