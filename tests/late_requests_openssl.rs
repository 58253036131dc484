//! Late certificate requests completed by the OpenSSL upstream engine, against real Apache httpd
//! (`SSLVerifyClient require` only inside `<Location /secure>`): TLS 1.2 renegotiation and TLS 1.3
//! post-handshake auth through `--upstream-engine openssl`, and one recorded replay with
//! `--upstream-engine auto`. Against nginx (`ssl_verify_client on`), both engines record the same
//! client-certificate facts.

mod common;

use common::{finding_ids, Curl, Mtlscope, Nginx, NginxConfig, TlsVersion, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;

fn reverse(pki: &DevPki, upstream: String, engine: &str) -> Mtlscope {
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
        "--upstream-engine",
        engine,
    ])
}

async fn get(pki: &DevPki, port: u16, path: &str) -> common::CurlResult {
    Curl::new(format!("https://localhost:{port}{path}"))
        .cacert(pki.root_ca())
        .http1_1()
        .run_async()
        .await
}

fn root_subject(pki: &DevPki) -> String {
    let root = mtlscope::pki::load::load_certs(pki.root_ca()).unwrap();
    mtlscope::cert::summarize(&root[0]).unwrap().subject
}

fn finding<'a>(rec: &'a Value, id: &str) -> &'a Value {
    rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {:?}", finding_ids(rec)))
}

fn no_errors(rec: &Value) {
    let errors: Vec<&Value> = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The facts of a late request the OpenSSL leg completed.
fn assert_completed_late(pki: &DevPki, up: &Value, phase: &str) {
    assert_eq!(up["engine"], "openssl", "{up:#}");
    let cr = &up["cert_request"];
    assert_eq!(cr["phase"], phase, "{up:#}");
    assert_eq!(cr["ca_names"], serde_json::json!([root_subject(pki)]));
    assert!(cr["after_request_ms"].as_f64().is_some(), "{cr:#}");
    assert_eq!(up["completed_late_request"], phase);
    assert!(up["identity"]["chosen"]
        .as_str()
        .unwrap_or_default()
        .contains("client-good"));
    assert!(up["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-good"));
    assert_eq!(up["server_verification"]["ok"], true, "{up:#}");
    assert_eq!(up["client_hello"]["offered_pha"], true);
    assert_eq!(up["alpn"], "http/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_completes_tls12_renegotiation_and_apache_answers_200() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let p = reverse(&pki, apache.localhost_url(), "openssl");
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("secure"), "{}", r.body);
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["tls_version"], "TLSv1.2");
    assert_completed_late(&pki, up, "renegotiation");
    assert_eq!(up["renegotiations"][0]["initiated_by"], "server", "{up:#}");
    let f = finding(&rec, "renegotiation-requested");
    assert_eq!(f["severity"], "warning");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("mtlscope completed it"),
        "{f:#}"
    );
    no_errors(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_completes_tls13_post_handshake_auth_and_apache_answers_200() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let p = reverse(&pki, apache.localhost_url(), "openssl");
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let rec = p.records(1).remove(0);
    let up = &rec["upstream_leg"];
    assert_eq!(up["tls_version"], "TLSv1.3");
    assert_completed_late(&pki, up, "post_handshake");
    let f = finding(&rec, "post-handshake-auth");
    assert_eq!(f["severity"], "warning");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("mtlscope completed it"),
        "{f:#}"
    );
    no_errors(&rec);
}

