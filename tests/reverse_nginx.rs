//! `mtlscope reverse` in front of a real nginx that wants client certificates, with real curl as
//! the client: every failure nginx can produce is recorded with the right finding and header,
//! and successes carry no error finding.

mod common;

use common::{finding_ids, Curl, Mtlscope, Nginx, NginxConfig, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;

struct Setup {
    pki: DevPki,
    nginx: Nginx,
    _dir: tempfile::TempDir,
}

fn setup(verify: VerifyClient) -> Setup {
    let (pki, dir) = common::dev_pki();
    let nginx = Nginx::start(NginxConfig {
        app_location: true,
        ..common::nginx_config(&pki, verify)
    })
    .expect("start nginx");
    Setup {
        pki,
        nginx,
        _dir: dir,
    }
}

fn proxy(s: &Setup, identity: Option<ClientCert>) -> Mtlscope {
    let upstream = s.nginx.localhost_url();
    let server = s.pki.server().arg();
    let ca = s.pki.root_ca().display().to_string();
    let id = identity.map(|c| s.pki.client(c).arg());
    let mut args = vec![
        "reverse",
        "--upstream",
        &upstream,
        "--server-cert",
        &server,
        "--upstream-ca",
        &ca,
    ];
    if let Some(id) = &id {
        args.extend(["--identity", id.as_str()]);
    }
    Mtlscope::start(&args)
}

async fn exchange(
    s: &Setup,
    identity: Option<ClientCert>,
    path: &str,
) -> (common::CurlResult, Value) {
    let p = proxy(s, identity);
    let r = Curl::new(format!("https://localhost:{}{path}", p.port()))
        .cacert(s.pki.root_ca())
        .run_async()
        .await;
    let record = p.records(1).remove(0);
    (r, record)
}

fn diagnosis_header(r: &common::CurlResult) -> String {
    r.header("mtlscope-diagnosis").unwrap_or_default()
}

fn assert_no_error_finding(record: &Value) {
    let errors: Vec<&Value> = record["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
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
    let up = &rec["upstream_leg"];
    assert_eq!(up["cert_request"]["phase"], "handshake");
    let root =
        mtlscope::cert::summarize(&mtlscope::pki::load::load_certs(s.pki.root_ca()).unwrap()[0])
            .unwrap();
    assert_eq!(
        up["cert_request"]["ca_names"],
        serde_json::json!([root.subject])
    );
    assert_eq!(
        up["chain"].as_array().unwrap().len(),
        2,
        "leaf + intermediate presented"
    );
    assert!(up["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-good"));
    assert!(matches!(
        up["tls_version"].as_str(),
        Some("TLSv1.2" | "TLSv1.3")
    ));
    assert_eq!(rec["response"]["status"], 200);
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
    assert_eq!(rec["request"]["uri"], "/");
    assert_eq!(rec["request"]["method"], "GET");
    assert_eq!(rec["upstream_leg"]["chain"], serde_json::json!([]));
    assert_eq!(
        finding_ids(&rec)[0],
        "no-client-cert",
        "{:?}",
        finding_ids(&rec)
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
        (ClientCert::Expired, "cert-expired"),
        (ClientCert::NotYetValid, "cert-not-yet-valid"),
        (ClientCert::OtherCa, "issuer-not-in-ca-list"),
        (ClientCert::NoIntermediate, "chain-incomplete"),
        (ClientCert::ServerAuthOnly, "wrong-purpose"),
        (ClientCert::SelfSigned, "chain-untrusted"),
    ] {
        let (r, rec) = exchange(&s, Some(cert), "/").await;
        assert_eq!(r.status, 400, "{cert:?}: {r:?}");
        assert!(
            r.body.contains("The SSL certificate error"),
            "{cert:?}: {}",
            r.body
        );
        let ids = finding_ids(&rec);
        assert!(
            ids.contains(&id.to_string()),
            "{cert:?}: expected {id} in {ids:?}"
        );
        assert!(
            diagnosis_header(&r).contains(id),
            "{cert:?}: header {}",
            diagnosis_header(&r)
        );
        let finding = rec["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap();
        assert_eq!(finding["severity"], "error", "{cert:?}: {finding:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_verification_with_an_app_answering_403() {
    let s = setup(VerifyClient::Optional);
    let (r, rec) = exchange(&s, None, "/app").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        finding_ids(&rec).contains(&"no-client-cert".to_string()),
        "{:?}",
        finding_ids(&rec)
    );
    let (r, rec) = exchange(&s, Some(ClientCert::Good), "/app").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_no_error_finding(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_records_its_redacted_request_body() {
    let s = setup(VerifyClient::Optional);
    let p = proxy(&s, None);
    let r = Curl::new(format!("https://localhost:{}/app", p.port()))
        .cacert(s.pki.root_ca())
        .arg("--data")
        .arg("user=ann&password=hunter2")
        .run_async()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["request"]["method"], "POST");
    assert_eq!(
        rec["request"]["body_excerpt"], "user=ann&password=<redacted>",
        "{:#}",
        rec["request"]
    );
}

/// `-v/--explain`: the proxy prints each finding's evidence and fix under its flow, and
/// `report -v` does the same from the recording; `--help` says how to raise the log level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_evidence_and_fix_under_the_flow() {
    use std::io::{BufRead, BufReader};
    use std::sync::{Arc, Mutex};
    let s = setup(VerifyClient::On);
    let port = common::free_port().expect("free port");
    let dir = tempfile::tempdir().expect("temp dir");
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
    let out = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().expect("stdout");
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut s = sink.lock().expect("lock");
            s.push_str(&line);
            s.push('\n');
        }
    });
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !out.lock().expect("lock").contains("Fix:") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = out.lock().expect("lock").clone();
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
