//! `mtlscope forward` end to end: curl and `openssl s_client` through the proxy to real nginx and
//! in-process upstreams; interception, passthrough, per-host and `auto` identities, `mirror`,
//! 407, loop protection, loopback-only listening, and the local CA's file modes.

mod common;

use common::flows::{client, descriptions, has, ids, status, upstream, wire};
use common::{Curl, NginxLab, Proxy, SClient, VerifyClient};
use mtlscope::facts::{FindingId, Mode, Phase, RecordKind, Severity, TlsVersion};
use mtlscope::pki::ClientCert;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// nginx on the dev PKI, and a directory for `forward`'s local CA.
struct Setup {
    lab: NginxLab,
    ca_dir: tempfile::TempDir,
}

impl std::ops::Deref for Setup {
    type Target = NginxLab;
    fn deref(&self) -> &NginxLab {
        &self.lab
    }
}

fn setup() -> Setup {
    Setup {
        lab: NginxLab::start(VerifyClient::On, |c| c),
        ca_dir: common::tmpdir(),
    }
}

async fn forward(s: &Setup, extra: &[&str]) -> Proxy {
    let ca_dir = s.ca_dir.path().display().to_string();
    let root = s.pki.root_ca().display().to_string();
    let mut args = vec!["forward", "--ca-dir", &ca_dir, "--upstream-ca", &root];
    args.extend_from_slice(extra);
    Proxy::start(&args).await
}

fn local_ca(s: &Setup) -> std::path::PathBuf {
    s.ca_dir.path().join("ca.pem")
}

