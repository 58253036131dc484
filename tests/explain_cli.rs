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
    assert!(
        text.contains("AWS ALB: Failed:ClientCertUntrusted"),
        "{text}"
    );
    assert!(
        text.contains("  means   chain-untrusted (most likely), chain-incomplete\n"),
        "{text}"
    );
    assert!(
        text.contains("  next    mtlscope certs inspect CERT.pem --trust CA.pem --key KEY.pem\n"),
        "{text}"
    );
    assert!(
        text.contains("  source  https://docs.aws.amazon.com/"),
        "{text}"
    );
    // Every line fits the width it wraps at, except the command and the URL kept whole.
    for line in text
        .lines()
        .filter(|l| !l.starts_with("  next") && !l.starts_with("  source"))
    {
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
    for key in [
        "vendor",
        "vendor_name",
        "words",
        "ids",
        "why",
        "next",
        "source",
        "found",
        "at",
    ] {
        assert!(m.get(key).is_some(), "{key} missing in {m:#}");
    }
    assert_eq!(m["vendor"], "aws-alb");
    assert_eq!(m["vendor_name"], "AWS ALB");
    assert_eq!(
        m["ids"],
        serde_json::json!(["chain-untrusted", "chain-incomplete"])
    );
    assert_eq!(m["next"]["kind"], "inspect-chain");
    assert!(m["next"]["command"]
        .as_str()
        .unwrap()
        .starts_with("mtlscope certs inspect"));
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
    let first = text.lines().nth(2).unwrap_or_default();
    assert!(
        first.starts_with("  0.")
            && first.contains("AWS ALB: Failed:ClientCertExpired")
            && first.ends_with("-> cert-expired"),
        "{text}"
    );
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
    assert_eq!(
        ids_of(&v, "sap"),
        ["cert-not-registered", "identity-not-forwarded"]
    );

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
    assert!(
        ids_of(&v, "nginx").contains(&"cert-expired".to_string()),
        "{}",
        r.body
    );
    let log = required.error_log();
    let line = log
        .lines()
        .find(|l| l.contains("client SSL certificate verify error"))
        .ok_or_else(|| format!("no verify error in nginx's log:\n{log}"))?;
    let (_, v) = explain_json(line);
    assert_eq!(ids_of(&v, "openssl-verify"), ["cert-expired"], "{line}");

    // With its 495 handled by the configuration, the verdict reaches the application as
    // `$ssl_client_verify` = FAILED:<OpenSSL's reason>.
    let optional = Nginx::start(NginxConfig {
        verify_client: VerifyClient::Optional,
        client_certificate: Some(pki.ca_cert.clone()),
        extra: "    error_page 495 = @failed;\n    \
                location @failed { return 200 \"verify=$ssl_client_verify\\n\"; }"
            .into(),
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
    assert!(
        ids.contains(&"chain-untrusted".to_string()),
        "{}: {ids:?}",
        r.body
    );
    Ok(())
}

/// `openssl s_server -Verify 1`: requires a client certificate, on one TLS version.
fn openssl_server(pki: &TestPki, version: TlsVersion) -> Result<RunningServer, String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("s_server temp dir: {e}"))?;
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
        (
            TlsVersion::Tls13,
            56,
            "exit 56 (CURLE_RECV_ERROR)",
            "certificate_required (116)",
        ),
        (
            TlsVersion::Tls12,
            35,
            "exit 35 (CURLE_SSL_CONNECT_ERROR)",
            "handshake_failure (40)",
        ),
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
        assert_eq!(
            words,
            [curl_entry, alert_entry],
            "{version:?}: {}",
            r.stderr
        );
        assert_eq!(ids_of(&v, "tls-alert")[0], "no-client-cert", "{}", r.stderr);
    }
    Ok(())
}

/// A Go TLS client: dial ADDR (server name `localhost`) trusting CA, with CERT and KEY when
/// given, send one GET and print the error Go returns, as Go programs log it.
const GO_CLIENT: &str = r#"package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
)

