//! `mtlscope diff`: two flows side by side, fact by fact, differences first.
//!
//! This is how a working flow is compared with a failing one: the facts that differ (the CA
//! names the server sent, the chain presented, the alert) are the lead. Only facts are compared
//! (plus the recorded finding ids); times and connection numbers always differ and are left out.

use super::escape::{cell, clean};
use crate::facts::{Alert, CertRequest, CertSummary, Direction, Flow, Leg, Phase};
use crate::recording::Record;
use serde::Serialize;
use serde_json::json;

/// One fact of both flows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FactPair {
    /// The fact's name, e.g. `upstream cert_request.ca_names`.
    pub fact: String,
    /// Its value in the first flow (`(absent)` when that flow lacks it).
    pub a: String,
    /// Its value in the second flow.
    pub b: String,
}

impl FactPair {
    /// Whether the two values differ.
    pub fn differs(&self) -> bool {
        self.a != self.b
    }
}

/// Shown for a fact one flow does not have.
const ABSENT: &str = "(absent)";
/// Shown for every fact of a leg that never existed.
const NO_LEG: &str = "(no leg)";

/// The facts of one flow, in display order, as name/value pairs.
pub fn facts(flow: &Flow) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |name: &str, value: String| out.push((name.to_string(), value));
    put("kind", enum_word(&flow.kind));
    put("mode", enum_word(&flow.mode));
    put(
        "request",
        flow.request
            .as_ref()
            .map(|r| format!("{} {} {}", r.method, r.uri, r.version))
            .unwrap_or_else(|| "none".into()),
    );
    put(
        "response.status",
        opt(flow.response.as_ref().map(|r| r.status)),
    );
    put(
        "response.source",
        opt(flow.response.as_ref().map(|r| enum_word(&r.source))),
    );
    put("error", opt(flow.error.as_ref()));
    put(
        "faults",
        list(
            flow.faults
                .iter()
                .map(|f| format!("{}: {}", f.name, f.effect)),
        ),
    );
    if flow.wire.is_none() {
        for (name, leg) in [
            ("client", &flow.client_leg),
            ("upstream", &flow.upstream_leg),
        ] {
            leg_facts(name, leg.as_deref(), &mut put);
        }
    }
    if let Some(w) = &flow.wire {
        put("wire tls_version", opt(w.tls_version.map(|v| v.as_str())));
        put("wire sni", opt(w.sni.as_ref()));
        put("wire alpn", opt(w.alpn.as_ref()));
        put("wire client_offered_pha", w.client_offered_pha.to_string());
        if w.cert_request_hidden() {
            put("wire cert_request.phase", "encrypted: cannot tell".into());
        } else {
            cert_request_facts("wire", w.cert_request.as_ref(), &mut put);
        }
        let chain = |c: &Option<Vec<CertSummary>>, f: fn(&[CertSummary]) -> String| {
            c.as_deref().map(f).unwrap_or_else(|| "not visible".into())
        };
        put(
            "wire client_chain.subjects",
            chain(&w.client_chain, subjects),
        );
        put("wire client_chain.sha256", chain(&w.client_chain, sha256s));
        put(
            "wire server_chain.subjects",
            chain(&w.server_chain, subjects),
        );
        put("wire alerts", alerts(&w.alerts));
        put("wire renegotiations", renegotiations(&w.renegotiations));
        put(
            "wire failure",
            opt(w
                .failure
                .as_ref()
                .map(|f| format!("{} at {}", f.kind, f.stage))),
        );
    }
    put(
        "findings",
        list(flow.findings.iter().map(|f| f.id.to_string())),
    );
    out
}

fn leg_facts(name: &str, leg: Option<&Leg>, put: &mut impl FnMut(&str, String)) {
    let Some(l) = leg else {
        for field in LEG_FIELDS {
            put(&format!("{name} {field}"), NO_LEG.into());
        }
        return;
    };
    let mut field = |f: &str, v: String| put(&format!("{name} {f}"), v);
    field("tls_version", opt(l.tls_version.map(|v| v.as_str())));
    field("alpn", opt(l.alpn.as_ref()));
    field("sni", opt(l.sni.as_ref()));
    cert_request_facts(name, l.cert_request.as_ref(), put);
    let mut field = |f: &str, v: String| put(&format!("{name} {f}"), v);
    field("chain.subjects", subjects(&l.chain));
    field(
        "chain.issuers",
        list(l.chain.iter().map(|c| c.issuer.clone())),
    );
    field(
        "chain.not_after",
        list(l.chain.iter().map(|c| c.not_after.date().to_string())),
    );
    field("chain.sha256", sha256s(&l.chain));
    field(
        "chain.eku",
        list(
            l.chain
                .first()
                .into_iter()
                .flat_map(|c| c.eku.iter().map(ToString::to_string)),
        ),
    );
    field(
        "chain_verdict",
        opt(l.chain_verdict.as_ref().map(|v| match &v.reason {
            _ if v.trusted => "trusted".to_string(),
            Some(r) => format!("untrusted: {r}"),
            None => "untrusted".to_string(),
        })),
    );
    field(
        "identity.chosen",
        opt(l
            .identity
            .as_ref()
            .map(|i| i.chosen.as_deref().unwrap_or("none"))),
    );
    field(
        "server_verification",
        opt(l.server_verification.as_ref().map(|v| match &v.reason {
            _ if v.ok => "ok".to_string(),
            Some(r) => format!("failed: {r}"),
            None => "failed".to_string(),
        })),
    );
    field("alerts", alerts(&l.alerts));
    field("renegotiations", renegotiations(&l.renegotiations));
    field("error", opt(l.error.as_ref()));
    field(
        "failure",
        opt(l
            .failure
            .as_ref()
            .map(|f| format!("{} at {}", f.kind, f.stage))),
    );
}

