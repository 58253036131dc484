//! Each stack's rule, as a function of the request and the candidates. The source each rule
//! was read from is cited in `docs/client-cert-selection.md`; keep the two in step.

use super::java_order::{hashmap_order, hashtable_order};
use super::{Candidate, Judged, Outcome, Request, Skip, Stack, StackAnswer, StoreKind};
use crate::cert::reason::PurposeProblem;
use crate::cert::reason::{client_purpose_problems, normalise_dn, validity_at, Validity};
use crate::facts::CertSummary;
use time::format_description::well_known::Rfc3339;

/// One stack's answer.
pub fn answer(stack: Stack, req: &Request, cands: &[Candidate]) -> StackAnswer {
    match stack {
        Stack::Openssl => openssl(req, cands),
        Stack::Java => java_sunx509(req, cands),
        Stack::JavaPkix => java_pkix(req, cands),
        Stack::Go => go(req, cands),
        Stack::Schannel => schannel(req, cands),
        Stack::Chrome => browser(Stack::Chrome, req, cands),
        Stack::Firefox => browser(Stack::Firefox, req, cands),
    }
}

/// A leaf's key, as far as signature schemes care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    RsaPss,
    Ec(u16),
    Ed25519,
    Ed448,
    Unknown,
}

impl KeyKind {
    /// From the summary's key description (`RSA 2048`, `ECDSA P-256`, `Ed25519`, or an OID).
    fn of(cert: &CertSummary) -> KeyKind {
        let k = cert.key.as_str();
        match k {
            _ if k.starts_with("RSA ") => KeyKind::Rsa,
            "ECDSA P-256" => KeyKind::Ec(256),
            "ECDSA P-384" => KeyKind::Ec(384),
            "ECDSA P-521" => KeyKind::Ec(521),
            "Ed25519" | "1.3.101.112" => KeyKind::Ed25519,
            "1.3.101.113" => KeyKind::Ed448,
            "1.2.840.113549.1.1.10" => KeyKind::RsaPss,
            _ => KeyKind::Unknown,
        }
    }

    /// Whether this key can sign with `scheme` (TLS 1.3 binds ECDSA to its curve and has no
    /// PKCS#1 signatures in CertificateVerify).
    fn fits(self, scheme: &str, tls13: bool) -> bool {
        match self {
            KeyKind::Rsa => {
                scheme.starts_with("rsa_pss_rsae_") || (!tls13 && scheme.starts_with("rsa_pkcs1_"))
            }
            KeyKind::RsaPss => scheme.starts_with("rsa_pss_pss_"),
            KeyKind::Ec(bits) if tls13 => {
                scheme
                    == match bits {
                        256 => "ecdsa_secp256r1_sha256",
                        384 => "ecdsa_secp384r1_sha384",
                        _ => "ecdsa_secp521r1_sha512",
                    }
            }
            KeyKind::Ec(_) => scheme.starts_with("ecdsa_") && !scheme.contains("brainpool"),
            KeyKind::Ed25519 => scheme == "ed25519",
            KeyKind::Ed448 => scheme == "ed448",
            KeyKind::Unknown => true,
        }
    }

    /// Java's name for the key algorithm (`PublicKey.getAlgorithm()`).
    fn java_algorithm(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::RsaPss => "RSASSA-PSS",
            KeyKind::Ec(_) => "EC",
            KeyKind::Ed25519 | KeyKind::Ed448 => "EdDSA",
            KeyKind::Unknown => "?",
        }
    }
}

/// Java's key algorithm for a signature scheme.
fn java_algorithm_of_scheme(scheme: &str, tls13: bool) -> Option<&'static str> {
    match scheme {
        s if s.starts_with("rsa_pss_rsae_") => Some("RSA"),
        s if s.starts_with("rsa_pkcs1_") && !tls13 => Some("RSA"),
        s if s.starts_with("rsa_pss_pss_") => Some("RSASSA-PSS"),
        s if s.starts_with("ecdsa_") && !s.contains("brainpool") => Some("EC"),
        "ed25519" | "ed448" => Some("EdDSA"),
        _ => None,
    }
}

