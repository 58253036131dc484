//! `diff --paths`: two recordings of the same servers, one made directly and one through a
//! device, paired by host (the flow's `upstream`); within a host, connections are paired by
//! version offered, request path and identity, and compared as `probe --via` compares paths.
//! Each recording is read once into a [`Collected`] (per host: the checks, not the flows).

use super::check_of;
use crate::facts::path::PathFacts;
use crate::facts::{Finding, Flow};
use std::collections::HashMap;

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

/// One recording's paths, collected flow by flow: per host (in order of first appearance)
/// the first server chain seen and one check per connection. Holds the checks, never the
/// flows, so a recording is read once, record by record.
#[derive(Debug, Default)]
pub struct Collected {
    /// Hosts that had an upstream leg, in order of first appearance, with their facts.
    hosts: Vec<(String, PathFacts)>,
    /// Position of each host in `hosts`.
    at: HashMap<String, usize>,
}

impl Collected {
    /// Take in one flow: a flow without an upstream or an upstream leg tells nothing.
    pub fn add(&mut self, flow: &Flow) {
        let (Some(h), Some(leg)) = (&flow.upstream, &flow.upstream_leg) else {
            return;
        };
        let i = match self.at.get(h) {
            Some(&i) => i,
            None => {
                self.at.insert(h.clone(), self.hosts.len());
                self.hosts.push((h.clone(), PathFacts::default()));
                self.hosts.len() - 1
            }
        };
        let facts = &mut self.hosts[i].1;
        if facts.server_chain.is_empty() {
            facts.server_chain = leg.server_chain.clone();
        }
        facts.checks.extend(check_of(flow));
    }
}

/// Pair the hosts of two recordings (`a` the reference) and compare each; also returns the
/// hosts only one recording has.
pub fn compare(
    label_a: &str,
    a: &[&Flow],
    label_b: &str,
    b: &[&Flow],
) -> (Vec<HostPaths>, Vec<String>) {
    let collect = |flows: &[&Flow]| {
        let mut c = Collected::default();
        for f in flows {
            c.add(f);
        }
        c
    };
    compare_collected(label_a, collect(a), label_b, collect(b))
}

/// [`compare`] over two recordings already collected (`diff --paths` streams each file into
/// a [`Collected`]).
pub fn compare_collected(
    label_a: &str,
    a: Collected,
    label_b: &str,
    mut b: Collected,
) -> (Vec<HostPaths>, Vec<String>) {
    let labelled = |mut f: PathFacts, label: &str| {
        f.label = label.to_string();
        f
    };
    let mut both = Vec::new();
    let mut alone = Vec::new();
    for (h, pa) in a.hosts {
        let Some(&i) = b.at.get(&h) else {
            alone.push(format!("{h}: only in {label_a}"));
            continue;
        };
        let pa = labelled(pa, label_a);
        let pb = labelled(std::mem::take(&mut b.hosts[i].1), label_b);
        let findings = crate::diagnose::paths::compare(&pa, &pb);
        both.push(HostPaths {
            host: h,
            a: pa,
            b: pb,
            findings,
        });
    }
    alone.extend(
        b.hosts
            .iter()
            .filter(|(h, _)| !a.at.contains_key(h))
            .map(|(h, _)| format!("{h}: only in {label_b}")),
    );
    (both, alone)
}

#[cfg(test)]
mod tests {
    use super::compare;
    use crate::diagnose::test_support::{cr, leg, success_builder};
    use crate::facts::{Phase, TlsVersion};

    #[test]
    fn hosts_are_paired_and_the_path_findings_named_per_host() {
        let asked = success_builder()
            .upstream(|l| {
                *l = leg(TlsVersion::Tls12);
                l.cert_request = Some(cr(Phase::Handshake, &["Root"]));
            })
            .build();
        let not_asked = success_builder()
            .upstream(|l| *l = leg(TlsVersion::Tls12))
            .build();
        let mut elsewhere = asked.clone();
        elsewhere.upstream = Some("other.test:443".into());
        let (hosts, alone) = compare("a.jsonl", &[&asked, &elsewhere], "b.jsonl", &[&not_asked]);
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].host, "server.test:8443");
        let ids: Vec<_> = hosts[0].findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["path-removes-cert-request"]);
        assert!(hosts[0].findings[0].evidence[0].starts_with("a.jsonl: "));
        assert_eq!(alone, ["other.test:443: only in a.jsonl"]);
    }
}
