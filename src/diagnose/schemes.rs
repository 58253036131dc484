//! Rules about what a CertificateRequest itself allows: `no-common-signature-scheme` (the
//! request's signature_algorithms exclude every scheme the identity's key can make) and
//! `ca-list-too-large` (more CA names than some clients accept).

use super::finding::finding;
use super::view::{capital, cert_text, ms, Hop, HopKind, View};
use crate::facts::{AlertDescription, CertSummary, Finding, FindingId, Severity, TlsVersion};

pub(super) fn rules(v: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for hop in &v.hops {
        out.extend(no_common_signature_scheme(v, hop));
        out.extend(ca_list_too_large(hop));
    }
    out
}

/// The kind of public key a certificate carries, as far as TLS signature schemes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// rsaEncryption (a "PKCS#1" key): rsa_pkcs1_* (not in TLS 1.3) and rsa_pss_rsae_*.
    Rsa,
    /// id-RSASSA-PSS: rsa_pss_pss_* only.
    RsaPss,
    /// ECDSA on P-256, P-384 or P-521 (the curve's bit size).
    Ecdsa(u16),
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
}

impl KeyKind {
    /// From a certificate summary's `key` (`RSA 2048`, `ECDSA P-256`, `Ed25519`, an OID).
    pub(crate) fn of(key: &str) -> Option<KeyKind> {
        Some(match key {
            k if k.starts_with("RSA ") => KeyKind::Rsa,
            "ECDSA P-256" => KeyKind::Ecdsa(256),
            "ECDSA P-384" => KeyKind::Ecdsa(384),
            "ECDSA P-521" => KeyKind::Ecdsa(521),
            "Ed25519" | "1.3.101.112" => KeyKind::Ed25519,
            "Ed448" | "1.3.101.113" => KeyKind::Ed448,
            "1.2.840.113549.1.1.10" => KeyKind::RsaPss,
            _ => return None,
        })
    }

    /// Whether a key of this kind can sign a CertificateVerify with `scheme` (IANA name, as
    /// recorded) on `version` (`None`: unknown, TLS 1.2 rules). ECDSA is bound to the key's
    /// curve, as TLS 1.3 requires and rustls does on every version.
    pub(crate) fn can_make(self, scheme: &str, version: Option<TlsVersion>) -> bool {
        let tls13 = version == Some(TlsVersion::Tls13);
        match self {
            KeyKind::Rsa => {
                scheme.starts_with("rsa_pss_rsae_") || (!tls13 && scheme.starts_with("rsa_pkcs1_"))
            }
            KeyKind::RsaPss => scheme.starts_with("rsa_pss_pss_"),
            KeyKind::Ecdsa(256) => scheme == "ecdsa_secp256r1_sha256",
            KeyKind::Ecdsa(384) => scheme == "ecdsa_secp384r1_sha384",
            KeyKind::Ecdsa(_) => scheme == "ecdsa_secp521r1_sha512",
            KeyKind::Ed25519 => scheme == "ed25519",
            KeyKind::Ed448 => scheme == "ed448",
        }
    }

    /// What such a key needs, in words, for the evidence.
    fn needs(self, version: Option<TlsVersion>) -> &'static str {
        match (self, version == Some(TlsVersion::Tls13)) {
            (KeyKind::Rsa, true) => "rsa_pss_rsae_* (TLS 1.3 forbids rsa_pkcs1_* here)",
            (KeyKind::Rsa, false) => "rsa_pkcs1_* or rsa_pss_rsae_*",
            (KeyKind::RsaPss, _) => "rsa_pss_pss_*",
            (KeyKind::Ecdsa(256), _) => "ecdsa_secp256r1_sha256",
            (KeyKind::Ecdsa(384), _) => "ecdsa_secp384r1_sha384",
            (KeyKind::Ecdsa(_), _) => "ecdsa_secp521r1_sha512",
            (KeyKind::Ed25519, _) => "ed25519",
            (KeyKind::Ed448, _) => "ed448",
        }
    }
}

/// Whether `leaf`'s key can make none of `schemes` (an empty or unknown list allows anything).
pub(crate) fn unusable_with(leaf: &CertSummary, schemes: &[String], v: Option<TlsVersion>) -> bool {
    match KeyKind::of(&leaf.key) {
        Some(kind) if !schemes.is_empty() => !schemes.iter().any(|s| kind.can_make(s, v)),
        _ => false,
    }
}

