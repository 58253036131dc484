//! Proves the real-peer harness (`tests/common`) against real nginx, Apache httpd, curl and
//! `openssl s_client`, without mtlscope in between: the behaviours later tests rely on.

mod common;

use std::time::Duration;

use common::{
    Apache, ApacheConfig, ClientAuthScope, Curl, CurlResult, Nginx, NginxConfig, SClient, TestPki,
    TlsVersion, VerifyClient,
};

/// Generous bound for a log line to appear after the response that caused it.
const LOG_WAIT: Duration = Duration::from_secs(5);

fn pki() -> TestPki {
    TestPki::generate().unwrap_or_else(|e| panic!("test pki: {e}"))
}

fn nginx_verify_on(pki: &TestPki) -> Nginx {
    let cfg = NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(pki.ca_cert.clone()),
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    };
    Nginx::start(cfg).unwrap_or_else(|e| panic!("nginx: {e}"))
}

fn apache(pki: &TestPki, protocol: TlsVersion, scope: ClientAuthScope) -> Apache {
    let cfg = ApacheConfig {
        protocols: vec![protocol],
        ca_certificate: Some(pki.ca_cert.clone()),
        client_auth: scope,
        ..ApacheConfig::new(&pki.server.cert, &pki.server.key)
    };
    Apache::start(cfg).unwrap_or_else(|e| panic!("apache: {e}"))
}

/// Asserts the status and says everything curl saw when it differs.
fn expect_status(r: &CurlResult, status: u16) {
    assert_eq!(
        r.status, status,
        "unexpected status; exit={:?} timed_out={} body={:?} stderr={}",
        r.exit_code, r.timed_out, r.body, r.stderr
    );
}

#[test]
fn nginx_verify_on_accepts_good_client_certificate() {
    let pki = pki();
    let nginx = nginx_verify_on(&pki);
    let r = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run();
    expect_status(&r, 200);
    assert_eq!(r.exit_code, Some(0));
    assert!(r.body.contains("verify=SUCCESS"), "body: {}", r.body);
    assert!(r.body.contains("CN=selftest-client"), "body: {}", r.body);
}

#[test]
fn nginx_verify_on_rejects_missing_certificate() {
    let pki = pki();
    let nginx = nginx_verify_on(&pki);
    let r = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    expect_status(&r, 400);
    assert!(
        r.body.contains("No required SSL certificate was sent"),
        "body: {}",
        r.body
    );
    assert!(
        nginx.wait_for_error_log("client sent no required SSL certificate", LOG_WAIT),
        "error log: {}",
        nginx.error_log()
    );
}

#[test]
fn nginx_verify_on_rejects_expired_and_untrusted_certificates() {
    let pki = pki();
    let nginx = nginx_verify_on(&pki);
    for who in [&pki.expired, &pki.stranger] {
        let r = Curl::new(format!("{}/", nginx.base_url()))
            .cacert(&pki.ca_cert)
            .identity(&who.cert, &who.key)
            .run();
        expect_status(&r, 400);
        assert!(
            r.body.contains("The SSL certificate error"),
            "{}: body: {}",
            who.cert.display(),
            r.body
        );
    }
    assert!(
        nginx.wait_for_error_log("certificate has expired", LOG_WAIT),
        "error log: {}",
        nginx.error_log()
    );
}

