//! Certificates asked for late, against real Apache httpd with `SSLVerifyClient require` only
//! inside `<Location /secure>`: TLS 1.2 renegotiation (refused by mtlscope's rustls upstream leg,
//! completed by curl through `observe`) and TLS 1.3 post-handshake auth (never offered by rustls).
//! Plus `observe` reading nginx's CertificateRequest and curl's chain off a TLS 1.2 wire.

mod common;

use common::flows::{has, sent_alerts, status, upstream};
use common::{Apache, Curl, Nginx, NginxConfig, Proxy, TlsVersion, VerifyClient};
use mtlscope::facts::{FindingId, Initiator, Phase, RenegotiationOutcome};
use mtlscope::pki::{ClientCert, DevPki};

fn pki() -> (DevPki, tempfile::TempDir) {
    common::dev_pki()
}

fn apache(pki: &DevPki, version: TlsVersion) -> Apache {
    common::apache_secure_location(pki, version)
}

async fn reverse(pki: &DevPki, upstream: String) -> Proxy {
    reverse_with(pki, &upstream, &[]).await
}

/// `mtlscope reverse` in front of `upstream`, presenting the good identity, plus `extra`.
async fn reverse_with(pki: &DevPki, upstream: &str, extra: &[&str]) -> Proxy {
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let id = pki.client(ClientCert::Good).arg();
    let mut args = vec![
        "reverse",
        "--upstream",
        upstream,
        "--server-cert",
        &server,
        "--upstream-ca",
        &ca,
        "--identity",
        &id,
    ];
    args.extend_from_slice(extra);
    Proxy::start(&args).await
}

/// The record has finding `id`, and the client's response names it in `Mtlscope-Diagnosis`.
#[track_caller]
fn assert_diagnosed(rec: &mtlscope::facts::Flow, r: &common::CurlResult, id: FindingId) {
    assert!(has(rec, id), "{:?}", common::flows::ids(rec));
    let header = r.header("mtlscope-diagnosis").unwrap_or_default();
    assert!(header.contains(id.as_str()), "{}", r.headers);
}

