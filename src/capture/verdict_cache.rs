//! Server-certificate verdicts already reached: a proxy meets the same upstream chain on every
//! connection, and verifying it again (two ECDSA verifications per chain) was the largest
//! single cost of a new connection after the handshakes themselves (perf: 13% of CPU). Only
//! successes are kept, for at most [`TTL`] and never past the chain's earliest `notAfter`, so a
//! cached verdict is the one webpki would give again.

use crate::facts::CertSummary;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a success is reused.
const TTL_SECS: u64 = 300;
/// Entries kept before the cache starts over.
const MAX_ENTRIES: usize = 1024;

/// Successful verifications by chain, server name and OCSP response.
#[derive(Debug, Default)]
pub struct VerdictCache {
    /// Key → (verified at, reusable until), in seconds since the epoch.
    entries: Mutex<HashMap<[u8; 32], (u64, u64)>>,
}

/// What a verification was asked: the key a verdict is filed under.
pub struct Question([u8; 32]);

impl Question {
    /// The question for these inputs.
    pub fn new(
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
    ) -> Question {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let name = server_name.to_str();
        for part in std::iter::once(name.as_bytes())
            .chain(std::iter::once(ocsp_response))
            .chain(std::iter::once(end_entity.as_ref()))
            .chain(intermediates.iter().map(|c| c.as_ref()))
        {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        Question(key)
    }
}

impl VerdictCache {
    /// Whether this question was answered "verified" recently enough to reuse.
    pub fn verified(&self, q: &Question, now: UnixTime) -> bool {
        let now = now.as_secs();
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries
            .get(&q.0)
            .is_some_and(|&(at, until)| at <= now && now < until)
    }

    /// Remember a success for `chain` (its summaries give the earliest `notAfter`).
    pub fn remember(&self, q: Question, chain: &[CertSummary], now: UnixTime) {
        let now = now.as_secs();
        let expires = chain
            .iter()
            .map(|c| c.not_after.unix_timestamp().max(0) as u64)
            .min()
            .unwrap_or(now);
        let until = expires.min(now + TTL_SECS);
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(q.0, (now, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn summary(not_after: i64) -> CertSummary {
        let t = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        CertSummary {
            subject: "CN=upstream.test".into(),
            issuer: "CN=ca".into(),
            serial: "01".into(),
            not_before: t(0),
            not_after: t(not_after),
            sha256: String::new(),
            sha1: String::new(),
            eku: vec![],
            has_eku: false,
            key_usage: vec![],
            has_key_usage: false,
            sans: vec![],
            is_ca: false,
            self_issued: false,
            subject_der: String::new(),
            issuer_der: String::new(),
            key: String::new(),
        }
    }

    #[test]
    fn a_success_is_reused_within_its_ttl_and_the_chains_validity_only() {
        let cache = VerdictCache::default();
        let ee = CertificateDer::from(vec![1, 2, 3]);
        let name = ServerName::try_from("upstream.test").unwrap();
        let q = || Question::new(&ee, &[], &name, &[]);
        let t0 = UnixTime::since_unix_epoch(Duration::from_secs(1_000_000));
        let at = |s: u64| UnixTime::since_unix_epoch(Duration::from_secs(1_000_000 + s));
        assert!(!cache.verified(&q(), t0));
        cache.remember(q(), &[summary(2_000_000)], t0);
        assert!(cache.verified(&q(), at(299)));
        assert!(!cache.verified(&q(), at(300)), "past the TTL");
        let before = UnixTime::since_unix_epoch(Duration::from_secs(999_999));
        assert!(!cache.verified(&q(), before), "before it was verified");
        // Another name or chain is another question.
        let other = ServerName::try_from("other.test").unwrap();
        assert!(!cache.verified(&Question::new(&ee, &[], &other, &[]), at(1)));
        // A chain that expires sooner is not reused past its notAfter.
        let cache = VerdictCache::default();
        cache.remember(q(), &[summary(2_000_000), summary(1_000_010)], t0);
        assert!(cache.verified(&q(), at(9)));
        assert!(!cache.verified(&q(), at(10)));
    }
}
