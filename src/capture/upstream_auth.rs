//! The upstream leg's client-certificate resolver: records the server's CertificateRequest and
//! chooses which identity mtlscope presents, saying why.
//!
//! rustls calls `resolve` only when the server sends a CertificateRequest in the handshake, so a
//! request recorded by the resolver is one at `phase: handshake`. The OpenSSL engine records
//! every request, late ones too, through [`record_request`].

use super::LegRecorder;
use crate::cert::reason::match_ca_names;
use crate::facts::EventKind;
use crate::facts::{CertRequest, IdentityCandidate, IdentityChoice, Phase};
use crate::pki::load::Identity;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::sync::Arc;

/// Which identity to present when the server asks.
#[derive(Clone, Debug)]
pub enum IdentityPolicy {
    /// Present nothing.
    None,
    /// Always present this one (like curl `--cert`), even if it does not match the CA names.
    Fixed(Arc<Identity>),
    /// Present the first whose chain matches the server's CA names (as browsers do); with an
    /// empty list, the first; with no match, nothing.
    Auto(Vec<Arc<Identity>>),
}

/// The per-connection resolver.
#[derive(Debug)]
pub struct RecordingClientResolver {
    /// Which identity to present.
    policy: IdentityPolicy,
    /// The upstream leg.
    rec: LegRecorder,
    /// Configured CA certificates, to look up the issuer a presented chain lacks.
    known: Arc<crate::cert::KnownCerts>,
}

/// Where an intermediate found in the server's own chain came from, in records.
pub const SERVER_CHAIN_SOURCE: &str = "the server's own certificate chain";

impl RecordingClientResolver {
    /// A resolver for one upstream connection; also records the identities on offer.
    pub fn new(policy: IdentityPolicy, rec: LegRecorder) -> Self {
        record_candidates(&policy, &rec);
        RecordingClientResolver {
            policy,
            rec,
            known: Arc::default(),
        }
    }

    /// Look up a presented chain's missing issuer in `known`.
    pub fn with_known(mut self, known: Arc<crate::cert::KnownCerts>) -> Self {
        self.known = known;
        self
    }
}

/// When the chain mtlscope presents lacks its last certificate's issuer, record what `known`
/// and the server's own chain say about it.
pub fn record_issuer_lookup(rec: &LegRecorder, known: &crate::cert::KnownCerts) {
    rec.with(|leg| {
        leg.issuer_lookup =
            known.lookup_issuer_with(offered_chain(leg), &leg.server_chain, SERVER_CHAIN_SOURCE);
    });
}

/// The chain on offer: the one sent, or before it is sent the chosen identity's.
pub fn offered_chain(leg: &crate::facts::Leg) -> &[crate::facts::CertSummary] {
    if !leg.chain.is_empty() || leg.certificate_sent.is_some() {
        return &leg.chain;
    }
    leg.identity
        .as_ref()
        .and_then(|i| {
            let chosen = i.chosen.as_deref()?;
            i.candidates.iter().find(|c| c.label == chosen)
        })
        .map_or(&[], |c| c.chain.as_slice())
}

impl IdentityPolicy {
    /// The identities on offer, in order.
    pub fn candidates(&self) -> &[Arc<Identity>] {
        match self {
            IdentityPolicy::None => &[],
            IdentityPolicy::Fixed(id) => std::slice::from_ref(id),
            IdentityPolicy::Auto(ids) => ids,
        }
    }
}

/// Record the identities on offer before the server has asked for anything.
pub fn record_candidates(policy: &IdentityPolicy, rec: &LegRecorder) {
    let candidates = policy
        .candidates()
        .iter()
        .map(|id| IdentityCandidate {
            label: id.label.clone(),
            chain: crate::cert::summarize_chain(id.chain.iter().map(|c| c.as_ref())),
            matches_ca_names: None,
            throwaway: id.throwaway,
            revocation: id.revocation.clone(),
        })
        .collect();
    let reason = match policy {
        IdentityPolicy::None => "no upstream identity is configured",
        _ => "the server did not ask for a certificate",
    };
    rec.with(|leg| {
        leg.identity = Some(IdentityChoice {
            candidates,
            chosen: None,
            reason: reason.into(),
        })
    });
}

/// A CertificateRequest as recorded, from its DER CA names and signature scheme names.
pub fn cert_request(
    phase: Phase,
    ca_names_der: &[&[u8]],
    signature_schemes: Vec<String>,
    at_ms: f64,
    after_request_ms: Option<f64>,
) -> CertRequest {
    CertRequest {
        phase,
        ca_names: Some(
            ca_names_der
                .iter()
                .map(|dn| crate::cert::dn_to_string(dn))
                .collect(),
        ),
        ca_names_der: ca_names_der.iter().map(|dn| crate::cert::hex(dn)).collect(),
        signature_schemes,
        mandatory: None,
        at_ms,
        after_request_ms,
    }
}

