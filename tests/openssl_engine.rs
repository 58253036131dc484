//! The OpenSSL upstream engine honours what the rustls leg does, against real Apache httpd and
//! nginx: PKCS#12 identities, `--resolve` with the SNI kept, `--insecure-upstream` (verified and
//! recorded, not enforced), `--upstream-ca` enforced, `--keylog`, per-host engines in `forward`'s
//! config, and a late request it answers but the server refuses (said, with why).

mod common;

use common::{finding_ids, Curl, Mtlscope, Nginx, TlsVersion, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;
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

fn has(rec: &Value, id: &str) -> bool {
    finding_ids(rec).iter().any(|f| f == id)
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
    let upstream = format!("https://secure.test:{port}");
    let resolve = format!("secure.test:{port}:127.0.0.1");
    let server = pki.server().arg();
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        &upstream,
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
    ]);
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["engine"], "openssl");
    // The name is kept for SNI and the certificate check; the server's certificate names
    // localhost, so it does not verify, and --insecure-upstream goes on regardless.
    assert_eq!(up["sni"], "secure.test");
    assert_eq!(up["server_verification"]["ok"], false, "{up:#}");
    assert_eq!(up["server_verification"]["reason"], "name mismatch");
    assert_eq!(up["server_verification"]["enforced"], false);
    assert!(
        has(&rec, "server-cert-untrusted"),
        "{:?}",
        finding_ids(&rec)
    );
    // The PKCS#12 identity answered the post-handshake request.
    assert_eq!(up["completed_late_request"], "post_handshake");
    assert!(up["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-good"));
    // Key-log lines for this leg, joined by its client random.
    let random = up["client_random"].as_str().expect("client random");
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
    let p = Mtlscope::start(&[
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
    ]);
    let r = get(&pki, p.port(), "/").await;
    assert_eq!(r.status, 502, "{r:?}");
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["server_verification"]["ok"], false, "{up:#}");
    assert_eq!(up["server_verification"]["reason"], "unknown issuer");
    assert_eq!(up["server_verification"]["enforced"], true);
    assert_eq!(up["failure"]["stage"], "handshake");
    assert!(
        up["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["direction"] == "sent" && a["description"] == "unknown_ca"),
        "{up:#}"
    );
    assert!(
        has(&rec, "server-cert-untrusted"),
        "{:?}",
        finding_ids(&rec)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_request_answered_with_an_untrusted_certificate_is_not_completed_and_says_why() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let p = Mtlscope::start(&[
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
    ]);
    let r = get(&pki, p.port(), "/secure").await;
    assert!(r.status == 502 || r.status == 403, "{r:?}");
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["cert_request"]["phase"], "renegotiation", "{up:#}");
    assert!(up["completed_late_request"].is_null(), "{up:#}");
    let f = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "renegotiation-requested")
        .unwrap_or_else(|| panic!("{:?}", finding_ids(&rec)));
    assert_eq!(f["severity"], "error");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("could not complete it"),
        "{f:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_uses_the_engine_a_host_rule_names() {
    let (pki, dir) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let ca_dir = tempfile::tempdir().unwrap();
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
    let p = Mtlscope::start(&[
        "forward",
        "--ca-dir",
        &ca_dir.path().display().to_string(),
        "--config",
        &config.display().to_string(),
    ]);
    let r = Curl::new(format!("{}/secure", apache.localhost_url()))
        .proxy(format!("http://{}", p.addr))
        .cacert(ca_dir.path().join("ca.pem"))
        .http1_1()
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["upstream_leg"]["engine"], "openssl");
    assert_eq!(
        rec["upstream_leg"]["completed_late_request"],
        "renegotiation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_act_on_the_openssl_leg_too() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let p = Mtlscope::start(&[
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
    ]);
    let r = get(&pki, p.port(), "/secure").await;
    assert!(r.status >= 400, "{r:?}");
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    // The late request came and was answered with no certificate, as the fault says.
    assert_eq!(up["cert_request"]["phase"], "post_handshake", "{up:#}");
    assert!(up["identity"]["chosen"].is_null(), "{up:#}");
    assert!(up["completed_late_request"].is_null());
    assert_eq!(
        finding_ids(&rec).first().map(String::as_str),
        Some("injected-fault")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_identities_are_chosen_from_the_late_requests_ca_names() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let p = Mtlscope::start(&[
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
    ]);
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    let id = &rec["upstream_leg"]["identity"];
    assert!(
        id["chosen"].as_str().unwrap().contains("client-good"),
        "{id:#}"
    );
    assert!(
        id["reason"].as_str().unwrap().starts_with("auto:"),
        "{id:#}"
    );
    assert_eq!(id["candidates"][0]["matches_ca_names"], false);
    assert_eq!(id["candidates"][1]["matches_ca_names"], true);
}
