//! The real cause, first, in every mode, against real servers:
//! - nginx accepting only ECDSA client signatures and an RSA identity: `no-common-signature-
//!   scheme`, and probe's attempt says the identity could not be used (reverse too);
//! - a leaf without its intermediate against nginx, Caddy (Go) and a Java SSLServerSocket
//!   server that name only the root: `chain-incomplete` first, in `reverse` and `probe` alike;
//! - Caddy `mode require`: probe's throw-away identity is accepted: `client-cert-not-verified`;
//! - Apache asking late (TLS 1.2 renegotiation, TLS 1.3 post-handshake auth) with
//!   `probe --upstream-engine auto`: the identity is judged (200), the late request completed.

mod common;

use common::peers::{caddy, java, CaddyClientAuth};
use common::process::{run_bounded, RunningServer};
use common::{finding_ids, Curl, Mtlscope, Nginx, NginxConfig, TlsVersion, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `mtlscope probe URL ARGS… --json`, bounded at 90 s.
fn probe(url: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.arg("probe")
        .arg(url)
        .args(args)
        .args(["--json", "--timeout", "5"]);
    let out = run_bounded(cmd, None, Duration::from_secs(90));
    assert!(!out.timed_out, "probe ran past 90 s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn attempts(v: &Value) -> Vec<Value> {
    v["attempts"].as_array().cloned().unwrap_or_default()
}

fn ids(a: &Value) -> Vec<String> {
    finding_ids(a)
}

/// The attempts that offered the identity labelled `label`.
fn with_identity(v: &Value, label: &str) -> Vec<Value> {
    attempts(v)
        .into_iter()
        .filter(|a| a["identity"] == label)
        .collect()
}

/// `mtlscope reverse` in front of `upstream` with `identity`, one curl request through it; the
/// record.
async fn reverse_once(upstream: &str, ca: &Path, identity: &str) -> Value {
    let ca_s = ca.display().to_string();
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        upstream,
        "--upstream-ca",
        &ca_s,
        "--identity",
        identity,
    ]);
    let _ = Curl::new(format!("https://127.0.0.1:{}/", p.port()))
        .arg("--insecure")
        .run_async()
        .await;
    p.records(1).remove(0)
}

// ---- signature schemes --------------------------------------------------------------------

/// An ECDSA root, a `localhost` server certificate and an RSA client certificate, on disk.
struct RsaPki {
    _dir: tempfile::TempDir,
    root: PathBuf,
    server: (PathBuf, PathBuf),
    rsa_client: String,
}

fn rsa_pki() -> RsaPki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = time::OffsetDateTime::now_utc();
    let params = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
        p
    };
    let mut ca = params("schemes test root");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let write = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut server = params("localhost");
    server.subject_alt_names = vec![rcgen::SanType::DnsName("localhost".try_into().unwrap())];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let skey = KeyPair::generate().unwrap();
    let scert = server.signed_by(&skey, &root).unwrap();
    let mut client = params("rsa client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let ckey = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key (aws-lc-rs)");
    let ccert = client.signed_by(&ckey, &root).unwrap();
    let rsa_cert = write("rsa.pem", ccert.pem());
    let rsa_key = write("rsa.key", ckey.serialize_pem());
    RsaPki {
        root: write("root.pem", root.pem()),
        server: (
            write("server.pem", scert.pem()),
            write("server.key", skey.serialize_pem()),
        ),
        rsa_client: format!("{},{}", rsa_cert.display(), rsa_key.display()),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_identity_against_ecdsa_only_client_signatures() {
    let pki = rsa_pki();
    let nginx = Nginx::start(NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(pki.root.clone()),
        extra:
            "    ssl_conf_command ClientSignatureAlgorithms ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512;"
                .into(),
        ..NginxConfig::new(&pki.server.0, &pki.server.1)
    })
    .expect("start nginx");
    let root = pki.root.display().to_string();
    let v = probe(
        &nginx.localhost_url(),
        &["--upstream-ca", &root, "--identity", &pki.rsa_client],
    );
    let tried = with_identity(&v, "rsa.pem");
    assert_eq!(tried.len(), 2, "TLS 1.3 and 1.2: {v:#}");
    for a in &tried {
        assert_eq!(a["status"], 400, "{a:#}");
        assert_eq!(
            ids(a).first().map(String::as_str),
            Some("no-common-signature-scheme"),
            "{a:#}"
        );
        assert!(a["presented"].is_null(), "nothing was sent: {a:#}");
        let verdict = a["verdict"].as_str().unwrap();
        assert!(
            verdict.contains("could not use its certificate"),
            "{verdict}"
        );
        let evidence = a["findings"][0]["evidence"].to_string();
        assert!(
            evidence.contains("RSA 2048") && evidence.contains("ecdsa_secp256r1_sha256"),
            "{evidence}"
        );
    }

    let rec = reverse_once(&nginx.localhost_url(), &pki.root, &pki.rsa_client).await;
    assert_eq!(
        finding_ids(&rec).first().map(String::as_str),
        Some("no-common-signature-scheme"),
        "{rec:#}"
    );
}

