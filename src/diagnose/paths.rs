//! Path findings: one server seen over a reference path (usually direct) and over another path
//! (through a proxy or firewall), compared fact by fact. Each rule is a pure function of the two
//! paths' [`PathFacts`]; names of products are never the reason (the inspection-CA name list of
//! `middlebox` only adds a line of evidence).

use super::finding::finding;
use super::view::{cert_text, chain_text};
use crate::facts::path::{PathCheck, PathFacts};
use crate::facts::{Finding, FindingId, Severity};
use std::collections::BTreeSet;

/// Every path finding for `path` against the reference `direct`, most severe first.
pub fn compare(direct: &PathFacts, path: &PathFacts) -> Vec<Finding> {
    let found: Vec<Finding> = [
        intercepted(direct, path),
        removes_cert_request(direct, path),
        changes_ca_list(direct, path),
        blocks_late_request(direct, path),
        strips_client_cert(direct, path),
    ]
    .into_iter()
    .flatten()
    .collect();
    super::catalogue::finish(found)
}

/// The checks of both paths with the same version offered, request path and identity.
fn pairs<'a>(
    direct: &'a PathFacts,
    path: &'a PathFacts,
) -> impl Iterator<Item = (&'a PathCheck, &'a PathCheck)> {
    direct.checks.iter().filter_map(move |d| {
        path.checks
            .iter()
            .find(|p| p.key() == d.key())
            .map(|p| (d, p))
    })
}

/// `TLSv1.2 GET /secure` (and the identity when there is one).
fn what(c: &PathCheck) -> String {
    let version = c.offered.or(c.negotiated).map_or("TLS", |v| v.as_str());
    let who = c
        .identity
        .as_deref()
        .map(|i| format!(" with {i}"))
        .unwrap_or_default();
    format!("{version} GET {}{who}", c.path)
}

/// How a check ended, in words.
fn outcome(c: &PathCheck) -> String {
    match (c.status, &c.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => format!("no answer: {e}"),
        (None, None) => "no answer".into(),
    }
}

fn names(c: &PathCheck) -> Option<Vec<String>> {
    c.cert_request.as_ref().and_then(|cr| cr.ca_names.clone())
}

fn intercepted(direct: &PathFacts, path: &PathFacts) -> Option<Finding> {
    let d_leaf = direct.server_chain.first()?;
    let p_leaf = path.server_chain.first()?;
    if d_leaf.sha256 == p_leaf.sha256 {
        return None;
    }
    let shown: BTreeSet<&str> = direct
        .server_chain
        .iter()
        .flat_map(|c| [c.subject.as_str(), c.issuer.as_str()])
        .collect();
    if shown.contains(p_leaf.issuer.as_str()) {
        // Another leaf from the same CA: a re-issued certificate or another backend.
        return None;
    }
    let ca = &p_leaf.issuer;
    let mut evidence = vec![
        format!("{}: the server presents {}", direct.label, chain_text(&direct.server_chain)),
        format!("{}: the server presents {}", path.label, chain_text(&path.server_chain)),
        format!(
            "\"{ca}\" issued the certificate seen through {} and appears nowhere in the chain seen over {}",
            path.label, direct.label
        ),
    ];
    let product = path
        .server_chain
        .iter()
        .find_map(|c| super::signals::inspection_product(c).map(|p| (c, p)));
    if let Some((c, p)) = product {
        evidence.push(format!(
            "{} matches the TLS-inspection product \"{p}\"",
            cert_text(c)
        ));
    }
    Some(finding(
        FindingId::InterceptedUpstream,
        Severity::Error,
        format!(
            "A device on the path {} terminates TLS: it presents its own certificate, issued by \"{ca}\", which the server does not present directly. A client would have to trust \"{ca}\" to connect through it, and its client certificate cannot reach the server through it.",
            path.label
        ),
        evidence,
        format!(
            "Middlebox: add this destination to the device's TLS inspection bypass list (no decryption), so the client's handshake reaches the server; until then clients must trust \"{ca}\"."
        ),
    ))
}

fn removes_cert_request(direct: &PathFacts, path: &PathFacts) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut seen = BTreeSet::new();
    for (d, p) in pairs(direct, path) {
        if d.asked.asked() && p.asked == crate::facts::path::Asked::No {
            if !seen.insert((d.offered, d.path.clone())) {
                continue;
            }
            evidence.push(format!(
                "{}: {} — the server asked for a certificate ({}); {}",
                direct.label,
                what(d),
                d.asked.as_str(),
                outcome(d)
            ));
            evidence.push(format!(
                "{}: {} — no certificate was asked for; {}",
                path.label,
                what(p),
                outcome(p)
            ));
        }
    }
    if evidence.is_empty() {
        return None;
    }
    Some(finding(
        FindingId::PathRemovesCertRequest,
        Severity::Error,
        format!(
            "The server asks for a client certificate directly, but not through {}: a device on the path terminates TLS and answers the handshake itself, so the server's request never reaches the client.",
            path.label
        ),
        evidence,
        "Middlebox: add the destination to the device's TLS inspection bypass list, or configure the device's own client certificate for this destination (client-certificate pass-through where the device offers it).",
    ))
}

