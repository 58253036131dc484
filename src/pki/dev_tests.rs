//! Tests of the dev PKI: what the embedded recipe generates, judged by `crate::cert`.

use super::*;
use crate::cert::reason::{client_purpose_problems, validity_at, Validity};
use crate::facts::CertSummary;
use crate::facts::{ExtKeyUsage, KeyUsage};
use crate::pki::load::load_certs;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;
use std::sync::Arc;

fn chain(path: &Path) -> Vec<CertSummary> {
    load_certs(path)
        .unwrap()
        .iter()
        .map(|d| crate::cert::summarize(d).unwrap())
        .collect()
}

fn one(path: &Path) -> CertSummary {
    chain(path).remove(0)
}

#[test]
fn generated_certificates_have_the_intended_issuer_usage_and_validity() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let now = OffsetDateTime::now_utc();
    let root = one(pki.root_ca());
    let inter = one(pki.intermediate_ca());
    let other = one(pki.other_ca());
    assert_eq!(root.subject, "CN=mtlscope dev root, O=mtlscope dev");
    assert!(root.is_ca && root.self_issued);
    assert!(inter.is_ca && !inter.self_issued);
    assert_eq!(inter.issuer_der, root.subject_der);
    assert!(other.is_ca && other.self_issued && other.subject != root.subject);

    let server = chain(&pki.server().cert);
    assert_eq!(server.len(), 2, "server PEM carries the intermediate");
    assert_eq!(server[0].issuer_der, inter.subject_der);
    assert_eq!(server[1].sha256, inter.sha256);
    assert_eq!(server[0].eku, [ExtKeyUsage::ServerAuth]);
    assert_eq!(server[0].sans, ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]);

    for which in ClientCert::ALL {
        let c = chain(&pki.client(which).cert);
        let leaf = &c[0];
        assert!(!leaf.is_ca, "{which:?}");
        let validity = validity_at(leaf, now);
        match which {
            ClientCert::Good => {
                assert_eq!(c.len(), 2);
                assert_eq!(leaf.issuer_der, inter.subject_der);
                assert_eq!(c[1].sha256, inter.sha256);
                assert_eq!(leaf.eku, [ExtKeyUsage::ClientAuth]);
                assert_eq!(leaf.key_usage, [KeyUsage::DigitalSignature]);
                assert!(client_purpose_problems(leaf).is_empty());
                assert_eq!(validity, Validity::Valid);
            }
            ClientCert::Expired => assert_eq!(validity, Validity::Expired),
            ClientCert::NotYetValid => assert_eq!(validity, Validity::NotYetValid),
            ClientCert::ServerAuthOnly => {
                assert_eq!(leaf.eku, [ExtKeyUsage::ServerAuth]);
                assert_eq!(client_purpose_problems(leaf).len(), 1);
                assert_eq!(validity, Validity::Valid);
            }
            ClientCert::OtherCa => {
                assert_eq!(leaf.issuer_der, other.subject_der);
                assert_eq!(validity, Validity::Valid);
            }
            ClientCert::NoIntermediate => {
                assert_eq!(c.len(), 1);
                assert_eq!(leaf.issuer_der, inter.subject_der);
                assert_eq!(validity, Validity::Valid);
            }
            ClientCert::SelfSigned => {
                assert_eq!(c.len(), 1);
                assert!(leaf.self_issued);
                assert_eq!(validity, Validity::Valid);
            }
        }
        // Every key pairs with its certificate.
        pki.client(which).load().unwrap();
    }
    pki.server().load().unwrap();
    assert_eq!(
        one(&dir.path().join("ca-bundle.pem")).sha256,
        root.sha256,
        "ca-bundle.pem is the root"
    );
    assert!(pki.describe().contains("client-no-intermediate.pem"));
}

#[test]
fn serials_are_unique_and_not_reused_on_regeneration() {
    let dir = tempfile::tempdir().unwrap();
    let first = DevPki::generate(dir.path()).unwrap();
    let serials = |pki: &DevPki| {
        let mut s: Vec<String> = [pki.root_ca(), pki.intermediate_ca(), pki.other_ca()]
            .into_iter()
            .map(|p| one(p).serial)
            .chain(std::iter::once(one(&pki.server().cert).serial))
            .chain(
                ClientCert::ALL
                    .iter()
                    .map(|c| one(&pki.client(*c).cert).serial),
            )
            .collect();
        s.sort();
        s
    };
    let a = serials(&first);
    let mut dedup = a.clone();
    dedup.dedup();
    assert_eq!(a.len(), 11);
    assert_eq!(dedup.len(), a.len(), "duplicate serial in {a:?}");
    let second = DevPki::generate(dir.path()).unwrap();
    let b = serials(&second);
    assert!(a.iter().all(|s| !b.contains(s)), "a serial was reused");
}