fn no_common_signature_scheme(v: &View<'_>, hop: &Hop<'_>) -> Option<Finding> {
    let cr = hop.cert_request?;
    if cr.signature_schemes.is_empty() {
        return None;
    }
    // The chain on offer: presented (an engine that records what it meant to send), or the
    // configured identities that were withheld.
    let mut offered: Vec<(String, &CertSummary)> = Vec::new();
    if let Some(leaf) = hop.presented().and_then(|c| c.first()) {
        offered.push((format!("{} presented", hop.client_name()), leaf));
    } else {
        for (label, chain) in hop.withheld() {
            if let Some(leaf) = chain.first() {
                offered.push((format!("configured identity `{label}`"), leaf));
            }
        }
    }
    let unusable: Vec<&(String, &CertSummary)> = offered
        .iter()
        .filter(|(_, leaf)| unusable_with(leaf, &cr.signature_schemes, hop.version))
        .collect();
    // Only when no identity on offer could answer: one usable identity explains nothing.
    if unusable.is_empty() || unusable.len() < offered.len() {
        return None;
    }
    let mut evidence = vec![format!(
        "{} accepts these signature schemes for the client's CertificateVerify{}: {}",
        hop.server_name(),
        hop.version
            .map(|v| format!(" on {}", v.as_str()))
            .unwrap_or_default(),
        cr.signature_schemes.join(", ")
    )];
    for (what, leaf) in &unusable {
        let need = KeyKind::of(&leaf.key)
            .map(|k| k.needs(hop.version))
            .unwrap_or("");
        evidence.push(format!(
            "{what} {} with a {} key, which needs {need}: none is in the list",
            cert_text(leaf),
            leaf.key
        ));
    }
    evidence.push(hop.describe_presented());
    let failed =
        hop.failed() || v.http_on(hop).is_some_and(|h| h.status >= 400) || v.flow.error.is_some();
    if failed {
        if let Some(h) = v.http_on(hop) {
            evidence.push(h.evidence());
        }
        for a in hop.server_failing_alerts() {
            evidence.push(hop.describe_alert(a));
        }
    }
    let key = unusable.first().map(|(_, l)| l.key.as_str()).unwrap_or("");
    Some(finding(
        FindingId::NoCommonSignatureScheme,
        if failed { Severity::Error } else { Severity::Warning },
        format!(
            "{} accepts no signature scheme the certificate's {key} key can make, so {} could not use its certificate (OpenSSL and rustls clients then send none).",
            capital(hop.server_name()),
            hop.client_name()
        ),
        evidence,
        format!(
            "Server: accept the key's schemes (OpenSSL `ClientSignatureAlgorithms`, e.g. add RSA-PSS+SHA256:RSA+SHA256); or {}: use a certificate whose key the server accepts (ECDSA P-256 is the most widely accepted).",
            match hop.kind {
                HopKind::Upstream => "mtlscope's upstream identity (`--identity`)",
                _ => "the client",
            }
        ),
    ))
}

/// Above this many bytes of CA names some clients refuse the request (TLS-NOTES).
pub(crate) const CA_LIST_LIMIT: usize = 16 * 1024;

