//! `mtlscope analyze` on real captures: dumpcap records loopback traffic while real clients
//! (curl) talk to real servers (nginx, Apache, openssl s_server), then the capture is analyzed.
//! Edited and broken captures are in `analyze_edited.rs`.

mod common;

use common::captures::{analyze, nginx_tls12_verify_on};
use common::dumpcap::Dumpcap;
use common::nginx::VerifyClient;
use common::{
    Apache, ApacheConfig, ClientAuthScope, Curl, Nginx, NginxConfig, TestPki, TlsVersion,
};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn finding_ids(r: &Value) -> Vec<String> {
    r["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `report`, `diff` (the keyed record against the unkeyed one) and `export --har` read a
/// recording of `analyze`.
fn views_read_it(capture: &Path, keys: &[&str]) {
    let dir = common::tmpdir();
    let record = dir.path().join("r.jsonl");
    for args in [keys, &[][..]] {
        let ok = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .arg("analyze")
            .arg(capture)
            .args(args)
            .arg("--record")
            .arg(&record)
            .output()
            .expect("runs");
        assert!(ok.status.success());
    }
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .args(args)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let rec = record.to_str().expect("utf-8");
    let report = run(&["report", rec]);
    assert!(
        report.contains("capture") && report.contains("no-client-cert"),
        "{report}"
    );
    let diff = run(&["diff", &format!("{rec}:1"), &format!("{rec}:2")]);
    assert!(diff.contains("response.status: 400 vs none"), "{diff}");
    let har = dir.path().join("r.har");
    run(&["export", "--har", har.to_str().expect("utf-8"), rec]);
    let har: Value =
        serde_json::from_str(&std::fs::read_to_string(&har).expect("har")).expect("JSON");
    assert!(
        har["log"]["entries"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{har:#}"
    );
}

/// curl (HTTP/1.1) with `SSLKEYLOGFILE=keylog` and `args`; the HTTP status (0 for none).
fn curl_keyed(url: &str, ca: &Path, keylog: &Path, args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .env("SSLKEYLOGFILE", keylog)
        .args([
            "-s",
            "--http1.1",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(ca)
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The one TLS record of a capture read without keys: nginx over TLS 1.2 asked for a
/// certificate (CA names) and got an empty Certificate.
fn assert_empty_certificate(records: &[Value], file: &Path) -> Value {
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["kind"], "connection");
    assert_eq!(r["mode"], "capture");
    let w = &r["wire"];
    assert_eq!(w["tls_version"], "TLSv1.2", "{w:#}");
    assert_eq!(w["cert_request"]["phase"], "handshake");
    let names = w["cert_request"]["ca_names"].to_string();
    assert!(names.contains("mtlscope selftest root CA"), "{names}");
    assert_eq!(
        w["client_chain"],
        serde_json::json!([]),
        "an empty Certificate"
    );
    assert_eq!(r["capture"]["file"], file.display().to_string());
    assert!(
        r["response"].is_null(),
        "no claim about the encrypted answer"
    );
    r.clone()
}

/// The one TLS record of a capture, checked to be `no-client-cert` from nginx over TLS 1.2.
fn assert_no_client_cert(records: &[Value], file: &Path) -> Value {
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["kind"], "exchange", "the decrypted request and answer");
    assert_eq!(r["mode"], "capture");
    let w = &r["wire"];
    assert_eq!(w["tls_version"], "TLSv1.2", "{w:#}");
    assert_eq!(w["cert_request"]["phase"], "handshake");
    let names = w["cert_request"]["ca_names"].to_string();
    assert!(names.contains("mtlscope selftest root CA"), "{names}");
    assert_eq!(
        w["client_chain"],
        serde_json::json!([]),
        "an empty Certificate"
    );
    assert!(
        finding_ids(r).contains(&"no-client-cert".to_string()),
        "{:#?}",
        r["findings"]
    );
    let cap = &r["capture"];
    assert_eq!(cap["file"], file.display().to_string());
    assert!(cap["first_frame"].as_u64().unwrap_or(0) >= 1);
    assert!(
        cap["frames"].as_array().is_some_and(|f| !f.is_empty()),
        "{cap:#}"
    );
    let evidence = r["findings"].to_string();
    assert!(
        evidence.contains("frame"),
        "frame numbers as evidence: {evidence}"
    );
    r.clone()
}

#[test]
fn nginx_tls12_without_certificate_in_pcapng_and_pcap_on_lo() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let ng = Dumpcap::start("lo", nginx.port(), &dir.path().join("lo.pcapng"), false);
    let legacy = Dumpcap::start("lo", nginx.port(), &dir.path().join("lo.pcap"), true);
    let keylog = dir.path().join("keys.log");
    let status = curl_keyed(
        &format!("{}/", nginx.base_url()),
        &pki.ca_cert,
        &keylog,
        &[],
    );
    assert_eq!(status, 400, "nginx refuses a request without certificate");
    let ng = ng.stop();
    let legacy = legacy.stop();
    let (records, _) = analyze(&[&ng], &[]);
    assert_empty_certificate(&records, &ng);
    let keys = ["--keylog", keylog.to_str().expect("utf-8")];
    let (records, _) = analyze(&[&ng], &keys);
    let a = assert_no_client_cert(&records, &ng);
    assert_eq!(a["response"]["status"], 400, "the decrypted answer");
    assert_eq!(a["request"]["uri"], "/");
    let (records, _) = analyze(&[&legacy], &keys);
    let b = assert_no_client_cert(&records, &legacy);
    views_read_it(&ng, &keys);
    // pcap keeps microseconds, pcapng (dumpcap) nanoseconds: times may differ in the last digit.
    let (mut ca, mut cb) = (
        a["wire"]["cert_request"].clone(),
        b["wire"]["cert_request"].clone(),
    );
    strip_times(&mut ca);
    strip_times(&mut cb);
    assert_eq!(ca, cb);
    assert_eq!(finding_ids(&a), finding_ids(&b));
}

#[test]
fn nginx_tls12_without_certificate_linux_cooked_any() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let cap = Dumpcap::start("any", nginx.port(), &dir.path().join("any.pcapng"), false);
    let keylog = dir.path().join("keys.log");
    let status = curl_keyed(
        &format!("{}/", nginx.base_url()),
        &pki.ca_cert,
        &keylog,
        &[],
    );
    assert_eq!(status, 400);
    let file = cap.stop();
    let (records, _) = analyze(&[&file], &["--keylog", keylog.to_str().expect("utf-8")]);
    assert_no_client_cert(&records, &file);
}

/// curl with `SSLKEYLOGFILE`, the expired identity, TLS 1.3, to `port`.
fn curl_expired_tls13(pki: &TestPki, port: u16, keylog: &Path) -> std::process::Output {
    Command::new("curl")
        .env("SSLKEYLOGFILE", keylog)
        .args(["-s", "--max-time", "10", "--tlsv1.3", "--cacert"])
        .arg(&pki.ca_cert)
        .arg("--cert")
        .arg(&pki.expired.cert)
        .arg("--key")
        .arg(&pki.expired.key)
        .arg(format!("https://localhost:{port}/"))
        .output()
        .expect("curl")
}

#[test]
fn tls13_expired_certificate_with_and_without_keys() {
    let pki = TestPki::generate().expect("pki");
    // openssl s_server as the TLS 1.3 server: asks for a certificate (CA names from -CAfile)
    // and, with -verify_return_error, refuses an expired one with an alert.
    let server = SServer::start(&pki, &["-tls1_3", "-Verify", "2", "-verify_return_error"]);
    let port = server.1;
    let dir = common::tmpdir();
    let keylog = dir.path().join("keys.log");
    let cap = Dumpcap::start("lo", port, &dir.path().join("t13.pcapng"), false);
    let out = curl_expired_tls13(&pki, port, &keylog);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the server refuses the expired certificate"
    );
    let file = cap.stop();
    drop(server);

    // Without keys: the hellos only, and no claim about what was encrypted.
    let (plain, _) = analyze(&[&file], &[]);
    let plain: Vec<&Value> = plain
        .iter()
        .filter(|r| r["wire"]["sni"] == "localhost")
        .collect();
    assert_eq!(plain.len(), 1, "{plain:#?}");
    let w = &plain[0]["wire"];
    assert_eq!(w["tls_version"], "TLSv1.3");
    assert!(w["cert_request"].is_null(), "{w:#}");
    assert!(w["client_chain"].is_null());
    assert_eq!(plain[0]["capture"]["decryption"]["state"], "no_key_log");
    let ids = finding_ids(plain[0]);
    for claim in ["cert-expired", "no-client-cert"] {
        assert!(!ids.contains(&claim.to_string()), "{ids:?}");
    }

    // With curl's key log: the CertificateRequest's CA names, the chain, the alert.
    let (keyed, _) = analyze(&[&file], &["--keylog", keylog.to_str().expect("utf-8")]);
    let keyed: Vec<&Value> = keyed
        .iter()
        .filter(|r| r["wire"]["sni"] == "localhost")
        .collect();
    let r = keyed[0];
    let w = &r["wire"];
    assert_eq!(
        r["capture"]["decryption"]["state"], "decrypted",
        "{:#}",
        r["capture"]
    );
    assert_eq!(w["cert_request"]["phase"], "handshake");
    assert!(
        w["cert_request"]["ca_names"]
            .to_string()
            .contains("mtlscope selftest root CA"),
        "{w:#}"
    );
    assert!(
        w["client_chain"][0]["subject"]
            .to_string()
            .contains("selftest-expired"),
        "{w:#}"
    );
    let alerts = w["alerts"].to_string();
    assert!(alerts.contains("certificate_expired"), "{alerts}");
    assert!(
        finding_ids(r).contains(&"cert-expired".to_string()),
        "{:#?}",
        r["findings"]
    );
}

#[test]
fn a_key_log_for_other_sessions_is_named() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", nginx.port(), &dir.path().join("c.pcapng"), false);
    let _ = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    let file = cap.stop();
    let keylog = dir.path().join("other.log");
    std::fs::write(
        &keylog,
        format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48)),
    )
    .expect("write");
    let (_, stderr) = analyze(&[&file], &["--keylog", keylog.to_str().expect("utf-8")]);
    assert!(stderr.contains("none of them in the capture"), "{stderr}");
}

