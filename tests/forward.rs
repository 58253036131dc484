//! `mtlscope forward` end to end: curl and `openssl s_client` through the proxy to real nginx and
//! in-process upstreams; interception, passthrough, per-host and `auto` identities, `mirror`,
//! 407, loop protection, loopback-only listening, and the local CA's file modes.

mod common;

use common::{finding_ids, Curl, Mtlscope, Nginx, SClient, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

struct Setup {
    pki: DevPki,
    nginx: Nginx,
    ca_dir: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let (pki, dir) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("start nginx");
    Setup {
        pki,
        nginx,
        ca_dir: tempfile::tempdir().unwrap(),
        _dir: dir,
    }
}

fn forward(s: &Setup, extra: &[&str]) -> Mtlscope {
    let ca_dir = s.ca_dir.path().display().to_string();
    let root = s.pki.root_ca().display().to_string();
    let mut args = vec!["forward", "--ca-dir", &ca_dir, "--upstream-ca", &root];
    args.extend_from_slice(extra);
    Mtlscope::start(&args)
}

fn local_ca(s: &Setup) -> std::path::PathBuf {
    s.ca_dir.path().join("ca.pem")
}

/// curl to nginx through the proxy `p`, trusting mtlscope's local CA.
fn through(s: &Setup, p: &Mtlscope) -> Curl {
    Curl::new(target(s))
        .proxy(format!("http://{}", p.addr))
        .cacert(local_ca(s))
}

fn target(s: &Setup) -> String {
    format!("{}/", s.nginx.localhost_url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_the_proxy_with_a_configured_identity_records_both_legs() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let p = forward(&s, &["--identity", &good]);
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("verify=SUCCESS"), "{}", r.body);
    let rec = p.records(1).remove(0);
    assert_eq!(rec["mode"], "forward");
    assert_eq!(rec["client_leg"]["sni"], "localhost");
    assert_eq!(rec["upstream_leg"]["cert_request"]["phase"], "handshake");
    assert!(rec["upstream_leg"]["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-good"));
    // The client saw mtlscope's leaf for localhost, issued by the local CA.
    assert!(rec["client_leg"]["tls_version"].is_string());
    let ca_key = s.ca_dir.path().join("ca.key");
    assert_eq!(
        std::fs::metadata(&ca_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_with_a_second_client_openssl_s_client() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let p = forward(&s, &["--identity", &good]);
    let connect = format!("localhost:{}", s.nginx.port());
    let r = SClient::new(connect)
        .arg("-proxy")
        .arg(p.addr.clone())
        .cafile(local_ca(&s))
        .servername("localhost")
        .get("/", "localhost")
        .run_async()
        .await;
    assert_eq!(r.status, Some(200), "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["response"]["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_through_https_proxy() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let p = forward(&s, &["--identity", &good]);
    let script =
        "import requests,sys; r=requests.get(sys.argv[1], timeout=10); print(r.status_code)";
    let out = tokio::task::spawn_blocking({
        let url = target(&s);
        let proxy = format!("http://{}", p.addr);
        let ca = local_ca(&s);
        move || {
            Command::new("python3")
                .args(["-c", script, &url])
                .env("HTTPS_PROXY", &proxy)
                .env("REQUESTS_CA_BUNDLE", &ca)
                .env("NO_PROXY", "")
                .output()
                .expect("python3")
        }
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.records(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_host_is_tunnelled_untouched() {
    let s = setup();
    let pattern = format!("localhost:{}", s.nginx.port());
    let p = forward(&s, &["--passthrough", &pattern]);
    // Trusting only the dev root works: the client sees the real server's certificate.
    let good = s.pki.client(ClientCert::Good);
    let r = Curl::new(target(&s))
        .proxy(format!("http://{}", p.addr))
        .cacert(s.pki.root_ca())
        .identity(&good.cert, &good.key)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("verify=SUCCESS"),
        "the client's own certificate reached nginx: {}",
        r.body
    );
    let rec = p.records(1).remove(0);
    assert_eq!(rec["kind"], "connection");
    assert!(rec["client_leg"].is_null());
    assert!(rec["wire"]["bytes_server_to_client"].as_u64().unwrap() > 0);
    // Observed like `mtlscope observe`: the real server's CertificateRequest and the client's
    // own chain, read off the wire (TLS 1.2 keeps them in plaintext).
    let wire = &rec["wire"];
    if wire["tls_version"] == "TLSv1.2" {
        assert!(wire["client_chain"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("client-good"));
    }
    assert_eq!(wire["sni"], "localhost");
    assert!(
        rec["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"),
        "{rec:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_chooses_the_identity_matching_the_servers_ca_names() {
    let s = setup();
    let rule_other = format!("localhost={}", s.pki.client(ClientCert::OtherCa).arg());
    let rule_good = format!("localhost={}", s.pki.client(ClientCert::Good).arg());
    let p = forward(
        &s,
        &[
            "--host-identity",
            &rule_other,
            "--host-identity",
            &rule_good,
        ],
    );
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    let identity = &rec["upstream_leg"]["identity"];
    assert_eq!(identity["chosen"], "client-good.pem", "{identity:#}");
    assert!(
        identity["reason"].as_str().unwrap().contains("auto"),
        "{identity:#}"
    );
    assert_eq!(identity["candidates"][0]["matches_ca_names"], false);
    assert_eq!(identity["candidates"][1]["matches_ca_names"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules_beat_the_default_identity() {
    let s = setup();
    let default = s.pki.client(ClientCert::Expired).arg();
    let rule = format!(
        "localhost:{}={}",
        s.nginx.port(),
        s.pki.client(ClientCert::Good).arg()
    );
    let p = forward(&s, &["--identity", &default, "--host-identity", &rule]);
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["upstream_leg"]["identity"]["chosen"], "client-good.pem");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_asks_the_client_with_the_servers_ca_names() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let p = forward(&s, &["--identity", &good, "--client-auth", "mirror"]);
    let client = s.pki.client(ClientCert::Good);
    let r = SClient::new(format!("localhost:{}", s.nginx.port()))
        .arg("-proxy")
        .arg(p.addr.clone())
        .cafile(local_ca(&s))
        .servername("localhost")
        .identity(&client.cert, &client.key)
        .get("/", "localhost")
        .run_async()
        .await;
    assert_eq!(r.status, Some(200), "{r:?}");
    assert!(
        r.stdout.contains("Acceptable client certificate CA names"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("mtlscope dev root"), "{}", r.stdout);
    let rec = p.records(1).remove(0);
    let client_names = &rec["client_leg"]["cert_request"]["ca_names"];
    assert_eq!(
        client_names,
        &rec["upstream_leg"]["cert_request"]["ca_names"]
    );
    assert_eq!(client_names.as_array().unwrap().len(), 1);
    assert!(rec["client_leg"]["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_auth_answers_407_and_lets_credentials_through() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let p = forward(&s, &["--identity", &good, "--proxy-auth", "alice:s3cret"]);
    let r = through(&s, &p).run_async().await;
    assert_ne!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["response"]["status"], 407);
    assert!(
        finding_ids(&rec).contains(&"proxy-auth-required".to_string()),
        "{:?}",
        finding_ids(&rec)
    );
    assert!(
        rec["response"]["headers"]
            .to_string()
            .contains("Basic realm"),
        "{rec:#}"
    );
    let r = Curl::new(target(&s))
        .proxy(format!("http://alice:s3cret@{}", p.addr))
        .cacert(local_ca(&s))
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_the_proxy_itself_are_refused_as_a_loop() {
    let s = setup();
    let p = forward(&s, &[]);
    let r = Curl::new(format!("http://127.0.0.1:{}/x", p.port()))
        .proxy(format!("http://{}", p.addr))
        .run_async()
        .await;
    assert_eq!(r.status, 508, "{r:?}");
}

#[test]
fn non_loopback_listen_needs_allow_remote_and_proxy_auth() {
    let run = |extra: &[&str]| {
        let ca = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .args(["forward", "--listen", "0.0.0.0:0", "--ca-dir"])
            .arg(ca.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
    let out = run(&["--allow-remote"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--allow-remote alone is not enough"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--proxy-auth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_host_identity_with_resolve_and_an_insecure_upstream() {
    let s = setup();
    let rule = format!("*.example.test={}", s.pki.client(ClientCert::Good).arg());
    let resolve = format!("api.example.test:{}:127.0.0.1", s.nginx.port());
    let p = forward(
        &s,
        &[
            "--host-identity",
            &rule,
            "--resolve",
            &resolve,
            "--insecure-upstream",
        ],
    );
    let r = Curl::new(format!("https://api.example.test:{}/", s.nginx.port()))
        .proxy(format!("http://{}", p.addr))
        .cacert(local_ca(&s))
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["identity"]["chosen"], "client-good.pem", "{up:#}");
    assert_eq!(up["sni"], "api.example.test");
    assert_eq!(
        up["server_verification"]["ok"], false,
        "the dev server certificate names only localhost"
    );
    assert_eq!(up["server_verification"]["enforced"], false);
    assert!(
        finding_ids(&rec).contains(&"server-cert-untrusted".to_string()),
        "{:?}",
        finding_ids(&rec)
    );
    assert_eq!(rec["client_leg"]["sni"], "api.example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_identity_with_a_password_from_a_file() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("good.p12");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let good = s.pki.client(ClientCert::Good);
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
    let p12 = p12.display().to_string();
    let pw = pw.display().to_string();
    let p = forward(&s, &["--identity", &p12, "--pkcs12-password-file", &pw]);
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("verify=SUCCESS"), "{}", r.body);
    let rec = p.records(1).remove(0);
    assert!(rec["upstream_leg"]["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-good"));

    // A wrong password is a start-up error naming the file.
    std::fs::write(dir.path().join("bad"), "nope\n").unwrap();
    let bad = dir.path().join("bad").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args([
            "forward",
            "--listen",
            "127.0.0.1:0",
            "--identity",
            &p12,
            "--pkcs12-password-file",
            &bad,
            "--ca-dir",
        ])
        .arg(s.ca_dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("good.p12"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The curl command `mtlscope ca` suggests for going through `forward` works as printed: the
/// flag that names the CA file is the one curl needs to trust intercepted hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_hint_for_forward_names_the_flag_curl_needs() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let p = forward(&s, &["--identity", &good]);
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["ca", "--ca-dir"])
        .arg(s.ca_dir.path())
        .output()
        .expect("mtlscope ca runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ca = local_ca(&s).display().to_string();
    let hint = text
        .lines()
        .find_map(|l| l.split_once("curl -x ").map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("no `curl -x` hint:\n{text}"));
    let words: Vec<&str> = hint.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == ca)
        .expect("the hint names the CA file");
    let flag = words[at - 1];
    let r = Curl::new(target(&s))
        .proxy(format!("http://{}", p.addr))
        .arg(flag)
        .arg(&ca)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "curl {flag} {ca} through forward: {r:?}");
}

/// A successful TLS 1.2 session tunnelled by --passthrough ends with an encrypted alert after
/// the data: a presumed close_notify, never a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_tls12_success_has_no_failure() {
    let s = setup();
    let pattern = format!("localhost:{}", s.nginx.port());
    let p = forward(&s, &["--passthrough", &pattern]);
    let good = s.pki.client(ClientCert::Good);
    let r = Curl::new(target(&s))
        .proxy(format!("http://{}", p.addr))
        .cacert(s.pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_only(common::TlsVersion::Tls12)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["wire"]["tls_version"], "TLSv1.2");
    assert!(finding_ids(&rec).is_empty(), "{rec:#}");
    let alerts = rec["wire"]["alerts"].as_array().expect("alerts");
    assert!(!alerts.is_empty(), "{rec:#}");
    assert!(
        alerts.iter().all(|a| a["description"] == "close_notify"),
        "{alerts:#?}"
    );
}