async fn get(pki: &DevPki, port: u16, path: &str) -> common::CurlResult {
    Curl::new(format!("https://localhost:{port}{path}"))
        .cacert(pki.root_ca())
        .http1_1()
        .run_async()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_renegotiation_is_recorded_refused_and_answered_without_a_hang() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls12);
    let mut p = reverse(&pki, apache.localhost_url()).await;

    // The public path: no late request.
    let r = get(&pki, p.port(), "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    let public = p.flow().await;
    let public = upstream(&public);
    assert!(public.cert_request.is_none(), "{public:#?}");
    assert!(public.renegotiations.is_empty());

    // The protected path: Apache renegotiates after the request; rustls refuses.
    let r = get(&pki, p.port(), "/secure").await;
    assert!(!r.timed_out, "the client got an answer: {r:?}");
    assert_eq!(
        r.status, 502,
        "mtlscope answers for the refused upstream: {r:?}"
    );
    let rec = p
        .find("for /secure", |r| {
            r.request.as_ref().is_some_and(|q| q.uri == "/secure")
        })
        .await;
    let up = upstream(&rec);
    assert_eq!(up.tls_version, Some(mtlscope::facts::TlsVersion::Tls12));
    let request = up.cert_request.as_ref().expect("a certificate request");
    assert_eq!(request.phase, Phase::Renegotiation, "{up:#?}");
    let delay = request.after_request_ms.expect("delay from the request");
    assert!(delay >= 0.0);
    let reneg = &up.renegotiations[0];
    assert_eq!(reneg.initiated_by, Initiator::Server);
    assert_eq!(
        reneg.outcome,
        Some(RenegotiationOutcome::RefusedByMtlscope),
        "{reneg:#?}"
    );
    assert!(sent_alerts(up).iter().any(|a| a == "no_renegotiation"));
    assert_diagnosed(&rec, &r, FindingId::RenegotiationRequested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_per_location_auth_is_a_403_without_post_handshake_auth() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls13);
    let mut p = reverse(&pki, apache.localhost_url()).await;
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 403, "{r:?}");
    let rec = p.flow().await;
    let up = upstream(&rec);
    assert_eq!(up.tls_version, Some(mtlscope::facts::TlsVersion::Tls13));
    assert_eq!(up.client_hello.as_ref().map(|h| h.offered_pha), Some(false));
    assert!(up.cert_request.is_none());
    assert_eq!(status(&rec), 403);
    assert_diagnosed(&rec, &r, FindingId::PostHandshakeAuth);
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
    let mut p = Proxy::start(&["observe", "--upstream", &upstream]).await;
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
    let rec = p.flow().await;
    assert_eq!(rec.mode, mtlscope::facts::Mode::Observe);
    let wire = common::flows::wire(&rec);
    assert_eq!(wire.tls_version, Some(mtlscope::facts::TlsVersion::Tls12));
    let reneg = wire.renegotiations.first().expect("a renegotiation");
    assert_eq!(reneg.initiated_by, Initiator::Server, "{wire:#?}");
    assert!(reneg.at_ms > 0.0);
    assert!(reneg.after_app_data_ms.is_some(), "{reneg:#?}");
    assert_eq!(
        wire.cert_request.as_ref().map(|c| c.phase),
        Some(Phase::Renegotiation)
    );
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
    let mut p = Proxy::start(&["observe", "--upstream", &upstream]).await;
    let good = pki.client(ClientCert::Good);
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_max(TlsVersion::Tls12)
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    let wire = common::flows::wire(&rec);
    let root =
        mtlscope::cert::summarize(&mtlscope::pki::load::load_certs(pki.root_ca()).unwrap()[0])
            .unwrap();
    let request = wire.cert_request.as_ref().expect("a certificate request");
    assert_eq!(request.phase, Phase::Handshake);
    assert_eq!(request.ca_names, Some(vec![root.subject]));
    let client_chain = wire.client_chain.as_deref().unwrap_or_default();
    assert!(
        client_chain
            .first()
            .is_some_and(|c| c.subject.contains("client-good")),
        "{wire:#?}"
    );
    let server_chain = wire.server_chain.as_deref().unwrap_or_default();
    assert!(server_chain[0].subject.contains("localhost"));
}

