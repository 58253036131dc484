//! Only what happened, with real nginx, curl and openssl: a port check and a handshake-only
//! client are no failures; an identity whose key cannot sign with what the server accepts, and
//! a handshake aborted at an untrusted server certificate, record no presented chain; `observe`
//! never marks an encrypted refusal ✓; a 404 with a clean certificate story says so; plain HTTP
//! on the TLS port gets a readable 400; the upstream's `Alt-Svc` does not reach the client.

mod common;

use common::process::run_bounded;
use common::{finding_ids, Curl, Mtlscope, Nginx, NginxConfig, TlsVersion, VerifyClient};
use mtlscope::facts::Flow;
use mtlscope::pki::ClientCert;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The terminal line mtlscope prints for a record (the same function its log uses).
fn terminal_line(record: &Value) -> String {
    let flow: Flow = serde_json::from_value(record.clone()).expect("a record is a Flow");
    mtlscope::render::explain::terminal_line(&flow)
}

/// Severity of every finding of a record.
fn severities(record: &Value) -> Vec<String> {
    record["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["severity"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn no_error_finding(record: &Value) {
    assert!(
        !severities(record).iter().any(|s| s == "error"),
        "an error finding in {record:#}"
    );
}

/// `openssl s_client` that completes the handshake and leaves (stdin closed, no request).
fn handshake_only(port: u16, args: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args);
    let out = run_bounded(cmd, Some(Vec::new()), Duration::from_secs(20));
    assert!(!out.timed_out, "s_client ran past 20 s");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn port_checks_and_handshake_only_clients_are_no_failures() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::Optional)).expect("nginx");
    let root = pki.root_ca().display().to_string();
    let server = pki.server().arg();
    let good = pki.client(ClientCert::Good);
    for mode in ["optional", "mirror"] {
        let p = Mtlscope::start(&[
            "reverse",
            "--upstream",
            &nginx.localhost_url(),
            "--upstream-ca",
            &root,
            "--server-cert",
            &server,
            "--client-auth",
            mode,
        ]);
        // `nc -z`: a TCP connect, closed without a byte.
        drop(std::net::TcpStream::connect(("127.0.0.1", p.port())).expect("connect"));
        let check = &p.records(1)[0];
        assert_eq!(finding_ids(check), ["port-check"], "{check:#}");
        assert_eq!(check["findings"][0]["severity"], "info");
        assert_eq!(check["client_leg"]["failure"]["kind"], "nothing_sent");
        let line = terminal_line(check);
        assert!(line.contains(" · "), "{line}");
        assert!(!line.contains('✗'), "{line}");

        // openssl s_client: a full handshake (with and without a certificate), no request.
        let out = handshake_only(p.port(), &["-CAfile", &root]);
        assert!(out.contains("Verify return code: 0"), "{out}");
        let cert = good.cert.display().to_string();
        let key = good.key.display().to_string();
        handshake_only(p.port(), &["-CAfile", &root, "-cert", &cert, "-key", &key]);
        let records = p.records(3);
        for r in &records[1..] {
            assert_eq!(r["kind"], "connection", "{r:#}");
            assert!(r["client_leg"]["handshake_done_ms"].is_number(), "{r:#}");
            assert!(r.get("error").is_none_or(Value::is_null), "{mode}: {r:#}");
            no_error_finding(r);
            assert!(!terminal_line(r).contains('✗'), "{}", terminal_line(r));
        }
        assert_eq!(
            records[2]["client_leg"]["chain"][0]["subject"]
                .as_str()
                .map(|s| s.contains("client")),
            Some(true),
            "{mode}: {:#}",
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

#[test]
fn an_rsa_identity_refused_for_its_signature_scheme_presented_an_empty_certificate() {
    let (pki, _d) = common::dev_pki();
    let tmp = tempfile::tempdir().unwrap();
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
        let p = Mtlscope::start(&[
            "reverse",
            "--upstream",
            &nginx.localhost_url(),
            "--upstream-ca",
            &root,
            "--server-cert",
            &server.arg(),
            "--identity",
            &frank,
        ]);
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .run();
        assert_eq!(r.status, 400, "{r:?}");
        let rec = &p.records(1)[0];
        let up = &rec["upstream_leg"];
        assert_eq!(up["tls_version"], version.openssl_name(), "{rec:#}");
        // What went on the wire: an empty Certificate; the configured identity stays in
        // `identity`, with the reason its key was not used.
        assert_eq!(up["chain"], serde_json::json!([]), "{rec:#}");
        assert_eq!(up["certificate_sent"], true, "{rec:#}");
        assert!(up["identity"]["chosen"].is_null(), "{rec:#}");
        assert!(up["identity"]["candidates"][0]["label"]
            .as_str()
            .unwrap()
            .contains("frank"));
        let reason = up["identity"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("none of the signature schemes the server accepts"),
            "{reason}"
        );
        let line = terminal_line(rec);
        assert!(line.contains("mtlscope presented none"), "{line}");
        assert!(!line.contains("presented O=Acme"), "{line}");
        assert!(!line.contains("frank-rsa"), "{line}");
        assert_eq!(
            finding_ids(rec).first().map(String::as_str),
            Some("no-common-signature-scheme"),
            "{rec:#}"
        );
    }
}

#[test]
fn a_handshake_aborted_at_an_untrusted_server_certificate_presented_nothing() {
    let (pki, _d) = common::dev_pki();
    let good = pki.client(ClientCert::Good).arg();
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let nginx = Nginx::start(NginxConfig {
            protocols: vec![version],
            ..common::nginx_config(&pki, VerifyClient::On)
        })
        .expect("nginx");
        // No --upstream-ca: the dev root is not trusted upstream.
        let p = Mtlscope::start(&[
            "reverse",
            "--upstream",
            &nginx.localhost_url(),
            "--server-cert",
            &pki.server().arg(),
            "--identity",
            &good,
        ]);
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .run();
        assert_eq!(r.status, 502, "{r:?}");
        let rec = &p.records(1)[0];
        let up = &rec["upstream_leg"];
        assert_eq!(up["certificate_sent"], false, "{rec:#}");
        assert_eq!(up["chain"], serde_json::json!([]), "{rec:#}");
        let events: Vec<&str> = up["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(!events.contains(&"handshake_done"), "{events:?}");
        assert!(!events.contains(&"certificate_sent"), "{events:?}");
        assert!(
            !up["events"].to_string().contains("inferred"),
            "no inferred step: {events:?}"
        );
        let line = terminal_line(rec);
        assert!(line.contains("mtlscope presented nothing"), "{line}");
        assert!(
            !line.contains("presented O=") && !line.contains("presented CN="),
            "{line}"
        );
        assert!(
            finding_ids(rec).contains(&"server-cert-untrusted".to_string()),
            "{rec:#}"
        );
        assert!(
            !finding_ids(rec).contains(&"no-client-cert".to_string()),
            "{rec:#}"
        );
    }
}

#[test]
fn observe_never_marks_an_encrypted_refusal_accepted() {
    let (pki, _d) = common::dev_pki();
    let expired = pki.client(ClientCert::Expired);
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let nginx = Nginx::start(NginxConfig {
            protocols: vec![version],
            ..common::nginx_config(&pki, VerifyClient::On)
        })
        .expect("nginx");
        let p = Mtlscope::start(&["observe", "--upstream", &nginx.addr()]);
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(pki.root_ca())
            .identity(&expired.cert, &expired.key)
            .tls_only(version)
            .run();
        // nginx refuses the expired certificate with an HTTP 400 inside the encrypted session.
        assert_eq!(r.status, 400, "{r:?}");
        let rec = &p.records(1)[0];
        let line = terminal_line(rec);
        assert!(!line.contains('✓'), "{line}");
        assert!(!line.contains("accepted it here"), "{line}");
        assert!(line.contains(" ? ") || line.contains('✗'), "{line}");
        let all = rec["findings"].to_string();
        assert!(!all.contains("accepted it here"), "{all}");
        if version == TlsVersion::Tls12 {
            // The expired certificate is on the wire; whether it was accepted is not.
            assert!(
                finding_ids(rec).contains(&"cert-expired".to_string()),
                "{rec:#}"
            );
            assert!(all.contains("cannot be told"), "{all}");
        } else {
            let events = rec["wire"]["events"].to_string();
            assert!(!events.contains("handshake_done"), "{events}");
            assert!(events.contains("client_encrypted_flight"), "{events}");
            assert!(line.contains("cannot tell"), "{line}");
        }
    }
}