#[cfg(unix)]
#[test]
fn keys_are_0600_and_certificates_0644_even_when_replacing_looser_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client-good.key");
    // A leftover key file readable by everyone must not keep its mode.
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for f in pki.files() {
        let want = if f.kind == FileKind::Key {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode(&f.path), want, "{}", f.path.display());
    }
    assert_eq!(mode(&key), 0o600);
    assert!(pki
        .files()
        .iter()
        .any(|f| f.path == key && f.kind == FileKind::Key));
    // No temporaries left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_recipe_without_the_dev_names_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.toml");
    std::fs::write(
        &recipe,
        "[[ca]]\nname = \"root\"\ncn = \"r\"\nnot_after_days = 10\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let err = DevPki::generate_from(&recipe, &out).unwrap_err();
    assert!(err.to_string().contains("\"intermediate\""), "{err}");
    assert!(!out.exists());
    // The generic generator takes any recipe.
    let generated = generate_recipe(&Recipe::from_file(&recipe).unwrap(), &out).unwrap();
    assert_eq!(generated.files.len(), 1);
}

fn roots(path: &Path) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in load_certs(path).unwrap() {
        store.add(c).unwrap();
    }
    Arc::new(store)
}

#[test]
fn webpki_accepts_the_good_certificates_and_rejects_the_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let now = UnixTime::now();

    let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(pki.root_ca()),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server = load_certs(&pki.server().cert).unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        let name = ServerName::try_from(name).unwrap();
        server_verifier
            .verify_server_cert(&server[0], &server[1..], &name, &[], now)
            .unwrap();
    }

    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(pki.root_ca()), provider)
            .build()
            .unwrap();
    for which in ClientCert::ALL {
        let presented: Vec<CertificateDer<'static>> = load_certs(&pki.client(which).cert).unwrap();
        let verdict = client_verifier.verify_client_cert(&presented[0], &presented[1..], now);
        assert_eq!(
            verdict.is_ok(),
            which == ClientCert::Good,
            "{which:?}: {verdict:?}"
        );
    }
    // The missing intermediate is the only fault of client-no-intermediate.
    let mut with_inter = load_certs(&pki.client(ClientCert::NoIntermediate).cert).unwrap();
    with_inter.extend(load_certs(pki.intermediate_ca()).unwrap());
    client_verifier
        .verify_client_cert(&with_inter[0], &with_inter[1..], now)
        .unwrap();
}

// `cert::KnownCerts` completing the dev PKI's chains (there, not in `cert`, because only
// the PKI can build them).

#[test]
fn a_leaf_without_its_intermediate_is_completed_from_the_configured_cas() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let mut known = crate::cert::KnownCerts::new();
    known.add(
        &load_certs(pki.intermediate_ca()).unwrap(),
        "--client-ca inter.pem",
    );
    known.add(&load_certs(pki.root_ca()).unwrap(), "--client-ca root.pem");
    let leaf = load_certs(&pki.client(ClientCert::NoIntermediate).cert).unwrap();
    let chain: Vec<CertSummary> = leaf
        .iter()
        .map(|c| crate::cert::summarize(c).unwrap())
        .collect();
    let lookup = known.lookup_issuer(&chain).expect("incomplete chain");
    assert_eq!(lookup.found.len(), 2, "{lookup:?}");
    assert!(!lookup.found[0].self_issued, "the intermediate first");
    assert_eq!(lookup.found[0].source, "--client-ca inter.pem");
    assert!(lookup.found[1].self_issued, "then the root");

    let good = load_certs(&pki.client(ClientCert::Good).cert).unwrap();
    let chain: Vec<CertSummary> = good
        .iter()
        .map(|c| crate::cert::summarize(c).unwrap())
        .collect();
    let lookup = known.lookup_issuer(&chain).expect("ends below the root");
    assert_eq!(lookup.found.len(), 1);
    assert!(lookup.found[0].self_issued, "only the root is missing");
}

#[test]
fn a_foreign_issuer_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let mut known = crate::cert::KnownCerts::new();
    known.add(
        &load_certs(pki.root_ca()).unwrap(),
        "--upstream-ca root.pem",
    );
    let other = load_certs(&pki.client(ClientCert::OtherCa).cert).unwrap();
    let chain: Vec<CertSummary> = other
        .iter()
        .map(|c| crate::cert::summarize(c).unwrap())
        .collect();
    let lookup = known
        .lookup_issuer(&chain)
        .expect("issuer not in the chain");
    assert!(lookup.found.is_empty());
}
