//! Certificate reasoning over recorded facts: pure functions, no I/O, no clock.
//!
//! The diagnosis rules and `certs inspect` share these, so a chain is judged the same way
//! wherever it is shown.

use crate::facts::{joined, CertSummary, ExtKeyUsage, KeyUsage};
use time::OffsetDateTime;

/// Where in a chain a CA name matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaMatch {
    /// Index in the chain (0 = leaf).
    pub position: usize,
    /// Whether the certificate's subject (true) or its issuer (false) matched.
    pub by_subject: bool,
    /// The CA name that matched, as recorded.
    pub ca_name: String,
}

/// The first chain element whose subject or issuer equals one of the acceptable-CA names.
///
/// Names are compared as DER when both sides have it, else as normalised RFC 4514 text (as the
/// wire tap in observe mode may only have text).
pub fn match_ca_names(
    chain: &[CertSummary],
    ca_names: &[String],
    ca_names_der: &[String],
) -> Option<CaMatch> {
    for (position, cert) in chain.iter().enumerate() {
        for (by_subject, der, text) in [
            (false, &cert.issuer_der, &cert.issuer),
            (true, &cert.subject_der, &cert.subject),
        ] {
            let by_der = ca_names_der
                .iter()
                .position(|n| n.eq_ignore_ascii_case(der));
            let by_text = || {
                ca_names
                    .iter()
                    .position(|n| normalise_dn(n) == normalise_dn(text))
            };
            let hit = if ca_names_der.is_empty() {
                by_text()
            } else {
                by_der
            };
            if let Some(i) = hit {
                let ca_name = ca_names.get(i).cloned().unwrap_or_else(|| text.clone());
                return Some(CaMatch {
                    position,
                    by_subject,
                    ca_name,
                });
            }
        }
    }
    None
}

/// An RFC 4514 name folded for comparison: attribute order kept, case and spaces around
/// separators ignored.
pub fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            let (k, v) = rdn.split_once('=').unwrap_or(("", rdn));
            format!(
                "{}={}",
                k.trim().to_ascii_uppercase(),
                v.trim().to_lowercase()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a chain is incomplete: it ends at a certificate that is not self-issued, so its
/// issuer (named in the result) was not sent. Empty chains are not incomplete.
pub fn missing_issuer(chain: &[CertSummary]) -> Option<&str> {
    let last = chain.last()?;
    (!last.self_issued).then_some(last.issuer.as_str())
}

/// Pairs `(i, i+1)` where certificate `i` was not issued by certificate `i+1`: a misordered or
/// unrelated chain.
pub fn order_breaks(chain: &[CertSummary]) -> Vec<usize> {
    chain
        .windows(2)
        .enumerate()
        .filter(|(_, w)| !w[0].issuer_der.eq_ignore_ascii_case(&w[1].subject_der))
        .map(|(i, _)| i)
        .collect()
}

/// A certificate's validity at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// Within `not_before ..= not_after`.
    Valid,
    /// Past `not_after`.
    Expired,
    /// Before `not_before`.
    NotYetValid,
}

/// Validity of one certificate at `at` (the recorded handshake time).
pub fn validity_at(cert: &CertSummary, at: OffsetDateTime) -> Validity {
    if at > cert.not_after {
        Validity::Expired
    } else if at < cert.not_before {
        Validity::NotYetValid
    } else {
        Validity::Valid
    }
}

/// Why a leaf cannot serve as a TLS client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurposeProblem {
    /// EKU present without clientAuth or anyExtendedKeyUsage; carries the EKUs it has.
    NoClientAuthEku(Vec<ExtKeyUsage>),
    /// Key usage present without digitalSignature; carries the usages it has.
    NoDigitalSignature(Vec<KeyUsage>),
}

impl std::fmt::Display for PurposeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PurposeProblem::NoClientAuthEku(have) => write!(
                f,
                "extended key usage lacks clientAuth (has: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    joined(have)
                }
            ),
            PurposeProblem::NoDigitalSignature(have) => write!(
                f,
                "key usage lacks digitalSignature (has: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    joined(have)
                }
            ),
        }
    }
}