#[test]
fn a_404_is_not_certificate_related_and_alt_svc_does_not_reach_the_client() {
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
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        &nginx.localhost_url(),
        "--upstream-ca",
        &root,
        "--server-cert",
        &pki.server().arg(),
        "--identity",
        &good,
    ]);
    let direct = Curl::new(format!("{}/", nginx.localhost_url()))
        .cacert(pki.root_ca())
        .identity(
            &pki.client(ClientCert::Good).cert,
            &pki.client(ClientCert::Good).key,
        )
        .run();
    assert!(
        direct.header("alt-svc").is_some(),
        "nginx sends it: {direct:?}"
    );
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(pki.root_ca())
        .run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("alt-svc"), None, "{r:?}");
    let r = Curl::new(format!("https://localhost:{}/favicon.ico", p.port()))
        .cacert(pki.root_ca())
        .run();
    assert_eq!(r.status, 404, "{r:?}");
    let records = p.records(2);
    let ok = &records[0];
    assert_eq!(
        ok["response"]["removed_headers"][0]["name"], "alt-svc",
        "{ok:#}"
    );
    assert!(ok["response"]["removed_headers"][0]["value"]
        .as_str()
        .unwrap()
        .contains("h3="));
    let missing = &records[1];
    assert_eq!(
        finding_ids(missing),
        ["not-certificate-related"],
        "{missing:#}"
    );
    no_error_finding(missing);
    assert!(!terminal_line(missing).contains("unexplained"));
}

#[test]
fn plain_http_to_the_tls_port_gets_a_readable_400() {
    let (pki, _d) = common::dev_pki();
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        "https://localhost:9",
        "--server-cert",
        &pki.server().arg(),
    ]);
    let r = Curl::new(format!("http://127.0.0.1:{}/", p.port())).run();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("https://"), "{r:?}");
    let rec = &p.records(1)[0];
    assert_eq!(finding_ids(rec), ["client-not-tls"], "{rec:#}");
    assert_eq!(rec["client_leg"]["failure"]["kind"], "plain_http");
}