/// Record the server's CertificateRequest and the identity chosen for it (see
/// [`choose_for_request`]), for an engine whose chosen chain is what goes on the wire
/// (OpenSSL sends what its callback returns): the chain is recorded as sent.
pub fn record_request(
    rec: &LegRecorder,
    policy: &IdentityPolicy,
    request: CertRequest,
) -> Option<usize> {
    let chosen = choose_for_request(rec, policy, request);
    rec.with(|leg| {
        leg.chain = chosen_chain(leg, chosen);
        leg.certificate_sent = Some(true);
    });
    rec.event(
        EventKind::CertificatePresented,
        Some(
            chosen
                .and_then(|i| policy.candidates().get(i))
                .map_or("none".to_string(), |id| id.label.clone()),
        ),
    );
    chosen
}

/// The chain of candidate `index` as recorded in the leg's identity choice.
fn chosen_chain(leg: &crate::facts::Leg, index: Option<usize>) -> Vec<crate::facts::CertSummary> {
    index
        .and_then(|i| leg.identity.as_ref()?.candidates.get(i))
        .map(|c| c.chain.clone())
        .unwrap_or_default()
}

/// Record the server's CertificateRequest on the leg (the first as `cert_request`, later ones
/// in `later_cert_requests`) and choose, by `policy`, which identity answers it, saying why.
/// Only the choice (the intent) is recorded here: what went on the wire is recorded when it
/// does. Returns the chosen index into `policy.candidates()`.
pub fn choose_for_request(
    rec: &LegRecorder,
    policy: &IdentityPolicy,
    request: CertRequest,
) -> Option<usize> {
    let ca_names = request.ca_names.clone().unwrap_or_default();
    let ca_names_der = request.ca_names_der.clone();
    rec.event(
        EventKind::CertificateRequest,
        Some(format!("{} CA name(s)", ca_names.len())),
    );
    let chosen = rec.with(|leg| {
        if leg.cert_request.is_none() {
            leg.cert_request = Some(request);
        } else {
            leg.later_cert_requests.push(request);
        }
        let choice = leg.identity.get_or_insert_with(IdentityChoice::default);
        for cand in &mut choice.candidates {
            cand.matches_ca_names = Some(
                ca_names.is_empty()
                    || match_ca_names(&cand.chain, &ca_names, &ca_names_der).is_some(),
            );
        }
        let (index, reason) = choose(policy, &choice.candidates, ca_names.is_empty());
        choice.reason = reason;
        choice.chosen = index.map(|i| choice.candidates[i].label.clone());
        index
    });
    rec.event(
        EventKind::IdentityChosen,
        Some(
            chosen
                .and_then(|i| policy.candidates().get(i))
                .map_or("none".to_string(), |id| id.label.clone()),
        ),
    );
    chosen
}

impl ResolvesClientCert for RecordingClientResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let request = cert_request(
            Phase::Handshake,
            root_hint_subjects,
            sigschemes
                .iter()
                .map(|s| crate::wire::scheme_name(u16::from(*s)))
                .collect(),
            self.rec.clock().ms(),
            None,
        );
        let chosen = choose_for_request(&self.rec, &self.policy, request);
        let (index, id) = chosen.and_then(|i| Some((i, self.policy.candidates().get(i)?)))?;
        // rustls sends an empty Certificate when the key can sign none of the schemes the
        // server accepts: record that nothing was presented, and why.
        if id.certified.key.choose_scheme(sigschemes).is_none() {
            self.rec.with(|leg| {
                leg.chain.clear();
                if let Some(choice) = leg.identity.as_mut() {
                    choice.chosen = None;
                    choice.reason = format!(
                        "`{}` matched, but its key can make none of the signature schemes the server accepts, so no certificate was sent",
                        id.label
                    );
                }
            });
            self.rec.event(
                EventKind::CertificateWithheld,
                Some(format!("{}: no common signature scheme", id.label)),
            );
            return None;
        }
        // The issuer lookup is about the chain on offer; it is kept only if it is sent.
        record_issuer_lookup(&self.rec, &self.known);
        // The chain is recorded when it goes on the wire (see `OnTheWire`), not here.
        let key = Arc::new(OnTheWire {
            inner: id.certified.key.clone(),
            label: id.label.clone(),
            index,
            rec: self.rec.clone(),
        });
        let mut certified = CertifiedKey::new(id.certified.cert.clone(), key);
        certified.ocsp = id.certified.ocsp.clone();
        Some(Arc::new(certified))
    }

    fn has_certs(&self) -> bool {
        // True whenever resolve may return one, or TLS 1.2 signing breaks (TLS-NOTES).
        !self.policy.candidates().is_empty()
    }
}

