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