/// The key types JSSE asks its key manager for: the distinct key algorithms of the server's
/// signature schemes, in the server's order.
fn java_key_types(req: &Request) -> Vec<&'static str> {
    if req.signature_schemes.is_empty() {
        return vec!["RSA", "EC", "EdDSA", "RSASSA-PSS"];
    }
    let mut out = Vec::new();
    for s in &req.signature_schemes {
        if let Some(a) = java_algorithm_of_scheme(s, req.tls13()) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

fn key_allowed(c: &Candidate, req: &Request) -> bool {
    let Some(leaf) = c.chain.first() else {
        return false;
    };
    req.signature_schemes.is_empty()
        || req
            .signature_schemes
            .iter()
            .any(|s| KeyKind::of(leaf).fits(s, req.tls13()))
}

fn name_listed(req: &Request, der: &str, text: &str) -> bool {
    if req.ca_names_der.is_empty() {
        req.ca_names
            .iter()
            .any(|n| normalise_dn(n) == normalise_dn(text))
    } else {
        req.ca_names_der.iter().any(|n| n.eq_ignore_ascii_case(der))
    }
}

/// Whether any certificate of `chain` was issued by a listed CA: the test Go's
/// `SupportsCertificate` and both Java key managers make (issuers, not subjects; a root in the
/// chain matches by its own name, since it is its own issuer).
fn issuer_listed(chain: &[CertSummary], req: &Request) -> bool {
    chain
        .iter()
        .any(|c| name_listed(req, &c.issuer_der, &c.issuer))
}

/// `chain` extended upwards through every other certificate the client holds, as a platform
/// store builds it (Schannel, Chromium, NSS).
fn store_chain(c: &Candidate, all: &[Candidate]) -> Vec<CertSummary> {
    let mut chain = c.chain.clone();
    // Bounded: a chain never grows past the number of certificates known.
    let known: Vec<&CertSummary> = all.iter().flat_map(|c| c.chain.iter()).collect();
    for _ in 0..known.len() {
        let Some(last) = chain.last() else { break };
        if last.self_issued {
            break;
        }
        let next = known.iter().find(|k| {
            k.subject_der.eq_ignore_ascii_case(&last.issuer_der)
                && !chain.iter().any(|h| h.sha256 == k.sha256)
        });
        match next {
            Some(k) => chain.push((*k).clone()),
            None => break,
        }
    }
    chain
}

fn leaf_issuer(c: &Candidate) -> String {
    c.chain
        .first()
        .map(|l| l.issuer.clone())
        .unwrap_or_default()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The leaf's validity problem at the request's instant, if any.
fn validity_skip(c: &Candidate, req: &Request) -> Option<Skip> {
    let leaf = c.chain.first()?;
    match validity_at(leaf, req.at) {
        Validity::Valid => None,
        Validity::Expired => Some(Skip::Expired {
            not_after: rfc3339(leaf.not_after),
        }),
        Validity::NotYetValid => Some(Skip::NotYetValid {
            not_before: rfc3339(leaf.not_before),
        }),
    }
}

/// The leaf's purpose problem (EKU first, then key usage), if any.
fn purpose_skip(c: &Candidate) -> Option<Skip> {
    let leaf = c.chain.first()?;
    client_purpose_problems(leaf)
        .into_iter()
        .next()
        .map(|p| match p {
            PurposeProblem::NoClientAuthEku(eku) => Skip::NoClientAuthEku { eku },
            PurposeProblem::NoDigitalSignature(usage) => Skip::WrongKeyUsage { usage },
        })
}

fn judged(index: usize, skip: Option<Skip>) -> Judged {
    Judged {
        index,
        eligible: skip.is_none(),
        skip,
        note: None,
    }
}

/// Mark every eligible candidate but `chosen` as outranked by it.
fn outranked(js: &mut [Judged], chosen: usize, cands: &[Candidate]) {
    for j in js.iter_mut() {
        if j.eligible && j.index != chosen && j.skip.is_none() {
            j.skip = Some(Skip::Outranked {
                by: cands[chosen].label.clone(),
            });
        }
    }
}

fn answer_of(stack: Stack, js: Vec<Judged>, chosen: Option<usize>, why: String) -> StackAnswer {
    StackAnswer {
        stack,
        outcome: chosen.map_or(Outcome::SendsNone, Outcome::Sends),
        why,
        candidates: js,
    }
}

fn none_why(cands: &[Candidate], js: &[Judged]) -> String {
    if cands.is_empty() {
        return "no candidates".into();
    }
    "no candidate qualifies: sends an empty Certificate message".to_string()
        + if js
            .iter()
            .all(|j| matches!(j.skip, Some(Skip::IssuerNotListed { .. })))
        {
            " (none chains to a listed CA)"
        } else {
            ""
        }
}

/// OpenSSL: the one configured certificate (the first candidate), whatever the CA names, if
/// its key can sign with one of the server's schemes; otherwise an empty Certificate.
fn openssl(req: &Request, cands: &[Candidate]) -> StackAnswer {
    let Some(first) = cands.first() else {
        return answer_of(Stack::Openssl, vec![], None, "no candidates".into());
    };
    let mut js: Vec<Judged> = (0..cands.len())
        .map(|i| {
            judged(
                i,
                (i > 0).then(|| Skip::NotConfigured {
                    configured: first.label.clone(),
                }),
            )
        })
        .collect();
    let skip = if !first.has_key {
        Some(Skip::NoPrivateKey)
    } else if !key_allowed(first, req) {
        Some(Skip::KeyTypeNotAllowed {
            key: first.chain[0].key.clone(),
        })
    } else {
        None
    };
    if let Some(skip) = skip {
        let why = format!(
            "the configured certificate ({}) cannot be used: {}; sends an empty Certificate",
            first.label,
            skip.words()
        );
        js[0] = judged(0, Some(skip));
        return answer_of(Stack::Openssl, js, None, why);
    }
    let mut notes = Vec::new();
    if !req.ca_names.is_empty() && !issuer_listed(&first.chain, req) {
        notes.push("its issuer is not among the CA names (OpenSSL does not look at them)");
    }
    if validity_skip(first, req).is_some() {
        notes.push("it is not valid now (OpenSSL does not check)");
    }
    if !notes.is_empty() {
        js[0].note = Some(notes.join(" and "));
    }
    answer_of(
        Stack::Openssl,
        js,
        Some(0),
        format!(
            "the configured certificate ({}) is sent whatever the CA names",
            first.label
        ),
    )
}

/// The filters both Java key managers apply: a private key, a key type the request allows,
/// and (with a non-empty list) an issuer in it.
fn java_filter(c: &Candidate, req: &Request, key_types: &[&str]) -> Option<Skip> {
    let leaf = c.chain.first()?;
    if !c.has_key {
        return Some(Skip::NoPrivateKey);
    }
    if !key_types.contains(&KeyKind::of(leaf).java_algorithm()) || !key_allowed(c, req) {
        return Some(Skip::KeyTypeNotAllowed {
            key: leaf.key.clone(),
        });
    }
    if !req.ca_names.is_empty() && !issuer_listed(&c.chain, req) {
        return Some(Skip::IssuerNotListed {
            issuer: leaf_issuer(c),
        });
    }
    None
}

/// The order `KeyStore.aliases()` returns: PKCS#12 entries in file order, JKS entries in
/// `Hashtable` order, loose files as given (as if imported in that order).
fn java_enumeration(cands: &[Candidate]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(cands.len());
    let mut i = 0;
    while i < cands.len() {
        let is_jks = |c: &Candidate| c.store.as_ref().is_some_and(|e| e.kind == StoreKind::Jks);
        if is_jks(&cands[i]) {
            // One JKS store's entries are consecutive and start at position 0.
            let mut run = vec![i];
            while run.len() + i < cands.len()
                && is_jks(&cands[i + run.len()])
                && cands[i + run.len()].store.as_ref().map(|e| e.position) != Some(0)
            {
                run.push(i + run.len());
            }
            let aliases: Vec<String> = run.iter().map(|&k| cands[k].java_alias()).collect();
            out.extend(hashtable_order(&aliases).into_iter().map(|k| run[k]));
            i += run.len();
        } else {
            out.push(i);
            i += 1;
        }
    }
    out
}

/// Java's SunX509 key manager: for each key type in the server's order, the first alias in
/// its `HashMap`'s order whose leaf key has that type and any of whose certificates was issued
/// by a listed CA (any alias with an empty list). No validity or usage check.
fn java_sunx509(req: &Request, cands: &[Candidate]) -> StackAnswer {
    let key_types = java_key_types(req);
    let mut js: Vec<Judged> = (0..cands.len())
        .map(|i| judged(i, java_filter(&cands[i], req, &key_types)))
        .collect();
    let enumeration = java_enumeration(cands);
    let aliases: Vec<String> = enumeration.iter().map(|&i| cands[i].java_alias()).collect();
    let map_order: Vec<usize> = hashmap_order(&aliases)
        .into_iter()
        .map(|k| enumeration[k])
        .collect();
    let chosen = key_types.iter().find_map(|kt| {
        map_order
            .iter()
            .copied()
            .find(|&i| js[i].eligible && KeyKind::of(&cands[i].chain[0]).java_algorithm() == *kt)
    });
    let why = match chosen {
        Some(i) => {
            outranked(&mut js, i, cands);
            if let Some(v) = validity_skip(&cands[i], req) {
                js[i].note = Some(format!("{} (SunX509 does not check)", v.words()));
            }
            format!(
                "first match in the key manager's HashMap order ({}), not the keystore's",
                map_order
                    .iter()
                    .map(|&k| cands[k].java_alias())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        None => none_why(cands, &js),
    };
    answer_of(Stack::Java, js, chosen, why)
}

/// Rank of a PKIX check result (lower is better): OK, EXPIRED, EXTENSION_MISMATCH.
fn pkix_rank(c: &Candidate, req: &Request) -> (u8, Option<Skip>) {
    if let Some(p) = purpose_skip(c) {
        return (2, Some(p));
    }
    match validity_skip(c, req) {
        Some(v) => (1, Some(v)),
        None => (0, None),
    }
}

/// Java's NewSunX509/PKIX key manager: the same filters as SunX509, walked in keystore order;
/// the first entry that is valid now with a suitable usage wins (one of the server's first
/// key type before others); otherwise the best of the rest, expired before wrong usage.
fn java_pkix(req: &Request, cands: &[Candidate]) -> StackAnswer {
    let key_types = java_key_types(req);
    let mut js: Vec<Judged> = (0..cands.len())
        .map(|i| judged(i, java_filter(&cands[i], req, &key_types)))
        .collect();
    // (candidate, rank, key index) in keystore order.
    let eligible: Vec<usize> = java_enumeration(cands)
        .into_iter()
        .filter(|&i| js[i].eligible)
        .collect();
    let matches: Vec<(usize, u8, usize)> = eligible
        .into_iter()
        .map(|i| {
            let (rank, skip) = pkix_rank(&cands[i], req);
            if let Some(skip) = skip {
                js[i].note = Some(format!("{}: ranked after entries that pass", skip.words()));
            }
            let alg = KeyKind::of(&cands[i].chain[0]).java_algorithm();
            let key_index = key_types
                .iter()
                .position(|k| *k == alg)
                .unwrap_or(usize::MAX);
            (i, rank, key_index)
        })
        .collect();
    let chosen = matches
        .iter()
        .find(|m| m.1 == 0 && m.2 == 0)
        .or_else(|| matches.iter().find(|m| m.1 == 0))
        .or_else(|| matches.iter().min_by_key(|m| (m.1, m.2)))
        .map(|m| m.0);
    let why = match chosen {
        Some(i) if js[i].note.is_some() => {
            outranked(&mut js, i, cands);
            "no entry passes the validity and usage checks: sends the best of the rest".into()
        }
        Some(i) => {
            outranked(&mut js, i, cands);
            "first entry in keystore order that matches and passes the validity and usage checks"
                .into()
        }
        None => none_why(cands, &js),
    };
    answer_of(Stack::JavaPkix, js, chosen, why)
}

/// Go: the first of `Config.Certificates` for which `SupportsCertificate` holds: a signature
/// scheme the key can use, and (with a non-empty list) a certificate of the chain issued by a
/// listed CA. No validity or usage check.
fn go(req: &Request, cands: &[Candidate]) -> StackAnswer {
    let mut js: Vec<Judged> = (0..cands.len())
        .map(|i| {
            let c = &cands[i];
            let skip = if !c.has_key {
                Some(Skip::NoPrivateKey)
            } else if !key_allowed(c, req) {
                Some(Skip::KeyTypeNotAllowed {
                    key: c.chain[0].key.clone(),
                })
            } else if !req.ca_names.is_empty() && !issuer_listed(&c.chain, req) {
                Some(Skip::IssuerNotListed {
                    issuer: leaf_issuer(c),
                })
            } else {
                None
            };
            judged(i, skip)
        })
        .collect();
    let chosen = js.iter().find(|j| j.eligible).map(|j| j.index);
    let why = match chosen {
        Some(i) => {
            outranked(&mut js, i, cands);
            if let Some(v) = validity_skip(&cands[i], req) {
                js[i].note = Some(format!("{} (Go does not check)", v.words()));
            }
            "first certificate in Config.Certificates that SupportsCertificate accepts".into()
        }
        None => none_why(cands, &js),
    };
    answer_of(Stack::Go, js, chosen, why)
}

/// .NET `SslStream` on Schannel: with a non-empty list, the certificates whose chain (built
/// through the store) has an element issued by a listed CA; with an empty list, all; of
/// those, the first with a private key. No validity or usage check.
fn schannel(req: &Request, cands: &[Candidate]) -> StackAnswer {
    let mut js: Vec<Judged> = (0..cands.len())
        .map(|i| {
            let c = &cands[i];
            let skip = if !req.ca_names.is_empty() && !issuer_listed(&store_chain(c, cands), req) {
                Some(Skip::IssuerNotListed {
                    issuer: leaf_issuer(c),
                })
            } else if !c.has_key {
                Some(Skip::NoPrivateKey)
            } else {
                None
            };
            judged(i, skip)
        })
        .collect();
    let chosen = js.iter().find(|j| j.eligible).map(|j| j.index);
    let why = match chosen {
        Some(i) => {
            outranked(&mut js, i, cands);
            if req.ca_names.is_empty() {
                "empty CA list: every certificate is a candidate; the first with a key".into()
            } else {
                "first certificate whose chain reaches a listed CA, with a key".into()
            }
        }
        None => none_why(cands, &js),
    };
    answer_of(Stack::Schannel, js, chosen, why)
}

/// Chrome and Firefox: certificates valid now whose chain (through the store) reaches a listed
/// CA (all, with an empty list), Firefox also requiring a client-auth usage; the user picks
/// among them, and nothing is sent when none qualifies.
fn browser(stack: Stack, req: &Request, cands: &[Candidate]) -> StackAnswer {
    let js: Vec<Judged> = (0..cands.len())
        .map(|i| {
            let c = &cands[i];
            let skip = if !c.has_key {
                Some(Skip::NoPrivateKey)
            } else if let Some(v) = validity_skip(c, req) {
                Some(v)
            } else if stack == Stack::Firefox && purpose_skip(c).is_some() {
                purpose_skip(c)
            } else if !req.ca_names.is_empty() && !issuer_listed(&store_chain(c, cands), req) {
                Some(Skip::IssuerNotListed {
                    issuer: leaf_issuer(c),
                })
            } else {
                None
            };
            judged(i, skip)
        })
        .collect();
    let offered: Vec<usize> = js.iter().filter(|j| j.eligible).map(|j| j.index).collect();
    if offered.is_empty() {
        let why = none_why(cands, &js);
        return answer_of(stack, js, None, why);
    }
    let why = format!(
        "asks the user to pick among {} (unless a policy selects one)",
        offered
            .iter()
            .map(|&i| cands[i].label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    StackAnswer {
        stack,
        outcome: Outcome::AsksUser(offered),
        why,
        candidates: js,
    }
}
