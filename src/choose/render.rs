//! `certs choose`'s answers as text and as JSON. Decides nothing: every word comes from the
//! model's [`StackAnswer`]s.

use super::{Basis, Candidate, Judged, Outcome, Request, StackAnswer};
use serde_json::{json, Value};

/// A candidate's verdict in words, for one stack.
pub fn candidate_why(j: &Judged, a: &StackAnswer) -> String {
    let sent = a.outcome == Outcome::Sends(j.index);
    let offered = matches!(&a.outcome, Outcome::AsksUser(v) if v.contains(&j.index));
    let head = match (&j.skip, sent, offered) {
        (_, true, _) => "sent".to_string(),
        (_, _, true) => "offered to the user".to_string(),
        (Some(s), _, _) => s.words(),
        (None, _, _) => "eligible".to_string(),
    };
    match &j.note {
        Some(n) if sent => format!("sent although {n}"),
        Some(n) if offered || j.skip.is_none() => format!("{head}: {n}"),
        Some(n) if j.eligible => n.clone(),
        _ => head,
    }
}

/// What the stack does, in a few words: `sends a.pem`, `sends nothing`, `asks the user`.
pub fn outcome_words(a: &StackAnswer, cands: &[Candidate]) -> String {
    match &a.outcome {
        Outcome::Sends(i) => format!("sends {}", cands[*i].label),
        Outcome::SendsNone => "sends nothing".into(),
        Outcome::AsksUser(_) => "asks the user".into(),
    }
}

/// The JSON document: `{"request": {...}, "stacks": [...]}`.
pub fn to_json(source: &str, req: &Request, cands: &[Candidate], answers: &[StackAnswer]) -> Value {
    json!({
        "request": {
            "source": source,
            "ca_names": req.ca_names,
            "signature_schemes": req.signature_schemes,
            "version": req.version,
            "at": serde_json::to_value(req).ok().and_then(|v| v.get("at").cloned()),
        },
        "stacks": answers.iter().map(|a| stack_json(a, cands)).collect::<Vec<_>>(),
    })
}

/// One stack's answer as JSON.
pub fn stack_json(a: &StackAnswer, cands: &[Candidate]) -> Value {
    let mut v = json!({
        "stack": a.stack.name(),
        "clients": a.stack.clients(),
        "basis": a.stack.basis(),
        "sends": a.sends(cands),
        "why": a.why,
        "candidates": a.candidates.iter().map(|j| json!({
            "candidate": cands[j.index].label,
            "eligible": j.eligible,
            "why": candidate_why(j, a),
        })).collect::<Vec<_>>(),
    });
    if let Outcome::AsksUser(offered) = &a.outcome {
        v["asks_user"] = json!(offered.iter().map(|&i| &cands[i].label).collect::<Vec<_>>());
    }
    v
}

/// The text report.
pub fn to_text(
    source: &str,
    req: &Request,
    cands: &[Candidate],
    answers: &[StackAnswer],
) -> String {
    let mut s = String::new();
    let version = req
        .version
        .map(|v| format!(" ({})", v.as_str()))
        .unwrap_or_default();
    s += &format!("CertificateRequest from {source}{version}\n");
    if req.ca_names.is_empty() {
        s += "  acceptable CAs: (empty list: the server names none)\n";
    } else {
        for (i, n) in req.ca_names.iter().enumerate() {
            s += &format!(
                "  {} {n}\n",
                if i == 0 {
                    "acceptable CAs:"
                } else {
                    "               "
                }
            );
        }
    }
    if !req.signature_schemes.is_empty() {
        s += &format!(
            "  signature schemes: {}\n",
            req.signature_schemes.join(", ")
        );
    }
    s += "\n";
    let width = answers
        .iter()
        .map(|a| outcome_words(a, cands).len())
        .max()
        .unwrap_or(0);
    let label_width = cands
        .iter()
        .map(|c| c.label.len())
        .max()
        .unwrap_or(0)
        .max(8);
    for a in answers {
        let label = match a.stack.basis() {
            Basis::Tested => a.stack.name().to_string(),
            Basis::Documented => format!("{} (documented only)", a.stack.name()),
        };
        s += &format!(
            "{label:<29} {:<width$}  {}\n",
            outcome_words(a, cands),
            a.why
        );
        s += &format!("  {}\n", a.stack.clients());
        for j in &a.candidates {
            s += &format!(
                "    {:<label_width$}  {}\n",
                cands[j.index].label,
                candidate_why(j, a)
            );
        }
    }
    s += "\n(documented only: the rule is read from the stack's source or documentation and not \
          run here; see docs/client-cert-selection.md)\n";
    s
}
