//! `mtlscope reverse` in front of a real nginx that wants client certificates, with real curl as
//! the client: every failure nginx can produce is recorded with the right finding and header,
//! and successes carry no error finding.

mod common;

use common::flows::{has, ids, status, upstream};
use common::{Curl, NginxConfig, Proxy, VerifyClient};
use mtlscope::facts::{FindingId, Flow, Phase, Severity, TlsVersion};
use mtlscope::pki::ClientCert;

type Setup = common::NginxLab;

fn setup(verify: VerifyClient) -> Setup {
    Setup::start(verify, |c| NginxConfig {
        app_location: true,
        ..c
    })
}

async fn proxy(s: &Setup, identity: Option<ClientCert>) -> Proxy {
    let id = identity.map(|c| s.pki.client(c).arg());
    match &id {
        Some(id) => s.proxy(&["--identity", id]).await,
        None => s.proxy(&[]).await,
    }
}

async fn exchange(
    s: &Setup,
    identity: Option<ClientCert>,
    path: &str,
) -> (common::CurlResult, Flow) {
    let mut p = proxy(s, identity).await;
    let r = Curl::new(format!("https://localhost:{}{path}", p.port()))
        .cacert(s.pki.root_ca())
        .run_async()
        .await;
    let record = p.flow().await;
    (r, record)
}

fn diagnosis_header(r: &common::CurlResult) -> String {
    r.header("mtlscope-diagnosis").unwrap_or_default()
}

fn assert_no_error_finding(record: &Flow) {
    let errors: Vec<_> = record
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(
        errors.is_empty(),
        "a successful exchange has no error finding: {errors:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_identity_succeeds_and_the_record_shows_nginx_request_and_chain() {
    let s = setup(VerifyClient::On);
    let (r, rec) = exchange(&s, Some(ClientCert::Good), "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("verify=SUCCESS"), "{}", r.body);
    let up = upstream(&rec);
    let request = up.cert_request.as_ref().expect("a certificate request");
    assert_eq!(request.phase, Phase::Handshake);
    let root =
        mtlscope::cert::summarize(&mtlscope::pki::load::load_certs(s.pki.root_ca()).unwrap()[0])
            .unwrap();
    assert_eq!(request.ca_names, Some(vec![root.subject]));
    assert_eq!(up.chain.len(), 2, "leaf + intermediate presented");
    assert!(up.chain[0].subject.contains("client-good"));
    assert!(matches!(
        up.tls_version,
        Some(TlsVersion::Tls12 | TlsVersion::Tls13)
    ));
    assert_eq!(status(&rec), 200);
    assert_no_error_finding(&rec);
    assert_eq!(diagnosis_header(&r), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_relays_nginx_400_and_diagnoses_no_client_cert() {
    let s = setup(VerifyClient::On);
    let (r, rec) = exchange(&s, None, "/").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("No required SSL certificate was sent"),
        "{}",
        r.body
    );
    let request = rec.request.as_ref().expect("request");
    assert_eq!(request.uri, "/");
    assert_eq!(request.method, "GET");
    assert!(upstream(&rec).chain.is_empty());
    assert_eq!(
        ids(&rec).first(),
        Some(&FindingId::NoClientCert),
        "{:?}",
        ids(&rec)
    );
    assert!(
        diagnosis_header(&r).starts_with("no-client-cert"),
        "{}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rejected_certificate_gets_its_own_finding() {
    let s = setup(VerifyClient::On);
    for (cert, id) in [
        (ClientCert::Expired, FindingId::CertExpired),
        (ClientCert::NotYetValid, FindingId::CertNotYetValid),
        (ClientCert::OtherCa, FindingId::IssuerNotInCaList),
        (ClientCert::NoIntermediate, FindingId::ChainIncomplete),
        (ClientCert::ServerAuthOnly, FindingId::WrongPurpose),
        (ClientCert::SelfSigned, FindingId::ChainUntrusted),
    ] {
        let (r, rec) = exchange(&s, Some(cert), "/").await;
        assert_eq!(r.status, 400, "{cert:?}: {r:?}");
        assert!(
            r.body.contains("The SSL certificate error"),
            "{cert:?}: {}",
            r.body
        );
        assert!(
            has(&rec, id),
            "{cert:?}: expected {id:?} in {:?}",
            ids(&rec)
        );
        assert!(
            diagnosis_header(&r).contains(id.as_str()),
            "{cert:?}: header {}",
            diagnosis_header(&r)
        );
        let finding = rec.findings.iter().find(|f| f.id == id).unwrap();
        assert_eq!(finding.severity, Severity::Error, "{cert:?}: {finding:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_verification_with_an_app_answering_403() {
    let s = setup(VerifyClient::Optional);
    let (r, rec) = exchange(&s, None, "/app").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(has(&rec, FindingId::NoClientCert), "{:?}", ids(&rec));
    let (r, rec) = exchange(&s, Some(ClientCert::Good), "/app").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_no_error_finding(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_records_its_redacted_request_body() {
    let s = setup(VerifyClient::Optional);
    let mut p = proxy(&s, None).await;
    let r = Curl::new(format!("https://localhost:{}/app", p.port()))
        .cacert(s.pki.root_ca())
        .arg("--data")
        .arg("user=ann&password=hunter2")
        .run_async()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let rec = p.flow().await;
    let request = rec.request.as_ref().expect("request");
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.body_excerpt.as_deref(),
        Some("user=ann&password=<redacted>"),
        "{request:#?}"
    );
}

/// `-v/--explain`: the proxy prints each finding's evidence and fix under its flow, and
/// `report -v` does the same from the recording; `--help` says how to raise the log level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_evidence_and_fix_under_the_flow() {
    let s = setup(VerifyClient::On);
    let port = common::free_port().expect("free port");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let record = dir.path().join("rec.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["reverse", "-v", "--upstream", &s.nginx.localhost_url()])
        .args(["--server-cert", &s.pki.server().arg()])
        .arg("--upstream-ca")
        .arg(s.pki.root_ca())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--record")
        .arg(&record)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let printed = common::process::lines_of(child.stdout.take().expect("stdout"));
    common::wait_for_tcp(
        ([127, 0, 0, 1], port).into(),
        std::time::Duration::from_secs(10),
    )
    .expect("listening");
    let r = Curl::new(format!("https://localhost:{port}/"))
        .cacert(s.pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    // Read the printed lines until the refused exchange's fix (the port check's flow comes
    // first), bounded.
    let text = tokio::task::spawn_blocking(move || {
        common::process::read_until(&printed, std::time::Duration::from_secs(10), |t| {
            t.find("no-client-cert")
                .is_some_and(|i| t[i..].contains("Fix:"))
        })
    })
    .await
    .expect("reader");
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("no-client-cert"), "{text}");
    assert!(
        text.contains("  Evidence:") && text.contains("  Fix:"),
        "{text}"
    );

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["report", "-v"])
        .arg(&record)
        .output()
        .expect("report");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("Evidence:") && text.contains("Fix:"),
        "{text}"
    );

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .arg("--help")
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("RUST_LOG") && text.contains("--log-level"),
        "{text}"
    );
}
