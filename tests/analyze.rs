//! `mtlscope analyze` on real captures: dumpcap records loopback traffic while real clients
//! (curl) talk to real servers (nginx, Apache, openssl s_server), then the capture is analyzed.
//! Hand-edited copies of a real capture (a segment split and one piece dropped; every segment
//! resent and two swapped) must give the same facts, with the gap named.

mod common;

use common::dumpcap::Dumpcap;
use common::nginx::VerifyClient;
use common::{
    Apache, ApacheConfig, ClientAuthScope, Curl, Nginx, NginxConfig, TestPki, TlsVersion,
};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `mtlscope analyze FILES… ARGS…`: the records, and stderr.
fn analyze(files: &[&Path], args: &[&str]) -> (Vec<Value>, String) {
    let dir = common::tmpdir();
    let record = dir.path().join("r.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .arg("analyze")
        .args(files)
        .args(args)
        .arg("--record")
        .arg(&record)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "analyze failed: {stderr}");
    let text = std::fs::read_to_string(&record).unwrap_or_default();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    (records, stderr)
}

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

fn nginx_tls12_verify_on(pki: &TestPki) -> Nginx {
    Nginx::start(NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(pki.ca_cert.clone()),
        protocols: vec![TlsVersion::Tls12],
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    })
    .expect("nginx")
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

/// One record of a pcap file (Ethernet, microseconds, little-endian as dumpcap -P writes).
#[derive(Clone)]
struct Rec {
    head: [u8; 16],
    data: Vec<u8>,
}

