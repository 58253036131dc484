//! The catalogue of finding ids (`docs/findings.md`): each id's section and one-line meaning,
//! and the order findings are reported in ([`finish`]).

use crate::facts::{Finding, FindingId};

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
pub(super) fn finish(found: Vec<Finding>) -> Vec<Finding> {
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
