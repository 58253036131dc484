//! `mtlscope reverse` end to end against in-process lab upstreams (port 0), with real curl as
//! the client: what the record says about both legs' client-certificate story.

mod common;

use common::{finding_ids, Curl, Mtlscope};
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::{load_certs, Identity};
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;
use std::sync::Arc;

struct Lab {
    pki: DevPki,
    _dir: tempfile::TempDir,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).expect("dev pki");
    Lab { pki, _dir: dir }
}

async fn upstream(
    lab: &Lab,
    auth: LabClientAuth,
    empty_ca_names: bool,
    tls12_only: bool,
) -> LabUpstream {
    let server = Arc::new(lab.pki.server().load().unwrap());
    LabUpstream::start(LabUpstreamConfig {
        server,
        client_auth: auth,
        client_cas: load_certs(lab.pki.root_ca()).unwrap(),
        empty_ca_names,
        tls12_only,
        allowed_sha256: vec![],
        silent_reject: false,
    })
    .await
    .unwrap()
}

fn proxy(lab: &Lab, up: &LabUpstream, extra: &[&str]) -> Mtlscope {
    let url = up.url();
    let server = lab.pki.server().arg();
    let ca = lab.pki.root_ca().display().to_string();
    let mut args = vec![
        "reverse",
        "--upstream",
        url.as_str(),
        "--server-cert",
        server.as_str(),
        "--upstream-ca",
        ca.as_str(),
    ];
    args.extend_from_slice(extra);
    Mtlscope::start(&args)
}

async fn get(lab: &Lab, p: &Mtlscope, path: &str, extra: &[&str]) -> (i32, u16, String, String) {
    let url = format!("https://localhost:{}{path}", p.port());
    let mut curl = Curl::new(url).cacert(lab.pki.root_ca());
    for a in extra {
        curl = curl.arg(*a);
    }
    let r = curl.run_async().await;
    (r.exit_code.unwrap_or(-1), r.status, r.body, r.headers)
}

