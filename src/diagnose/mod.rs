//! The diagnosis: a pure function from recorded facts to findings, one rule per id of the
//! catalogue (`docs/findings.md`), grouped by the catalogue's sections.
//!
//! Rules read a [`view`] of the flow in which the client leg, the upstream leg and an observed
//! wire session are all the same shape (a hop with a client side and a server side), so each
//! rule is written once. No I/O and no clock: "now" is each leg's recorded handshake time,
//! falling back to the connection start.

pub mod alerts;
#[cfg(test)]
mod choose_flow_tests;
mod gaps;
mod handshake;
mod http;
mod http_refusal;
mod late;
mod middlebox;
mod not_sent;
mod offload;
pub mod paths;
mod rejected;
mod schemes;
#[cfg(test)]
pub(crate) mod test_support;
mod unverified;
pub(crate) mod view;

pub use alerts::{alert_name, alert_usual_meaning};
pub use late::{unanswered_late_request, RETRY_TLS12};

/// An instant as RFC 3339, as evidence quotes it.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    view::when(t)
}

use crate::facts::{Finding, FindingId, Flow, Severity};
use view::View;

/// The catalogue's sections, in the catalogue's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// The server wanted a certificate and did not get one.
    NotSent,
    /// A certificate was sent and refused.
    Rejected,
    /// The certificate was asked for after the handshake.
    Late,
    /// TLS accepted the certificate; HTTP refused the request.
    HttpRefusal,
    /// Something between client and server changed what happened.
    Middlebox,
    /// No rule explains it, or the peer does not speak TLS.
    Gaps,
}

impl Section {
    /// The section's heading in `docs/findings.md`.
    pub fn title(self) -> &'static str {
        match self {
            Section::NotSent => "Certificate not sent",
            Section::Rejected => "Certificate sent and rejected",
            Section::Late => "Asked for late",
            Section::HttpRefusal => "Accepted by TLS, refused by HTTP",
            Section::Middlebox => "Middleboxes and proxies",
            Section::Gaps => "Gaps and non-TLS peers",
        }
    }
}

/// One catalogue entry: a finding id the diagnosis can emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// Stable id, e.g. `no-client-cert`.
    pub id: FindingId,
    /// Catalogue section it belongs to.
    pub section: Section,
    /// What it means, in one line.
    pub description: &'static str,
}

const fn entry(id: FindingId, section: Section, description: &'static str) -> CatalogueEntry {
    CatalogueEntry {
        id,
        section,
        description,
    }
}

static CATALOGUE: &[CatalogueEntry] = &[
    entry(FindingId::NoClientCert, Section::NotSent, "The server asked for a client certificate and got none, then refused the handshake or the request."),
    entry(FindingId::IssuerNotInCaList, Section::NotSent, "No certificate in the chain on offer matches the CA names the server asked for, so many clients send nothing."),
    entry(FindingId::EmptyCaList, Section::NotSent, "The CertificateRequest named no CA: legal, but clients with several certificates may pick the wrong one."),
    entry(FindingId::ChainUntrusted, Section::Rejected, "The server does not trust the issuer of the certificate it was sent."),
    entry(FindingId::ChainIncomplete, Section::Rejected, "The chain sent lacks an intermediate, so the server cannot build a path to a CA it trusts."),
    entry(FindingId::CertExpired, Section::Rejected, "A certificate in the chain was past its notAfter at handshake time (or the server said certificate_expired)."),
    entry(FindingId::CertNotYetValid, Section::Rejected, "A certificate in the chain was before its notBefore at handshake time."),
    entry(FindingId::CertRevoked, Section::Rejected, "The certificate is revoked: the server said so, or its CRL or OCSP responder lists it."),
    entry(FindingId::WrongPurpose, Section::Rejected, "The leaf lacks the clientAuth extended key usage or the digitalSignature key usage."),
    entry(FindingId::NoCommonSignatureScheme, Section::Rejected, "The CertificateRequest's signature algorithms exclude every scheme the identity's key can make, so the certificate could not be used."),
    entry(FindingId::ClientCertNotVerified, Section::Rejected, "The server asks for a client certificate and accepted one it could not have verified: it does not check client certificates."),
    entry(FindingId::CaListTooLarge, Section::Rejected, "The CertificateRequest's CA names exceed 16 KiB; some clients refuse the handshake and Windows servers truncate the list."),
    entry(FindingId::KeyUnusable, Section::Rejected, "The private key does not match the certificate or cannot be used, so the signature check failed."),
    entry(FindingId::HandshakeRejected, Section::Rejected, "A fatal alert ended the handshake that no more specific finding explains."),
    entry(FindingId::RenegotiationRequested, Section::Late, "The server asked for the certificate late, by TLS 1.2 renegotiation after a request."),
    entry(FindingId::PostHandshakeAuth, Section::Late, "The server wants the certificate after a TLS 1.3 handshake, which needs post-handshake auth."),
    entry(FindingId::Http2BlocksLateAuth, Section::Late, "A late certificate request on an HTTP/2 connection, which HTTP/2 forbids."),
    entry(FindingId::AccessDeniedAfterAuth, Section::HttpRefusal, "TLS accepted the certificate, then the application refused the identity with 401/403."),
    entry(FindingId::CertNotRegistered, Section::HttpRefusal, "TLS accepted the certificate, but the service's own registry does not know it."),
    entry(FindingId::IisSubstatus, Section::HttpRefusal, "An IIS error revealed a 403.x sub-status that names the client-certificate problem."),
    entry(FindingId::IdentityNotForwarded, Section::Middlebox, "The client presented a certificate, but the upstream saw none or a different one."),
    entry(FindingId::ClientSentIdentityHeader, Section::Middlebox, "With --forward-client-cert, the client's request already carried an identity header the offloader sets."),
    entry(FindingId::InterceptedUpstream, Section::Middlebox, "The upstream certificate comes from a CA the direct path does not show (or a TLS-inspection CA): a middlebox sits on the path."),
    entry(FindingId::ServerCertUntrusted, Section::Middlebox, "mtlscope could not verify the upstream server's certificate."),
    entry(FindingId::ProxyAuthRequired, Section::Middlebox, "A forward proxy answered 407 and wants credentials; not a certificate problem."),
    entry(FindingId::UpstreamUnreachable, Section::Middlebox, "The TCP connection to the upstream was refused, timed out, or reset before TLS."),
    entry(FindingId::PathRemovesCertRequest, Section::Middlebox, "Comparing paths: the server asks for a certificate directly, and not through the path (a device answers the handshake)."),
    entry(FindingId::PathChangesCaList, Section::Middlebox, "Comparing paths: both ask for a certificate, with different CA names."),
    entry(FindingId::PathBlocksLateRequest, Section::Middlebox, "Comparing paths: a late certificate request arrives directly and is cut or refused through the path."),
    entry(FindingId::PathStripsClientCert, Section::Middlebox, "Comparing paths: the same identity is accepted directly and refused through the path."),
    entry(FindingId::InjectedFault, Section::Middlebox, "A configured mtlscope fault acted on this connection: the failure is a reproduction."),
    entry(FindingId::ProxyLimitReached, Section::Middlebox, "mtlscope's own limit (--max-connections) closed this connection at accept: neither peer caused it."),
    entry(FindingId::Unexplained, Section::Gaps, "A failure no other rule explains; the facts that were there are quoted so the gap is visible."),
    entry(FindingId::ClientNotTls, Section::Gaps, "The client's first bytes were not a TLS ClientHello (plain HTTP, a health check, a scanner)."),
    entry(FindingId::PortCheck, Section::Gaps, "The client opened a TCP connection and closed it without sending a byte: a port check (load balancer, Kubernetes, `nc -z`), not a failed connection."),
    entry(FindingId::NotCertificateRelated, Section::Gaps, "The server answered 404/405/410/413/415/429 and both legs' certificate story is clean: an HTTP matter, not a certificate one."),
];