/// curl to nginx through the proxy `p`, trusting mtlscope's local CA.
fn through(s: &Setup, p: &Proxy) -> Curl {
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
    let mut p = forward(&s, &["--identity", &good]).await;
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("verify=SUCCESS"), "{}", r.body);
    let rec = p.flow().await;
    assert_eq!(rec.mode, Mode::Forward);
    assert_eq!(client(&rec).sni.as_deref(), Some("localhost"));
    assert_eq!(
        upstream(&rec).cert_request.as_ref().map(|c| c.phase),
        Some(Phase::Handshake)
    );
    assert!(upstream(&rec).chain[0].subject.contains("client-good"));
    // The client saw mtlscope's leaf for localhost, issued by the local CA.
    assert!(client(&rec).tls_version.is_some());
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
    let mut p = forward(&s, &["--identity", &good]).await;
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
    let rec = p.flow().await;
    assert_eq!(status(&rec), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_through_https_proxy() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let mut p = forward(&s, &["--identity", &good]).await;
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
    assert_eq!(status(&p.flow().await), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_host_is_tunnelled_untouched() {
    let s = setup();
    let pattern = format!("localhost:{}", s.nginx.port());
    let mut p = forward(&s, &["--passthrough", &pattern]).await;
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
    let rec = p.flow().await;
    assert_eq!(rec.kind, RecordKind::Connection);
    assert!(rec.client_leg.is_none());
    let seen = wire(&rec);
    assert!(seen.bytes_server_to_client > 0);
    // Observed like `mtlscope observe`: the real server's CertificateRequest and the client's
    // own chain, read off the wire (TLS 1.2 keeps them in plaintext).
    if seen.tls_version == Some(TlsVersion::Tls12) {
        let chain = seen.client_chain.as_deref().unwrap_or_default();
        assert!(chain[0].subject.contains("client-good"), "{chain:#?}");
    }
    assert_eq!(seen.sni.as_deref(), Some("localhost"));
    assert!(
        rec.findings.iter().all(|f| f.severity != Severity::Error),
        "{rec:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_chooses_the_identity_matching_the_servers_ca_names() {
    let s = setup();
    let rule_other = format!("localhost={}", s.pki.client(ClientCert::OtherCa).arg());
    let rule_good = format!("localhost={}", s.pki.client(ClientCert::Good).arg());
    let mut p = forward(
        &s,
        &[
            "--host-identity",
            &rule_other,
            "--host-identity",
            &rule_good,
        ],
    )
    .await;
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    let identity = upstream(&rec).identity.as_ref().expect("identity choice");
    assert_eq!(
        identity.chosen.as_deref(),
        Some("client-good.pem"),
        "{identity:#?}"
    );
    assert!(identity.reason.contains("auto"), "{identity:#?}");
    assert_eq!(identity.candidates[0].matches_ca_names, Some(false));
    assert_eq!(identity.candidates[1].matches_ca_names, Some(true));
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
    let mut p = forward(&s, &["--identity", &default, "--host-identity", &rule]).await;
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(
        upstream(&rec)
            .identity
            .as_ref()
            .and_then(|i| i.chosen.as_deref()),
        Some("client-good.pem")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_asks_the_client_with_the_servers_ca_names() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let mut p = forward(&s, &["--identity", &good, "--client-auth", "mirror"]).await;
    let identity = s.pki.client(ClientCert::Good);
    let r = SClient::new(format!("localhost:{}", s.nginx.port()))
        .arg("-proxy")
        .arg(p.addr.clone())
        .cafile(local_ca(&s))
        .servername("localhost")
        .identity(&identity.cert, &identity.key)
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
    let rec = p.flow().await;
    let names = |leg: &mtlscope::facts::Leg| {
        leg.cert_request
            .as_ref()
            .and_then(|c| c.ca_names.clone())
            .unwrap_or_default()
    };
    let client_names = names(client(&rec));
    assert_eq!(client_names, names(upstream(&rec)));
    assert_eq!(client_names.len(), 1);
    assert!(client(&rec).chain[0].subject.contains("client-good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_auth_answers_407_and_lets_credentials_through() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good).arg();
    let mut p = forward(&s, &["--identity", &good, "--proxy-auth", "alice:s3cret"]).await;
    let r = through(&s, &p).run_async().await;
    assert_ne!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(status(&rec), 407);
    assert!(has(&rec, FindingId::ProxyAuthRequired), "{:?}", ids(&rec));
    let headers = &rec.response.as_ref().expect("response").headers;
    assert!(
        headers.iter().any(|h| h.value.contains("Basic realm")),
        "{rec:#?}"
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
    let p = forward(&s, &[]).await;
    let r = Curl::new(format!("http://127.0.0.1:{}/x", p.port()))
        .proxy(format!("http://{}", p.addr))
        .run_async()
        .await;
    assert_eq!(r.status, 508, "{r:?}");
}

#[test]
fn non_loopback_listen_needs_allow_remote_and_proxy_auth() {
    let run = |extra: &[&str]| {
        let ca = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
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
    let mut p = forward(
        &s,
        &[
            "--host-identity",
            &rule,
            "--resolve",
            &resolve,
            "--insecure-upstream",
        ],
    )
    .await;
    let r = Curl::new(format!("https://api.example.test:{}/", s.nginx.port()))
        .proxy(format!("http://{}", p.addr))
        .cacert(local_ca(&s))
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    let up = upstream(&rec);
    assert_eq!(
        up.identity.as_ref().and_then(|i| i.chosen.as_deref()),
        Some("client-good.pem"),
        "{up:#?}"
    );
    assert_eq!(up.sni.as_deref(), Some("api.example.test"));
    let verification = up.server_verification.as_ref().expect("verification");
    assert!(
        !verification.ok,
        "the dev server certificate names only localhost"
    );
    assert!(!verification.enforced);
    assert!(has(&rec, FindingId::ServerCertUntrusted), "{:?}", ids(&rec));
    assert_eq!(client(&rec).sni.as_deref(), Some("api.example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_identity_with_a_password_from_a_file() {
    let s = setup();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
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
    let mut p = forward(&s, &["--identity", &p12, "--pkcs12-password-file", &pw]).await;
    let r = through(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("verify=SUCCESS"), "{}", r.body);
    let rec = p.flow().await;
    assert!(upstream(&rec).chain[0].subject.contains("client-good"));

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
    let p = forward(&s, &["--identity", &good]).await;
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
    let mut p = forward(&s, &["--passthrough", &pattern]).await;
    let good = s.pki.client(ClientCert::Good);
    let r = Curl::new(target(&s))
        .proxy(format!("http://{}", p.addr))
        .cacert(s.pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_only(common::TlsVersion::Tls12)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(wire(&rec).tls_version, Some(TlsVersion::Tls12));
    assert!(rec.findings.is_empty(), "{rec:#?}");
    let alerts = descriptions(&wire(&rec).alerts);
    assert!(!alerts.is_empty(), "{rec:#?}");
    assert!(alerts.iter().all(|a| a == "close_notify"), "{alerts:#?}");
}