fn upstream_leg(r: &Value) -> &Value {
    &r["upstream_leg"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_with_good_identity_records_request_names_and_presented_chain() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::Required, false, false).await;
    let id = lab.pki.client(ClientCert::Good).arg();
    let p = proxy(&lab, &up, &["--identity", &id]);
    let (code, status, body, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!((code, status), (0, 200), "body: {body}");
    assert!(body.contains("hello"), "{body}");
    let r = &p.records(1)[0];
    assert_eq!(r["schema"], 2);
    assert_eq!(r["kind"], "exchange");
    let up_leg = upstream_leg(r);
    assert_eq!(up_leg["cert_request"]["phase"], "handshake");
    let names: Vec<&str> = up_leg["cert_request"]["ca_names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let root = mtlscope::cert::summarize(&load_certs(lab.pki.root_ca()).unwrap()[0]).unwrap();
    assert_eq!(names, vec![root.subject.as_str()]);
    assert!(!up_leg["chain"].as_array().unwrap().is_empty());
    assert!(up_leg["tls_version"]
        .as_str()
        .unwrap()
        .starts_with("TLSv1."));
    assert_eq!(up_leg["identity"]["chosen"], "client-good.pem");
    assert_eq!(r["response"]["status"], 200);
    let errors: Vec<&Value> = r["findings"]
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
async fn required_without_identity_gives_a_diagnosed_502() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::Required, false, false).await;
    let p = proxy(&lab, &up, &[]);
    let (_, status, body, headers) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 502, "body: {body}");
    let r = &p.records(1)[0];
    assert_eq!(r["response"]["status"], 502);
    let up_leg = upstream_leg(r);
    assert_eq!(up_leg["cert_request"]["phase"], "handshake");
    assert_eq!(up_leg["chain"].as_array().unwrap().len(), 0);
    assert!(up_leg["error"].as_str().is_some(), "{up_leg:#}");
    // TLS 1.3: the server's certificate_required arrives after the client's Finished.
    let alerts: Vec<&str> = up_leg["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["description"].as_str())
        .collect();
    assert!(alerts.contains(&"certificate_required"), "{alerts:?}");
    assert_eq!(
        finding_ids(r).first().map(String::as_str),
        Some("no-client-cert"),
        "{:?}",
        finding_ids(r)
    );
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("mtlscope-diagnosis: no-client-cert"),
        "{headers}"
    );
    assert!(body.contains("no-client-cert"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_upstream_app_refusal_is_relayed_with_an_empty_presented_chain() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::Optional, false, true).await;
    let p = proxy(&lab, &up, &[]);
    let (_, status, body, _) = get(&lab, &p, "/app", &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("client certificate is required"), "{body}");
    let r = &p.records(1)[0];
    assert_eq!(r["request"]["uri"], "/app");
    assert_eq!(r["response"]["status"], 403);
    assert!(r["response"]["body_excerpt"]
        .as_str()
        .unwrap()
        .contains("required"));
    let up_leg = upstream_leg(r);
    assert_eq!(up_leg["tls_version"], "TLSv1.2");
    assert_eq!(up_leg["cert_request"]["phase"], "handshake");
    assert_eq!(up_leg["chain"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_and_empty_ca_list_are_told_apart() {
    let lab = lab();
    let none = upstream(&lab, LabClientAuth::None, false, false).await;
    let p = proxy(&lab, &none, &[]);
    let (_, status, _, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(upstream_leg(&p.records(1)[0])["cert_request"].is_null());

    let empty = upstream(&lab, LabClientAuth::Optional, true, true).await;
    let id = lab.pki.client(ClientCert::Good).arg();
    let p = proxy(&lab, &empty, &["--identity", &id]);
    let (_, status, _, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 200);
    let r = &p.records(1)[0];
    assert_eq!(
        upstream_leg(r)["cert_request"]["ca_names"],
        serde_json::json!([])
    );
    assert!(
        finding_ids(r).contains(&"empty-ca-list".to_string()),
        "{:?}",
        finding_ids(r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_client_certificate_and_the_names_mtlscope_sent_are_recorded() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let ca = lab.pki.root_ca().display().to_string();
    let p = proxy(
        &lab,
        &up,
        &["--client-auth", "optional", "--client-ca", &ca],
    );
    let good = lab.pki.client(ClientCert::Good);
    let (cert, key) = (
        good.cert.display().to_string(),
        good.key.display().to_string(),
    );
    let (_, status, _, _) = get(&lab, &p, "/", &["--cert", &cert, "--key", &key]).await;
    assert_eq!(status, 200);
    let r = &p.records(1)[0];
    let client = &r["client_leg"];
    let root = mtlscope::cert::summarize(&load_certs(lab.pki.root_ca()).unwrap()[0]).unwrap();
    assert_eq!(
        client["cert_request"]["ca_names"],
        serde_json::json!([root.subject])
    );
    assert_eq!(client["cert_request"]["mandatory"], false);
    let leaf = Identity::load(&good.cert, &good.key).unwrap();
    let leaf = mtlscope::cert::summarize(&leaf.chain[0]).unwrap();
    assert_eq!(client["chain"][0]["sha256"], leaf.sha256);
    assert_eq!(client["chain_verdict"]["trusted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_plain_http_and_truncated_hello_end_only_their_connection() {
    use std::io::{Read, Write};
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let p = proxy(&lab, &up, &[]);
    let addr = p.addr.clone();
    tokio::task::spawn_blocking(move || {
        for payload in [
            &b"\x00\xffgarbage\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00],
        ] {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            s.write_all(payload).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        }
    })
    .await
    .unwrap();
    let records = p.records(3);
    for r in &records[..3] {
        assert_eq!(r["kind"], "connection");
        assert!(r["client_leg"]["error"].as_str().is_some(), "{r:#}");
        assert!(r["upstream_leg"].is_null());
    }
    // Connection tasks emit concurrently, so find each record by what it says, not by order.
    let errors: Vec<&str> = records[..3]
        .iter()
        .map(|r| r["client_leg"]["error"].as_str().unwrap_or_default())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("plain HTTP")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("not a TLS record")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("before completing a ClientHello")),
        "{errors:#?}"
    );
    // The proxy still serves.
    let (_, status, _, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_ca_list_can_be_sent_to_the_client() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let ca = lab.pki.root_ca().display().to_string();
    let p = proxy(
        &lab,
        &up,
        &[
            "--client-auth",
            "optional",
            "--client-ca",
            &ca,
            "--client-ca-names",
            "none",
        ],
    );
    let good = lab.pki.client(ClientCert::Good);
    let (cert, key) = (
        good.cert.display().to_string(),
        good.key.display().to_string(),
    );
    let (_, status, _, _) = get(&lab, &p, "/", &["--cert", &cert, "--key", &key]).await;
    assert_eq!(status, 200);
    let r = &p.records(1)[0];
    assert_eq!(
        r["client_leg"]["cert_request"]["ca_names"],
        serde_json::json!([])
    );
    // curl still sent its certificate, and mtlscope still judged it against --client-ca.
    assert_eq!(r["client_leg"]["chain_verdict"]["trusted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_a_client_certificate_like_a_real_server() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let ca = lab.pki.root_ca().display().to_string();
    let p = proxy(
        &lab,
        &up,
        &["--client-auth", "required", "--client-ca", &ca, "--enforce"],
    );
    let other = lab.pki.client(ClientCert::OtherCa);
    let (cert, key) = (
        other.cert.display().to_string(),
        other.key.display().to_string(),
    );
    let (code, status, _, _) = get(&lab, &p, "/", &["--cert", &cert, "--key", &key]).await;
    assert_ne!(code, 0, "curl fails the handshake");
    assert_eq!(status, 0);
    let r = &p.records(1)[0];
    assert_eq!(r["kind"], "connection");
    let client = &r["client_leg"];
    assert_eq!(client["chain_verdict"]["trusted"], false);
    assert_eq!(client["chain_verdict"]["enforced"], true);
    assert!(client["chain"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("client-other-ca"));
    assert!(
        client["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["direction"] == "sent"),
        "{client:#}"
    );

    // Without a certificate, `required` ends the handshake too.
    let (code, _, _, _) = get(&lab, &p, "/", &[]).await;
    assert_ne!(code, 0);
    let records = p.records(2);
    // Connection tasks emit concurrently: find the one that presented nothing.
    let r = records
        .iter()
        .find(|r| r["client_leg"]["chain"] == serde_json::json!([]))
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(
        r["client_leg"]["failure"]["kind"], "no_certificates_presented",
        "{:#}",
        r["client_leg"]
    );
}