/// What keeps `leaf` from being a client certificate; empty when nothing does.
pub fn client_purpose_problems(leaf: &CertSummary) -> Vec<PurposeProblem> {
    let mut problems = Vec::new();
    let client_auth = |e: &ExtKeyUsage| matches!(e, ExtKeyUsage::ClientAuth | ExtKeyUsage::Any);
    if leaf.has_eku && !leaf.eku.iter().any(client_auth) {
        problems.push(PurposeProblem::NoClientAuthEku(leaf.eku.clone()));
    }
    if leaf.has_key_usage && !leaf.key_usage.contains(&KeyUsage::DigitalSignature) {
        problems.push(PurposeProblem::NoDigitalSignature(leaf.key_usage.clone()));
    }
    problems
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Hand-built certificate summaries for rule tests.
    use crate::facts::{CertSummary, ExtKeyUsage, KeyUsage};
    use time::macros::datetime;

    /// A leaf `CN=<cn>` issued by `CN=<issuer>`, valid through 2030, clientAuth.
    pub fn leaf(cn: &str, issuer: &str) -> CertSummary {
        CertSummary {
            subject: format!("CN={cn}"),
            issuer: format!("CN={issuer}"),
            serial: "01".into(),
            not_before: datetime!(2025-01-01 0:00 UTC),
            not_after: datetime!(2030-01-01 0:00 UTC),
            sha256: format!("{:0>64}", cn.len()),
            sha1: format!("{:0>40}", cn.len()),
            eku: vec![ExtKeyUsage::ClientAuth],
            has_eku: true,
            key_usage: vec![KeyUsage::DigitalSignature],
            has_key_usage: true,
            sans: vec![],
            is_ca: false,
            self_issued: cn == issuer,
            subject_der: der_of(cn),
            issuer_der: der_of(issuer),
            key: "ECDSA P-256".into(),
        }
    }

    /// A CA certificate `CN=<cn>` issued by `CN=<issuer>`.
    pub fn ca(cn: &str, issuer: &str) -> CertSummary {
        CertSummary {
            is_ca: true,
            eku: vec![],
            has_eku: false,
            key_usage: vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign],
            ..leaf(cn, issuer)
        }
    }

    /// A stand-in DER for a one-RDN name: unique per CN, stable.
    pub fn der_of(cn: &str) -> String {
        crate::cert::hex(format!("name:{cn}").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{ca, der_of, leaf};
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ca_name_matches_issuer_of_leaf_or_subject_of_intermediate() {
        let chain = [leaf("client", "Inter"), ca("Inter", "Root")];
        let m = match_ca_names(&chain, &["CN=Inter".into()], &[der_of("Inter")]).unwrap();
        assert_eq!((m.position, m.by_subject), (0, false));
        let m = match_ca_names(&chain, &["CN=Root".into()], &[der_of("Root")]).unwrap();
        assert_eq!((m.position, m.by_subject), (1, false));
        // Only the root named, and the chain lacks the intermediate: no match.
        assert!(match_ca_names(&chain[..1], &["CN=Root".into()], &[der_of("Root")]).is_none());
    }

    #[test]
    fn ca_name_text_comparison_is_normalised_when_der_is_missing() {
        let chain = [leaf("client", "Inter CA")];
        assert!(match_ca_names(&chain, &["cn = inter ca".into()], &[]).is_some());
        assert!(match_ca_names(&chain, &["CN=Other".into()], &[]).is_none());
    }

    #[test]
    fn der_comparison_wins_over_lookalike_text() {
        let chain = [leaf("client", "Inter")];
        // Same text, different DER (e.g. PrintableString vs UTF8String): not a match.
        assert!(match_ca_names(&chain, &["CN=Inter".into()], &["3000".into()]).is_none());
    }

    #[test]
    fn chain_completeness() {
        assert_eq!(missing_issuer(&[leaf("c", "Inter")]), Some("CN=Inter"));
        assert_eq!(
            missing_issuer(&[leaf("c", "Inter"), ca("Inter", "Root")]),
            Some("CN=Root")
        );
        assert_eq!(
            missing_issuer(&[leaf("c", "Inter"), ca("Inter", "Root"), ca("Root", "Root")]),
            None
        );
        assert_eq!(missing_issuer(&[leaf("self", "self")]), None);
        assert_eq!(missing_issuer(&[]), None);
    }

    #[test]
    fn chain_order() {
        assert!(order_breaks(&[leaf("c", "Inter"), ca("Inter", "Root")]).is_empty());
        assert_eq!(
            order_breaks(&[ca("Inter", "Root"), leaf("c", "Inter")]),
            vec![0]
        );
    }

    #[test]
    fn validity_is_judged_at_the_given_instant() {
        let c = leaf("c", "i");
        assert_eq!(
            validity_at(&c, datetime!(2026-06-01 0:00 UTC)),
            Validity::Valid
        );
        assert_eq!(
            validity_at(&c, datetime!(2031-06-01 0:00 UTC)),
            Validity::Expired
        );
        assert_eq!(
            validity_at(&c, datetime!(2024-06-01 0:00 UTC)),
            Validity::NotYetValid
        );
    }

    #[test]
    fn purpose() {
        assert!(client_purpose_problems(&leaf("c", "i")).is_empty());
        let server_only = CertSummary {
            eku: vec![ExtKeyUsage::ServerAuth],
            ..leaf("c", "i")
        };
        assert_eq!(
            client_purpose_problems(&server_only),
            vec![PurposeProblem::NoClientAuthEku(vec![
                ExtKeyUsage::ServerAuth
            ])]
        );
        let any = CertSummary {
            eku: vec![ExtKeyUsage::Any],
            ..leaf("c", "i")
        };
        assert!(client_purpose_problems(&any).is_empty());
        let no_ext = CertSummary {
            has_eku: false,
            eku: vec![],
            has_key_usage: false,
            key_usage: vec![],
            ..leaf("c", "i")
        };
        assert!(client_purpose_problems(&no_ext).is_empty());
        let no_sig = CertSummary {
            key_usage: vec![KeyUsage::KeyEncipherment],
            ..leaf("c", "i")
        };
        assert_eq!(client_purpose_problems(&no_sig).len(), 1);
    }
}
