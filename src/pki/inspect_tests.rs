//! Tests of `certs inspect` on the dev PKI and on garbage.

use crate::pki::inspect::*;
use crate::pki::inspect_text::render_text;
use crate::pki::{ClientCert, DevPki};
use std::path::{Path, PathBuf};
use time::Duration;
use time::OffsetDateTime;

fn setup() -> (tempfile::TempDir, DevPki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(&dir.path().join("out")).unwrap();
    (dir, pki)
}

fn report_for(pki: &DevPki, which: ClientCert, names: &Path) -> FileReport {
    let report = inspect(
        &[pki.client(which).cert.clone()],
        Some(names),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    report.files.into_iter().next().unwrap()
}

#[test]
fn ca_names_match_and_mismatch_with_reasons() {
    let (_dir, pki) = setup();
    let root_list = pki.root_ca();
    let good = report_for(&pki, ClientCert::Good, root_list);
    let check = good.ca_names_check.unwrap();
    assert!(check.satisfied, "{}", check.explanation);
    let m = check.matched.unwrap();
    assert_eq!(
        (m.position, m.by_subject),
        (1, false),
        "root is the intermediate's issuer"
    );

    let lone = report_for(&pki, ClientCert::NoIntermediate, root_list);
    let check = lone.ca_names_check.unwrap();
    assert!(!check.satisfied);
    assert!(
        check
            .explanation
            .contains("names only CN=mtlscope dev root")
            && check.explanation.contains("lacks the intermediate"),
        "{}",
        check.explanation
    );
    // A list naming the intermediate is satisfied by the lone leaf.
    let by_inter = report_for(&pki, ClientCert::NoIntermediate, pki.intermediate_ca());
    assert!(by_inter.ca_names_check.unwrap().satisfied);

    let selfish = report_for(&pki, ClientCert::SelfSigned, root_list);
    let check = selfish.ca_names_check.unwrap();
    assert!(
        !check.satisfied && check.explanation.contains("self-signed"),
        "{}",
        check.explanation
    );

    let other = report_for(&pki, ClientCert::OtherCa, root_list);
    let check = other.ca_names_check.unwrap();
    assert!(
        !check.satisfied && check.explanation.contains("mtlscope other CA"),
        "{}",
        check.explanation
    );
}

#[test]
fn validity_purpose_and_chain_findings() {
    let (dir, pki) = setup();
    let files = vec![
        pki.client(ClientCert::Expired).cert.clone(),
        pki.client(ClientCert::NotYetValid).cert.clone(),
        pki.client(ClientCert::ServerAuthOnly).cert.clone(),
        pki.client(ClientCert::Good).cert.clone(),
    ];
    let now = OffsetDateTime::now_utc();
    let report = inspect(&files, None, now).unwrap();
    let validity: Vec<_> = report
        .files
        .iter()
        .map(|f| f.certificates[0].validity)
        .collect();
    assert_eq!(validity, ["expired", "not_yet_valid", "valid", "valid"]);
    assert_eq!(report.files[2].client_purpose_problems.len(), 1);
    assert!(report.files[3].client_purpose_problems.is_empty());
    assert_eq!(report.files[3].certificates[1].role, "intermediate");
    assert!(report.files[3].chain.order_breaks.is_empty());
    assert_eq!(
        report.files[3].chain.missing_issuer.as_deref(),
        Some("CN=mtlscope dev root, O=mtlscope dev")
    );
    let text = render_text(&report);
    assert!(
        text.contains("EXPIRED") && text.contains("NOT YET VALID"),
        "{text}"
    );
    assert!(
        text.contains("NOT FOR CLIENTS: extended key usage lacks clientAuth"),
        "{text}"
    );

    assert!(!report.files[0].usable && report.files[3].usable);
    assert!(report.files[0].problems[0].contains("has expired"));

    // Judged a month ago, the expired certificate was valid and the future one not yet.
    let past = inspect(&files[..2], None, now - Duration::days(30)).unwrap();
    assert_eq!(past.files[0].certificates[0].validity, "valid");
    assert_eq!(past.files[1].certificates[0].validity, "not_yet_valid");

    // Intermediate before leaf: an order break at 0.
    let swapped = dir.path().join("swapped.pem");
    let leaf = std::fs::read_to_string(&pki.client(ClientCert::NoIntermediate).cert).unwrap();
    let inter = std::fs::read_to_string(pki.intermediate_ca()).unwrap();
    std::fs::write(&swapped, format!("{inter}{leaf}")).unwrap();
    let report = inspect(&[swapped], None, now).unwrap();
    assert_eq!(report.files[0].chain.order_breaks.len(), 1);
    assert_eq!(report.files[0].chain.order_breaks[0].position, 0);
    assert!(render_text(&report).contains("BROKEN after #0"));
}

#[test]
fn json_report_carries_the_summary_fields() {
    let (_dir, pki) = setup();
    let report = inspect(
        &[pki.client(ClientCert::Good).cert.clone()],
        Some(pki.root_ca()),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let v = serde_json::to_value(&report).unwrap();
    let leaf = &v["files"][0]["certificates"][0];
    assert_eq!(leaf["subject"], "CN=client-good, O=mtlscope dev");
    assert_eq!(leaf["eku"][0], "clientAuth");
    assert_eq!(leaf["validity"], "valid");
    assert_eq!(leaf["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["files"][0]["ca_names_check"]["satisfied"], true);
    assert_eq!(
        v["ca_names"]["names"][0],
        "CN=mtlscope dev root, O=mtlscope dev"
    );
}

#[test]
fn garbage_is_refused_naming_the_file() {
    let (dir, pki) = setup();
    let now = OffsetDateTime::now_utc();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let expect = |p: PathBuf, ok: fn(&InspectError) -> bool| {
        let err = inspect(std::slice::from_ref(&p), None, now).unwrap_err();
        assert!(ok(&err), "{err:?}");
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
    };
    expect(write("text.pem", b"hello, not a certificate\n"), |e| {
        matches!(e, InspectError::NotCertificate { .. })
    });
    let der = crate::pki::load::load_certs(&pki.client(ClientCert::Good).cert).unwrap();
    expect(write("short.der", &der[0][..100]), |e| {
        matches!(e, InspectError::NotCertificate { .. })
    });
    // Drop one 64-character base64 line: valid base64, truncated DER.
    let pem = std::fs::read_to_string(&pki.client(ClientCert::NoIntermediate).cert).unwrap();
    let lines: Vec<&str> = pem.lines().collect();
    let cut = [&lines[..3], &lines[4..]].concat().join("\n");
    expect(write("cut.pem", cut.as_bytes()), |e| {
        matches!(e, InspectError::BadCertificate { index: 1, .. })
    });
    let unterminated = pem.lines().take(4).collect::<Vec<_>>().join("\n");
    expect(write("unterminated.pem", unterminated.as_bytes()), |e| {
        matches!(e, InspectError::BadPem { .. })
    });
    expect(
        pki.client(ClientCert::Good).key.clone(),
        |e| matches!(e, InspectError::NoCertificate { found, .. } if found == &["PRIVATE KEY"]),
    );
    expect(dir.path().join("missing.pem"), |e| {
        matches!(e, InspectError::Read { .. })
    });
    // A raw DER certificate is fine.
    let whole = write("good.der", &der[0]);
    assert_eq!(
        inspect(&[whole], None, now).unwrap().files[0]
            .certificates
            .len(),
        1
    );
    // A garbage CA-names file is refused too.
    let bad_names = write("names.pem", b"nope");
    let err = inspect(&[pki.server().cert.clone()], Some(&bad_names), now).unwrap_err();
    assert!(err.to_string().contains("names.pem"), "{err}");
}