// ---- a missing intermediate, everywhere ------------------------------------------------------

fn dev_pki() -> (DevPki, tempfile::TempDir) {
    common::dev_pki()
}

/// Reverse (with curl) and probe against `server` with the leaf-only identity: in both,
/// `chain-incomplete` is the first finding of the refused exchange.
async fn chain_incomplete_first(pki: &DevPki, server: &RunningServer, name: &str) {
    let url = server.localhost_url();
    let leaf_only = pki.client(ClientCert::NoIntermediate).arg();
    let rec = reverse_once(&url, pki.root_ca(), &leaf_only).await;
    assert_eq!(
        finding_ids(&rec).first().map(String::as_str),
        Some("chain-incomplete"),
        "{name} reverse: {:#}",
        rec["findings"]
    );
    // The views read the same facts: the record without its findings, diagnosed again on
    // reading (`--rediagnose`; without it a view shows the findings as recorded).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.jsonl");
    let mut bare = rec.clone();
    bare["findings"] = serde_json::json!([]);
    std::fs::write(&file, format!("{bare}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.arg("report")
        .arg(&file)
        .args(["--json", "--rediagnose", "--id", "chain-incomplete"]);
    let out = run_bounded(cmd, None, Duration::from_secs(30));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(
        report["records"].as_array().map(Vec::len),
        Some(1),
        "{name} report: {report:#}"
    );
    let root = pki.root_ca().display().to_string();
    let v = probe(
        &url,
        &[
            "--upstream-ca",
            &root,
            "--identity",
            &leaf_only,
            "--no-throwaway-identity",
        ],
    );
    let tried = with_identity(&v, "client-no-intermediate.pem");
    assert!(!tried.is_empty(), "{name}: {v:#}");
    for a in tried.iter().filter(|a| !a["negotiated"].is_null()) {
        assert_eq!(
            ids(a).first().map(String::as_str),
            Some("chain-incomplete"),
            "{name} probe: {a:#}"
        );
    }
    assert!(
        tried.iter().any(|a| !a["negotiated"].is_null()),
        "{name}: {v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_intermediate_is_chain_incomplete_first_in_reverse_and_probe() {
    let (pki, _d) = dev_pki();
    let server = pki.server();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    chain_incomplete_first(&pki, &nginx, "nginx").await;
    let go = caddy(
        &server.cert,
        &server.key,
        pki.root_ca(),
        CaddyClientAuth::RequireAndVerify,
    )
    .expect("caddy");
    chain_incomplete_first(&pki, &go, "caddy").await;
    let j = java(&server.cert, &server.key, pki.root_ca()).expect("java server");
    chain_incomplete_first(&pki, &j, "java").await;
}

// ---- a server that verifies nothing ---------------------------------------------------------

#[test]
fn caddy_require_accepts_the_throwaway_identity() {
    let (pki, _d) = dev_pki();
    let server = pki.server();
    let go = caddy(
        &server.cert,
        &server.key,
        pki.root_ca(),
        CaddyClientAuth::Require,
    )
    .expect("caddy");
    let root = pki.root_ca().display().to_string();
    let v = probe(&go.localhost_url(), &["--upstream-ca", &root]);
    let label = "throw-away identity (mtlscope's own throw-away CA)";
    let tried = with_identity(&v, label);
    assert!(
        !tried.is_empty(),
        "the throw-away identity was tried: {v:#}"
    );
    for a in &tried {
        assert_eq!(a["status"], 200, "{a:#}");
        assert!(
            ids(a).contains(&"client-cert-not-verified".to_string()),
            "{a:#}"
        );
    }
    // And a server that does verify refuses it, without that finding.
    let verifying = caddy(
        &server.cert,
        &server.key,
        pki.root_ca(),
        CaddyClientAuth::RequireAndVerify,
    )
    .expect("caddy");
    let v = probe(&verifying.localhost_url(), &["--upstream-ca", &root]);
    let tried = with_identity(&v, label);
    assert!(!tried.is_empty(), "{v:#}");
    for a in &tried {
        assert!(
            !ids(a).contains(&"client-cert-not-verified".to_string()),
            "{a:#}"
        );
        assert_ne!(a["status"], 200, "{a:#}");
    }
}

// ---- probe completes late requests ----------------------------------------------------------

#[test]
fn probe_auto_engine_judges_the_identity_on_apache_late_paths() {
    let (pki, _d) = dev_pki();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    for (version, late) in [
        (TlsVersion::Tls12, "renegotiation-requested"),
        (TlsVersion::Tls13, "post-handshake-auth"),
    ] {
        let apache = common::apache_secure_location(&pki, version);
        let v = probe(
            &apache.localhost_url(),
            &[
                "--upstream-ca",
                &root,
                "--identity",
                &good,
                "--path",
                "/secure",
                "--upstream-engine",
                "auto",
                "--no-throwaway-identity",
            ],
        );
        let tried: Vec<Value> = with_identity(&v, "client-good.pem")
            .into_iter()
            .filter(|a| a["negotiated"] == version.openssl_name())
            .collect();
        assert_eq!(tried.len(), 1, "{version:?}: {v:#}");
        let a = &tried[0];
        assert_eq!(
            a["status"], 200,
            "{version:?}: the identity was judged and accepted: {a:#}"
        );
        assert!(
            a["presented"]
                .as_str()
                .unwrap_or("")
                .contains("client-good"),
            "{a:#}"
        );
        let found = ids(a);
        assert_eq!(
            found.first().map(String::as_str),
            Some(late),
            "{version:?}: {a:#}"
        );
        assert!(
            a["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["severity"] != "error"),
            "{version:?}: {a:#}"
        );
        if version == TlsVersion::Tls13 {
            // Without the engine: advice names only what this server accepted (it refused
            // TLS 1.2 in the probe's own attempts).
            let v = probe(
                &apache.localhost_url(),
                &[
                    "--upstream-ca",
                    &root,
                    "--identity",
                    &good,
                    "--path",
                    "/secure",
                    "--no-throwaway-identity",
                ],
            );
            let text = v["attempts"].to_string();
            assert!(text.contains("post-handshake-auth"), "{v:#}");
            assert!(!text.contains("retry with TLS 1.2"), "{v:#}");
            assert!(text.contains("--upstream-engine auto"), "{v:#}");
        }
    }
}

// ---- a CertificateRequest too large for some clients -----------------------------------------

/// `reverse --client-ca` with 120 CAs whose names come to more than 16 KiB: the client leg's
/// request is recorded with them, and `ca-list-too-large` warns (curl itself copes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_more_than_16_kib_of_cas_is_ca_list_too_large() {
    let (pki, _d) = dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::Off)).expect("nginx");
    let dir = tempfile::tempdir().unwrap();
    let mut bundle = String::new();
    for i in 0..120 {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(
            DnType::CommonName,
            format!("Enterprise Root Certification Authority {i:03}"),
        );
        p.distinguished_name.push(
            DnType::OrganizationName,
            "A Company With A Long Name And Many Trusted Roots, Incorporated",
        );
        p.distinguished_name.push(
            DnType::OrganizationalUnitName,
            "Public Key Infrastructure Services",
        );
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        bundle.push_str(&ca.pem());
    }
    let file = dir.path().join("many-cas.pem");
    std::fs::write(&file, bundle).unwrap();
    let upstream = nginx.localhost_url();
    let root = pki.root_ca().display().to_string();
    let cas = file.display().to_string();
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        &upstream,
        "--upstream-ca",
        &root,
        "--client-auth",
        "optional",
        "--client-ca",
        &cas,
    ]);
    let r = Curl::new(format!("https://127.0.0.1:{}/", p.port()))
        .arg("--insecure")
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(
        rec["client_leg"]["cert_request"]["ca_names"]
            .as_array()
            .map(Vec::len),
        Some(120)
    );
    let f = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "ca-list-too-large")
        .unwrap_or_else(|| panic!("{:#}", rec["findings"]));
    assert_eq!(f["severity"], "warning");
    assert!(
        f["summary"].as_str().unwrap().contains("bytes of CA names"),
        "{f:#}"
    );
}
