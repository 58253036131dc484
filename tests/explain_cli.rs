//! `mtlscope explain`, run as the real binary: its text and `--json` output, exit codes, and the
//! words real peers print (nginx's pages, `$ssl_client_verify` and error log; curl's errors
//! against an OpenSSL server) mapped to the right catalogue ids.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::process::{start_server, RunningServer};
use common::{Curl, Nginx, NginxConfig, TestPki, TlsVersion, VerifyClient};
use serde_json::Value;

fn mtlscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run mtlscope")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `mtlscope explain --json TEXT`, parsed.
fn explain_json(text: &str) -> (Option<i32>, Value) {
    let o = mtlscope(&["explain", "--json", text]);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("explain --json {text:?}: {e}\n{}{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

/// The ids of the match whose vendor is `vendor`.
fn ids_of(v: &Value, vendor: &str) -> Vec<String> {
    let m = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["vendor"] == vendor)
        .unwrap_or_else(|| panic!("no {vendor} match in {v:#}"));
    m["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_vendor_code_prints_its_ids_why_and_the_next_command() {
    let o = mtlscope(&["explain", "Failed:ClientCertUntrusted"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("1 match in the text\n"), "{text}");
    assert!(text.contains("AWS ALB: Failed:ClientCertUntrusted"), "{text}");
    assert!(
        text.contains("  means   chain-untrusted (most likely), chain-incomplete\n"),
        "{text}"
    );
    assert!(
        text.contains("  next    mtlscope certs inspect CERT.pem --trust CA.pem --key KEY.pem\n"),
        "{text}"
    );
    assert!(text.contains("  source  https://docs.aws.amazon.com/"), "{text}");
    // Every line fits the width it wraps at, except the command kept whole.
    for line in text.lines().filter(|l| !l.starts_with("  next")) {
        assert!(line.chars().count() <= 100, "{line:?}");
    }
}

#[test]
fn json_has_the_documented_shape() {
    let (code, v) = explain_json("Failed:ClientCertUntrusted");
    assert_eq!(code, Some(0));
    assert_eq!(v["text"], "Failed:ClientCertUntrusted");
    assert_eq!(v["matched"], true);
    assert_eq!(v["closest"], serde_json::json!([]));
    let m = &v["matches"][0];
    for key in ["vendor", "vendor_name", "words", "ids", "why", "next", "source", "found", "at"] {
        assert!(m.get(key).is_some(), "{key} missing in {m:#}");
    }
    assert_eq!(m["vendor"], "aws-alb");
    assert_eq!(m["vendor_name"], "AWS ALB");
    assert_eq!(m["ids"], serde_json::json!(["chain-untrusted", "chain-incomplete"]));
    assert_eq!(m["next"]["kind"], "inspect-chain");
    assert!(m["next"]["command"].as_str().unwrap().starts_with("mtlscope certs inspect"));
    assert!(m["next"]["decides"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(m["found"], "ClientCertUntrusted");
    assert_eq!(m["at"], 7);
}

#[test]
fn several_words_in_one_call_give_every_match() {
    let o = mtlscope(&[
        "explain",
        "--json",
        "javax.net.ssl.SSLHandshakeException:",
        "Received fatal alert: bad_certificate;",
        "nginx said ssl_c_err=10 and 403.16",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let vendors: Vec<&str> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["vendor"].as_str().unwrap())
        .collect();
    assert_eq!(vendors, ["java", "openssl-verify", "iis"]);
}

#[test]
fn unknown_words_exit_3_with_the_closest_entries() {
    let o = mtlscope(&["explain", "Failed:ClientCertExpierd"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("no exact match"), "{text}");
    assert!(text.contains("Failed:ClientCertExpired"), "{text}");
    assert!(text.contains("similarity"), "{text}");
    assert!(stderr(&o).contains("no exact match"), "{}", stderr(&o));

    let (code, v) = explain_json("the gateway did not like my certificate");
    assert_eq!(code, Some(3));
    assert_eq!(v["matched"], false);
    assert_eq!(v["matches"], serde_json::json!([]));
    let closest = v["closest"].as_array().unwrap();
    assert!(closest.len() >= 3, "{v:#}");
    for c in closest {
        let score = c["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{c:#}");
        assert!(c.get("found").is_none() && c["ids"].as_array().is_some_and(|i| !i.is_empty()));
    }
}

#[test]
fn negative_numbers_stdin_and_empty_text() {
    // Chrome's net error number is not taken for a flag, before or after --json.
    for args in [["explain", "-117", "--json"], ["explain", "--json", "-117"]] {
        let o = mtlscope(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(ids_of(&v, "chrome")[0], "chain-untrusted");
    }
    // `-` reads the text from stdin (a log line with quotes and brackets).
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["explain", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"details\":\"[AUTH0032]Invalid client certificate\"}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ids_of(&v, "sap"), ["cert-not-registered", "identity-not-forwarded"]);

    let o = mtlscope(&["explain", "  "]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("TEXT is empty"), "{}", stderr(&o));
    let o = mtlscope(&["explain"]);
    assert_eq!(o.status.code(), Some(2));
}

/// nginx's own words for a missing, an expired and an untrusted certificate.
#[test]
fn explains_what_real_nginx_says() -> Result<(), String> {
    let pki = TestPki::generate()?;
    let required = Nginx::start(NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(pki.ca_cert.clone()),
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    })?;
    let url = format!("{}/", required.base_url());

    // No certificate: nginx's 400 page (its internal 496).
    let r = Curl::new(&url).cacert(&pki.ca_cert).run();
    assert_eq!(r.status, 400, "{r:?}");
    let (code, v) = explain_json(&r.body);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(ids_of(&v, "nginx")[0], "no-client-cert", "{}", r.body);

    // Expired: the generic 400 page (495); the reason is in nginx's error log.
    let r = Curl::new(&url)
        .cacert(&pki.ca_cert)
        .identity(&pki.expired.cert, &pki.expired.key)
        .run();
    assert_eq!(r.status, 400, "{r:?}");
    let (_, v) = explain_json(&r.body);
    assert!(ids_of(&v, "nginx").contains(&"cert-expired".to_string()), "{}", r.body);
    let log = required.error_log();
    let line = log
        .lines()
        .find(|l| l.contains("client SSL certificate verify error"))
        .ok_or_else(|| format!("no verify error in nginx's log:\n{log}"))?;
    let (_, v) = explain_json(line);
    assert_eq!(ids_of(&v, "openssl-verify"), ["cert-expired"], "{line}");

    // `ssl_verify_client optional`: the verdict reaches the application as FAILED:<reason>.
    let optional = Nginx::start(NginxConfig {
        verify_client: VerifyClient::Optional,
        client_certificate: Some(pki.ca_cert.clone()),
        ..NginxConfig::new(&pki.server.cert, &pki.server.key)
    })?;
    let url = format!("{}/", optional.base_url());
    let r = Curl::new(&url)
        .cacert(&pki.ca_cert)
        .identity(&pki.expired.cert, &pki.expired.key)
        .run();
    assert!(r.body.contains("verify=FAILED:"), "{r:?}");
    let (_, v) = explain_json(&r.body);
    assert_eq!(ids_of(&v, "openssl-verify"), ["cert-expired"], "{}", r.body);
    let r = Curl::new(&url)
        .cacert(&pki.ca_cert)
        .identity(&pki.stranger.cert, &pki.stranger.key)
        .run();
    assert!(r.body.contains("verify=FAILED:"), "{r:?}");
    let (_, v) = explain_json(&r.body);
    let ids = ids_of(&v, "openssl-verify");
    assert!(ids.contains(&"chain-untrusted".to_string()), "{}: {ids:?}", r.body);
    Ok(())
}

/// `openssl s_server -Verify 1`: requires a client certificate, on one TLS version.
fn openssl_server(pki: &TestPki, version: TlsVersion) -> Result<RunningServer, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("s_server temp dir: {e}"))?;
    let (process, port) = start_server("openssl-s_server", dir.path(), &[], |port| {
        let mut cmd = Command::new("openssl");
        cmd.arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&pki.server.cert)
            .arg("-key")
            .arg(&pki.server.key)
            .arg("-CAfile")
            .arg(&pki.ca_cert)
            .arg("-Verify")
            .arg("1")
            .arg("-www")
            .arg(match version {
                TlsVersion::Tls12 => "-tls1_2",
                TlsVersion::Tls13 => "-tls1_3",
            });
        Ok(cmd)
    })?;
    Ok(RunningServer::new(process, port, dir))
}

/// curl's errors (exit code and OpenSSL alert text) when an OpenSSL server wants a certificate
/// and gets none: TLS 1.3 refuses after the handshake (56, certificate_required), TLS 1.2 in it
/// (35, handshake_failure).
#[test]
fn explains_what_curl_says_to_an_openssl_server_that_wants_a_certificate() -> Result<(), String> {
    let pki = TestPki::generate()?;
    for (version, exit, curl_entry, alert_entry) in [
        (TlsVersion::Tls13, 56, "curl exit 56 (CURLE_RECV_ERROR)", "certificate_required (116)"),
        (TlsVersion::Tls12, 35, "curl exit 35 (CURLE_SSL_CONNECT_ERROR)", "handshake_failure (40)"),
    ] {
        let server = openssl_server(&pki, version)?;
        let r = Curl::new(format!("{}/", server.base_url()))
            .cacert(&pki.ca_cert)
            .run();
        assert_eq!(r.exit_code, Some(exit), "{version:?}: {r:?}");
        let (code, v) = explain_json(r.stderr.trim());
        assert_eq!(code, Some(0), "{version:?}: {v:#}");
        let words: Vec<&str> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["words"].as_str().unwrap())
            .collect();
        assert_eq!(words, [curl_entry, alert_entry], "{version:?}: {}", r.stderr);
        assert_eq!(ids_of(&v, "tls-alert")[0], "no-client-cert", "{}", r.stderr);
    }
    Ok(())
}