/// Every per-leg fact name, so an absent leg still lines up with a present one.
const LEG_FIELDS: [&str; 19] = [
    "tls_version",
    "alpn",
    "sni",
    "cert_request.phase",
    "cert_request.mandatory",
    "cert_request.ca_names",
    "cert_request.at_handshake",
    "chain.subjects",
    "chain.issuers",
    "chain.not_after",
    "chain.sha256",
    "chain.eku",
    "chain_verdict",
    "identity.chosen",
    "server_verification",
    "alerts",
    "renegotiations",
    "error",
    "failure",
];

fn cert_request_facts(name: &str, cr: Option<&CertRequest>, put: &mut impl FnMut(&str, String)) {
    let mut field = |f: &str, v: String| put(&format!("{name} {f}"), v);
    field(
        "cert_request.phase",
        cr.map(|c| enum_word(&c.phase))
            .unwrap_or_else(|| "none (not asked)".into()),
    );
    field("cert_request.mandatory", opt(cr.and_then(|c| c.mandatory)));
    field(
        "cert_request.ca_names",
        match cr.map(|c| &c.ca_names) {
            None => "none".into(),
            Some(None) => "not visible".into(),
            Some(Some(n)) => list(n.iter().cloned()),
        },
    );
    field(
        "cert_request.at_handshake",
        opt(cr.map(|c| c.phase == Phase::Handshake)),
    );
}

fn subjects(chain: &[CertSummary]) -> String {
    list(chain.iter().map(|c| c.subject.clone()))
}

fn sha256s(chain: &[CertSummary]) -> String {
    list(chain.iter().map(|c| c.sha256.clone()))
}

fn alerts(alerts: &[Alert]) -> String {
    list(alerts.iter().map(|a| {
        let dir = match a.direction {
            Direction::Sent => "sent",
            Direction::Received => "received",
        };
        format!("{dir} {} {}", enum_word(&a.level), a.name())
    }))
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join("; "))
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

/// A serde enum's snake_case name.
/// Renegotiations as `by server (outcome)`, one list value.
fn renegotiations(list_of: &[crate::facts::Renegotiation]) -> String {
    list(list_of.iter().map(|r| {
        format!(
            "by {}{}",
            enum_word(&r.initiated_by),
            r.outcome
                .as_ref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default()
        )
    }))
}

