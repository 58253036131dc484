//! Revocation checks of certificates mtlscope presents (its upstream identities, at start-up)
//! and, with `--check-revocation`, of the chains clients present: the CRLs given with `--crl`,
//! the CRL named in a certificate's CRL distribution points (fetched, cached until its
//! nextUpdate), and the OCSP responder named in its authority information access. Each fetch is
//! bounded ([`FETCH_TIMEOUT`]); a check never runs on a relay's path (client-leg checks run in
//! their own task and attach their verdict when it is ready).
//!
//! The answers are facts ([`RevocationCheck`]); `cert-revoked` reads them.

mod crl;
mod fetch;
mod ocsp;

pub use crl::{Crl, CrlError};

use crate::facts::{RevocationCheck, RevocationSource, RevocationStatus};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// The bound on each CRL fetch and each OCSP exchange.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// A fetched CRL is kept at most this long when it names no nextUpdate.
const CACHE_WITHOUT_NEXT_UPDATE: time::Duration = time::Duration::minutes(10);

/// Why the revocation settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// A `--crl` file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `--crl` file is not a CRL.
    #[error(transparent)]
    Crl(#[from] CrlError),
}

/// The revocation checker a process shares: offline CRLs, the fetch cache, the switches.
#[derive(Debug)]
pub struct Checker {
    /// CRLs from `--crl`, consulted first.
    offline: Vec<Crl>,
    /// Whether CRL distribution points and OCSP responders are asked.
    fetch: bool,
    /// The bound on each fetch.
    timeout: Duration,
    /// Fetched CRLs by URL, kept until their nextUpdate.
    cache: Mutex<HashMap<String, Crl>>,
}

impl Checker {
    /// A checker with the CRLs in `crl_files`; `fetch` allows asking the network.
    pub fn new(crl_files: &[PathBuf], fetch: bool) -> Result<Checker, RevocationError> {
        let mut offline = Vec::new();
        for path in crl_files {
            offline.push(read_crl_file(path)?);
        }
        Ok(Checker {
            offline,
            fetch,
            timeout: FETCH_TIMEOUT,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether this checker can answer anything at all.
    pub fn is_active(&self) -> bool {
        self.fetch || !self.offline.is_empty()
    }

    /// Check every certificate of `chain` (leaf first) that is not self-issued: one answer per
    /// certificate that names a source (or that a `--crl` covers), the first definite one.
    pub async fn check_chain(&self, chain: &[CertificateDer<'_>]) -> Vec<RevocationCheck> {
        let parsed: Vec<X509Certificate<'_>> = chain
            .iter()
            .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, x)| x))
            .collect();
        let mut out = Vec::new();
        for (i, cert) in parsed.iter().enumerate() {
            if cert.subject().as_raw() == cert.issuer().as_raw() {
                continue;
            }
            let issuer = parsed
                .get(i + 1)
                .filter(|p| p.subject().as_raw() == cert.issuer().as_raw());
            if let Some(check) = self.check_one(cert, issuer, chain.get(i + 1)).await {
                out.push(check);
            }
        }
        out
    }

    /// Run [`Checker::check_chain`] to completion from synchronous start-up code (inside or
    /// outside a runtime), on its own thread.
    pub fn check_chain_blocking(
        self: &Arc<Self>,
        chain: &[CertificateDer<'static>],
    ) -> Vec<RevocationCheck> {
        let me = self.clone();
        let chain = chain.to_vec();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(me.check_chain(&chain)),
                Err(_) => Vec::new(),
            }
        });
        worker.join().unwrap_or_default()
    }

    async fn check_one(
        &self,
        cert: &X509Certificate<'_>,
        issuer: Option<&X509Certificate<'_>>,
        issuer_der: Option<&CertificateDer<'_>>,
    ) -> Option<RevocationCheck> {
        let mut unknown = None;
        for crl in self.offline.iter().filter(|c| c.covers(cert)) {
            let check = crl.status(cert, issuer);
            if check.status != RevocationStatus::Unknown {
                return Some(check);
            }
            unknown.get_or_insert(check);
        }
        if !self.fetch {
            return unknown;
        }
        for url in crl::distribution_points(cert) {
            let check = match self.crl_for(&url).await {
                Ok(crl) if crl.covers(cert) => crl.status(cert, issuer),
                Ok(_) => self.unknown(
                    cert,
                    RevocationSource::CrlUrl,
                    &url,
                    "the CRL is about another issuer",
                ),
                Err(e) => self.unknown(cert, RevocationSource::CrlUrl, &url, &e),
            };
            if check.status != RevocationStatus::Unknown {
                return Some(check);
            }
            unknown.get_or_insert(check);
        }
        if let Some(issuer_der) = issuer_der.filter(|_| issuer.is_some()) {
            for url in crl::ocsp_responders(cert) {
                let check = ocsp::ask(
                    &url,
                    cert.as_raw(),
                    issuer_der.as_ref(),
                    crate::cert::dn_to_string(cert.subject().as_raw()),
                    crate::cert::summary::colon_hex(cert.raw_serial()),
                    self.timeout,
                )
                .await;
                if check.status != RevocationStatus::Unknown {
                    return Some(check);
                }
                unknown.get_or_insert(check);
            }
        }
        unknown
    }

    fn unknown(
        &self,
        cert: &X509Certificate<'_>,
        source: RevocationSource,
        location: &str,
        why: &str,
    ) -> RevocationCheck {
        RevocationCheck {
            subject: crate::cert::dn_to_string(cert.subject().as_raw()),
            serial: crate::cert::summary::colon_hex(cert.raw_serial()),
            status: RevocationStatus::Unknown,
            source,
            location: location.to_string(),
            this_update: None,
            next_update: None,
            revoked_at: None,
            reason: None,
            error: Some(why.to_string()),
        }
    }

    /// The CRL at `url`, from the cache while it is current, else fetched (and cached).
    async fn crl_for(&self, url: &str) -> Result<Crl, String> {
        let now = OffsetDateTime::now_utc();
        if let Some(c) = self.cached(url, now) {
            return Ok(c);
        }
        let body = fetch::fetch(url, None, self.timeout)
            .await
            .map_err(|e| e.to_string())?;
        let crl = Crl::parse(&body, url, RevocationSource::CrlUrl).map_err(|e| e.to_string())?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(url.to_string(), crl.clone());
        }
        Ok(crl)
    }

    fn cached(&self, url: &str, now: OffsetDateTime) -> Option<Crl> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(url)?;
        let until = c
            .next_update
            .or_else(|| c.this_update.map(|t| t + CACHE_WITHOUT_NEXT_UPDATE))?;
        (now < until).then(|| c.clone())
    }
}

fn read_crl_file(path: &Path) -> Result<Crl, RevocationError> {
    let bytes = std::fs::read(path).map_err(|source| RevocationError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Crl::parse(
        &bytes,
        &path.display().to_string(),
        RevocationSource::CrlFile,
    )?)
}

/// One start-up warning line per revoked certificate, for people.
pub fn warning(label: &str, check: &RevocationCheck) -> Option<String> {
    (check.status == RevocationStatus::Revoked).then(|| {
        format!(
            "identity {label}: \"{}\" (serial {}) is revoked{}{} according to {} {}{}",
            check.subject,
            check.serial,
            check
                .revoked_at
                .map(|t| format!(" since {}", crate::diagnose::rfc3339(t)))
                .unwrap_or_default(),
            check
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            check.source.words(),
            check.location,
            check
                .this_update
                .map(|t| format!(", thisUpdate {}", crate::diagnose::rfc3339(t)))
                .unwrap_or_default(),
        )
    })
}