/// Every id the diagnosis can emit, in catalogue order.
pub fn catalogue() -> &'static [CatalogueEntry] {
    CATALOGUE
}

/// Every finding the catalogue's rules draw from `flow`: most severe first, one per id,
/// in a stable order.
pub fn diagnose(flow: &Flow) -> Vec<Finding> {
    let view = View::new(flow);
    let mut found = Vec::new();
    found.extend(not_sent::rules(&view));
    found.extend(rejected::rules(&view));
    found.extend(schemes::rules(&view));
    found.extend(unverified::rules(&view));
    found.extend(late::rules(&view));
    found.extend(http_refusal::rules(&view));
    found.extend(middlebox::rules(&view));
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

/// Ids that name a cause so precisely that, at the same severity, they come before the rest:
/// a named missing intermediate before the CA-list mismatch it causes, a key the server's
/// signature schemes exclude before "no certificate", a revocation before "untrusted".
const SPECIFIC: &[FindingId] = &[
    FindingId::CertRevoked,
    FindingId::NoCommonSignatureScheme,
    FindingId::ChainIncomplete,
    FindingId::CaListTooLarge,
];

/// Ids that name a symptom more than a cause: after every other finding of the same severity
/// (a completed late request before an advisory about the CA list).
const GENERIC: &[FindingId] = &[
    FindingId::IssuerNotInCaList,
    FindingId::ChainUntrusted,
    FindingId::EmptyCaList,
    FindingId::HandshakeRejected,
    FindingId::Unexplained,
];

/// One finding per id (the most severe kept, the others' evidence added), ordered by severity,
/// then injected faults first (so a reproduction is never read as real), then specific causes
/// before generic symptoms, then catalogue order.
fn finish(found: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for f in found {
        match out.iter_mut().find(|o| o.id == f.id) {
            Some(o) => {
                let (mut keep, other) = if f.severity > o.severity {
                    (f, o.clone())
                } else {
                    (o.clone(), f)
                };
                for e in other.evidence {
                    if !keep.evidence.contains(&e) {
                        keep.evidence.push(e);
                    }
                }
                *o = keep;
            }
            None => out.push(f),
        }
    }
    let rank = |id: FindingId| {
        let pos = CATALOGUE
            .iter()
            .position(|e| e.id == id)
            .unwrap_or(CATALOGUE.len());
        let class = if SPECIFIC.contains(&id) {
            0
        } else if GENERIC.contains(&id) {
            2
        } else {
            1
        };
        (id != FindingId::InjectedFault, class, pos)
    };
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| rank(a.id).cmp(&rank(b.id)))
    });
    out
}

/// The evidence line of an inference starts with this; [`inferred`] builds it and [`finding`]
/// marks a finding that carries one as inferred.
const INFERRED: &str = "inferred: ";

/// The evidence line saying what a finding concludes rather than observes, and what would
/// confirm it.
fn inferred(text: impl AsRef<str>) -> String {
    format!("{INFERRED}{}", text.as_ref())
}

/// Build a finding (rules only fill in words).
fn finding(
    id: FindingId,
    severity: Severity,
    summary: impl Into<String>,
    evidence: Vec<String>,
    fix: impl Into<String>,
) -> Finding {
    let inferred = evidence.iter().any(|e| e.starts_with(INFERRED));
    Finding {
        id,
        severity,
        summary: summary.into(),
        evidence,
        fix: fix.into(),
        inferred,
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
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
