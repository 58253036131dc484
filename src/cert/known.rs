//! The CA certificates mtlscope knows from its own configuration (`--client-ca`,
//! `--upstream-ca`, identity chains, the local CA): where a chain that stops short of its issuer
//! can be completed from, so "the intermediate is missing" is decided from certificates, not
//! guessed.

use super::summarize;
use crate::facts::{CertSummary, IssuerLookup, KnownIssuer};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;

/// How many issuers a lookup follows upwards (a loop or a very long chain stops here).
const MAX_DEPTH: usize = 8;

/// CA certificates by subject, each with where it was configured.
#[derive(Debug, Default)]
pub struct KnownCerts {
    /// Subject DER (hex, lowercase) → certificates with that subject, and their source.
    by_subject: HashMap<String, Vec<(CertSummary, String)>>,
}

impl KnownCerts {
    /// An empty index.
    pub fn new() -> KnownCerts {
        KnownCerts::default()
    }

    /// Add the CA certificates among `certs`, found in `source` (e.g. `--upstream-ca root.pem`).
    /// Leaves are skipped: only a CA can complete a chain.
    pub fn add(&mut self, certs: &[CertificateDer<'_>], source: &str) {
        for der in certs {
            let Ok(summary) = summarize(der) else {
                continue;
            };
            if !summary.is_ca {
                continue;
            }
            let list = self
                .by_subject
                .entry(summary.subject_der.to_ascii_lowercase())
                .or_default();
            if !list.iter().any(|(c, _)| c.sha256 == summary.sha256) {
                list.push((summary, source.to_string()));
            }
        }
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_subject.is_empty()
    }

    /// When `chain` ends at a certificate that is not self-issued and whose issuer it does not
    /// include, look that issuer up, and its issuers in turn: the certificates that would
    /// complete the chain, issuer first. `None` when the chain is complete.
    pub fn lookup_issuer(&self, chain: &[CertSummary]) -> Option<IssuerLookup> {
        self.lookup_issuer_with(chain, &[], "")
    }

    /// As [`KnownCerts::lookup_issuer`], also searching `seen` (certificates the other side
    /// sent, e.g. the server's own chain), named `seen_source`.
    pub fn lookup_issuer_with(
        &self,
        chain: &[CertSummary],
        seen: &[CertSummary],
        seen_source: &str,
    ) -> Option<IssuerLookup> {
        let last = chain.last()?;
        if last.self_issued {
            return None;
        }
        let find = |subject: &str| -> Option<(&CertSummary, &str)> {
            self.by_subject
                .get(subject)
                .and_then(|l| l.first())
                .map(|(c, s)| (c, s.as_str()))
                .or_else(|| {
                    seen.iter()
                        .find(|c| c.is_ca && c.subject_der.eq_ignore_ascii_case(subject))
                        .map(|c| (c, seen_source))
                })
        };
        let mut found = Vec::new();
        let mut want = last.issuer_der.to_ascii_lowercase();
        while found.len() < MAX_DEPTH {
            let Some((cert, source)) = find(&want) else {
                break;
            };
            found.push(KnownIssuer {
                subject: cert.subject.clone(),
                sha256: cert.sha256.clone(),
                self_issued: cert.self_issued,
                source: source.to_string(),
            });
            if cert.self_issued {
                break;
            }
            want = cert.issuer_der.to_ascii_lowercase();
        }
        Some(IssuerLookup {
            issuer: last.issuer.clone(),
            found,
        })
    }
}