#[test]
fn nginx_optional_app_location_answers_403_without_certificate() {
    let pki = pki();
    let cfg = NginxConfig {
        verify_client: VerifyClient::Optional,
        client_certificate: Some(pki.ca_cert.clone()),
        app_location: true,
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    };
    let nginx = Nginx::start(cfg).unwrap_or_else(|e| panic!("nginx: {e}"));
    let url = format!("{}/app", nginx.base_url());
    let anonymous = Curl::new(&url).cacert(&pki.ca_cert).run();
    expect_status(&anonymous, 403);
    assert!(
        anonymous.body.contains("verify=NONE"),
        "body: {}",
        anonymous.body
    );
    let good = Curl::new(&url)
        .cacert(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run();
    expect_status(&good, 200);
    assert!(good.body.contains("app: welcome"), "body: {}", good.body);
}

#[test]
fn nginx_advertises_client_certificate_ca_names() {
    let pki = pki();
    let nginx = nginx_verify_on(&pki);
    let r = SClient::new(nginx.addr())
        .tls(TlsVersion::Tls12)
        .cafile(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run();
    assert!(!r.timed_out, "s_client timed out: {}", r.stderr);
    assert!(
        r.stdout.contains("Acceptable client certificate CA names")
            && r.stdout.contains("CN = mtlscope selftest root CA"),
        "stdout: {}",
        r.stdout
    );
    assert_eq!(r.status, Some(200), "response: {}", r.response);
}

#[test]
fn apache_tls12_per_location_renegotiates_for_secure() {
    let pki = pki();
    let apache = apache(&pki, TlsVersion::Tls12, ClientAuthScope::SecureLocation);
    let public = Curl::new(format!("{}/", apache.base_url()))
        .cacert(&pki.ca_cert)
        .tls_max(TlsVersion::Tls12)
        .run();
    expect_status(&public, 200);
    assert_eq!(public.body, "public\n");

    let secure = Curl::new(format!("{}/secure", apache.base_url()))
        .cacert(&pki.ca_cert)
        .tls_max(TlsVersion::Tls12)
        .identity(&pki.client.cert, &pki.client.key)
        .run();
    expect_status(&secure, 200);
    assert_eq!(secure.body, "secure\n");
    assert_eq!(secure.header("X-Client-Verify").as_deref(), Some("SUCCESS"));
    // The certificate was asked for only after the request: by renegotiation.
    assert!(
        apache.wait_for_error_log("Requesting connection re-negotiation", LOG_WAIT),
        "error log: {}",
        apache.error_log()
    );
}

#[test]
fn apache_tls12_per_location_fails_without_certificate() {
    let pki = pki();
    let apache = apache(&pki, TlsVersion::Tls12, ClientAuthScope::SecureLocation);
    let r = Curl::new(format!("{}/secure", apache.base_url()))
        .cacert(&pki.ca_cert)
        .tls_max(TlsVersion::Tls12)
        .run();
    assert_eq!(r.status, 0, "no HTTP response expected; body: {}", r.body);
    assert_ne!(r.exit_code, Some(0), "stderr: {}", r.stderr);
    assert!(!r.timed_out, "curl timed out: {}", r.stderr);
}

#[test]
fn apache_tls13_per_location_post_handshake_auth_with_curl() {
    let pki = pki();
    let apache = apache(&pki, TlsVersion::Tls13, ClientAuthScope::SecureLocation);
    let public = Curl::new(format!("{}/", apache.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    expect_status(&public, 200);

    let secure = Curl::new(format!("{}/secure", apache.base_url()))
        .cacert(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run();
    expect_status(&secure, 200);
    assert_eq!(secure.body, "secure\n");
    assert_eq!(secure.header("X-Client-Verify").as_deref(), Some("SUCCESS"));
}

#[test]
fn apache_tls13_per_location_without_pha_answers_403() {
    let pki = pki();
    let apache = apache(&pki, TlsVersion::Tls13, ClientAuthScope::SecureLocation);
    let r = SClient::new(apache.addr())
        .tls(TlsVersion::Tls13)
        .cafile(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .get("/secure", "localhost")
        .run();
    assert!(!r.timed_out, "s_client timed out; stdout: {}", r.stdout);
    assert_eq!(
        r.status,
        Some(403),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    assert!(
        apache.wait_for_error_log("AH10158", LOG_WAIT),
        "error log: {}",
        apache.error_log()
    );

    // Same client offering post-handshake auth gets through: the 403 was about PHA.
    let pha = SClient::new(apache.addr())
        .tls(TlsVersion::Tls13)
        .enable_pha()
        .cafile(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .get("/secure", "localhost")
        .run();
    assert_eq!(
        pha.status,
        Some(200),
        "stdout: {}\nstderr: {}",
        pha.stdout,
        pha.stderr
    );
}

#[test]
fn apache_vhost_require_rejects_missing_certificate_in_handshake() {
    let pki = pki();
    let apache = apache(&pki, TlsVersion::Tls12, ClientAuthScope::VirtualHost);
    let without = Curl::new(format!("{}/", apache.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    assert_eq!(without.status, 0, "body: {}", without.body);
    assert_ne!(without.exit_code, Some(0));
    let with = Curl::new(format!("{}/", apache.base_url()))
        .cacert(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run();
    expect_status(&with, 200);
}

#[test]
fn harness_stops_servers_on_drop() {
    let pki = pki();
    let nginx = nginx_verify_on(&pki);
    let apache = apache(&pki, TlsVersion::Tls13, ClientAuthScope::Off);
    let addrs = [nginx.addr(), apache.addr()];
    drop(nginx);
    drop(apache);
    for addr in addrs {
        let addr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{addr} still accepts after drop"
        );
    }
}

#[tokio::test]
async fn async_clients_and_net_helpers() {
    let pki = pki();
    let nginx = nginx_verify_on(&pki);
    let addr: std::net::SocketAddr = nginx.addr().parse().unwrap_or_else(|e| panic!("addr: {e}"));
    assert!(common::wait_for_tcp(addr, Duration::from_secs(2)).is_ok());
    let port = common::free_port().unwrap_or_else(|e| panic!("free port: {e}"));
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(common::wait_for_tcp(closed, Duration::from_millis(100)).is_err());

    let r = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run_async()
        .await;
    expect_status(&r, 200);
    let s = SClient::new(nginx.addr())
        .cafile(&pki.ca_cert)
        .identity(&pki.client.cert, &pki.client.key)
        .run_async()
        .await;
    assert_eq!(
        s.status,
        Some(200),
        "stdout: {}\nstderr: {}",
        s.stdout,
        s.stderr
    );
    assert!(
        s.response.contains("verify=SUCCESS"),
        "response: {}",
        s.response
    );
}