/// Apache over HTTP/2 cannot ask for the certificate late: it resets the request with
/// `HTTP_1_1_REQUIRED`, and clients (curl) send it again over HTTP/1.1. mtlscope does the same for
/// a request it can send twice, and says so; a POST it cannot send twice ends with the typed
/// failure and `http2-blocks-late-auth`.
fn apache_h2(pki: &DevPki) -> Apache {
    let config = common::mtls::secure_location_config(pki, TlsVersion::Tls12);
    Apache::start(common::ApacheConfig {
        http2: true,
        ..config
    })
    .expect("start apache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_over_http2_asking_for_http_1_1_gets_the_request_again_over_http_1_1() {
    let (pki, _d) = pki();
    let apache = apache_h2(&pki);
    let mut p = reverse(&pki, apache.localhost_url()).await;
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .arg("--http2")
        .run_async()
        .await;
    let rec = p.flow().await;
    let retry = rec.upstream_retry.as_ref().expect("sent again");
    assert!(retry.reason.contains("HTTP_1_1_REQUIRED"), "{retry:?}");
    assert!(retry.was_sent);
    let up = upstream(&rec);
    assert_eq!(up.alpn.as_deref(), Some("http/1.1"), "{up:#?}");
    // Over HTTP/1.1 Apache asks by renegotiation, which the rustls leg refuses: the real story.
    assert_eq!(r.status, 502, "{r:?}");
    assert_diagnosed(&rec, &r, FindingId::RenegotiationRequested);

    // With the OpenSSL engine to fall back on, the client gets what it gets directly.
    let url = apache.localhost_url();
    let auto = reverse_with(&pki, &url, &["--upstream-engine", "auto"]).await;
    let r = Curl::new(format!("https://localhost:{}/secure", auto.port()))
        .cacert(pki.root_ca())
        .arg("--http2")
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let direct = Curl::new(format!("{url}/secure"))
        .cacert(pki.root_ca())
        .arg("--http2")
        .identity(
            &pki.client(ClientCert::Good).cert,
            &pki.client(ClientCert::Good).key,
        )
        .run_async()
        .await;
    assert_eq!(direct.status, 200, "{direct:?}");
}

/// ... and the next request on the same client connection goes over a new HTTP/1.1 leg at once,
/// as curl's own next request would (no second `HTTP_1_1_REQUIRED`, no retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reset_with_http_1_1_required_is_a_typed_failure() {
    let (pki, _d) = pki();
    let apache = apache_h2(&pki);
    let mut p = reverse(&pki, apache.localhost_url()).await;
    let url = format!("https://localhost:{}/secure", p.port());
    let r = Curl::new(format!("{url}?then=get"))
        .cacert(pki.root_ca())
        .arg("--http2")
        .arg("--data")
        .arg("a=1")
        .arg(&url)
        .arg("--next")
        .cacert(pki.root_ca())
        .arg("--http2")
        .run_async()
        .await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    let mut recs = p.flows(2).await;
    recs.sort_by_key(|f| f.exchange_index);
    let [rec, then] = &recs[..] else {
        panic!("two exchanges: {recs:#?}")
    };
    assert_eq!(
        rec.connection_id, then.connection_id,
        "one client connection"
    );
    assert_eq!(rec.request.as_ref().unwrap().method, "POST");
    assert_eq!(status(rec), 502);
    assert_eq!(then.request.as_ref().unwrap().method, "GET");
    assert!(then.upstream_retry.is_none(), "{:?}", then.upstream_retry);
    assert_eq!(then.upstream_leg_index, Some(1));
    assert_eq!(upstream(then).alpn.as_deref(), Some("http/1.1"));
    // Over HTTP/1.1 Apache asks by renegotiation: the GET meets what a direct client would.
    common::flows::finding(then, FindingId::RenegotiationRequested);
    assert!(rec.upstream_retry.is_none(), "a body is not sent twice");
    let up = upstream(rec);
    assert_eq!(up.alpn.as_deref(), Some("h2"), "{up:#?}");
    let failure = up.failure.as_ref().expect("the upstream leg failed");
    assert_eq!(
        failure.kind,
        mtlscope::facts::FailureKind::Http11Required,
        "{up:#?}"
    );
    // curl keeps the first transfer's headers (`-D` comes before `--next`): the POST's.
    assert_diagnosed(rec, &r, FindingId::Http2BlocksLateAuth);
}

/// The upstream leg speaks the client's protocol: an HTTP/1.1 client's requests go to Apache
/// (which offers HTTP/2) over HTTP/1.1, as they would directly, and an HTTP/2 client's over
/// HTTP/2; neither needs an `HTTP_1_1_REQUIRED` retry. With `--client-auth mirror` the upstream
/// leg is opened before the client's handshake ends, from what the client offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_leg_speaks_the_clients_protocol() {
    let (pki, _d) = pki();
    let apache = apache_h2(&pki);
    let cases = [
        ("--http1.1", "http/1.1", "optional"),
        ("--http2", "h2", "optional"),
        ("--http1.1", "http/1.1", "mirror"),
        ("--http2", "h2", "mirror"),
    ];
    for (flag, alpn, mode) in cases {
        let url = apache.localhost_url();
        let mut p = reverse_with(&pki, &url, &["--client-auth", mode]).await;
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .arg(flag)
            .run_async()
            .await;
        assert!(r.status > 0 && r.status < 500, "{flag} {mode}: {r:?}");
        let rec = p.flow().await;
        assert_eq!(rec.client_leg.as_ref().unwrap().alpn.as_deref(), Some(alpn));
        let up = upstream(&rec);
        assert_eq!(up.alpn.as_deref(), Some(alpn), "{flag} {mode}: {up:#?}");
        let offered = &up.client_hello.as_ref().expect("the ClientHello").alpn;
        let expected: &[&str] = if alpn == "h2" {
            &["h2", "http/1.1"]
        } else {
            &["http/1.1"]
        };
        assert_eq!(offered, expected, "{flag} {mode}");
        assert!(
            rec.upstream_retry.is_none(),
            "{flag} {mode}: {:?}",
            rec.upstream_retry
        );
    }
}
