//! `mtlscope reverse` end to end against in-process lab upstreams (port 0), with real curl as
//! the client: what the flow says about both legs' client-certificate story. The proxy runs
//! in the test (`common::Proxy`); its flows are awaited typed.

mod common;

use common::flows::{client, first_id, has, upstream as upstream_leg};
use common::{Curl, Proxy};
use mtlscope::facts::{Direction, FailureKind, FindingId, Phase, RecordKind, Severity, TlsVersion};
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::{load_certs, Identity};
use mtlscope::pki::{ClientCert, DevPki};
use std::sync::Arc;

struct Lab {
    pki: DevPki,
    _dir: tempfile::TempDir,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
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

async fn proxy(lab: &Lab, up: &LabUpstream, extra: &[&str]) -> Proxy {
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
    Proxy::start(&args).await
}

async fn get(lab: &Lab, p: &Proxy, path: &str, extra: &[&str]) -> (i32, u16, String, String) {
    let url = format!("https://localhost:{}{path}", p.port());
    let mut curl = Curl::new(url).cacert(lab.pki.root_ca());
    for a in extra {
        curl = curl.arg(*a);
    }
    let r = curl.run_async().await;
    (r.exit_code.unwrap_or(-1), r.status, r.body, r.headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_with_good_identity_records_request_names_and_presented_chain() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::Required, false, false).await;
    let id = lab.pki.client(ClientCert::Good).arg();
    let mut p = proxy(&lab, &up, &["--identity", &id]).await;
    let (code, status, body, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!((code, status), (0, 200), "body: {body}");
    assert!(body.contains("hello"), "{body}");
    let r = &p.flow().await;
    assert_eq!(r.schema, 2);
    assert_eq!(r.kind, RecordKind::Exchange);
    let up_leg = upstream_leg(r);
    let request = up_leg.cert_request.as_ref().expect("certificate request");
    assert_eq!(request.phase, Phase::Handshake);
    let root = mtlscope::cert::summarize(&load_certs(lab.pki.root_ca()).unwrap()[0]).unwrap();
    assert_eq!(request.ca_names, Some(vec![root.subject.clone()]));
    assert!(!up_leg.chain.is_empty());
    assert!(matches!(
        up_leg.tls_version,
        Some(TlsVersion::Tls12 | TlsVersion::Tls13)
    ));
    assert_eq!(
        up_leg.identity.as_ref().and_then(|i| i.chosen.as_deref()),
        Some("client-good.pem")
    );
    assert_eq!(common::flows::status(r), 200);
    let errors: Vec<_> = r
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
async fn required_without_identity_gives_a_diagnosed_502() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::Required, false, false).await;
    let mut p = proxy(&lab, &up, &[]).await;
    let (_, status, body, headers) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 502, "body: {body}");
    let r = &p.flow().await;
    assert_eq!(common::flows::status(r), 502);
    let up_leg = upstream_leg(r);
    assert_eq!(
        up_leg.cert_request.as_ref().map(|c| c.phase),
        Some(Phase::Handshake)
    );
    assert!(up_leg.chain.is_empty());
    assert!(up_leg.error.is_some(), "{up_leg:#?}");
    // TLS 1.3: the server's certificate_required arrives after the client's Finished.
    let alerts = common::flows::alerts(up_leg);
    assert!(
        common::flows::has_alert(up_leg, "certificate_required"),
        "{alerts:?}"
    );
    assert_eq!(
        first_id(r),
        Some(FindingId::NoClientCert),
        "{:?}",
        common::flows::ids(r)
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
    let mut p = proxy(&lab, &up, &[]).await;
    let (_, status, body, _) = get(&lab, &p, "/app", &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("client certificate is required"), "{body}");
    let r = &p.flow().await;
    assert_eq!(r.request.as_ref().map(|q| q.uri.as_str()), Some("/app"));
    assert_eq!(common::flows::status(r), 403);
    let excerpt = r.response.as_ref().and_then(|s| s.body_excerpt.as_deref());
    assert!(
        excerpt.unwrap_or_default().contains("required"),
        "{excerpt:?}"
    );
    let up_leg = upstream_leg(r);
    assert_eq!(up_leg.tls_version, Some(TlsVersion::Tls12));
    assert_eq!(
        up_leg.cert_request.as_ref().map(|c| c.phase),
        Some(Phase::Handshake)
    );
    assert!(up_leg.chain.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_and_empty_ca_list_are_told_apart() {
    let lab = lab();
    let none = upstream(&lab, LabClientAuth::None, false, false).await;
    let mut p = proxy(&lab, &none, &[]).await;
    let (_, status, _, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(upstream_leg(&p.flow().await).cert_request.is_none());

    let empty = upstream(&lab, LabClientAuth::Optional, true, true).await;
    let id = lab.pki.client(ClientCert::Good).arg();
    let mut p = proxy(&lab, &empty, &["--identity", &id]).await;
    let (_, status, _, _) = get(&lab, &p, "/", &[]).await;
    assert_eq!(status, 200);
    let r = &p.flow().await;
    assert_eq!(
        upstream_leg(r)
            .cert_request
            .as_ref()
            .and_then(|c| c.ca_names.clone()),
        Some(vec![])
    );
    assert!(
        has(r, FindingId::EmptyCaList),
        "{:?}",
        common::flows::ids(r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_client_certificate_and_the_names_mtlscope_sent_are_recorded() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let ca = lab.pki.root_ca().display().to_string();
    let mut p = proxy(
        &lab,
        &up,
        &["--client-auth", "optional", "--client-ca", &ca],
    )
    .await;
    let good = lab.pki.client(ClientCert::Good);
    let (cert, key) = (
        good.cert.display().to_string(),
        good.key.display().to_string(),
    );
    let (_, status, _, _) = get(&lab, &p, "/", &["--cert", &cert, "--key", &key]).await;
    assert_eq!(status, 200);
    let r = &p.flow().await;
    let client = client(r);
    let root = mtlscope::cert::summarize(&load_certs(lab.pki.root_ca()).unwrap()[0]).unwrap();
    let request = client.cert_request.as_ref().expect("certificate request");
    assert_eq!(request.ca_names, Some(vec![root.subject]));
    assert_eq!(request.mandatory, Some(false));
    let leaf = Identity::load(&good.cert, &good.key).unwrap();
    let leaf = mtlscope::cert::summarize(&leaf.chain[0]).unwrap();
    assert_eq!(client.chain[0].sha256, leaf.sha256);
    assert_eq!(client.chain_verdict.as_ref().map(|v| v.trusted), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_plain_http_and_truncated_hello_end_only_their_connection() {
    use std::io::{Read, Write};
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let mut p = proxy(&lab, &up, &[]).await;
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
    let records = p.flows(3).await;
    for r in &records[..3] {
        assert_eq!(r.kind, RecordKind::Connection);
        assert!(client(r).error.is_some(), "{r:#?}");
        assert!(r.upstream_leg.is_none());
    }
    // Connection tasks emit concurrently, so find each record by what it says, not by order.
    let errors: Vec<&str> = records[..3]
        .iter()
        .map(|r| client(r).error.as_deref().unwrap_or_default())
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
    let mut p = proxy(
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
    )
    .await;
    let good = lab.pki.client(ClientCert::Good);
    let (cert, key) = (
        good.cert.display().to_string(),
        good.key.display().to_string(),
    );
    let (_, status, _, _) = get(&lab, &p, "/", &["--cert", &cert, "--key", &key]).await;
    assert_eq!(status, 200);
    let r = &p.flow().await;
    assert_eq!(
        client(r)
            .cert_request
            .as_ref()
            .and_then(|c| c.ca_names.clone()),
        Some(vec![])
    );
    // curl still sent its certificate, and mtlscope still judged it against --client-ca.
    assert_eq!(
        client(r).chain_verdict.as_ref().map(|v| v.trusted),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_a_client_certificate_like_a_real_server() {
    let lab = lab();
    let up = upstream(&lab, LabClientAuth::None, false, false).await;
    let ca = lab.pki.root_ca().display().to_string();
    let mut p = proxy(
        &lab,
        &up,
        &["--client-auth", "required", "--client-ca", &ca, "--enforce"],
    )
    .await;
    let other = lab.pki.client(ClientCert::OtherCa);
    let (cert, key) = (
        other.cert.display().to_string(),
        other.key.display().to_string(),
    );
    let (code, status, _, _) = get(&lab, &p, "/", &["--cert", &cert, "--key", &key]).await;
    assert_ne!(code, 0, "curl fails the handshake");
    assert_eq!(status, 0);
    let r = &p.flow().await;
    assert_eq!(r.kind, RecordKind::Connection);
    let leg = client(r);
    let verdict = leg.chain_verdict.as_ref().expect("chain verdict");
    assert!(!verdict.trusted);
    assert!(verdict.enforced);
    assert!(leg.chain[0].subject.contains("client-other-ca"));
    assert!(
        leg.alerts.iter().any(|a| a.direction == Direction::Sent),
        "{leg:#?}"
    );

    // Without a certificate, `required` ends the handshake too.
    let (code, _, _, _) = get(&lab, &p, "/", &[]).await;
    assert_ne!(code, 0);
    // Connection tasks emit concurrently: find the one that presented nothing.
    let r = p
        .find("presenting no certificate", |r| client(r).chain.is_empty())
        .await;
    assert_eq!(
        client(&r).failure.as_ref().map(|f| f.kind),
        Some(FailureKind::NoCertificatesPresented),
        "{:#?}",
        client(&r)
    );
}
