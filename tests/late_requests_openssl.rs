//! Late certificate requests completed by the OpenSSL upstream engine, against real Apache httpd
//! (`SSLVerifyClient require` only inside `<Location /secure>`): TLS 1.2 renegotiation and TLS 1.3
//! post-handshake auth through `--upstream-engine openssl`, and one recorded replay with
//! `--upstream-engine auto`. Against nginx (`ssl_verify_client on`), both engines record the same
//! client-certificate facts.

mod common;

use common::flows::{finding, http_version, ids, status, upstream};
use common::{Curl, Nginx, NginxConfig, Proxy, TlsVersion, VerifyClient};
use mtlscope::facts::{
    Alert, CertRequest, FindingId, Flow, IdentityChoice, Initiator, Leg, Phase, ServerVerification,
    Severity, TlsEngine,
};
use mtlscope::pki::{ClientCert, DevPki};

async fn reverse(pki: &DevPki, upstream: String, engine: &str) -> Proxy {
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let id = pki.client(ClientCert::Good).arg();
    Proxy::start(&[
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
    .await
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

fn no_errors(rec: &Flow) {
    let errors: Vec<_> = rec
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The facts of a late request the OpenSSL leg completed.
fn assert_completed_late(pki: &DevPki, up: &Leg, phase: Phase) {
    assert_eq!(up.engine, Some(TlsEngine::Openssl), "{up:#?}");
    let cr = up.cert_request.as_ref().expect("a certificate request");
    assert_eq!(cr.phase, phase, "{up:#?}");
    assert_eq!(cr.ca_names, Some(vec![root_subject(pki)]));
    assert!(cr.after_request_ms.is_some(), "{cr:#?}");
    assert_eq!(up.completed_late_request, Some(phase));
    assert!(up
        .identity
        .as_ref()
        .and_then(|i| i.chosen.as_deref())
        .unwrap_or_default()
        .contains("client-good"));
    assert!(up.chain[0].subject.contains("client-good"));
    assert_eq!(
        up.server_verification.as_ref().map(|v| v.ok),
        Some(true),
        "{up:#?}"
    );
    assert_eq!(up.client_hello.as_ref().map(|h| h.offered_pha), Some(true));
    assert_eq!(up.alpn.as_deref(), Some("http/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_completes_tls12_renegotiation_and_apache_answers_200() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let mut p = reverse(&pki, apache.localhost_url(), "openssl").await;
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("secure"), "{}", r.body);
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let rec = p.flow().await;
    let up = upstream(&rec);
    assert_eq!(up.tls_version, Some(mtlscope::facts::TlsVersion::Tls12));
    assert_completed_late(&pki, up, Phase::Renegotiation);
    assert_eq!(
        up.renegotiations.first().map(|r| r.initiated_by),
        Some(Initiator::Server),
        "{up:#?}"
    );
    let f = finding(&rec, FindingId::RenegotiationRequested);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("mtlscope completed it"), "{f:#?}");
    no_errors(&rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_completes_tls13_post_handshake_auth_and_apache_answers_200() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let mut p = reverse(&pki, apache.localhost_url(), "openssl").await;
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let rec = p.flow().await;
    let up = upstream(&rec);
    assert_eq!(up.tls_version, Some(mtlscope::facts::TlsVersion::Tls13));
    assert_completed_late(&pki, up, Phase::PostHandshake);
    let f = finding(&rec, FindingId::PostHandshakeAuth);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("mtlscope completed it"), "{f:#?}");
    no_errors(&rec);
}

/// `auto`: the first attempt over rustls, the replay over OpenSSL, both in one record.
async fn auto_replays(version: TlsVersion, phase: Phase, finding_id: FindingId) {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, version);
    let mut p = reverse(&pki, apache.localhost_url(), "auto").await;
    // A public path needs no replay and stays on rustls.
    let r = get(&pki, p.port(), "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get(&pki, p.port(), "/secure").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("secure"), "{}", r.body);
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"));
    let recs = p.flows(2).await;
    let uri = |r: &Flow, u: &str| r.request.as_ref().is_some_and(|q| q.uri == u);
    let public = recs.iter().find(|r| uri(r, "/")).unwrap();
    assert_eq!(upstream(public).engine, Some(TlsEngine::Rustls));
    assert!(public.replayed.is_none());
    let rec = recs.iter().find(|r| uri(r, "/secure")).unwrap();
    let replayed = rec.replayed.as_ref().expect("replayed");
    assert_eq!(replayed.reason, phase, "{rec:#?}");
    assert_eq!(replayed.first_leg.engine, Some(TlsEngine::Rustls));
    if phase == Phase::Renegotiation {
        // rustls refused the renegotiation; Apache then gave up on that connection.
        assert_eq!(
            replayed
                .first_leg
                .renegotiations
                .first()
                .map(|r| r.refused_by_mtlscope),
            Some(true),
            "{replayed:#?}"
        );
        assert!(replayed.first_status.is_none());
    } else {
        // Apache answered 403 (AH10158) to a client that did not offer post-handshake auth.
        assert_eq!(replayed.first_status, Some(403), "{replayed:#?}");
        assert_eq!(
            replayed
                .first_leg
                .client_hello
                .as_ref()
                .map(|h| h.offered_pha),
            Some(false)
        );
    }
    assert_eq!(status(rec), 200);
    assert_completed_late(&pki, upstream(rec), phase);
    let f = finding(rec, finding_id);
    assert_eq!(f.severity, Severity::Warning, "{f:#?}");
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("replayed it once over a new OpenSSL upstream leg")),
        "{f:#?}"
    );
    no_errors(rec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_a_refused_tls12_renegotiation_over_openssl() {
    auto_replays(
        TlsVersion::Tls12,
        Phase::Renegotiation,
        FindingId::RenegotiationRequested,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_a_tls13_403_for_missing_post_handshake_auth_over_openssl() {
    auto_replays(
        TlsVersion::Tls13,
        Phase::PostHandshake,
        FindingId::PostHandshakeAuth,
    )
    .await;
}

/// The client-certificate facts both engines must agree on, from an upstream leg and its flow.
#[derive(Debug, PartialEq)]
struct Comparable {
    tls_version: Option<mtlscope::facts::TlsVersion>,
    alpn: Option<String>,
    sni: Option<String>,
    /// Without its time and signature schemes (compared apart, below).
    cert_request: Option<CertRequest>,
    later_cert_requests: Vec<CertRequest>,
    completed_late_request: Option<Phase>,
    /// SHA-256 fingerprints.
    chain: Vec<String>,
    identity: Option<IdentityChoice>,
    /// SHA-256 fingerprints.
    server_chain: Vec<String>,
    server_verification: Option<ServerVerification>,
    alerts: Vec<Alert>,
    error: Option<String>,
    status: Option<u16>,
    findings: Vec<FindingId>,
}

fn comparable(rec: &Flow) -> Comparable {
    let up = upstream(rec);
    let sha = |chain: &[mtlscope::facts::CertSummary]| -> Vec<String> {
        chain.iter().map(|c| c.sha256.clone()).collect()
    };
    let cert_request = up.cert_request.clone().map(|mut cr| {
        // Times differ from run to run.
        cr.at_ms = 0.0;
        cr.signature_schemes.clear();
        cr
    });
    Comparable {
        tls_version: up.tls_version,
        alpn: up.alpn.clone(),
        sni: up.sni.clone(),
        cert_request,
        later_cert_requests: up.later_cert_requests.clone(),
        completed_late_request: up.completed_late_request,
        chain: sha(&up.chain),
        identity: up.identity.clone(),
        server_chain: sha(&up.server_chain),
        server_verification: up.server_verification.clone(),
        alerts: up.alerts.clone(),
        error: up.error.clone(),
        status: rec.response.as_ref().map(|r| r.status),
        findings: ids(rec),
    }
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
            let mut p = reverse(&pki, nginx.localhost_url(), engine).await;
            let r = get(&pki, p.port(), "/").await;
            assert_eq!(r.status, 200, "{engine} {version:?}: {r:?}");
            let rec = p.flow().await;
            let up = upstream(&rec);
            assert_eq!(up.engine.map(TlsEngine::as_str), Some(engine));
            let cr = up.cert_request.as_ref().expect("a certificate request");
            assert_eq!(cr.phase, Phase::Handshake);
            seen.push(comparable(&rec));
            schemes.push(cr.signature_schemes.clone());
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
            seen[0]
                .cert_request
                .as_ref()
                .and_then(|c| c.ca_names.clone()),
            Some(vec![root_subject(&pki)])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_only_requests_safe_to_send_twice() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let mut p = reverse(&pki, apache.localhost_url(), "auto").await;
    let body = "x".repeat(4000);
    let port = p.port();
    let send = |method: &'static str| {
        Curl::new(format!("https://localhost:{port}/secure"))
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
    let rec = p.flow().await;
    assert_eq!(
        rec.replayed.as_ref().map(|r| r.reason),
        Some(Phase::Renegotiation),
        "{rec:#?}"
    );
    assert_eq!(
        upstream(&rec).completed_late_request,
        Some(Phase::Renegotiation)
    );
    // POST is not: the refusal stands, explained.
    let r = send("POST").run_async().await;
    assert_eq!(r.status, 502, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(
        rec.request.as_ref().map(|q| q.method.as_str()),
        Some("POST")
    );
    assert!(rec.replayed.is_none(), "{rec:#?}");
    assert_eq!(upstream(&rec).engine, Some(TlsEngine::Rustls));
    let f = finding(&rec, FindingId::RenegotiationRequested);
    assert_eq!(f.severity, Severity::Error);
    assert!(f.fix.contains("--upstream-engine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replays_for_an_http2_client_over_an_http11_openssl_leg() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls13);
    let mut p = reverse(&pki, apache.localhost_url(), "auto").await;
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = p.flow().await;
    assert_eq!(http_version(&rec), "HTTP/2.0", "{:#?}", rec.request);
    assert_eq!(
        rec.replayed.as_ref().map(|r| r.reason),
        Some(Phase::PostHandshake)
    );
    assert_eq!(upstream(&rec).alpn.as_deref(), Some("http/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_replay_the_connection_stays_on_the_openssl_leg() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let mut p = reverse(&pki, apache.localhost_url(), "auto").await;
    // Two requests on one client connection (curl reuses it).
    let r = Curl::new(format!("https://localhost:{}/secure", p.port()))
        .cacert(pki.root_ca())
        .http1_1()
        .arg(format!("https://localhost:{}/secure", p.port()))
        .run_async()
        .await;
    // (The helper keeps one transfer's status and body; the records show both.)
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    let recs = p.flows(2).await;
    assert_eq!(status(&recs[0]), 200);
    assert_eq!(recs[0].connection_id, recs[1].connection_id);
    assert_eq!(
        recs[0].replayed.as_ref().map(|r| r.reason),
        Some(Phase::Renegotiation)
    );
    // The second went straight to the OpenSSL leg, where the server already has the
    // certificate: no second replay, no second renegotiation.
    assert!(recs[1].replayed.is_none(), "{:#?}", recs[1]);
    assert_eq!(status(&recs[1]), 200);
    let up = upstream(&recs[1]);
    assert_eq!(up.engine, Some(TlsEngine::Openssl));
    assert_eq!(up.renegotiations.len(), 1, "{up:#?}");
}