fn ca_list_too_large(hop: &Hop<'_>) -> Option<Finding> {
    let cr = hop.cert_request?;
    // Each name is a DER Name (hex) plus its two-byte length on the wire.
    let bytes: usize = cr.ca_names_der.iter().map(|h| h.len() / 2 + 2).sum();
    let refused = hop.failing_alerts().find(|a| {
        !hop.sent_by_server(a)
            && matches!(
                a.description,
                AlertDescription::IllegalParameter | AlertDescription::DecodeError
            )
            && a.at_ms >= cr.at_ms
    });
    let large = bytes > CA_LIST_LIMIT;
    // A refusal right after a list of at least a few KiB is the symptom, even under the limit.
    let refused_after_a_long_list = refused.is_some() && bytes > CA_LIST_LIMIT / 4;
    if !large && !refused_after_a_long_list {
        return None;
    }
    let mut evidence = vec![format!(
        "{} named {} acceptable CAs, {bytes} bytes of names at {} (the limit some clients keep is {CA_LIST_LIMIT} bytes)",
        hop.server_name(),
        cr.ca_names_der.len(),
        ms(cr.at_ms)
    )];
    if let Some(a) = refused {
        evidence.push(hop.describe_alert(a));
    }
    Some(finding(
        FindingId::CaListTooLarge,
        if refused.is_some() {
            Severity::Error
        } else {
            Severity::Warning
        },
        format!(
            "{}'s CertificateRequest carries {bytes} bytes of CA names; some clients refuse such a request, and Windows servers truncate or drop the list.",
            capital(hop.server_name())
        ),
        evidence,
        "Server: send a trimmed list of the CAs that issue client certificates (IIS: `SendTrustedIssuerList` with a dedicated Client Authentication Issuers store; nginx: a dedicated `ssl_client_certificate` file, other CAs in `ssl_trusted_certificate`).",
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::facts::{Direction, Phase};

    fn rsa_leaf() -> CertSummary {
        CertSummary {
            key: "RSA 2048".into(),
            ..leaf("client", "Root")
        }
    }

    fn ecdsa_only() -> Vec<String> {
        [
            "ecdsa_secp256r1_sha256",
            "ecdsa_secp384r1_sha384",
            "ecdsa_secp521r1_sha512",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn keys_against_scheme_lists() {
        let v13 = Some(TlsVersion::Tls13);
        let v12 = Some(TlsVersion::Tls12);
        assert!(!KeyKind::Rsa.can_make("ecdsa_secp256r1_sha256", v12));
        assert!(KeyKind::Rsa.can_make("rsa_pkcs1_sha256", v12));
        assert!(!KeyKind::Rsa.can_make("rsa_pkcs1_sha256", v13));
        assert!(KeyKind::Rsa.can_make("rsa_pss_rsae_sha256", v13));
        assert!(!KeyKind::Rsa.can_make("rsa_pss_pss_sha256", v13));
        assert!(KeyKind::RsaPss.can_make("rsa_pss_pss_sha256", v13));
        assert!(!KeyKind::Ecdsa(521).can_make("ecdsa_secp256r1_sha256", v13));
        assert!(KeyKind::Ecdsa(521).can_make("ecdsa_secp521r1_sha512", v13));
        assert!(!KeyKind::Ed25519.can_make("ecdsa_secp256r1_sha256", v13));
        assert_eq!(KeyKind::of("Ed25519"), Some(KeyKind::Ed25519));
        assert_eq!(KeyKind::of("RSA 4096"), Some(KeyKind::Rsa));
    }

    /// nginx with `ClientSignatureAlgorithms ECDSA+…` and an RSA identity: rustls withholds it,
    /// nginx answers its 400.
    fn rsa_identity_vs_ecdsa_only() -> crate::facts::Flow {
        success_builder()
            .upstream(|l| {
                l.tls_version = Some(TlsVersion::Tls12);
                let mut req = cr(Phase::Handshake, &["Root"]);
                req.signature_schemes = ecdsa_only();
                l.cert_request = Some(req);
                l.chain = vec![];
                l.identity = Some(identity(
                    None,
                    &[("rsa.pem", vec![rsa_leaf()])],
                    "the key of `rsa.pem` can make none of the signature schemes the server accepts",
                ));
            })
            .response(
                400,
                "<html><head><title>400 No required SSL certificate was sent</title></head></html>",
                &[("server", "nginx")],
            )
            .build()
    }

    #[test]
    fn rsa_identity_against_an_ecdsa_only_request_comes_first() {
        let flow = rsa_identity_vs_ecdsa_only();
        let got = ids(&flow);
        assert_eq!(
            got.first().map(String::as_str),
            Some("no-common-signature-scheme"),
            "{got:?}"
        );
        let f = find(&flow, "no-common-signature-scheme").unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("ecdsa_secp256r1_sha256")));
        assert!(f.evidence.iter().any(|e| e.contains("RSA 2048")));
        assert!(got.contains(&"no-client-cert".to_string()), "{got:?}");
    }

    #[test]
    fn no_finding_when_the_key_fits_or_the_list_is_unknown() {
        assert!(find(&success(), "no-common-signature-scheme").is_none());
        // The good chain's key is ECDSA P-256: a list with its scheme is fine.
        let flow = success_builder()
            .upstream(|l| {
                let mut req = cr(Phase::Handshake, &["Root"]);
                req.signature_schemes = ecdsa_only();
                l.cert_request = Some(req);
            })
            .build();
        assert!(find(&flow, "no-common-signature-scheme").is_none());
        // P-521 without ecdsa_secp521r1_sha512, accepted anyway: a warning.
        let flow = success_builder()
            .upstream(|l| {
                let mut req = cr(Phase::Handshake, &["Root"]);
                req.signature_schemes = vec!["ecdsa_secp256r1_sha256".into()];
                l.cert_request = Some(req);
                l.chain[0].key = "ECDSA P-521".into();
            })
            .build();
        let f = find(&flow, "no-common-signature-scheme").unwrap();
        assert_eq!(f.severity, Severity::Warning);
    }

    #[test]
    fn a_huge_ca_list_and_a_client_refusing_it() {
        let big = |n: usize| {
            let mut req = cr(Phase::Handshake, &[]);
            req.ca_names = Some((0..n).map(|i| format!("CN=CA {i}")).collect());
            req.ca_names_der = (0..n).map(|_| "30".repeat(200)).collect();
            req
        };
        let flow = success_builder()
            .client(|l| l.cert_request = Some(big(100)))
            .build();
        let f = find(&flow, "ca-list-too-large").unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.evidence[0].contains("20200 bytes"), "{:?}", f.evidence);
        let flow = FlowBuilder::reverse()
            .connection()
            .client(|l| {
                l.cert_request = Some(big(30));
                l.handshake_done_ms = None;
                l.alerts = vec![alert(Direction::Received, 50, 4.0)];
            })
            .build();
        let f = find(&flow, "ca-list-too-large").unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(find(&success(), "ca-list-too-large").is_none());
    }
}
