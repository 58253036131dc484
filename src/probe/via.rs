//! `probe --via`: the same probe over each network path in turn, each path's flows turned into
//! [`PathFacts`], and each path compared with the reference by `diagnose::paths`.

use super::{ProbePlan, ProbeReport};
use crate::facts::path::PathFacts;
use crate::facts::Finding;
use crate::paths::{facts_of, reference_first, Via};
use crate::record::Sink;
use std::sync::Arc;

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
        let report = super::run(&p, sink).await;
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
