//! The upstream leg's client-certificate resolver: records the server's CertificateRequest and
//! chooses which identity mtlscope presents, saying why.
//!
//! rustls calls `resolve` only when the server sends a CertificateRequest in the handshake, so a
//! request recorded by the resolver is one at `phase: handshake`. The OpenSSL engine records
//! every request, late ones too, through [`record_request`].

use super::LegRecorder;
use crate::cert::reason::match_ca_names;
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
            known.lookup_issuer_with(&leg.chain, &leg.server_chain, SERVER_CHAIN_SOURCE);
    });
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

/// Record the server's CertificateRequest on the leg (the first as `cert_request`, later ones
/// in `later_cert_requests`) and choose, by `policy`, which identity answers it, saying why.
/// Returns the chosen index into `policy.candidates()`.
pub fn record_request(
    rec: &LegRecorder,
    policy: &IdentityPolicy,
    request: CertRequest,
) -> Option<usize> {
    let ca_names = request.ca_names.clone().unwrap_or_default();
    let ca_names_der = request.ca_names_der.clone();
    rec.event(
        "certificate_request",
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
        leg.chain = index
            .map(|i| choice.candidates[i].chain.clone())
            .unwrap_or_default();
        index
    });
    rec.event(
        "certificate_presented",
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
        let chosen = record_request(&self.rec, &self.policy, request);
        let id = chosen.and_then(|i| self.policy.candidates().get(i))?;
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
                "certificate_withheld",
                Some(format!("{}: no common signature scheme", id.label)),
            );
            return None;
        }
        record_issuer_lookup(&self.rec, &self.known);
        Some(id.certified.clone())
    }

    fn has_certs(&self) -> bool {
        // True whenever resolve may return one, or TLS 1.2 signing breaks (TLS-NOTES).
        !self.policy.candidates().is_empty()
    }
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
