//! Faults: mtlscope playing the broken middlebox on purpose, against real nginx and Apache with
//! real curl and openssl clients. Every injected failure is recorded and diagnosed as
//! `injected-fault` first, so it is never taken for a real one.

mod common;

use common::flows::{client, first_id, has, ids, sent_alerts, status, upstream};
use common::{Curl, Proxy, SClient, TlsVersion, VerifyClient};
use mtlscope::facts::{FailureKind, FindingId, Flow, RecordKind, Severity};
use mtlscope::pki::{ClientCert, DevPki};

type Setup = common::NginxLab;

fn setup() -> Setup {
    Setup::start(VerifyClient::On, |c| c)
}

async fn reverse(s: &Setup, extra: &[&str]) -> Proxy {
    s.proxy(extra).await
}

/// curl to mtlscope's `/`, trusting the dev root.
fn to_proxy(s: &Setup, p: &Proxy) -> Curl {
    Curl::new(format!("https://localhost:{}/", p.port())).cacert(s.pki.root_ca())
}

fn fault_names(flow: &Flow) -> Vec<&str> {
    flow.faults.iter().map(|f| f.name.as_str()).collect()
}

fn assert_injected_first(flow: &Flow) {
    assert_eq!(
        first_id(flow),
        Some(FindingId::InjectedFault),
        "{:?}",
        ids(flow)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_client_cert_reproduces_a_tls_offloader() {
    let s = setup();
    let good = s.pki.client(ClientCert::Good);
    let id = good.arg();
    let ca = s.pki.root_ca().display().to_string();
    let mut p = reverse(
        &s,
        &[
            "--identity",
            &id,
            "--client-auth",
            "optional",
            "--client-ca",
            &ca,
            "--fault",
            "strip-client-cert",
        ],
    )
    .await;
    let r = to_proxy(&s, &p)
        .identity(&good.cert, &good.key)
        .run_async()
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(fault_names(&rec), vec!["strip-client-cert"]);
    assert_injected_first(&rec);
    assert!(
        has(&rec, FindingId::IdentityNotForwarded),
        "{:?}",
        ids(&rec)
    );
    assert!(r
        .header("mtlscope-diagnosis")
        .unwrap_or_default()
        .starts_with("injected-fault"));
    assert!(upstream(&rec).chain.is_empty());
    assert!(client(&rec).chain[0].subject.contains("client-good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_ca_list_is_what_the_client_sees() {
    let s = setup();
    let id = s.pki.client(ClientCert::Good).arg();
    let ca = s.pki.root_ca().display().to_string();
    let mut p = reverse(
        &s,
        &[
            "--identity",
            &id,
            "--client-auth",
            "optional",
            "--client-ca",
            &ca,
            "--fault",
            "empty-ca-list",
        ],
    )
    .await;
    let r = SClient::new(format!("127.0.0.1:{}", p.port()))
        .servername("localhost")
        .cafile(s.pki.root_ca())
        .tls(TlsVersion::Tls12)
        .get("/", "localhost")
        .run_async()
        .await;
    assert!(
        r.stdout.contains("No client certificate CA names sent"),
        "{}",
        r.stdout
    );
    let rec = p.flow().await;
    assert_eq!(
        client(&rec)
            .cert_request
            .as_ref()
            .and_then(|c| c.ca_names.clone()),
        Some(vec![])
    );
    assert_eq!(fault_names(&rec), vec!["empty-ca-list"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_fault_answers_the_client_hello_with_the_chosen_alert() {
    let s = setup();
    let mut p = reverse(&s, &["--fault", "alert=unknown_ca"]).await;
    let r = SClient::new(format!("127.0.0.1:{}", p.port()))
        .servername("localhost")
        .get("/", "localhost")
        .run_async()
        .await;
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("unknown ca"),
        "{r:?}"
    );
    let rec = p.flow().await;
    assert_eq!(rec.kind, RecordKind::Connection);
    let alerts = sent_alerts(client(&rec));
    assert!(alerts.iter().any(|a| a == "unknown_ca"), "{alerts:?}");
    assert_injected_first(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_admits_listed_fingerprints_only() {
    let s = setup();
    let id = s.pki.client(ClientCert::Good).arg();
    let ca = s.pki.root_ca().display().to_string();
    let good = s.pki.client(ClientCert::Good);
    let leaf = mtlscope::pki::load::Identity::load(&good.cert, &good.key).unwrap();
    let sha = mtlscope::cert::summarize(&leaf.chain[0]).unwrap().sha256;
    let allow = format!("allow-fingerprint={sha}");
    let mut p = reverse(
        &s,
        &[
            "--identity",
            &id,
            "--client-auth",
            "optional",
            "--client-ca",
            &ca,
            "--fault",
            &allow,
        ],
    )
    .await;
    let url = format!("https://localhost:{}/", p.port());
    let r = Curl::new(&url)
        .cacert(s.pki.root_ca())
        .identity(&good.cert, &good.key)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let expired = s.pki.client(ClientCert::Expired);
    let r = Curl::new(&url)
        .cacert(s.pki.root_ca())
        .identity(&expired.cert, &expired.key)
        .run_async()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r
        .header("mtlscope-diagnosis")
        .unwrap_or_default()
        .contains("injected-fault"));
    let rec = p
        .find("refused with 403", |r| {
            r.response.as_ref().is_some_and(|s| s.status == 403)
        })
        .await;
    assert_eq!(fault_names(&rec), vec!["allow-fingerprint"]);
    assert_injected_first(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_on_cert_request_drops_mutual_tls_upstream() {
    let s = setup();
    let id = s.pki.client(ClientCert::Good).arg();
    let mut p = reverse(&s, &["--identity", &id, "--fault", "cut-on-cert-request"]).await;
    let r = to_proxy(&s, &p).run_async().await;
    assert_eq!(r.status, 502, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(
        upstream(&rec).failure.as_ref().map(|f| f.kind),
        Some(FailureKind::CutByFault)
    );
    assert_injected_first(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_response_still_arrives_and_says_it_was_delayed() {
    let s = setup();
    let id = s.pki.client(ClientCert::Good).arg();
    let mut p = reverse(&s, &["--identity", &id, "--fault", "delay=response:200"]).await;
    let r = to_proxy(&s, &p).run_async().await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(status(&rec), 200);
    assert_eq!(fault_names(&rec), vec!["delay=response"]);
    // An injected fault on a success is info, never an error.
    assert!(
        rec.findings.iter().all(|f| f.severity != Severity::Error),
        "{:#?}",
        rec.findings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_renegotiation_reproduces_a_firewall_in_observe() {
    let (pki, _dir) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let upstream = format!("127.0.0.1:{}", apache.port());
    let mut p = Proxy::start(&[
        "observe",
        "--upstream",
        &upstream,
        "--fault",
        "block-renegotiation",
    ])
    .await;
    let good = pki.client(ClientCert::Good);
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_max(TlsVersion::Tls12)
        .http1_1()
        .run_async()
        .await;
    assert_ne!(r.status, 200, "the renegotiation was blocked: {r:?}");
    let rec = p.flow().await;
    assert_eq!(fault_names(&rec), vec!["block-renegotiation"]);
    assert_injected_first(&rec);
    assert_eq!(
        common::flows::wire(&rec)
            .renegotiations
            .first()
            .map(|r| r.initiated_by),
        Some(mtlscope::facts::Initiator::Server)
    );
}

#[test]
fn an_unknown_fault_is_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args([
            "reverse",
            "--upstream",
            "https://localhost:1",
            "--server-cert",
            &pki.server().arg(),
            "--fault",
            "gremlins",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fault") && err.contains("gremlins"), "{err}");
}
