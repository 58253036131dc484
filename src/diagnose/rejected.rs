//! Rules of the catalogue section "Certificate sent and rejected": `chain-untrusted`,
//! `chain-incomplete`, `cert-expired`, `cert-not-yet-valid`, `cert-revoked`, `wrong-purpose`,
//! `key-unusable`, and `handshake-rejected` for the alerts nothing more specific explains.

use super::alerts::{cert_verdict, CertVerdict};
use super::finding::{finding, inferred};
use super::signals::rejection;
use super::view::{capital, cert_text, chain_text, when, Hop, HopKind, View};
use crate::cert::reason::{client_purpose_problems, validity_at, Validity};
use crate::facts::FailureKind;
use crate::facts::{AlertDescription, CertSummary, Finding, FindingId, Severity};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for hop in &v.hops {
        out.extend(chain_untrusted(v, hop));
        out.extend(chain_incomplete(v, hop));
        out.extend(cert_expired(v, hop));
        out.extend(cert_not_yet_valid(v, hop));
        out.extend(cert_revoked(v, hop));
        out.extend(wrong_purpose(v, hop));
        out.extend(key_unusable(v, hop));
    }
    out
}

/// Certificates of the presented chain with a given validity at the hop's handshake time.
fn with_validity<'a>(hop: &Hop<'a>, want: Validity) -> Vec<&'a CertSummary> {
    hop.presented()
        .unwrap_or(&[])
        .iter()
        .filter(|c| validity_at(c, hop.now) == want)
        .collect()
}

/// Whether the facts name a cause more specific than "untrusted".
fn specific_cause(hop: &Hop<'_>) -> bool {
    !with_validity(hop, Validity::Expired).is_empty()
        || !with_validity(hop, Validity::NotYetValid).is_empty()
        || hop
            .presented()
            .and_then(|c| c.first())
            .is_some_and(|l| !client_purpose_problems(l).is_empty())
        || hop.missing_intermediates().is_some()
        || !hop.revoked().is_empty()
}

/// Whether the presented chain verifies, by mtlscope's own certificates, up to a CA the server
/// named: complete but for its root, and that root (held by mtlscope, e.g. `--upstream-ca`)
/// is in the request's CA names. The server's refusal then is not about trust in the issuer
/// (revocation, depth or a policy instead).
fn links_to_named_ca(hop: &Hop<'_>) -> bool {
    let (Some(lookup), Some(cr)) = (hop.issuer_lookup, hop.cert_request) else {
        return false;
    };
    let names = cr.ca_names.as_deref().unwrap_or(&[]);
    hop.presented().is_some()
        && lookup.found.len() == 1
        && lookup.found[0].self_issued
        && names.iter().any(|n| *n == lookup.found[0].subject)
}