/// `auto`: the first attempt over rustls, the replay over OpenSSL, both in one record.
async fn auto_replays(version: TlsVersion, phase: &str, finding_id: &str) {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, version);
    let p = reverse(&pki, apache.localhost_url(), "auto");
    // A public path needs no replay and stays on rustls.
    let r = get(&pki, p.port(), "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("secure"), "{}", r.body);
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let recs = p.records(2);
    let public = recs.iter().find(|r| r["request"]["uri"] == "/").unwrap();
    assert_eq!(public["upstream_leg"]["engine"], "rustls");
    assert!(public["replayed"].is_null());
    let rec = recs
        .iter()
        .find(|r| r["request"]["uri"] == "/secure")
        .unwrap();
    let replayed = &rec["replayed"];
    assert_eq!(replayed["reason"], phase, "{rec:#}");
    assert_eq!(replayed["first_leg"]["engine"], "rustls");
    if phase == "renegotiation" {
        // rustls refused the renegotiation; Apache then gave up on that connection.
        assert_eq!(
            replayed["first_leg"]["renegotiations"][0]["refused_by_mtlscope"], true,
            "{replayed:#}"
        );
        assert!(replayed["first_status"].is_null());
    } else {
        // Apache answered 403 (AH10158) to a client that did not offer post-handshake auth.
        assert_eq!(replayed["first_status"], 403, "{replayed:#}");
        assert_eq!(replayed["first_leg"]["client_hello"]["offered_pha"], false);
    }
    assert_eq!(rec["response"]["status"], 200);
    assert_completed_late(&pki, &rec["upstream_leg"], phase);
    let f = finding(rec, finding_id);
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert!(
        f["evidence"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("replayed it once over a new OpenSSL upstream leg")),
        "{f:#}"
    );
    no_errors(rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_a_refused_tls12_renegotiation_over_openssl() {
    auto_replays(
        TlsVersion::Tls12,
        "renegotiation",
        "renegotiation-requested",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_a_tls13_403_for_missing_post_handshake_auth_over_openssl() {
    auto_replays(TlsVersion::Tls13, "post_handshake", "post-handshake-auth").await;
}

/// The client-certificate facts both engines must agree on, from an upstream leg and its record.
fn comparable(rec: &Value) -> Value {
    let up = &rec["upstream_leg"];
    let subjects = |chain: &Value| -> Vec<Value> {
        chain
            .as_array()
            .map(|c| c.iter().map(|x| x["sha256"].clone()).collect())
            .unwrap_or_default()
    };
    let mut cr = up["cert_request"].clone();
    if let Some(o) = cr.as_object_mut() {
        // Times differ from run to run; signature schemes are compared apart (below).
        o.remove("at_ms");
        o.remove("signature_schemes");
    }
    serde_json::json!({
        "tls_version": up["tls_version"],
        "alpn": up["alpn"],
        "sni": up["sni"],
        "cert_request": cr,
        "later_cert_requests": up["later_cert_requests"],
        "completed_late_request": up["completed_late_request"],
        "chain": subjects(&up["chain"]),
        "identity": up["identity"],
        "server_chain": subjects(&up["server_chain"]),
        "server_verification": up["server_verification"],
        "alerts": up["alerts"],
        "error": up["error"],
        "status": rec["response"]["status"],
        "findings": finding_ids(rec),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_record_the_same_facts_against_nginx() {
    let (pki, _d) = common::dev_pki();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let nginx = Nginx::start(NginxConfig {
            protocols: vec![version],
            ..common::nginx_config(&pki, VerifyClient::On)
        })
        .expect("start nginx");
        let mut seen = Vec::new();
        let mut schemes = Vec::new();
        for engine in ["rustls", "openssl"] {
            let p = reverse(&pki, nginx.localhost_url(), engine);
            let r = get(&pki, p.port(), "/").await;
            assert_eq!(r.status, 200, "{engine} {version:?}: {r:?}");
            let rec = p.records(1).remove(0);
            assert_eq!(rec["upstream_leg"]["engine"], engine);
            assert_eq!(rec["upstream_leg"]["cert_request"]["phase"], "handshake");
            seen.push(comparable(&rec));
            let list: Vec<String> = rec["upstream_leg"]["cert_request"]["signature_schemes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            schemes.push(list);
        }
        // OpenSSL shows the server's whole list; rustls hands its resolver only the schemes
        // rustls can sign with, so its list is the part of the server's it understands.
        assert!(!schemes[0].is_empty());
        assert!(
            schemes[0].iter().all(|s| schemes[1].contains(s)),
            "{version:?}: {schemes:?}"
        );
        assert_eq!(
            seen[0], seen[1],
            "{version:?}: rustls (left) and openssl (right) disagree"
        );
        assert_eq!(
            seen[0]["cert_request"]["ca_names"],
            serde_json::json!([root_subject(&pki)])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_only_requests_safe_to_send_twice() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let p = reverse(&pki, apache.localhost_url(), "auto");
    let body = "x".repeat(4000);
    let send = |method: &'static str| {
        Curl::new(format!("https://localhost:{}/secure", p.port()))
            .cacert(pki.root_ca())
            .http1_1()
            .arg("-X")
            .arg(method)
            .arg("--data-binary")
            .arg(body.clone())
    };
    // PUT is idempotent and its body fits: replayed, body and all; Apache then refuses the
    // method on a static file, after the renegotiation completed.
    let r = send("PUT").run_async().await;
    assert_eq!(r.status, 405, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(rec["replayed"]["reason"], "renegotiation", "{rec:#}");
    assert_eq!(
        rec["upstream_leg"]["completed_late_request"],
        "renegotiation"
    );
    // POST is not: the refusal stands, explained.
    let r = send("POST").run_async().await;
    assert_eq!(r.status, 502, "{r:?}");
    let rec = p.records(2).remove(1);
    assert_eq!(rec["request"]["method"], "POST");
    assert!(rec["replayed"].is_null(), "{rec:#}");
    assert_eq!(rec["upstream_leg"]["engine"], "rustls");
    let f = finding(&rec, "renegotiation-requested");
    assert_eq!(f["severity"], "error");
    assert!(f["fix"].as_str().unwrap().contains("--upstream-engine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_for_an_http2_client_over_an_http11_openssl_leg() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let p = reverse(&pki, apache.localhost_url(), "auto");
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.records(1).remove(0);
    assert_eq!(
        rec["request"]["version"], "HTTP/2.0",
        "{:#}",
        rec["request"]
    );
    assert_eq!(rec["replayed"]["reason"], "post_handshake");
    assert_eq!(rec["upstream_leg"]["alpn"], "http/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_replay_the_connection_stays_on_the_openssl_leg() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let p = reverse(&pki, apache.localhost_url(), "auto");
    // Two requests on one client connection (curl reuses it).
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .http1_1()
        .arg(format!("https://localhost:{}/secure", p.port()))
        .run_async()
        .await;
    // (The helper keeps one transfer's status and body; the records show both.)
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    let recs = p.records(2);
    assert_eq!(recs[0]["response"]["status"], 200);
    assert_eq!(recs[0]["connection_id"], recs[1]["connection_id"]);
    assert_eq!(recs[0]["replayed"]["reason"], "renegotiation");
    // The second went straight to the OpenSSL leg, where the server already has the
    // certificate: no second replay, no second renegotiation.
    assert!(recs[1]["replayed"].is_null(), "{:#}", recs[1]);
    assert_eq!(recs[1]["response"]["status"], 200);
    let up = &recs[1]["upstream_leg"];
    assert_eq!(up["engine"], "openssl");
    assert_eq!(
        up["renegotiations"].as_array().map_or(0, Vec::len),
        1,
        "{up:#}"
    );
}