fn changes_ca_list(direct: &PathFacts, path: &PathFacts) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut seen = BTreeSet::new();
    for (d, p) in pairs(direct, path) {
        let (Some(dn), Some(pn)) = (names(d), names(p)) else {
            continue;
        };
        let ds: BTreeSet<&String> = dn.iter().collect();
        let ps: BTreeSet<&String> = pn.iter().collect();
        if ds == ps || !seen.insert((d.offered, d.path.clone())) {
            continue;
        }
        let list = |s: Vec<&&String>| match s.is_empty() {
            true => "none".to_string(),
            false => s
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let shown = |v: &[String]| match v.is_empty() {
            true => "an empty list".to_string(),
            false => v
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", "),
        };
        evidence.push(format!(
            "{}: {} — CA names {}",
            direct.label,
            what(d),
            shown(&dn)
        ));
        evidence.push(format!(
            "{}: {} — CA names {}",
            path.label,
            what(p),
            shown(&pn)
        ));
        evidence.push(format!(
            "added by the path: {}; removed by the path: {}",
            list(ps.difference(&ds).collect()),
            list(ds.difference(&ps).collect())
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    Some(finding(
        FindingId::PathChangesCaList,
        Severity::Warning,
        format!(
            "The server and the path {} ask for a client certificate with different CA names: a device re-terminates TLS with its own CertificateRequest, so clients choose their certificate by the device's list.",
            path.label
        ),
        evidence,
        "Middlebox: set the device's client-certificate CA list to the server's, or add the destination to its TLS inspection bypass list.",
    ))
}

fn blocks_late_request(direct: &PathFacts, path: &PathFacts) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut seen = BTreeSet::new();
    for (d, p) in pairs(direct, path) {
        // Directly the late request shows; through the path it does not, and the attempt
        // was cut or refused.
        if !d.asked.late()
            || p.asked.late()
            || !p.refused()
            || p.asked == crate::facts::path::Asked::No
        {
            continue;
        }
        if !seen.insert((d.offered, d.path.clone())) {
            continue;
        }
        let late = match d.asked {
            crate::facts::path::Asked::Renegotiation => "TLS 1.2 renegotiation",
            _ => "TLS 1.3 post-handshake authentication",
        };
        evidence.push(format!(
            "{}: {} — the server asked late, by {late}; {}",
            direct.label,
            what(d),
            outcome(d)
        ));
        evidence.push(format!(
            "{}: {} — no late request arrived; {}",
            path.label,
            what(p),
            outcome(p)
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    Some(finding(
        FindingId::PathBlocksLateRequest,
        Severity::Error,
        format!(
            "The server asks for the certificate late (after the request); directly that request arrives, through {} it is cut or refused.",
            path.label
        ),
        evidence,
        "Server: ask for the certificate in the initial handshake (nginx `ssl_verify_client`, Apache `SSLVerifyClient` at server level); or Middlebox: let TLS renegotiation through for this destination (or bypass inspection for it).",
    ))
}

fn strips_client_cert(direct: &PathFacts, path: &PathFacts) -> Option<Finding> {
    let mut evidence = Vec::new();
    for (d, p) in pairs(direct, path) {
        if d.identity.is_none() || !d.accepted() || !p.refused() {
            continue;
        }
        let presented = |c: &PathCheck| match (c.presented, c.asked.asked()) {
            (true, _) => "the certificate was presented",
            (false, true) => "asked, but nothing was presented",
            (false, false) => "no certificate was asked for, so none was presented",
        };
        evidence.push(format!(
            "{}: {} — {}; {}",
            direct.label,
            what(d),
            presented(d),
            outcome(d)
        ));
        evidence.push(format!(
            "{}: {} — {}; {}",
            path.label,
            what(p),
            presented(p),
            outcome(p)
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    Some(finding(
        FindingId::PathStripsClientCert,
        Severity::Error,
        format!(
            "The same identity is accepted directly and refused through {}: the device does not forward the client's certificate to the server.",
            path.label
        ),
        evidence,
        "Middlebox: enable client-certificate pass-through (or TLS inspection bypass) for this destination, or have the device forward the identity in a header the server trusts.",
    ))
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