fn stack_hint(hop: &Hop<'_>) -> Option<&'static str> {
    let a = hop.server_alert(|d| cert_verdict(d) == CertVerdict::Untrusted)?;
    Some(match a.description {
        AlertDescription::UnknownCa => {
            " The unknown_ca alert points to an OpenSSL-based server (nginx, Apache, HAProxy)."
        }
        AlertDescription::CertificateUnknown => {
            " The certificate_unknown alert points to a Java server (or an Envoy pin mismatch)."
        }
        _ => " The bad_certificate alert points to a Go server (or OpenSSL).",
    })
}

fn chain_untrusted(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let rej = rejection(v, hop).filter(|r| r.trust)?;
    if specific_cause(hop) || links_to_named_ca(hop) {
        return None;
    }
    let mut evidence = vec![hop.describe_presented()];
    evidence.extend(rej.evidence);
    if let Some(verdict) = hop.verdict.filter(|v| !v.trusted && !v.enforced) {
        evidence.push(format!(
            "mtlscope's own check against `--client-ca`: {}",
            verdict.reason.as_deref().unwrap_or("not trusted")
        ));
    }
    let mut summary = format!(
        "{} does not trust the issuer of the certificate {} presented.{}",
        capital(hop.server_name()),
        hop.client_name(),
        stack_hint(hop).unwrap_or("")
    );
    if hop.chain.is_none() {
        summary = format!("Likely: {summary} (the chain itself is not visible; to confirm, look at the client's configured certificate)");
    }
    let fix = match hop.kind {
        HopKind::Client => "mtlscope: add the client's CA with `--client-ca`, or give the client a certificate issued by one of the `--client-ca` CAs.",
        _ => "Client: use a certificate issued by a CA the server trusts; or server: add the issuing CA to its client-certificate trust store (nginx `ssl_client_certificate`/`ssl_trusted_certificate`, Apache `SSLCACertificateFile`, HAProxy `ca-file`, IIS the Client Authentication Issuers store).",
    };
    Some(finding(
        FindingId::ChainUntrusted,
        Severity::Error,
        summary,
        evidence,
        fix,
    ))
}

fn chain_incomplete(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let rej = rejection(v, hop).filter(|r| r.trust || r.silent)?;
    let missing = hop.missing_intermediates()?;
    let chain = hop.presented()?;
    let mut evidence = vec![format!(
        "{} presented {}",
        capital(hop.client_name()),
        chain_text(chain)
    )];
    evidence.extend(rej.evidence);
    for k in &missing {
        evidence.push(format!(
            "missing from the chain: the intermediate \"{}\" (SHA-256 {}), which mtlscope has from {}",
            k.subject, k.sha256, k.source
        ));
    }
    let first = missing.first().map(|k| k.subject.as_str()).unwrap_or("");
    Some(finding(
        FindingId::ChainIncomplete,
        Severity::Error,
        format!(
            "{} sent its certificate without the intermediate \"{first}\", so {} could not build a path to a CA it trusts.",
            capital(hop.client_name()),
            hop.server_name()
        ),
        evidence,
        format!(
            "{}: send the full chain (leaf + intermediates: append \"{first}\" to the certificate file); or server: install the intermediate, and check the verify depth (nginx `ssl_verify_depth` ≥ 2 for one intermediate).",
            capital(hop.client_fix_target())
        ),
    ))
}

fn human_duration(d: time::Duration) -> String {
    let s = d.whole_seconds().unsigned_abs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

fn cert_expired(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let expired = with_validity(hop, Validity::Expired);
    let a45 = hop
        .server_alert(|d| d == AlertDescription::CertificateExpired)
        .filter(|a| !hop.is_late(a));
    let http = v.http_on(hop);
    let iis17 = http.as_ref().is_some_and(|h| h.iis_substatus() == Some(17))
        && with_validity(hop, Validity::NotYetValid).is_empty();
    if expired.is_empty() && a45.is_none() && !iis17 {
        return None;
    }
    let rej = rejection(v, hop);
    let mut evidence = Vec::new();
    for c in &expired {
        evidence.push(format!(
            "{} expired at {}, {} before the handshake at {}",
            cert_text(c),
            when(c.not_after),
            human_duration(hop.now - c.not_after),
            when(hop.now)
        ));
    }
    if let Some(r) = &rej {
        evidence.extend(r.evidence.iter().cloned());
    } else if let Some(a) = a45 {
        evidence.push(hop.describe_alert(a));
    }
    if iis17 {
        if let Some(h) = &http {
            let e = format!(
                "{} — IIS 403.17 (client certificate expired or not yet valid)",
                h.evidence()
            );
            if !evidence.iter().any(|x| x.starts_with(&h.evidence())) {
                evidence.push(e);
            }
        }
    }
    let (summary, severity, fix);
    if !expired.is_empty() {
        let skew = expired
            .iter()
            .all(|c| hop.now - c.not_after < time::Duration::minutes(10));
        if rej.is_some() || iis17 {
            summary = format!(
                "The certificate {} presented had expired at the handshake time, and {} refused it.",
                hop.client_name(),
                hop.server_name()
            );
            severity = Severity::Error;
        } else {
            summary = format!(
                "The certificate {} presented had expired at the handshake time; {}, but a server that checks validity will refuse it.",
                hop.client_name(),
                hop.no_visible_refusal()
            );
            severity = Severity::Warning;
        }
        fix = format!(
            "{}: renew the certificate.{}",
            capital(hop.client_fix_target()),
            if skew {
                " It expired only minutes before the handshake: also check clock skew between client and server."
            } else {
                " If the dates look right, check clock skew between client and server."
            }
        );
    } else if let (Some(chain), Some(_)) = (hop.presented(), a45) {
        evidence.push(format!(
            "every certificate presented is within its validity at the handshake time ({}): {}",
            when(hop.now),
            chain
                .iter()
                .map(|c| format!("\"{}\" until {}", c.subject, when(c.not_after)))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        evidence.push(inferred("likely the server's CRL has expired (OpenSSL sends certificate_expired for that too, for every client) or the server's clock is wrong; to confirm, check the CRL's nextUpdate and the clock on the server"));
        summary = format!(
            "{} said certificate_expired although the certificate is valid at the handshake time: likely an expired CRL or a wrong clock on the server.",
            capital(hop.server_name())
        );
        severity = Severity::Error;
        fix = "Server: refresh its CRL (or fix its CRL distribution), and check its clock; the client certificate itself needs no change.".into();
    } else {
        summary = format!(
            "{} refused the certificate as expired (or, for IIS 403.17, not yet valid).",
            capital(hop.server_name())
        );
        severity = Severity::Error;
        fix = format!(
            "{}: renew the certificate; if its dates look right, check the clocks and the server's CRL.",
            capital(hop.client_fix_target())
        );
    }
    Some(finding(
        FindingId::CertExpired,
        severity,
        summary,
        evidence,
        fix,
    ))
}

fn cert_not_yet_valid(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let early = with_validity(hop, Validity::NotYetValid);
    if early.is_empty() {
        return None;
    }
    let rej = rejection(v, hop);
    let iis17 = v
        .http_on(hop)
        .is_some_and(|h| h.iis_substatus() == Some(17));
    let mut evidence: Vec<String> = early
        .iter()
        .map(|c| {
            format!(
                "{} is valid only from {}, {} after the handshake at {}",
                cert_text(c),
                when(c.not_before),
                human_duration(c.not_before - hop.now),
                when(hop.now)
            )
        })
        .collect();
    if let Some(r) = &rej {
        evidence.extend(r.evidence.iter().cloned());
    }
    let refused = rej.is_some() || iis17;
    let summary = if refused {
        format!(
            "The certificate {} presented was not yet valid at the handshake time, and {} refused it.",
            hop.client_name(),
            hop.server_name()
        )
    } else {
        format!(
            "The certificate {} presented was not yet valid at the handshake time; {}, but a server that checks validity will refuse it.",
            hop.client_name(),
            hop.no_visible_refusal()
        )
    };
    Some(finding(
        FindingId::CertNotYetValid,
        if refused { Severity::Error } else { Severity::Warning },
        summary,
        evidence,
        format!(
            "Check the clocks of the issuing CA, the client and the server; {}: reissue with a notBefore in the past.",
            hop.client_fix_target()
        ),
    ))
}

fn cert_revoked(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let mut signals = Vec::new();
    if let Some(a) = hop
        .server_alert(|d| d == AlertDescription::CertificateRevoked)
        .filter(|a| !hop.is_late(a))
    {
        signals.push(hop.describe_alert(a));
    }
    if let Some(h) = v.http_on(hop).filter(|h| h.iis_substatus() == Some(13)) {
        signals.push(format!(
            "{} — IIS 403.13 (client certificate revoked)",
            h.evidence()
        ));
    }
    if let Some(verdict) = hop
        .verdict
        .filter(|v| v.enforced && v.problem == Some(crate::facts::CertProblem::Revoked))
    {
        signals.push(format!(
            "mtlscope's check against `--client-ca`: {}",
            verdict.reason.as_deref().unwrap_or("revoked")
        ));
    }
    let revoked = hop.revoked();
    if signals.is_empty() && revoked.is_empty() {
        return None;
    }
    let mut evidence = vec![hop.describe_presented()];
    for r in &revoked {
        evidence.push(revocation_text(r));
    }
    let refused = !signals.is_empty();
    evidence.extend(signals);
    let rej = rejection(v, hop);
    let generic = rej.as_ref().is_some_and(|r| r.trust);
    let failed =
        refused || rej.is_some() || hop.failed() || v.http_on(hop).is_some_and(|h| h.status >= 400);
    if !refused {
        if let Some(r) = &rej {
            evidence.extend(r.evidence.iter().cloned());
        } else if let Some(h) = v.http_on(hop).filter(|h| h.status >= 400) {
            evidence.push(h.evidence());
        }
    }
    let (summary, severity) = if refused {
        (
            format!(
                "{} considers the certificate {} presented revoked.",
                capital(hop.server_name()),
                hop.client_name()
            ),
            Severity::Error,
        )
    } else if failed {
        (
            format!(
                "The certificate {} presented is revoked, and {} refused it{}.",
                hop.client_name(),
                hop.server_name(),
                if generic {
                    " with a generic certificate error"
                } else {
                    ""
                }
            ),
            Severity::Error,
        )
    } else if hop.kind == HopKind::Client {
        (
            "The certificate the client presented is revoked (mtlscope's own check); a server with a current CRL or OCSP check will refuse it.".to_string(),
            Severity::Warning,
        )
    } else {
        (
            format!(
                "The certificate {} presented is revoked; {} accepted it here (it checks no revocation), but a server with a current CRL or OCSP check will refuse it.",
                hop.client_name(),
                hop.server_name()
            ),
            Severity::Warning,
        )
    };
    Some(finding(
        FindingId::CertRevoked,
        severity,
        summary,
        evidence,
        format!(
            "{}: get a new certificate issued; if the revocation is unexpected, ask the issuing CA, and check the server's CRL/OCSP configuration.",
            capital(hop.client_fix_target())
        ),
    ))
}

/// One revocation answer as evidence: what, since when, why, and from where.
fn revocation_text(r: &crate::facts::RevocationCheck) -> String {
    let mut s = format!("\"{}\" (serial {}) is revoked", r.subject, r.serial);
    if let Some(t) = r.revoked_at {
        s.push_str(&format!(" since {}", when(t)));
    }
    if let Some(reason) = &r.reason {
        s.push_str(&format!(", reason {reason}"));
    }
    s.push_str(&format!(
        ", according to {} {}",
        r.source.words(),
        r.location
    ));
    if let Some(t) = r.this_update {
        s.push_str(&format!(" (thisUpdate {}", when(t)));
        match r.next_update {
            Some(n) => s.push_str(&format!(", nextUpdate {})", when(n))),
            None => s.push(')'),
        }
    }
    s
}

fn wrong_purpose(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    // Written only for a finding: this rule runs on every exchange.
    let fix = || {
        format!(
        "{}: reissue the certificate with extended key usage clientAuth (1.3.6.1.5.5.7.3.2) and key usage digitalSignature.",
        capital(hop.client_fix_target())
    )
    };
    if let Some(leaf) = hop.presented().and_then(|c| c.first()) {
        let problems = client_purpose_problems(leaf);
        if problems.is_empty() {
            return None;
        }
        let mut evidence = vec![format!(
            "{} presented {}",
            hop.client_name(),
            cert_text(leaf)
        )];
        evidence.extend(problems.iter().map(|p| format!("its {p}")));
        let rej = rejection(v, hop);
        if let Some(r) = &rej {
            evidence.extend(r.evidence.iter().cloned());
        }
        let (summary, severity) = if rej.is_some() {
            (
                format!(
                    "The certificate {} presented is not meant for client authentication, and {} refused it.",
                    hop.client_name(),
                    hop.server_name()
                ),
                Severity::Error,
            )
        } else {
            (
                format!(
                    "The certificate {} presented is not meant for client authentication; {}, but browsers and Java will not offer it and Go and OpenSSL servers reject it.",
                    hop.client_name(),
                    hop.no_visible_refusal()
                ),
                Severity::Warning,
            )
        };
        return Some(finding(
            FindingId::WrongPurpose,
            severity,
            summary,
            evidence,
            fix(),
        ));
    }
    // Nothing presented: a configured identity may have been withheld for its purpose.
    let evidence: Vec<String> = hop
        .withheld()
        .into_iter()
        .filter_map(|(label, chain)| {
            let leaf = chain.first()?;
            let problems = client_purpose_problems(leaf);
            (!problems.is_empty()).then(|| {
                format!(
                    "configured identity `{label}` ({}) was not presented: {}",
                    cert_text(leaf),
                    problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })
        })
        .collect();
    if evidence.is_empty() {
        return None;
    }
    let failed = hop.failed()
        || v.http_on(hop)
            .is_some_and(|h| (400..500).contains(&h.status));
    Some(finding(
        FindingId::WrongPurpose,
        if failed { Severity::Error } else { Severity::Warning },
        format!(
            "{} has a configured certificate that is not meant for client authentication, so it was not offered.",
            capital(hop.client_name())
        ),
        evidence,
        fix(),
    ))
}

fn key_unusable(_v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let mut evidence = Vec::new();
    if let Some(a) = hop
        .server_alert(|d| d == AlertDescription::DecryptError)
        .filter(|a| !hop.is_late(a) && hop.may_have_sent())
    {
        evidence.push(hop.describe_presented());
        evidence.push(hop.describe_alert(a));
    }
    if let Some(f) = hop
        .failure
        .filter(|f| matches!(f.kind, FailureKind::KeyUnusable | FailureKind::DecryptError))
    {
        evidence.push(format!(
            "the {} ended at {}: {} ({})",
            hop.name(),
            f.stage,
            hop.error.unwrap_or("the private key is unusable"),
            f.kind
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    evidence.push(inferred("likely the private key does not match the certificate's public key; to confirm, compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`"));
    Some(finding(
        FindingId::KeyUnusable,
        Severity::Error,
        format!(
            "{} could not use or prove possession of the certificate's private key: likely the key does not match the certificate.",
            capital(hop.client_name())
        ),
        evidence,
        format!(
            "{}: pair the certificate with its own private key; fix the key's format, password or file permissions.",
            capital(hop.client_fix_target())
        ),
    ))
}

#[cfg(test)]
#[path = "rejected_tests.rs"]
mod tests;