fn enum_word(v: &impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Both flows' facts, paired by name in display order (facts only one flow has are kept).
pub fn compare(a: &Flow, b: &Flow) -> Vec<FactPair> {
    pair_facts(&facts(a), &facts(b))
}

/// Two lists of named facts paired by name, in `fa`'s order then `fb`'s new names; a fact one
/// side lacks is shown as absent.
pub fn pair_facts(fa: &[(String, String)], fb: &[(String, String)]) -> Vec<FactPair> {
    let mut names: Vec<&String> = fa.iter().map(|(n, _)| n).collect();
    for (n, _) in fb {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let get = |f: &[(String, String)], name: &str| {
        f.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| ABSENT.into())
    };
    names
        .into_iter()
        .map(|n| FactPair {
            fact: n.clone(),
            a: get(fa, n),
            b: get(fb, n),
        })
        .collect()
}

fn title(r: &Record) -> String {
    let f = &r.flow;
    let what = f
        .request
        .as_ref()
        .map(|q| format!("{} {}", q.method, q.uri))
        .unwrap_or_else(|| "connection".into());
    let status = f.status().map(|s| format!(" → {s}")).unwrap_or_default();
    clean(&format!(
        "{} (connection {}, {}{status})",
        r.label(),
        f.connection_id,
        what
    ))
}

/// The diff as text: which flows, the differences, then every fact side by side.
pub fn text(a: &Record, b: &Record) -> String {
    let out = format!("A: {}\nB: {}\n\n", title(a), title(b));
    out + &side_by_side(&compare(&a.flow, &b.flow), "A", "B")
}

/// Fact pairs as text: the differences, then every fact side by side under the column names
/// `a_name` and `b_name` (facts empty in both left out).
pub fn side_by_side(pairs: &[FactPair], a_name: &str, b_name: &str) -> String {
    let differing: Vec<&FactPair> = pairs.iter().filter(|p| p.differs()).collect();
    let mut out = String::new();
    if differing.is_empty() {
        out.push_str("No differences in the recorded facts.\n");
    } else {
        out.push_str(&format!("Differences ({}):\n", differing.len()));
        for p in &differing {
            out.push_str(&format!(
                "  {}: {} vs {}\n",
                p.fact,
                clean(&p.a),
                clean(&p.b)
            ));
        }
    }
    out.push_str("\nSide by side (* = differs; facts empty in both are left out):\n");
    let empty = |v: &str| v == "none" || v == "[]" || v == NO_LEG;
    let pairs: Vec<&FactPair> = pairs
        .iter()
        .filter(|p| p.differs() || !empty(&p.a))
        .collect();
    let name_w = pairs.iter().map(|p| p.fact.len()).max().unwrap_or(0);
    let cells: Vec<(String, String)> = pairs
        .iter()
        .map(|p| (cell(&p.a, 60), cell(&p.b, 60)))
        .collect();
    let a_w = cells
        .iter()
        .map(|(a, _)| a.chars().count())
        .max()
        .unwrap_or(0)
        .max(a_name.chars().count());
    let a_head = cell(a_name, 60);
    let pad = a_w.saturating_sub(a_head.chars().count());
    out.push_str(&format!(
        "  {:name_w$}  {a_head}{}  {}\n",
        "FACT",
        " ".repeat(pad),
        clean(b_name)
    ));
    for (p, (ca, cb)) in pairs.into_iter().zip(&cells) {
        let mark = if p.differs() { '*' } else { ' ' };
        let pad = a_w - ca.chars().count();
        out.push_str(&format!(
            "{mark} {:name_w$}  {ca}{}  {cb}\n",
            p.fact,
            " ".repeat(pad)
        ));
    }
    out
}

/// The diff as JSON: both records' names, the differences, and every fact pair.
pub fn json(a: &Record, b: &Record) -> serde_json::Value {
    let pairs = compare(&a.flow, &b.flow);
    let side = |r: &Record| {
        json!({
            "record": r.label(),
            "line": r.line,
            "connection_id": r.flow.connection_id,
            "exchange_index": r.flow.exchange_index,
        })
    };
    json!({
        "a": side(a),
        "b": side(b),
        "differences": pairs.iter().filter(|p| p.differs()).collect::<Vec<_>>(),
        "facts": pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;
    use std::path::PathBuf;

    fn rec(flow: Flow, index: usize) -> Record {
        Record {
            file: PathBuf::from("r.jsonl"),
            line: index,
            index,
            flow: flow.into(),
            diagnosed_on_read: false,
        }
    }

    #[test]
    fn differences_lead_and_name_the_fact() {
        let good = success();
        let bad = success_builder()
            .upstream(|l| {
                if let Some(cr) = l.cert_request.as_mut() {
                    cr.ca_names = Some(vec!["CN=Other".into()]);
                }
                l.chain = vec![];
            })
            .build();
        let t = text(&rec(good.clone(), 1), &rec(bad, 2));
        assert!(
            t.contains("  upstream cert_request.ca_names: [CN=Root] vs [CN=Other]\n"),
            "{t}"
        );
        assert!(t.contains("  upstream chain.subjects: [CN=client"), "{t}");
        assert!(!t.contains("  client tls_version:"), "{t}");
        let same = compare(&good, &good);
        assert!(same.iter().all(|p| !p.differs()));
        assert!(text(&rec(good.clone(), 1), &rec(good, 1)).contains("No differences"));
    }

    #[test]
    fn an_absent_leg_lines_up_with_a_present_one() {
        let conn = FlowBuilder::reverse().connection().upstream(|_| {}).build();
        let mut no_up = conn.clone();
        no_up.upstream_leg = None;
        let pairs = compare(&conn, &no_up);
        let tls = pairs
            .iter()
            .find(|p| p.fact == "upstream tls_version")
            .unwrap();
        assert_eq!(tls.b, NO_LEG);
        assert!(tls.differs());
        let v = json(&rec(conn, 1), &rec(no_up, 2));
        assert!(!v["differences"].as_array().unwrap().is_empty());
    }
}