fn apache_per_location(pki: &TestPki, version: TlsVersion) -> Apache {
    Apache::start(ApacheConfig {
        protocols: vec![version],
        ca_certificate: Some(pki.ca_cert.clone()),
        client_auth: ClientAuthScope::SecureLocation,
        ..ApacheConfig::new(&pki.server.cert, &pki.server.key)
    })
    .expect("apache")
}

#[test]
fn apache_tls12_per_location_renegotiation() {
    let pki = TestPki::generate().expect("pki");
    let apache = apache_per_location(&pki, TlsVersion::Tls12);
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", apache.port(), &dir.path().join("reneg.pcapng"), false);
    let keylog = dir.path().join("keys.log");
    let cert = pki.client.cert.to_str().expect("utf-8");
    let key = pki.client.key.to_str().expect("utf-8");
    let url = format!("{}/secure", apache.base_url());
    let status = curl_keyed(
        &url,
        &pki.ca_cert,
        &keylog,
        &["--tls-max", "1.2", "--cert", cert, "--key", key],
    );
    assert_eq!(status, 200);
    let file = cap.stop();
    let renegotiated = |records: &[Value]| -> Value {
        records
            .iter()
            .find(|r| {
                r["wire"]["renegotiations"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            })
            .unwrap_or_else(|| panic!("a renegotiation: {records:#?}"))
            .clone()
    };
    let (records, _) = analyze(&[&file], &[]);
    let r = renegotiated(&records);
    assert_eq!(r["wire"]["renegotiations"][0]["initiated_by"], "server");
    assert!(
        finding_ids(&r).contains(&"renegotiation-requested".to_string()),
        "{:#?}",
        r["findings"]
    );
    // Without keys the renegotiation's CertificateRequest is inferred, its CA names unknown.
    assert!(
        r["wire"]["cert_request"]["ca_names"].is_null(),
        "{:#}",
        r["wire"]
    );
    // With the key log it is read: the CA names, the client's chain, the request and answer.
    let (records, _) = analyze(&[&file], &["--keylog", keylog.to_str().expect("utf-8")]);
    let r = renegotiated(&records);
    let w = &r["wire"];
    assert_eq!(w["cert_request"]["phase"], "renegotiation", "{w:#}");
    assert!(w["cert_request"]["ca_names"]
        .to_string()
        .contains("mtlscope selftest root CA"));
    assert!(
        w["client_chain"][0]["subject"]
            .to_string()
            .contains("selftest-client"),
        "{w:#}"
    );
    assert_eq!(r["request"]["uri"], "/secure");
    assert_eq!(r["response"]["status"], 200);
    assert!(finding_ids(&r).contains(&"renegotiation-requested".to_string()));
}

#[test]
fn apache_tls13_post_handshake_request_decrypted() {
    let pki = TestPki::generate().expect("pki");
    let apache = apache_per_location(&pki, TlsVersion::Tls13);
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", apache.port(), &dir.path().join("pha.pcapng"), false);
    let keylog = dir.path().join("keys.log");
    let cert = pki.client.cert.to_str().expect("utf-8");
    let key = pki.client.key.to_str().expect("utf-8");
    let url = format!("{}/secure", apache.base_url());
    let _ = curl_keyed(
        &url,
        &pki.ca_cert,
        &keylog,
        &["--tlsv1.3", "--cert", cert, "--key", key],
    );
    let file = cap.stop();
    let (records, _) = analyze(&[&file], &["--keylog", keylog.to_str().expect("utf-8")]);
    let r = records
        .iter()
        .find(|r| r["wire"]["cert_request"]["phase"] == "post_handshake")
        .unwrap_or_else(|| panic!("a decrypted post-handshake request: {records:#?}"));
    assert!(r["wire"]["cert_request"]["ca_names"]
        .to_string()
        .contains("mtlscope selftest root CA"));
    assert_eq!(r["wire"]["client_offered_pha"], true);
}

/// `openssl s_server` on a free port with `args` (certificate and CA from `pki`); killed on drop.
struct SServer(Child, u16);

impl SServer {
    fn start(pki: &TestPki, args: &[&str]) -> SServer {
        let port = common::free_port().expect("port");
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
            .arg("-cert")
            .arg(&pki.server.cert)
            .arg("-key")
            .arg(&pki.server.key)
            .arg("-CAfile")
            .arg(&pki.ca_cert)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s_server");
        common::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(10))
            .expect("listening");
        SServer(child, port)
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn findings_of_a_capture_equal_observe_s() {
    let pki = TestPki::generate().expect("pki");
    // A TLS 1.2 server that refuses a client without certificate with a (plaintext) alert, so
    // observe has something to diagnose too.
    let server = SServer::start(&pki, &["-tls1_2", "-Verify", "1", "-verify_return_error"]);
    let upstream = format!("127.0.0.1:{}", server.1);
    let mut observe = common::mtlscope::Mtlscope::start(&["observe", "--upstream", &upstream]);
    let port = observe.port();
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", port, &dir.path().join("obs.pcapng"), false);
    let r = Curl::new(format!("https://localhost:{port}/"))
        .cacert(&pki.ca_cert)
        .tls_max(TlsVersion::Tls12)
        .run();
    assert_eq!(r.status, 0, "the handshake fails");
    let observed = observe.records(1);
    let file = cap.stop();
    observe.signal("INT");
    let _ = observe.wait_exit(Duration::from_secs(10));
    let (captured, _) = analyze(&[&file], &[]);
    assert_eq!(captured.len(), 1, "{captured:#?}");
    assert_eq!(observed[0]["mode"], "observe");
    assert_eq!(finding_ids(&observed[0]), finding_ids(&captured[0]));
    assert!(
        finding_ids(&captured[0]).contains(&"no-client-cert".to_string()),
        "{:#?}",
        captured[0]["findings"]
    );
    for key in [
        "tls_version",
        "sni",
        "cert_request",
        "client_chain",
        "server_chain",
        "alerts",
    ] {
        let (mut o, mut c) = (
            observed[0]["wire"][key].clone(),
            captured[0]["wire"][key].clone(),
        );
        // Times differ by where they were taken; the facts must not.
        strip_times(&mut o);
        strip_times(&mut c);
        assert_eq!(o, c, "wire.{key}");
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("at_ms");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

#[test]
fn http2_status_behind_the_handshake_is_decrypted() {
    let pki = TestPki::generate().expect("pki");
    let nginx = Nginx::start(NginxConfig {
        verify_client: VerifyClient::Optional,
        client_certificate: Some(pki.ca_cert.clone()),
        app_location: true,
        http2: true,
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    })
    .expect("nginx");
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", nginx.port(), &dir.path().join("h2.pcapng"), false);
    let keylog = dir.path().join("keys.log");
    let out = Command::new("curl")
        .env("SSLKEYLOGFILE", &keylog)
        .args([
            "-s",
            "--http2",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "--cacert",
        ])
        .arg(&pki.ca_cert)
        .arg(format!("{}/app", nginx.base_url()))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403 2");
    let file = cap.stop();
    let (records, _) = analyze(&[&file], &["--keylog", keylog.to_str().expect("utf-8")]);
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["wire"]["alpn"], "h2");
    assert_eq!(r["request"]["uri"], "/app", "{r:#}");
    assert_eq!(r["request"]["version"], "HTTP/2.0");
    assert_eq!(r["response"]["status"], 403, "{r:#}");
    // Without keys: nothing said about the answer.
    let (records, _) = analyze(&[&file], &[]);
    assert!(records[0]["response"].is_null());
}