/// The chosen identity's key as rustls sees it: records what rustls really sends. rustls asks
/// the key for a signature scheme the server accepts when the CertificateRequest arrives
/// (none: it sends an empty Certificate), and signs right after writing the Certificate, once
/// the server's certificate and signature verified: so the chain went on the wire exactly when
/// `sign` is called.
#[derive(Debug)]
struct OnTheWire {
    /// The identity's own key.
    inner: Arc<dyn rustls::sign::SigningKey>,
    /// The identity's label, for events.
    label: String,
    /// Its index among the leg's candidates.
    index: usize,
    /// The upstream leg.
    rec: LegRecorder,
}

impl rustls::sign::SigningKey for OnTheWire {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        match self.inner.choose_scheme(offered) {
            Some(signer) => Some(Box::new(SentSigner {
                inner: signer,
                label: self.label.clone(),
                index: self.index,
                rec: self.rec.clone(),
            })),
            None => {
                let detail = format!(
                    "the {:?} key of {} can sign with none of the schemes the server accepts, so the Certificate is empty",
                    self.inner.algorithm(),
                    self.label
                );
                self.rec.with(|leg| {
                    if let Some(choice) = leg.identity.as_mut() {
                        choice.reason.push_str(&format!("; but {detail}"));
                    }
                });
                self.rec.event(EventKind::IdentityKeyUnusable, Some(detail));
                None
            }
        }
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// The signer of [`OnTheWire`]: its first use means the Certificate carrying the chain was
/// just written.
#[derive(Debug)]
struct SentSigner {
    /// The identity's signer for the chosen scheme.
    inner: Box<dyn rustls::sign::Signer>,
    /// The identity's label, for events.
    label: String,
    /// Its index among the leg's candidates.
    index: usize,
    /// The upstream leg.
    rec: LegRecorder,
}

impl rustls::sign::Signer for SentSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.rec.with(|leg| {
            leg.chain = chosen_chain(leg, Some(self.index));
            leg.certificate_sent = Some(true);
        });
        self.rec.event(
            EventKind::CertificateSent,
            Some(format!("sent {}", self.label)),
        );
        let signed = self.inner.sign(message);
        self.rec.event(
            EventKind::CertificateVerifySent,
            Some(format!("{:?}", self.inner.scheme())),
        );
        signed
    }

    fn scheme(&self) -> SignatureScheme {
        self.inner.scheme()
    }
}

/// The server's certificate and signature checks are done: rustls now answers the
/// CertificateRequest (if there was one) with its Certificate, which is empty unless the
/// chosen identity's signer is about to be used (see [`SentSigner`]).
pub fn record_past_server_checks(rec: &LegRecorder) {
    let empty = rec.with(|leg| {
        if leg.cert_request.is_none() || leg.certificate_sent.is_some() {
            return false;
        }
        leg.certificate_sent = Some(true);
        let unusable = leg
            .events
            .iter()
            .any(|e| e.kind == EventKind::IdentityKeyUnusable);
        let chose = leg.identity.as_ref().is_some_and(|i| i.chosen.is_some());
        let empty = unusable || !chose;
        if empty {
            leg.issuer_lookup = None;
        }
        empty
    });
    if empty {
        rec.event(
            EventKind::CertificateSent,
            Some("empty: no certificate".into()),
        );
    }
}

/// The handshake ended at the server's certificate or signature, before mtlscope's own
/// Certificate: nothing was presented, whatever identity was chosen.
pub fn record_ended_before_certificate(rec: &LegRecorder) {
    rec.with(|leg| {
        if leg.cert_request.is_some() && leg.certificate_sent.is_none() {
            leg.certificate_sent = Some(false);
            leg.chain.clear();
            leg.issuer_lookup = None;
        }
    });
}

/// Pick a candidate and say why.
fn choose(
    policy: &IdentityPolicy,
    candidates: &[IdentityCandidate],
    empty_list: bool,
) -> (Option<usize>, String) {
    match policy {
        IdentityPolicy::None => (None, "no upstream identity is configured".into()),
        IdentityPolicy::Fixed(id) => {
            let matched = candidates
                .first()
                .and_then(|c| c.matches_ca_names)
                .unwrap_or(false);
            let why = if empty_list {
                "the server sent an empty CA list"
            } else if matched {
                "its chain matches the server's CA names"
            } else {
                "it does not match the server's CA names, but was presented as configured"
            };
            (
                Some(0),
                format!("presented the configured identity {}: {why}", id.label),
            )
        }
        IdentityPolicy::Auto(_) => {
            if candidates.is_empty() {
                return (None, "no upstream identity is configured".into());
            }
            if empty_list {
                return (
                    Some(0),
                    format!(
                        "the server sent an empty CA list; presented the first identity, {}",
                        candidates[0].label
                    ),
                );
            }
            match candidates.iter().position(|c| c.matches_ca_names == Some(true)) {
                Some(i) => (Some(i), format!("auto: {} is the first identity whose chain matches the server's CA names", candidates[i].label)),
                None => (None, format!(
                    "auto: none of the {} identities matches the server's CA names, so none was presented (as browsers do)",
                    candidates.len()
                )),
            }
        }
    }
}
