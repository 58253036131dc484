//! Tests of PKCS#12 identity loading, with files made by the openssl CLI from the dev PKI.

use super::*;
use crate::pki::{ClientCert, DevPki};
use std::process::Command;

fn export(pki: &DevPki, out: &Path, extra: &[&str]) {
    let id = pki.client(ClientCert::Good);
    let status = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:s3cret", "-inkey"])
        .arg(&id.key)
        .arg("-in")
        .arg(&id.cert)
        .arg("-out")
        .arg(out)
        .args(extra)
        .status()
        .expect("run openssl");
    assert!(status.success());
}

#[test]
fn pkcs12_identities_load_with_their_chain_leaf_first() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(&dir.path().join("out")).unwrap();
    let pem_chain = load_certs(&pki.client(ClientCert::Good).cert).unwrap();
    let modern = dir.path().join("modern.p12");
    export(&pki, &modern, &[]);
    // The 3DES/SHA-1 encoding older tools and Windows exports use.
    let legacy = dir.path().join("legacy.p12");
    export(
        &pki,
        &legacy,
        &[
            "-certpbe",
            "PBE-SHA1-3DES",
            "-keypbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ],
    );
    for p in [&modern, &legacy] {
        let id = Identity::load_pkcs12(p, "s3cret").unwrap();
        assert_eq!(id.chain, pem_chain, "{}", p.display());
        assert_eq!(id.cert_path, *p);
    }
    let err = Identity::load_pkcs12(&modern, "wrong").unwrap_err();
    assert!(matches!(err, LoadError::Pkcs12 { .. }), "{err}");
    assert!(err.to_string().contains("modern.p12"), "{err}");
    let err = Identity::load_pkcs12(&pki.client(ClientCert::Good).cert, "s3cret").unwrap_err();
    assert!(matches!(err, LoadError::Pkcs12 { .. }), "{err}");
}