func main() {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(os.Args[2])
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		fmt.Println("cannot read CA", err)
		os.Exit(2)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if len(os.Args) > 4 {
		c, err := tls.LoadX509KeyPair(os.Args[3], os.Args[4])
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	conn, err := tls.Dial("tcp", os.Args[1], cfg)
	if err == nil {
		fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		_, err = io.ReadAll(conn)
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
"#;

/// Go's own words, client side, against Caddy (Go's crypto/tls as the server) requiring and
/// verifying client certificates: none sent, and an expired one.
#[test]
fn explains_what_a_go_client_says_to_a_go_server() -> Result<(), String> {
    use common::peers::{caddy, CaddyClientAuth};
    use common::process::run_bounded;
    use std::time::Duration;

    let pki = TestPki::generate()?;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("client.go"), GO_CLIENT).map_err(|e| e.to_string())?;
    let mut build = Command::new("go");
    build
        .current_dir(dir.path())
        .args(["build", "-o", "client", "client.go"])
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "");
    let out = run_bounded(build, None, Duration::from_secs(300));
    assert_eq!(
        out.code,
        Some(0),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = caddy(
        &pki.server.cert,
        &pki.server.key,
        &pki.ca_cert,
        CaddyClientAuth::RequireAndVerify,
    )?;
    let go = |identity: Option<&common::testpki::Identity>| {
        let mut cmd = Command::new(dir.path().join("client"));
        cmd.arg(server.addr()).arg(&pki.ca_cert);
        if let Some(id) = identity {
            cmd.arg(&id.cert).arg(&id.key);
        }
        let out = run_bounded(cmd, None, Duration::from_secs(20));
        assert_eq!(
            out.code,
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    // Go 1.19 (Debian's Caddy) answers a missing certificate with bad_certificate even on TLS
    // 1.3; newer Go with certificate_required. Either way the Go entry names no-client-cert.
    let none = go(None);
    let (code, v) = explain_json(&none);
    assert_eq!(code, Some(0), "{none}: {v:#}");
    assert!(
        ids_of(&v, "go").contains(&"no-client-cert".to_string()),
        "{none}"
    );

    let expired = go(Some(&pki.expired));
    assert!(
        expired.contains("remote error: tls: bad certificate"),
        "{expired}"
    );
    let (_, v) = explain_json(&expired);
    let ids = ids_of(&v, "go");
    assert_eq!(ids[0], "chain-untrusted", "{expired}");
    assert!(ids.contains(&"cert-expired".to_string()), "{expired}");
    Ok(())
}

/// A Java server's words (its exception, and the alert curl prints) for a missing and an
/// untrusted client certificate.
#[test]
fn explains_what_a_java_server_and_curl_say() -> Result<(), String> {
    use common::process::wait_for_log;
    use std::time::Duration;

    let pki = TestPki::generate()?;
    let server = common::peers::java(&pki.server.cert, &pki.server.key, &pki.ca_cert)?;
    let console = server.dir().join("java.console.log");
    let url = format!("https://localhost:{}/", server.port());
    let curl = |identity: Option<&common::testpki::Identity>| {
        let c =
            Curl::new(&url)
                .cacert(&pki.ca_cert)
                .resolve("localhost", server.port(), "127.0.0.1");
        match identity {
            Some(id) => c.identity(&id.cert, &id.key).run(),
            None => c.run(),
        }
    };
    let server_line = |needle: &str| -> Result<String, String> {
        if !wait_for_log(&console, needle, Duration::from_secs(10)) {
            return Err(format!(
                "no {needle:?} in the Java server's output:\n{}",
                std::fs::read_to_string(&console).unwrap_or_default()
            ));
        }
        let text = std::fs::read_to_string(&console).map_err(|e| e.to_string())?;
        Ok(text
            .lines()
            .rev()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string())
    };

    // No certificate: the server's exception, and the alert the client got.
    let r = curl(None);
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    let line = server_line("Empty client certificate chain")?;
    let (_, v) = explain_json(&line);
    assert_eq!(ids_of(&v, "java")[0], "no-client-cert", "{line}");
    let (code, v) = explain_json(r.stderr.trim());
    assert_eq!(code, Some(0), "{}: {v:#}", r.stderr);
    assert!(
        ids_of(&v, "tls-alert").contains(&"no-client-cert".to_string()),
        "{}",
        r.stderr
    );

    // A certificate from a CA the server does not trust.
    let r = curl(Some(&pki.stranger));
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    let line = server_line("PKIX path building failed")?;
    let (_, v) = explain_json(&line);
    assert!(
        ids_of(&v, "java").contains(&"chain-untrusted".to_string()),
        "{line}"
    );
    let (_, v) = explain_json(r.stderr.trim());
    assert_eq!(
        ids_of(&v, "tls-alert")[0],
        "chain-untrusted",
        "{}",
        r.stderr
    );
    Ok(())
}
