//! Signals several rules read, so no rule imports another: how the server side refused a
//! certificate ([`rejection`]); its "certificate missing" alert ([`no_cert_alert`]); a TLS 1.3
//! post-handshake request inferred from the answer ([`pha_inference`]); a TLS-inspection
//! product named in a certificate ([`inspection_product`]).

use super::alerts::{cert_verdict, CertVerdict};
use super::view::{Hop, HopKind, View};
use crate::facts::{Alert, AlertDescription, FailureKind, Stage, TlsVersion};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// The server side refused the certificate it was sent.
pub(super) struct Rejection {
    /// The signals, quoted.
    pub evidence: Vec<String>,
    /// Whether a signal says "untrusted / invalid" rather than naming a specific cause.
    pub trust: bool,
    /// Whether the server refused without a word (closed after the certificate).
    pub silent: bool,
}

/// How the server side refused the certificate the client side (may have) sent, if it did.
pub(super) fn rejection(v: &View<'_>, hop: &Hop<'_>) -> Option<Rejection> {
    if !hop.may_have_sent() {
        return None;
    }
    let mut evidence = Vec::new();
    let mut trust = false;
    let mut silent = false;
    for a in hop
        .server_failing_alerts()
        .filter(|a| cert_verdict(a.description).refuses() && !hop.is_late(a))
    {
        trust |= cert_verdict(a.description) == CertVerdict::Untrusted;
        evidence.push(hop.describe_alert(a));
    }
    if v.http_on(hop).is_none() && hop.presented().is_some() {
        if let Some(after) = hop.silent_close_after_request() {
            silent = true;
            evidence.push(hop.describe_silent_close(after));
        }
    }
    if let Some(http) = v.http_on(hop) {
        if let Some(who) = http.says_cert_invalid() {
            trust = true;
            evidence.push(format!("{} — {who}", http.evidence()));
        } else if matches!(http.iis_substatus(), Some(13 | 17)) {
            evidence.push(http.evidence());
        }
    }
    if hop.kind == HopKind::Client {
        if let Some(verdict) = hop.verdict.filter(|v| !v.trusted && v.enforced) {
            trust = true;
            evidence.push(format!(
                "mtlscope's check against `--client-ca` refused the chain: {}",
                verdict.reason.as_deref().unwrap_or("not trusted")
            ));
        } else if hop
            .failure
            .is_some_and(|f| f.kind == FailureKind::PeerCertificateInvalid)
        {
            trust = true;
            evidence.push(format!(
                "the client leg ended: {}",
                hop.error.unwrap_or("the client's certificate is invalid")
            ));
        }
    }
    (!evidence.is_empty()).then_some(Rejection {
        evidence,
        trust,
        silent,
    })
}

/// Whether `a` is the server's "certificate missing" alert: certificate_required (TLS 1.3), or
/// handshake_failure / bad_certificate after a request answered with no certificate.
pub(super) fn no_cert_alert(hop: &Hop<'_>, a: &Alert) -> bool {
    let missing = matches!(
        a.description,
        AlertDescription::HandshakeFailure | AlertDescription::BadCertificate
    );
    hop.sent_by_server(a)
        && hop.presented().is_none()
        && (a.description == AlertDescription::CertificateRequired
            || (missing && hop.sent_none() && hop.cert_request.is_some()))
}

/// TLS 1.3 without a certificate request in the handshake, `post_handshake_auth` not offered,
/// and an answer for a request that typically means the server wanted one after all.
pub(super) fn pha_inferred(v: &View<'_>, hop: &Hop<'_>) -> bool {
    pha_inference(v, hop).is_some()
}

pub(super) fn pha_inference(v: &View<'_>, hop: &Hop<'_>) -> Option<String> {
    if hop.kind == HopKind::Client
        || hop.version != Some(TlsVersion::Tls13)
        || hop.cert_request.is_some()
        || hop.offered_pha != Some(false)
    {
        return None;
    }
    let req_at = v.request_at()?;
    if let Some(h) = v.http_on(hop) {
        if h.status == 403 && h.is_apache() {
            return Some(format!("{} — Apache's answer when it cannot perform post-handshake authentication (error log AH10158)", h.evidence()));
        }
        if h.status == 500 && h.is_http_sys() {
            return Some(format!("{} — HTTP.sys's answer when it cannot ask for the certificate after a TLS 1.3 handshake", h.evidence()));
        }
    }
    if hop.failure.is_some_and(|f| {
        f.kind == FailureKind::Reset && f.stage != Stage::Connect && f.stage != Stage::Handshake
    }) {
        return Some(format!(
            "the server reset the {} after the request",
            hop.name()
        ));
    }
    hop.alerts
        .iter()
        .find(|a| {
            a.description == AlertDescription::UnexpectedMessage
                && !hop.sent_by_server(a)
                && a.at_ms >= req_at
        })
        .map(|a| {
            format!(
                "{} — the typical answer of a client that did not offer post_handshake_auth to a post-handshake CertificateRequest",
                hop.describe_alert(a)
            )
        })
}

/// Issuer names of well-known TLS-inspection products, lowercase.
const INSPECTION_CAS: &[&str] = &[
    "zscaler",
    "fortinet",
    "fortigate",
    "palo alto",
    "blue coat",
    "bluecoat",
    "netskope",
    "cisco umbrella",
    "forcepoint",
    "websense",
    "sophos",
    "check point",
    "checkpoint",
    "mcafee web gateway",
    "barracuda",
    "watchguard",
    "sonicwall",
    "kaspersky",
    "eset ssl filter",
    "avast",
    "bitdefender",
    "mitmproxy",
    "charles proxy",
    "portswigger",
    "do_not_trust_fiddlerroot",
    "untangle",
    "contentkeeper",
    "iboss",
    "lightspeed",
];

/// The inspection product whose name appears in a certificate's subject or issuer, if any.
pub(super) fn inspection_product(c: &crate::facts::CertSummary) -> Option<&'static str> {
    // Every flow asks this of every server certificate, and a proxy meets the same few: the
    // answer is remembered by the names it depends on (so it stays a function of them).
    type Known = HashMap<u64, (String, String, Option<&'static str>)>;
    static KNOWN: LazyLock<Mutex<Known>> = LazyLock::new(Mutex::default);
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&c.issuer, &c.subject).hash(&mut h);
        h.finish()
    };
    let hit = KNOWN.lock().ok().and_then(|m| {
        m.get(&key)
            .filter(|(i, s, _)| *i == c.issuer && *s == c.subject)
            .map(|(_, _, p)| *p)
    });
    if let Some(known) = hit {
        return known;
    }
    let names = format!("{} {}", c.issuer, c.subject).to_lowercase();
    let product = INSPECTION_CAS.iter().find(|p| names.contains(*p)).copied();
    if let Ok(mut m) = KNOWN.lock() {
        if m.len() >= 4096 {
            m.clear();
        }
        m.insert(key, (c.issuer.clone(), c.subject.clone(), product));
    }
    product
}
