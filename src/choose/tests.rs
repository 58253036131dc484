use super::*;
use crate::cert::reason::test_support::{der_of, leaf};
use time::macros::datetime;

fn cand(label: &str, issuer: &str) -> Candidate {
    Candidate {
        label: label.into(),
        chain: vec![leaf(label, issuer)],
        has_key: true,
        store: None,
    }
}

fn request(cas: &[&str]) -> Request {
    Request {
        ca_names: cas.iter().map(|c| format!("CN={c}")).collect(),
        ca_names_der: cas.iter().map(|c| der_of(c)).collect(),
        signature_schemes: vec![
            "ecdsa_secp256r1_sha256".into(),
            "rsa_pss_rsae_sha256".into(),
        ],
        version: Some(TlsVersion::Tls13),
        at: datetime!(2027-01-01 0:00 UTC),
    }
}

fn sends(answers: &[StackAnswer], cands: &[Candidate], stack: Stack) -> Option<String> {
    let a = answers.iter().find(|a| a.stack == stack).unwrap();
    a.sends(cands).map(str::to_string)
}

#[test]
fn issuer_filtering_stacks_skip_the_other_ca_and_openssl_does_not() {
    let cands = vec![cand("other.pem", "Other CA"), cand("good.pem", "Good CA")];
    let answers = choose(&request(&["Good CA"]), &cands);
    assert_eq!(
        sends(&answers, &cands, Stack::Openssl).as_deref(),
        Some("other.pem")
    );
    for s in [Stack::Java, Stack::JavaPkix, Stack::Go, Stack::Schannel] {
        assert_eq!(
            sends(&answers, &cands, s).as_deref(),
            Some("good.pem"),
            "{s:?}"
        );
    }
    let go = &answers[3];
    assert_eq!(
        go.candidates[0].skip,
        Some(Skip::IssuerNotListed {
            issuer: "CN=Other CA".into()
        })
    );
    assert_eq!(answers[5].outcome, Outcome::AsksUser(vec![1]));
}

#[test]
fn only_a_foreign_certificate_means_nothing_from_java_and_go() {
    let cands = vec![cand("other.pem", "Other CA")];
    let answers = choose(&request(&["Good CA"]), &cands);
    assert_eq!(
        sends(&answers, &cands, Stack::Openssl).as_deref(),
        Some("other.pem")
    );
    for a in &answers[1..] {
        assert_eq!(a.outcome, Outcome::SendsNone, "{:?}", a.stack);
    }
}

#[test]
fn rsa_key_against_ecdsa_only_schemes_is_refused_everywhere_that_signs() {
    let mut rsa = cand("rsa.pem", "Good CA");
    rsa.chain[0].key = "RSA 2048".into();
    let mut req = request(&["Good CA"]);
    req.signature_schemes = vec!["ecdsa_secp256r1_sha256".into()];
    let cands = vec![rsa];
    let answers = choose(&req, &cands);
    for s in [Stack::Openssl, Stack::Java, Stack::JavaPkix, Stack::Go] {
        let a = answers.iter().find(|a| a.stack == s).unwrap();
        assert_eq!(a.outcome, Outcome::SendsNone, "{s:?}");
        assert!(matches!(
            a.candidates[0].skip,
            Some(Skip::KeyTypeNotAllowed { .. })
        ));
    }
}

#[test]
fn expired_first_entry_pkix_skips_it_sunx509_and_go_do_not_check() {
    let mut old = cand("old", "Good CA");
    old.chain[0].not_after = datetime!(2026-01-01 0:00 UTC);
    let cands = vec![old, cand("new", "Good CA")];
    let answers = choose(&request(&["Good CA"]), &cands);
    assert_eq!(sends(&answers, &cands, Stack::Go).as_deref(), Some("old"));
    assert_eq!(
        sends(&answers, &cands, Stack::JavaPkix).as_deref(),
        Some("new")
    );
    // SunX509 walks its HashMap: "new" (hash bucket 0x..) against "old".
    let order = hashmap_order(&["old".to_string(), "new".to_string()]);
    let first = ["old", "new"][order[0]];
    assert_eq!(sends(&answers, &cands, Stack::Java).as_deref(), Some(first));
    assert!(matches!(
        answers[5].candidates[0].skip,
        Some(Skip::Expired { .. })
    ));
}

#[test]
fn empty_list_lets_every_issuer_through() {
    let cands = vec![cand("a", "X"), cand("b", "Y")];
    let answers = choose(&request(&[]), &cands);
    assert_eq!(sends(&answers, &cands, Stack::Go).as_deref(), Some("a"));
    assert_eq!(
        sends(&answers, &cands, Stack::Schannel).as_deref(),
        Some("a")
    );
    assert_eq!(answers[6].outcome, Outcome::AsksUser(vec![0, 1]));
}

#[test]
fn no_key_is_named_and_the_summary_groups_stacks() {
    let mut bare = cand("bare.pem", "Good CA");
    bare.has_key = false;
    let cands = vec![bare];
    let answers = choose(&request(&["Good CA"]), &cands);
    assert_eq!(answers[0].candidates[0].skip, Some(Skip::NoPrivateKey));
    assert!(answers.iter().all(|a| a.outcome == Outcome::SendsNone));
}

#[test]
fn evidence_line_groups_stacks_and_says_why() {
    let chain = vec![leaf("client", "Other CA")];
    let cr = crate::facts::CertRequest {
        phase: crate::facts::Phase::Handshake,
        ca_names: Some(vec!["CN=Good CA".into()]),
        ca_names_der: vec![der_of("Good CA")],
        signature_schemes: vec!["ecdsa_secp256r1_sha256".into()],
        mandatory: None,
        at_ms: 1.0,
        after_request_ms: None,
    };
    let line = flow::stacks_evidence(
        &cr,
        Some(TlsVersion::Tls13),
        datetime!(2027-01-01 0:00 UTC),
        &[("CN=client", &chain)],
    )
    .unwrap();
    assert_eq!(
        line,
        "with `CN=client` on offer, openssl would send `CN=client` (although its issuer is not \
         among the CA names (OpenSSL does not look at them)); java, java-pkix, go, schannel, chrome, \
         firefox would send nothing (issuer not among the CA names and no chain to one (issued \
         by CN=Other CA)) (see `mtlscope certs choose`)"
    );
}
