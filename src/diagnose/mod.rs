//! The diagnosis: a pure function from recorded facts to findings, one rule per id of the
//! catalogue (`docs/findings.md`), grouped by the catalogue's sections.
//!
//! Rules read a [`view`] of the flow in which the client leg, the upstream leg and an observed
//! wire session are all the same shape (a hop with a client side and a server side), so each
//! rule is written once. No I/O and no clock: "now" is each leg's recorded handshake time,
//! falling back to the connection start.

pub mod alerts;
mod catalogue;
#[cfg(test)]
mod choose_flow_tests;
mod finding;
mod gaps;
mod handshake;
mod http;
mod http_refusal;
mod late;
mod middlebox;
mod not_sent;
mod offload;
mod once;
pub mod paths;
mod rejected;
mod schemes;
mod signals;
#[cfg(test)]
pub(crate) mod test_support;
mod unverified;
pub(crate) mod view;

pub use alerts::{alert_name, alert_usual_meaning};
pub use catalogue::{catalogue, CatalogueEntry, Section};
pub use late::{unanswered_late_request, RETRY_TLS12};
pub use once::{calls, Diagnosed};

/// An instant as RFC 3339, as evidence quotes it.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    view::when(t)
}

use crate::facts::{Finding, Flow};
use catalogue::finish;
use view::View;

/// Every finding the catalogue's rules draw from `flow`: most severe first, one per id,
/// in a stable order. The proxy path diagnoses through [`Diagnosed`], once per flow.
pub fn diagnose(flow: &Flow) -> Vec<Finding> {
    once::CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let view = View::new(flow);
    let mut found = Vec::new();
    found.extend(not_sent::rules(&view));
    found.extend(rejected::rules(&view));
    found.extend(handshake::rules(&view));
    found.extend(schemes::rules(&view));
    found.extend(unverified::rules(&view));
    found.extend(late::rules(&view));
    found.extend(http_refusal::rules(&view));
    found.extend(middlebox::rules(&view));
    found.extend(offload::rules(&view));
    found.extend(gaps::rules(&view));
    if let Some(f) = gaps::not_certificate_related(&view, &found) {
        found.push(f);
    }
    found.extend(gaps::unexplained(&view, &found));
    let mut out = finish(found);
    if let Some(line) = capture_evidence(flow) {
        for f in &mut out {
            f.evidence.push(line.clone());
        }
    }
    out
}

/// For a record read from a packet capture: where to look in it (file and frames), so the
/// evidence can be checked in Wireshark.
fn capture_evidence(flow: &Flow) -> Option<String> {
    let cap = flow.capture.as_ref()?;
    let marks: Vec<String> = cap
        .frames
        .iter()
        .take(12)
        .map(|m| format!("{} frame {}", m.what, m.frame))
        .collect();
    let mut line = format!(
        "capture {}, frames {}–{}",
        cap.file, cap.first_frame, cap.last_frame
    );
    if !marks.is_empty() {
        line.push_str(&format!(" ({})", marks.join(", ")));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::facts::{FindingId, Severity};
    use catalogue::finish;
    use finding::finding;
    use std::collections::BTreeSet;

    /// The repository's own catalogue: nothing here reads outside the repository.
    fn findings_md() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/findings.md");
        std::fs::read_to_string(&path).expect("docs/findings.md is committed")
    }

    /// (section heading, id) for every id in the first column of the catalogue's tables.
    fn ids_in_findings_md() -> Vec<(String, String)> {
        let mut section = String::new();
        let mut out = Vec::new();
        for line in findings_md().lines() {
            if let Some(h) = line.strip_prefix("## ") {
                section = h.to_string();
            } else if let Some(rest) = line.strip_prefix("| `") {
                if let Some((id, _)) = rest.split_once('`') {
                    out.push((section.clone(), id.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn catalogue_matches_findings_md() {
        let md = ids_in_findings_md();
        assert!(!md.is_empty(), "no ids parsed from docs/findings.md");
        let ours: Vec<(String, String)> = catalogue()
            .iter()
            .map(|e| (e.section.title().to_string(), e.id.to_string()))
            .collect();
        let ids: Vec<FindingId> = catalogue().iter().map(|e| e.id).collect();
        assert_eq!(ids, FindingId::ALL, "FindingId::ALL in catalogue order");
        for id in FindingId::ALL {
            let spelled = serde_json::to_value(id).unwrap();
            assert_eq!(spelled, id.as_str(), "serde and as_str agree");
        }
        let unique: BTreeSet<&String> = ours.iter().map(|(_, id)| id).collect();
        assert_eq!(unique.len(), ours.len(), "duplicate ids");
        assert_eq!(ours, md, "docs/findings.md and the code's catalogue differ");
    }

    #[test]
    fn successful_mutual_tls_exchange_has_no_findings() {
        assert_eq!(ids(&success()), Vec::<String>::new());
        assert_eq!(ids(&success_wire()), Vec::<String>::new());
    }

    #[test]
    fn successful_variants_carry_no_error() {
        use crate::facts::{Phase, TlsVersion};
        let variants = [
            success(),
            success_wire(),
            success_builder()
                .upstream(|l| l.tls_version = Some(TlsVersion::Tls12))
                .build(),
            success_builder()
                .upstream(|l| l.alpn = Some("h2".into()))
                .build(),
            success_builder()
                .upstream(|l| {
                    l.cert_request = None;
                    l.chain = vec![];
                })
                .client(|l| {
                    l.cert_request = None;
                    l.chain = vec![];
                })
                .build(),
            success_builder()
                .response(302, "", &[("location", "/x")])
                .build(),
            success_builder()
                .upstream(|l| l.cert_request = Some(cr(Phase::Handshake, &[])))
                .build(),
        ];
        for flow in &variants {
            let errors: Vec<_> = diagnose(flow)
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| f.id)
                .collect();
            assert!(errors.is_empty(), "{errors:?} for {flow:?}");
        }
    }

    #[test]
    fn findings_are_ordered_and_deduplicated() {
        let a = finding(
            FindingId::EmptyCaList,
            Severity::Warning,
            "a",
            vec!["x".into()],
            "f",
        );
        let b = finding(
            FindingId::EmptyCaList,
            Severity::Error,
            "b",
            vec!["y".into()],
            "f",
        );
        let c = finding(FindingId::NoClientCert, Severity::Error, "c", vec![], "f");
        let d = finding(FindingId::InjectedFault, Severity::Error, "d", vec![], "f");
        let out = finish(vec![a, c, b, d]);
        let got: Vec<_> = out.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(got, ["injected-fault", "no-client-cert", "empty-ca-list"]);
        assert_eq!(out[2].summary, "b");
        assert_eq!(out[2].evidence, ["y", "x"]);
    }
}
