//! The OpenSSL upstream engine honours what the rustls leg does, against real Apache httpd and
//! nginx: PKCS#12 identities, `--resolve` with the SNI kept, `--insecure-upstream` (verified and
//! recorded, not enforced), `--upstream-ca` enforced, `--keylog`, per-host engines in `forward`'s
//! config, and a late request it answers but the server refuses (said, with why).

mod common;

use common::flows::{finding, first_id, has, ids, sent_alerts, upstream};
use common::{Curl, Nginx, Proxy, TlsVersion, VerifyClient};
use mtlscope::facts::{FindingId, Phase, Severity, Stage, TlsEngine};
use mtlscope::pki::{ClientCert, DevPki};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PKCS#12 file of the good client identity, password `s3cret` in the returned file.
fn pkcs12(pki: &DevPki, dir: &Path) -> (PathBuf, PathBuf) {
    let p12 = dir.join("good.p12");
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let good = pki.client(ClientCert::Good);
    let out = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:s3cret", "-out"])
        .arg(&p12)
        .arg("-in")
        .arg(&good.cert)
        .arg("-inkey")
        .arg(&good.key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (p12, pw)
}

async fn get(pki: &DevPki, port: u16, path: &str) -> common::CurlResult {
    Curl::new(format!("https://localhost:{port}{path}"))
        .cacert(pki.root_ca())
        .http1_1()
        .run_async()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_resolve_insecure_upstream_and_keylog_through_openssl() {
    let (pki, dir) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let (p12, pw) = pkcs12(&pki, dir.path());
    let keylog = dir.path().join("keys.log");
    let port = apache.port();
    let url = format!("https://secure.test:{port}");
    let resolve = format!("secure.test:{port}:127.0.0.1");
    let server = pki.server().arg();
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &url,
        "--resolve",
        &resolve,
        "--server-cert",
        &server,
        "--upstream-ca",
        &pki.root_ca().display().to_string(),
        "--insecure-upstream",
        "--identity",
        &p12.display().to_string(),
        "--pkcs12-password-file",
        &pw.display().to_string(),
        "--keylog",
        &keylog.display().to_string(),
        "--upstream-engine",
        "openssl",
    ])
    .await;
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let rec = p.flow().await;
    let up = upstream(&rec);
    assert_eq!(up.engine, Some(TlsEngine::Openssl));
    // The name is kept for SNI and the certificate check; the server's certificate names
    // localhost, so it does not verify, and --insecure-upstream goes on regardless.
    assert_eq!(up.sni.as_deref(), Some("secure.test"));
    let verification = up.server_verification.as_ref().expect("verification");
    assert!(!verification.ok, "{up:#?}");
    assert_eq!(verification.reason.as_deref(), Some("name mismatch"));
    assert!(!verification.enforced);
    assert!(has(&rec, FindingId::ServerCertUntrusted), "{:?}", ids(&rec));
    // The PKCS#12 identity answered the post-handshake request.
    assert_eq!(up.completed_late_request, Some(Phase::PostHandshake));
    assert!(up.chain[0].subject.contains("client-good"));
    // Key-log lines for this leg, joined by its client random.
    let random = up.client_random.as_deref().expect("client random");
    let log = std::fs::read_to_string(&keylog).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") && l.contains(random)),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_is_refused_and_said_so() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &nginx.localhost_url(),
        "--server-cert",
        &pki.server().arg(),
        "--upstream-ca",
        &pki.other_ca().display().to_string(),
        "--identity",
        &pki.client(ClientCert::Good).arg(),
        "--upstream-engine",
        "openssl",
    ])
    .await;
    let r = get(&pki, p.port(), "/").await;
    assert_eq!(r.status, 502, "{r:?}");
    let rec = p.flow().await;
    let up = upstream(&rec);
    let verification = up.server_verification.as_ref().expect("verification");
    assert!(!verification.ok, "{up:#?}");
    assert_eq!(verification.reason.as_deref(), Some("unknown issuer"));
    assert!(verification.enforced);
    assert_eq!(up.failure.as_ref().map(|f| f.stage), Some(Stage::Handshake));
    assert!(sent_alerts(up).iter().any(|a| a == "unknown_ca"), "{up:#?}");
    assert!(has(&rec, FindingId::ServerCertUntrusted), "{:?}", ids(&rec));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_request_answered_with_an_untrusted_certificate_is_not_completed_and_says_why() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &apache.localhost_url(),
        "--server-cert",
        &pki.server().arg(),
        "--upstream-ca",
        &pki.root_ca().display().to_string(),
        "--identity",
        &pki.client(ClientCert::OtherCa).arg(),
        "--upstream-engine",
        "openssl",
    ])
    .await;
    let r = get(&pki, p.port(), "/secure").await;
    assert!(r.status == 502 || r.status == 403, "{r:?}");
    let rec = p.flow().await;
    let up = upstream(&rec);
    assert_eq!(
        up.cert_request.as_ref().map(|c| c.phase),
        Some(Phase::Renegotiation),
        "{up:#?}"
    );
    assert!(up.completed_late_request.is_none(), "{up:#?}");
    let f = finding(&rec, FindingId::RenegotiationRequested);
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("could not complete it"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_uses_the_engine_a_host_rule_names() {
    let (pki, dir) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let ca_dir = common::tmpdir();
    let good = pki.client(ClientCert::Good);
    let config = dir.path().join("forward.toml");
    std::fs::write(
        &config,
        format!(
            "upstream_ca = [{root:?}]\n\n[[host]]\npattern = \"localhost\"\nidentity = [{{ cert = {cert:?}, key = {key:?} }}]\nengine = \"openssl\"\n",
            root = pki.root_ca().display().to_string(),
            cert = good.cert.display().to_string(),
            key = good.key.display().to_string(),
        ),
    )
    .unwrap();
    let mut p = Proxy::start(&[
        "forward",
        "--ca-dir",
        &ca_dir.path().display().to_string(),
        "--config",
        &config.display().to_string(),
    ])
    .await;
    let r = Curl::new(format!("{}/secure", apache.localhost_url()))
        .proxy(format!("http://{}", p.addr))
        .cacert(ca_dir.path().join("ca.pem"))
        .http1_1()
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(upstream(&rec).engine, Some(TlsEngine::Openssl));
    assert_eq!(
        upstream(&rec).completed_late_request,
        Some(Phase::Renegotiation)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_act_on_the_openssl_leg_too() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &apache.localhost_url(),
        "--server-cert",
        &pki.server().arg(),
        "--upstream-ca",
        &pki.root_ca().display().to_string(),
        "--identity",
        &pki.client(ClientCert::Good).arg(),
        "--upstream-engine",
        "openssl",
        "--fault",
        "strip-client-cert",
    ])
    .await;
    let r = get(&pki, p.port(), "/secure").await;
    assert!(r.status >= 400, "{r:?}");
    let rec = p.flow().await;
    let up = upstream(&rec);
    // The late request came and was answered with no certificate, as the fault says.
    assert_eq!(
        up.cert_request.as_ref().map(|c| c.phase),
        Some(Phase::PostHandshake),
        "{up:#?}"
    );
    assert!(
        up.identity
            .as_ref()
            .and_then(|i| i.chosen.as_ref())
            .is_none(),
        "{up:#?}"
    );
    assert!(up.completed_late_request.is_none());
    assert_eq!(first_id(&rec), Some(FindingId::InjectedFault));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_identities_are_chosen_from_the_late_requests_ca_names() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &apache.localhost_url(),
        "--server-cert",
        &pki.server().arg(),
        "--upstream-ca",
        &pki.root_ca().display().to_string(),
        // The first does not match the CA names Apache sends; the second does.
        "--identity",
        &pki.client(ClientCert::OtherCa).arg(),
        "--identity",
        &pki.client(ClientCert::Good).arg(),
        "--upstream-engine",
        "openssl",
    ])
    .await;
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    let id = upstream(&rec).identity.as_ref().expect("identity choice");
    assert!(
        id.chosen
            .as_deref()
            .unwrap_or_default()
            .contains("client-good"),
        "{id:#?}"
    );
    assert!(id.reason.starts_with("auto:"), "{id:#?}");
    assert_eq!(id.candidates[0].matches_ca_names, Some(false));
    assert_eq!(id.candidates[1].matches_ca_names, Some(true));
}
