//! Certificates asked for late, against real Apache httpd with `SSLVerifyClient require` only
//! inside `<Location /secure>`: TLS 1.2 renegotiation (refused by mtlscope's rustls upstream leg,
//! completed by curl through `observe`) and TLS 1.3 post-handshake auth (never offered by rustls).
//! Plus `observe` reading nginx's CertificateRequest and curl's chain off a TLS 1.2 wire.

mod common;

use common::{finding_ids, Apache, Curl, Mtlscope, Nginx, NginxConfig, TlsVersion, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;

fn pki() -> (DevPki, tempfile::TempDir) {
    common::dev_pki()
}

fn apache(pki: &DevPki, version: TlsVersion) -> Apache {
    common::apache_secure_location(pki, version)
}

fn reverse(pki: &DevPki, upstream: String) -> Mtlscope {
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let id = pki.client(ClientCert::Good).arg();
    Mtlscope::start(&[
        "reverse",
        "--upstream",
        &upstream,
        "--server-cert",
        &server,
        "--upstream-ca",
        &ca,
        "--identity",
        &id,
    ])
}

async fn get(pki: &DevPki, port: u16, path: &str) -> common::CurlResult {
    Curl::new(format!("https://localhost:{port}{path}"))
        .cacert(pki.root_ca())
        .http1_1()
        .run_async()
        .await
}

fn findings(rec: &Value) -> Vec<String> {
    finding_ids(rec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_renegotiation_is_recorded_refused_and_answered_without_a_hang() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls12);
    let p = reverse(&pki, apache.localhost_url());

    // The public path: no late request.
    let r = get(&pki, p.port(), "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    let public = p.records(1).remove(0);
    assert!(
        public["upstream_leg"]["cert_request"].is_null(),
        "{:#}",
        public["upstream_leg"]
    );
    assert!(public["upstream_leg"]["renegotiations"]
        .as_array()
        .is_none_or(|r| r.is_empty()));

    // The protected path: Apache renegotiates after the request; rustls refuses.
    let r = get(&pki, p.port(), "/secure").await;
    assert!(!r.timed_out, "the client got an answer: {r:?}");
    assert_eq!(
        r.status, 502,
        "mtlscope answers for the refused upstream: {r:?}"
    );
    let rec = p
        .records(2)
        .into_iter()
        .find(|r| r["request"]["uri"] == "/secure")
        .expect("the /secure exchange");
    let up = &rec["upstream_leg"];
    assert_eq!(up["tls_version"], "TLSv1.2");
    assert_eq!(up["cert_request"]["phase"], "renegotiation", "{up:#}");
    let delay = up["cert_request"]["after_request_ms"]
        .as_f64()
        .expect("delay from the request");
    assert!(delay >= 0.0);
    let reneg = &up["renegotiations"][0];
    assert_eq!(reneg["initiated_by"], "server");
    assert_eq!(reneg["outcome"], "refused_by_mtlscope", "{reneg:#}");
    assert!(up["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["description"] == "no_renegotiation" && a["direction"] == "sent"));
    assert!(
        findings(&rec).contains(&"renegotiation-requested".to_string()),
        "{:?}",
        findings(&rec)
    );
    assert!(
        r.header("mtlscope-diagnosis")
            .unwrap_or_default()
            .contains("renegotiation-requested"),
        "{}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_per_location_auth_is_a_403_without_post_handshake_auth() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls13);
    let p = reverse(&pki, apache.localhost_url());
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 403, "{r:?}");
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["tls_version"], "TLSv1.3");
    assert_eq!(up["client_hello"]["offered_pha"], false);
    assert!(up["cert_request"].is_null());
    assert_eq!(rec["response"]["status"], 403);
    assert!(
        findings(&rec).contains(&"post-handshake-auth".to_string()),
        "{:?}",
        findings(&rec)
    );
    assert!(r
        .header("mtlscope-diagnosis")
        .unwrap_or_default()
        .contains("post-handshake-auth"));
    assert!(
        apache.wait_for_error_log("AH10158", std::time::Duration::from_secs(5)),
        "{}",
        apache.error_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_renegotiation_completes_through_observe_and_is_timed() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls12);
    let upstream = format!("127.0.0.1:{}", apache.port());
    let p = Mtlscope::start(&["observe", "--upstream", &upstream]);
    let good = pki.client(ClientCert::Good);
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_max(TlsVersion::Tls12)
        .http1_1()
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("secure"), "{}", r.body);
    let rec = p.records(1).remove(0);
    assert_eq!(rec["mode"], "observe");
    let wire = &rec["wire"];
    assert_eq!(wire["tls_version"], "TLSv1.2");
    let reneg = &wire["renegotiations"][0];
    assert_eq!(reneg["initiated_by"], "server", "{wire:#}");
    assert!(reneg["at_ms"].as_f64().unwrap() > 0.0);
    assert!(reneg["after_app_data_ms"].as_f64().is_some(), "{reneg:#}");
    assert_eq!(wire["cert_request"]["phase"], "renegotiation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reads_nginx_ca_names_and_the_client_chain_off_the_wire() {
    let (pki, _d) = pki();
    let nginx = Nginx::start(NginxConfig {
        protocols: vec![TlsVersion::Tls12],
        ..common::nginx_config(&pki, VerifyClient::On)
    })
    .expect("start nginx");
    let upstream = format!("127.0.0.1:{}", nginx.port());
    let p = Mtlscope::start(&["observe", "--upstream", &upstream]);
    let good = pki.client(ClientCert::Good);
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_max(TlsVersion::Tls12)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    let wire = &rec["wire"];
    let root =
        mtlscope::cert::summarize(&mtlscope::pki::load::load_certs(pki.root_ca()).unwrap()[0])
            .unwrap();
    assert_eq!(wire["cert_request"]["phase"], "handshake");
    assert_eq!(
        wire["cert_request"]["ca_names"],
        serde_json::json!([root.subject])
    );
    assert!(
        wire["client_chain"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("client-good"),
        "{wire:#}"
    );
    assert!(wire["server_chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("localhost"));
}
