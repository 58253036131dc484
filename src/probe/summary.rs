//! What the attempts add up to: which versions were negotiated and what their handshakes asked,
//! and when each path gets its certificate request.

use super::{Asked, Attempt, PathSummary, ProbeReport, VersionSummary};
use crate::facts::{Flow, Phase, TlsVersion};

impl ProbeReport {
    /// Whether any attempt got past the TCP connection (and was not reset before TLS).
    pub fn reachable(&self) -> bool {
        self.attempts.iter().any(|a| {
            !a.flow
                .findings
                .iter()
                .any(|f| f.id == "upstream-unreachable")
        })
    }

    /// The versions probed, in the plan's order, with the handshake's CertificateRequest.
    pub fn versions(&self) -> Vec<VersionSummary> {
        let mut out: Vec<VersionSummary> = Vec::new();
        for a in &self.attempts {
            let leg = a.flow.upstream_leg.clone().unwrap_or_default();
            let i = match out.iter().position(|v| v.version == a.offered) {
                Some(i) => i,
                None => {
                    out.push(VersionSummary {
                        version: a.offered,
                        negotiated: false,
                        cert_request: None,
                        error: None,
                    });
                    out.len() - 1
                }
            };
            let v = &mut out[i];
            v.negotiated |= leg.tls_version == Some(a.offered);
            if v.cert_request.is_none() {
                v.cert_request = leg
                    .cert_request
                    .clone()
                    .filter(|cr| cr.phase == Phase::Handshake);
            }
            if v.error.is_none() && leg.tls_version.is_none() {
                v.error = leg.error.clone().or_else(|| a.flow.error.clone());
            }
        }
        for v in &mut out {
            if v.negotiated {
                v.error = None;
            }
        }
        out
    }

    /// For each negotiated version and each path (in the order probed): when the certificate
    /// was asked for.
    pub fn paths(&self) -> Vec<PathSummary> {
        let negotiated: Vec<TlsVersion> = self
            .versions()
            .into_iter()
            .filter(|v| v.negotiated)
            .map(|v| v.version)
            .collect();
        let mut out: Vec<PathSummary> = Vec::new();
        for a in &self.attempts {
            if !negotiated.contains(&a.offered)
                || out
                    .iter()
                    .any(|p| p.version == a.offered && p.path == a.path)
            {
                continue;
            }
            let same: Vec<&Attempt> = self
                .attempts
                .iter()
                .filter(|b| b.offered == a.offered && b.path == a.path)
                .collect();
            let (asked, inferred) = asked_by(&same);
            out.push(PathSummary {
                path: a.path.clone(),
                version: a.offered,
                asked,
                inferred,
            });
        }
        out
    }
}

/// When the attempts on one path and version saw the certificate asked for.
fn asked_by(attempts: &[&Attempt]) -> (Asked, bool) {
    let flows: Vec<&Flow> = attempts.iter().map(|a| &a.flow).collect();
    crate::paths::asked(&flows)
}