fn read_pcap(path: &Path) -> ([u8; 24], Vec<Rec>) {
    let bytes = std::fs::read(path).expect("read");
    let mut header = [0u8; 24];
    header.copy_from_slice(&bytes[..24]);
    assert_eq!(
        &header[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    let mut at = 24;
    let mut recs = Vec::new();
    while at + 16 <= bytes.len() {
        let mut head = [0u8; 16];
        head.copy_from_slice(&bytes[at..at + 16]);
        let caplen = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        recs.push(Rec {
            head,
            data: bytes[at + 16..at + 16 + caplen].to_vec(),
        });
        at += 16 + caplen;
    }
    (header, recs)
}

fn write_pcap(path: &Path, header: &[u8; 24], recs: &[Rec]) {
    let mut out = header.to_vec();
    for r in recs {
        let mut head = r.head;
        let len = (r.data.len() as u32).to_le_bytes();
        head[8..12].copy_from_slice(&len);
        head[12..16].copy_from_slice(&len);
        out.extend_from_slice(&head);
        out.extend_from_slice(&r.data);
    }
    std::fs::write(path, out).expect("write");
}

/// Offsets of an Ethernet/IPv4/TCP frame: (IP start, TCP start, payload start).
fn offsets(frame: &[u8]) -> Option<(usize, usize, usize)> {
    // IPv4 carrying TCP only (the capture also holds dumpcap's UDP probes).
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 6 {
        return None;
    }
    let ip = 14;
    let tcp = ip + usize::from(frame[ip] & 0x0f) * 4;
    let payload = tcp + usize::from(frame.get(tcp + 12)? >> 4) * 4;
    Some((ip, tcp, payload))
}

/// The frame with only `part` of its payload, starting `skip` bytes into it.
fn piece(r: &Rec, skip: usize, part: &[u8]) -> Rec {
    let (ip, tcp, payload) = offsets(&r.data).expect("tcp");
    let mut data = r.data[..payload].to_vec();
    data.extend_from_slice(part);
    let total = (data.len() - ip) as u16;
    data[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
    let seq = u32::from_be_bytes([data[tcp + 4], data[tcp + 5], data[tcp + 6], data[tcp + 7]]);
    data[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add(skip as u32).to_be_bytes());
    Rec { head: r.head, data }
}

/// The `wire` facts without the events (gap events differ by design) and the record's ids.
fn facts(r: &Value) -> (Value, Vec<String>) {
    let mut w = r["wire"].clone();
    if let Some(m) = w.as_object_mut() {
        m.remove("events");
    }
    (w, finding_ids(r))
}

#[test]
fn a_dropped_segment_and_retransmissions_give_the_clean_facts() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", nginx.port(), &dir.path().join("clean.pcap"), true);
    let _ = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    let clean = cap.stop();
    let (header, recs) = read_pcap(&clean);
    let (clean_records, _) = analyze(&[&clean], &[]);
    assert_eq!(clean_records.len(), 1);
    let clean_facts = facts(&clean_records[0]);

    // The server's first application-data record (the 400 page), split in three; the middle
    // piece (inside the encrypted payload) is left out.
    let server_port = nginx.port().to_be_bytes();
    let target = recs
        .iter()
        .position(|r| {
            offsets(&r.data).is_some_and(|(_, tcp, p)| {
                r.data[tcp..tcp + 2] == server_port
                    && r.data.get(p) == Some(&23)
                    && r.data.len() > p + 60
            })
        })
        .expect("an application-data segment from the server");
    let (_, _, p) = offsets(&recs[target].data).expect("tcp");
    let payload = recs[target].data[p..].to_vec();
    let n = payload.len();
    let mut dropped = recs.clone();
    dropped[target] = piece(&recs[target], 0, &payload[..20]);
    dropped.insert(target + 1, piece(&recs[target], n - 20, &payload[n - 20..]));
    let dropped_file = dir.path().join("dropped.pcap");
    write_pcap(&dropped_file, &header, &dropped);
    let (records, _) = analyze(&[&dropped_file], &[]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        facts(&records[0]),
        clean_facts,
        "a gap inside a record changes no fact"
    );
    let gaps = &records[0]["capture"]["gaps"];
    assert_eq!(
        gaps.as_array().map(Vec::len),
        Some(1),
        "{:#}",
        records[0]["capture"]
    );
    assert_eq!(gaps[0]["bytes"], (n - 40) as u64);
    assert_eq!(gaps[0]["direction"], "server_to_client");
    assert_eq!(gaps[0]["effect"], "inside_record");

    // Every data segment sent twice, and two of the server's segments swapped.
    let mut resent: Vec<Rec> = Vec::new();
    for r in &recs {
        resent.push(r.clone());
        if offsets(&r.data).is_some_and(|(_, _, p)| r.data.len() > p) {
            resent.push(r.clone());
        }
    }
    let split_at = resent
        .iter()
        .position(|r| offsets(&r.data).is_some_and(|(_, _, p)| r.data.len() > p + 100))
        .expect("a data segment");
    let whole = resent[split_at].clone();
    let (_, _, p) = offsets(&whole.data).expect("tcp");
    let body = whole.data[p..].to_vec();
    let half = body.len() / 2;
    // The second half arrives first (out of order), then the first half, then the original
    // (a retransmission covering both).
    resent[split_at] = piece(&whole, half, &body[half..]);
    resent.insert(split_at + 1, piece(&whole, 0, &body[..half]));
    let resent_file = dir.path().join("resent.pcap");
    write_pcap(&resent_file, &header, &resent);
    let (records, _) = analyze(&[&resent_file], &[]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        facts(&records[0]),
        clean_facts,
        "retransmissions change no fact"
    );
    assert!(
        records[0]["capture"]["gaps"].is_null(),
        "no gap: {:#}",
        records[0]["capture"]
    );
}

#[test]
fn bad_captures_are_named() {
    let dir = common::tmpdir();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["analyze"])
        .arg(&junk)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a pcap or pcapng"), "{stderr}");

    // A pcap with an unknown link type (147, USER0) and a truncated last record.
    let mut bytes = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&65535u32.to_le_bytes());
    bytes.extend_from_slice(&147u32.to_le_bytes());
    for _ in 0..2 {
        bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
    }
    bytes.truncate(bytes.len() - 2);
    let odd = dir.path().join("odd.pcap");
    std::fs::write(&odd, &bytes).expect("write");
    let (records, stderr) = analyze(&[&odd], &[]);
    assert!(records.is_empty());
    assert!(stderr.contains("link type 147"), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
}

#[test]
fn a_snap_length_cut_is_named() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let file = dir.path().join("cut.pcapng");
    // dumpcap with a 200-byte snap length: the certificate flight is cut.
    let cap = Dumpcap::start_with("lo", nginx.port(), &file, &["-s", "200"]);
    let _ = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    let file = cap.stop();
    let (records, stderr) = analyze(&[&file], &[]);
    assert!(
        stderr.contains("snap length") && stderr.contains("-s 0"),
        "{stderr}"
    );
    let gaps = records[0]["capture"]["gaps"].to_string();
    assert!(gaps.contains("snap_len"), "{gaps}");
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
