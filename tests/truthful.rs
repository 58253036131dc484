//! Only what happened, with real nginx, curl and openssl: a port check and a handshake-only
//! client are no failures; an identity whose key cannot sign with what the server accepts, and
//! a handshake aborted at an untrusted server certificate, record no presented chain; `observe`
//! never marks an encrypted refusal ✓; a 404 with a clean certificate story says so; plain HTTP
//! on the TLS port gets a readable 400; the upstream's `Alt-Svc` does not reach the client.

mod common;

use common::flows::{client, events, first_id, has, has_event, ids, upstream};
use common::process::run_bounded;
use common::{Curl, Nginx, NginxConfig, Proxy, TlsVersion, VerifyClient};
use mtlscope::facts::{FailureKind, FindingId, Flow, RecordKind, Severity};
use mtlscope::pki::ClientCert;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The terminal line mtlscope prints for a flow (the same function its log uses).
fn terminal_line(flow: &Flow) -> String {
    mtlscope::render::explain::terminal_line(flow)
}

fn no_error_finding(flow: &Flow) {
    assert!(
        !flow.findings.iter().any(|f| f.severity == Severity::Error),
        "an error finding in {flow:#?}"
    );
}

/// `openssl s_client` that completes the handshake and leaves (stdin closed, no request).
async fn handshake_only(port: u16, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(&args);
        let out = run_bounded(cmd, Some(Vec::new()), Duration::from_secs(20));
        assert!(!out.timed_out, "s_client ran past 20 s");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("s_client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_checks_and_handshake_only_clients_are_no_failures() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::Optional)).expect("nginx");
    let root = pki.root_ca().display().to_string();
    let server = pki.server().arg();
    let good = pki.client(ClientCert::Good);
    for mode in ["optional", "mirror"] {
        let mut p = Proxy::start(&[
            "reverse",
            "--upstream",
            &nginx.localhost_url(),
            "--upstream-ca",
            &root,
            "--server-cert",
            &server,
            "--client-auth",
            mode,
        ])
        .await;
        // `nc -z`: a TCP connect, closed without a byte.
        drop(
            tokio::net::TcpStream::connect(("127.0.0.1", p.port()))
                .await
                .expect("connect"),
        );
        let check = &p.flow().await;
        assert_eq!(ids(check), [FindingId::PortCheck], "{check:#?}");
        assert_eq!(check.findings[0].severity, Severity::Info);
        assert_eq!(
            client(check).failure.as_ref().map(|f| f.kind),
            Some(FailureKind::NothingSent)
        );
        let line = terminal_line(check);
        assert!(line.contains(" · "), "{line}");
        assert!(!line.contains('✗'), "{line}");

        // openssl s_client: a full handshake (with and without a certificate), no request.
        let out = handshake_only(p.port(), &["-CAfile", &root]).await;
        assert!(out.contains("Verify return code: 0"), "{out}");
        let cert = good.cert.display().to_string();
        let key = good.key.display().to_string();
        handshake_only(p.port(), &["-CAfile", &root, "-cert", &cert, "-key", &key]).await;
        let records = p.flows(3).await;
        for r in &records[1..] {
            assert_eq!(r.kind, RecordKind::Connection, "{r:#?}");
            assert!(client(r).handshake_done_ms.is_some(), "{r:#?}");
            assert!(r.error.is_none(), "{mode}: {r:#?}");
            no_error_finding(r);
            assert!(!terminal_line(r).contains('✗'), "{}", terminal_line(r));
        }
        assert_eq!(
            client(&records[2])
                .chain
                .first()
                .map(|c| c.subject.contains("client")),
            Some(true),
            "{mode}: {:#?}",
            records[2]
        );
    }
}

/// An RSA client certificate and its CA, made with openssl (the dev PKI's keys are ECDSA).
fn rsa_identity(dir: &Path) -> (String, String) {
    let sh = format!(
        "set -e; cd '{d}';
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
           -subj '/O=Acme/CN=Acme RSA CA' -addext basicConstraints=critical,CA:TRUE \
           -addext keyUsage=critical,keyCertSign 2>/dev/null;
         openssl req -newkey rsa:2048 -nodes -keyout frank.key -out frank.csr \
           -subj '/O=Acme/CN=frank-rsa' 2>/dev/null;
         printf 'extendedKeyUsage=clientAuth\\nkeyUsage=critical,digitalSignature\\n' > ext;
         openssl x509 -req -in frank.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out frank.pem -days 2 -extfile ext 2>/dev/null",
        d = dir.display()
    );
    let out = run_bounded(
        {
            let mut c = Command::new("sh");
            c.arg("-c").arg(sh);
            c
        },
        None,
        Duration::from_secs(60),
    );
    assert_eq!(
        out.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        dir.join("ca.pem").display().to_string(),
        format!(
            "{},{}",
            dir.join("frank.pem").display(),
            dir.join("frank.key").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_identity_refused_for_its_signature_scheme_presented_an_empty_certificate() {
    let (pki, _d) = common::dev_pki();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (rsa_ca, frank) = rsa_identity(tmp.path());
    let server = pki.server();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let nginx = Nginx::start(NginxConfig {
            verify_client: VerifyClient::On,
            client_certificate: Some(rsa_ca.clone().into()),
            protocols: vec![version],
            extra: "    ssl_conf_command ClientSignatureAlgorithms ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512;".into(),
            ..NginxConfig::new(&server.cert, &server.key)
        })
        .expect("nginx");
        let root = pki.root_ca().display().to_string();
        let mut p = Proxy::start(&[
            "reverse",
            "--upstream",
            &nginx.localhost_url(),
            "--upstream-ca",
            &root,
            "--server-cert",
            &server.arg(),
            "--identity",
            &frank,
        ])
        .await;
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .run_async()
            .await;
        assert_eq!(r.status, 400, "{r:?}");
        let rec = &p.flow().await;
        let up = upstream(rec);
        assert_eq!(
            up.tls_version.map(|v| serde_json::to_value(v).unwrap()),
            Some(version.openssl_name().into()),
            "{rec:#?}"
        );
        // What went on the wire: an empty Certificate; the configured identity stays in
        // `identity`, with the reason its key was not used.
        assert!(up.chain.is_empty(), "{rec:#?}");
        assert_eq!(up.certificate_sent, Some(true), "{rec:#?}");
        let identity = up.identity.as_ref().expect("identity choice");
        assert!(identity.chosen.is_none(), "{rec:#?}");
        assert!(identity.candidates[0].label.contains("frank"));
        let reason = &identity.reason;
        assert!(
            reason.contains("none of the signature schemes the server accepts"),
            "{reason}"
        );
        let line = terminal_line(rec);
        assert!(line.contains("mtlscope presented none"), "{line}");
        assert!(!line.contains("presented O=Acme"), "{line}");
        assert!(!line.contains("frank-rsa"), "{line}");
        assert_eq!(
            first_id(rec),
            Some(FindingId::NoCommonSignatureScheme),
            "{rec:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_aborted_at_an_untrusted_server_certificate_presented_nothing() {
    let (pki, _d) = common::dev_pki();
    let good = pki.client(ClientCert::Good).arg();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let nginx = Nginx::start(NginxConfig {
            protocols: vec![version],
            ..common::nginx_config(&pki, VerifyClient::On)
        })
        .expect("nginx");
        // No --upstream-ca: the dev root is not trusted upstream.
        let mut p = Proxy::start(&[
            "reverse",
            "--upstream",
            &nginx.localhost_url(),
            "--server-cert",
            &pki.server().arg(),
            "--identity",
            &good,
        ])
        .await;
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .run_async()
            .await;
        assert_eq!(r.status, 502, "{r:?}");
        let rec = &p.flow().await;
        let up = upstream(rec);
        assert_eq!(up.certificate_sent, Some(false), "{rec:#?}");
        assert!(up.chain.is_empty(), "{rec:#?}");
        let names = events(up);
        assert!(!has_event(up, "handshake_done"), "{names:?}");
        assert!(!has_event(up, "certificate_sent"), "{names:?}");
        assert!(
            !serde_json::to_string(&up.events)
                .unwrap()
                .contains("inferred"),
            "no inferred step: {names:?}"
        );
        let line = terminal_line(rec);
        assert!(line.contains("mtlscope presented nothing"), "{line}");
        assert!(
            !line.contains("presented O=") && !line.contains("presented CN="),
            "{line}"
        );
        assert!(has(rec, FindingId::ServerCertUntrusted), "{rec:#?}");
        assert!(!has(rec, FindingId::NoClientCert), "{rec:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_never_marks_an_encrypted_refusal_accepted() {
    let (pki, _d) = common::dev_pki();
    let expired = pki.client(ClientCert::Expired);
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let nginx = Nginx::start(NginxConfig {
            protocols: vec![version],
            ..common::nginx_config(&pki, VerifyClient::On)
        })
        .expect("nginx");
        let mut p = Proxy::start(&["observe", "--upstream", &nginx.addr()]).await;
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .identity(&expired.cert, &expired.key)
            .tls_only(version)
            .run_async()
            .await;
        // nginx refuses the expired certificate with an HTTP 400 inside the encrypted session.
        assert_eq!(r.status, 400, "{r:?}");
        let rec = &p.flow().await;
        let line = terminal_line(rec);
        assert!(!line.contains('✓'), "{line}");
        assert!(!line.contains("accepted it here"), "{line}");
        assert!(line.contains(" ? ") || line.contains('✗'), "{line}");
        let all = serde_json::to_string(&rec.findings).expect("findings serialize");
        assert!(!all.contains("accepted it here"), "{all}");
        if version == TlsVersion::Tls12 {
            // The expired certificate is on the wire; whether it was accepted is not.
            assert!(has(rec, FindingId::CertExpired), "{rec:#?}");
            assert!(all.contains("cannot be told"), "{all}");
        } else {
            let events = common::flows::event_names(&common::flows::wire(rec).events);
            assert!(!events.iter().any(|e| e == "handshake_done"), "{events:?}");
            assert!(
                events.iter().any(|e| e == "client_encrypted_flight"),
                "{events:?}"
            );
            assert!(line.contains("cannot tell"), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_is_not_certificate_related_and_alt_svc_does_not_reach_the_client() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(NginxConfig {
        extra: "    add_header Alt-Svc 'h3=\":19460\"; ma=86400' always;\n    \
                location = /favicon.ico { return 404 \"no favicon\\n\"; }"
            .into(),
        ..common::nginx_config(&pki, VerifyClient::On)
    })
    .expect("nginx");
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &nginx.localhost_url(),
        "--upstream-ca",
        &root,
        "--server-cert",
        &pki.server().arg(),
        "--identity",
        &good,
    ])
    .await;
    let direct = Curl::new(format!("{}/", nginx.localhost_url()))
        .cacert(pki.root_ca())
        .identity(
            &pki.client(ClientCert::Good).cert,
            &pki.client(ClientCert::Good).key,
        )
        .run_async()
        .await;
    assert!(
        direct.header("alt-svc").is_some(),
        "nginx sends it: {direct:?}"
    );
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("alt-svc"), None, "{r:?}");
    let r = Curl::new(format!("https://localhost:{}/favicon.ico", p.port()))
        .cacert(pki.root_ca())
        .run_async()
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let records = p.flows(2).await;
    let ok = &records[0];
    let removed = &ok.response.as_ref().expect("response").removed_headers;
    assert_eq!(
        removed.first().map(|h| h.name.as_str()),
        Some("alt-svc"),
        "{ok:#?}"
    );
    assert!(removed[0].value.contains("h3="));
    let missing = &records[1];
    assert_eq!(
        ids(missing),
        [FindingId::NotCertificateRelated],
        "{missing:#?}"
    );
    no_error_finding(missing);
    assert!(!terminal_line(missing).contains("unexplained"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_gets_a_readable_400() {
    let (pki, _d) = common::dev_pki();
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        "https://localhost:9",
        "--server-cert",
        &pki.server().arg(),
    ])
    .await;
    let r = Curl::new(format!("http://127.0.0.1:{}/", p.port()))
        .run_async()
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("https://"), "{r:?}");
    let rec = &p.flow().await;
    assert_eq!(ids(rec), [FindingId::ClientNotTls], "{rec:#?}");
    assert_eq!(
        client(rec).failure.as_ref().map(|f| f.kind),
        Some(FailureKind::PlainHttp)
    );
}
