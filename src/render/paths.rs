//! Paths side by side: the facts each path showed about one server (`probe --via`,
//! `diff --paths`), differences first through `diff`'s renderer, then the path findings.

use super::diff::{pair_facts, side_by_side, FactPair};
use crate::facts::path::{PathCheck, PathFacts};
use crate::facts::Finding;
use crate::paths::recordings::HostPaths;
use crate::paths::version_word;
use crate::probe::via::PathsReport;
use serde_json::{json, Value};

/// The facts of one path, in display order, as name/value pairs.
pub fn facts(p: &PathFacts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let leaf = p.server_chain.first();
    out.push((
        "server leaf".to_string(),
        leaf.map_or("none seen".into(), |c| c.subject.clone()),
    ));
    out.push((
        "server leaf sha256".to_string(),
        leaf.map_or("none seen".into(), |c| c.sha256.clone()),
    ));
    out.push((
        "server leaf issuer".to_string(),
        leaf.map_or("none seen".into(), |c| c.issuer.clone()),
    ));
    out.push((
        "server chain sha256".to_string(),
        list(p.server_chain.iter().map(|c| short(&c.sha256))),
    ));
    for c in &p.checks {
        let name = key_name(c);
        let mut put = |f: &str, v: String| out.push((format!("{name} {f}"), v));
        let asked = match c.asked_inferred {
            true => format!("{} (inferred)", c.asked.as_str()),
            false => c.asked.as_str().to_string(),
        };
        put("asked", asked);
        let cr = c.cert_request.as_ref();
        put(
            "ca_names",
            cr.map_or("none".into(), |cr| match &cr.ca_names {
                None => "not visible".into(),
                Some(n) => list(n.iter().cloned()),
            }),
        );
        put(
            "signature_schemes",
            cr.map_or("none".into(), |cr| {
                list(cr.signature_schemes.iter().cloned())
            }),
        );
        put("tls_version", version_word(c.negotiated).to_string());
        put("alpn", c.alpn.clone().unwrap_or_else(|| "none".into()));
        put("presented", c.presented.to_string());
        put("alerts", list(c.alerts.iter().cloned()));
        put("status", c.status.map_or("none".into(), |s| s.to_string()));
        put(
            "failure",
            c.failure
                .as_ref()
                .map_or("none".into(), |f| format!("{} at {}", f.kind, f.stage)),
        );
    }
    out
}

fn key_name(c: &PathCheck) -> String {
    format!(
        "{} GET {} [{}]",
        version_word(c.offered),
        c.path,
        c.identity.as_deref().unwrap_or("no identity")
    )
}

fn short(sha: &str) -> String {
    sha.get(..16).unwrap_or(sha).to_string()
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

/// Both paths' facts paired.
pub fn compare(a: &PathFacts, b: &PathFacts) -> Vec<FactPair> {
    pair_facts(&facts(a), &facts(b))
}

/// One comparison as text: the findings, then the differences and the side-by-side table.
fn comparison_text(a: &PathFacts, b: &PathFacts, findings: &[Finding]) -> String {
    let mut s = format!("\n{} compared with {}:\n", b.label, a.label);
    if findings.is_empty() {
        s.push_str("  no path findings: the path shows the server as the reference does\n");
    } else {
        for line in super::explain::findings_text(findings).lines() {
            match line.is_empty() {
                true => s.push('\n'),
                false => s.push_str(&format!("  {line}\n")),
            }
        }
    }
    s.push('\n');
    s.push_str(&side_by_side(&compare(a, b), &a.label, &b.label));
    s
}

/// `probe --via` as text.
pub fn probe_text(r: &PathsReport) -> String {
    let url = r.runs.first().map(|p| p.report.url.as_str()).unwrap_or("");
    let labels: Vec<String> = r.runs.iter().map(|p| p.facts.label.clone()).collect();
    let mut s = format!(
        "mtlscope probe {url} over {} paths: {}\n",
        labels.len(),
        labels.join(", ")
    );
    if let Some((first, rest)) = r.runs.split_first() {
        for (run, findings) in rest.iter().zip(&r.findings) {
            s.push_str(&comparison_text(&first.facts, &run.facts, findings));
        }
    }
    for run in &r.runs {
        s.push_str(&format!("\nAttempts over {}:\n", run.facts.label));
        for (i, a) in run.report.attempts.iter().enumerate() {
            s.push_str(&format!(
                "  {}. {}, {}, GET {}: {}\n",
                i + 1,
                a.offered.as_str(),
                a.identity.as_deref().unwrap_or("no identity"),
                a.path,
                crate::render::probe::verdict(a)
            ));
        }
        for skipped in &run.report.skipped {
            s.push_str(&format!("  skipped {skipped}\n"));
        }
    }
    s
}

fn comparison_json(a: &PathFacts, b: &PathFacts, findings: &[Finding]) -> Value {
    let pairs = compare(a, b);
    json!({
        "reference": a.label,
        "path": b.label,
        "findings": findings,
        "differences": pairs.iter().filter(|p| p.differs()).collect::<Vec<_>>(),
        "facts": pairs,
    })
}

/// `probe --via --json`.
pub fn probe_json(r: &PathsReport) -> Value {
    let comparisons: Vec<Value> = match r.runs.split_first() {
        Some((first, rest)) => rest
            .iter()
            .zip(&r.findings)
            .map(|(run, f)| comparison_json(&first.facts, &run.facts, f))
            .collect(),
        None => vec![],
    };
    let paths: Vec<Value> = r
        .runs
        .iter()
        .map(|run| {
            json!({
                "path": run.facts.label,
                "facts": run.facts,
                "probe": crate::render::probe::to_json(&run.report),
            })
        })
        .collect();
    json!({
        "url": r.runs.first().map(|p| p.report.url.clone()),
        "paths": paths,
        "comparisons": comparisons,
    })
}

/// `diff --paths` as text.
pub fn recordings_text(hosts: &[HostPaths], alone: &[String]) -> String {
    let mut s = String::new();
    if hosts.is_empty() {
        s.push_str("No host appears in both recordings.\n");
    }
    for h in hosts {
        s.push_str(&format!("Host {}:", h.host));
        s.push_str(&comparison_text(&h.a, &h.b, &h.findings));
        s.push('\n');
    }
    for a in alone {
        s.push_str(&format!("{a}\n"));
    }
    s
}

/// `diff --paths --json`.
pub fn recordings_json(hosts: &[HostPaths], alone: &[String]) -> Value {
    json!({
        "hosts": hosts.iter().map(|h| {
            let mut v = comparison_json(&h.a, &h.b, &h.findings);
            v["host"] = json!(h.host);
            v
        }).collect::<Vec<_>>(),
        "unmatched": alone,
    })
}
