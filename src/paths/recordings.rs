//! `diff --paths`: two recordings of the same servers, one made directly and one through a
//! device, paired by host (the flow's `upstream`); within a host, connections are paired by
//! version offered, request path and identity, and compared as `probe --via` compares paths.

use super::facts_of;
use crate::facts::path::PathFacts;
use crate::facts::{Finding, Flow};

/// One host seen in both recordings.
#[derive(Clone, Debug)]
pub struct HostPaths {
    /// `host:port`.
    pub host: String,
    /// What the first recording showed.
    pub a: PathFacts,
    /// What the second recording showed.
    pub b: PathFacts,
    /// The path findings of `b` against `a`.
    pub findings: Vec<Finding>,
}

/// Pair the hosts of two recordings (`a` the reference) and compare each; also returns the
/// hosts only one recording has.
pub fn compare(
    label_a: &str,
    a: &[&Flow],
    label_b: &str,
    b: &[&Flow],
) -> (Vec<HostPaths>, Vec<String>) {
    let hosts = |flows: &[&Flow]| {
        let mut out: Vec<String> = Vec::new();
        for f in flows {
            if let (Some(h), Some(_)) = (&f.upstream, &f.upstream_leg) {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
        }
        out
    };
    let (ha, hb) = (hosts(a), hosts(b));
    let of = |flows: &[&Flow], host: &str, label: &str| {
        facts_of(
            label,
            flows
                .iter()
                .copied()
                .filter(|f| f.upstream.as_deref() == Some(host)),
        )
    };
    let mut both = Vec::new();
    let mut alone = Vec::new();
    for h in &ha {
        if !hb.contains(h) {
            alone.push(format!("{h}: only in {label_a}"));
            continue;
        }
        let pa = of(a, h, label_a);
        let pb = of(b, h, label_b);
        let findings = crate::diagnose::paths::compare(&pa, &pb);
        both.push(HostPaths {
            host: h.clone(),
            a: pa,
            b: pb,
            findings,
        });
    }
    alone.extend(
        hb.iter()
            .filter(|h| !ha.contains(h))
            .map(|h| format!("{h}: only in {label_b}")),
    );
    (both, alone)
}
