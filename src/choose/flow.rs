//! The selection model applied to a recorded flow: for each leg that carried a
//! CertificateRequest, the certificates on offer there (the one the client presented; on the
//! upstream leg, every identity mtlscope held) and what each stack would have sent. The
//! diagnosis quotes it in its not-sent findings, and the web view shows it as "What each client
//! would send".

use super::{choose, render, Candidate, Outcome, Request, Stack, StackAnswer};
use crate::facts::{CertRequest, CertSummary, Flow, Leg, TlsVersion};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The certificates on offer at a leg: the identities mtlscope held (upstream), else the chain
/// presented. Labels: the identity's, or the presented leaf's subject.
fn offered(leg: &Leg) -> Vec<Candidate> {
    if let Some(id) = leg.identity.as_ref().filter(|i| !i.candidates.is_empty()) {
        return id
            .candidates
            .iter()
            .filter(|c| !c.chain.is_empty())
            .map(|c| candidate(&c.label, &c.chain))
            .collect();
    }
    match leg.chain.first() {
        Some(leaf) => vec![candidate(&leaf.subject, &leg.chain)],
        None => Vec::new(),
    }
}

fn candidate(label: &str, chain: &[CertSummary]) -> Candidate {
    Candidate {
        label: label.to_string(),
        chain: chain.to_vec(),
        // It was presented, or mtlscope loaded it with its key.
        has_key: true,
        store: None,
    }
}

/// The web view's table for a flow: one entry per leg with a request and something on offer.
pub fn flow_json(flow: &Flow) -> Value {
    let legs = [
        ("client", &flow.client_leg),
        ("upstream", &flow.upstream_leg),
    ];
    let mut out = Vec::new();
    for (name, leg) in legs {
        let Some(leg) = leg else { continue };
        let Some(cr) = leg.cert_request.as_ref() else {
            continue;
        };
        let at = leg.handshake_at.unwrap_or(flow.started_at);
        let Some(req) = Request::from_recorded(cr, leg.tls_version, at) else {
            continue;
        };
        let cands = offered(leg);
        if cands.is_empty() {
            continue;
        }
        let answers = choose(&req, &cands);
        out.push(json!({
            "leg": name,
            "offered": cands.iter().map(|c| &c.label).collect::<Vec<_>>(),
            "stacks": answers.iter().map(|a| render::stack_json(a, &cands)).collect::<Vec<_>>(),
        }));
    }
    Value::Array(out)
}

/// One evidence line for a not-sent finding: which stacks would have sent what, given the
/// certificates on offer; `None` when the CA names are unknown or nothing was on offer.
pub fn stacks_evidence(
    cr: &CertRequest,
    version: Option<TlsVersion>,
    at: OffsetDateTime,
    offered: &[(&str, &[CertSummary])],
) -> Option<String> {
    let req = Request::from_recorded(cr, version, at)?;
    let cands: Vec<Candidate> = offered
        .iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(l, c)| candidate(l, c))
        .collect();
    if cands.is_empty() {
        return None;
    }
    let answers = choose(&req, &cands);
    let labels: Vec<String> = cands.iter().map(|c| format!("`{}`", c.label)).collect();
    Some(format!(
        "with {} on offer, {} (see `mtlscope certs choose`)",
        labels.join(" and "),
        grouped(&answers, &cands)
    ))
}

/// "java, go would send nothing (issuer not among …); openssl would send `x`".
fn grouped(answers: &[StackAnswer], cands: &[Candidate]) -> String {
    let mut groups: Vec<(String, Vec<Stack>)> = Vec::new();
    for a in answers {
        let what = match &a.outcome {
            Outcome::Sends(i) => match a.candidates.get(*i).and_then(|j| j.note.as_ref()) {
                Some(note) => format!("send `{}` (although {note})", cands[*i].label),
                None => format!("send `{}`", cands[*i].label),
            },
            Outcome::AsksUser(_) => "ask the user".into(),
            Outcome::SendsNone => {
                // With one candidate, say why it was refused.
                match a.candidates.as_slice() {
                    [only] => format!(
                        "send nothing ({})",
                        only.skip.as_ref().map(|s| s.words()).unwrap_or_default()
                    ),
                    _ => "send nothing".into(),
                }
            }
        };
        match groups.iter_mut().find(|(w, _)| *w == what) {
            Some((_, stacks)) => stacks.push(a.stack),
            None => groups.push((what, vec![a.stack])),
        }
    }
    groups
        .iter()
        .map(|(what, stacks)| {
            let names: Vec<&str> = stacks.iter().map(|s| s.name()).collect();
            format!("{} would {what}", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
