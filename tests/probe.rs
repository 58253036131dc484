//! `mtlscope probe` against real servers, run as the real binary with `--json`: nginx asking in
//! the handshake (`ssl_verify_client on`), Apache asking only for `<Location /secure>` by TLS 1.2
//! renegotiation or (failing) TLS 1.3 post-handshake auth, an unreachable port, bad usage.

mod common;

use common::process::run_bounded;
use common::{free_port, Apache, Nginx, TlsVersion, VerifyClient};
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn pki() -> (DevPki, tempfile::TempDir) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    (DevPki::generate(dir.path()).expect("dev pki"), dir)
}

/// What one probe run did.
struct Run {
    /// Exit code.
    code: Option<i32>,
    /// stdout parsed as JSON (Null when it is not JSON).
    json: Value,
    /// stdout as text.
    stdout: String,
    /// stderr as text.
    stderr: String,
}

/// Run `mtlscope probe ARGS`, bounded at 60 s.
fn probe(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.arg("probe").args(args);
    let out = run_bounded(cmd, None, Duration::from_secs(60));
    assert!(!out.timed_out, "probe ran past 60 s");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.code,
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn attempts(r: &Run) -> Vec<Value> {
    r.json["attempts"].as_array().cloned().unwrap_or_default()
}

/// The `paths` entry for `version` and `path`.
fn path_entry(r: &Run, version: &str, path: &str) -> Value {
    r.json["paths"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|p| p["tls_version"] == version && p["path"] == path)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {version} {path} in {:#}", r.json["paths"]))
}

fn apache(pki: &DevPki, version: TlsVersion) -> Apache {
    common::apache_secure_location(pki, version)
}

#[test]
fn help_describes_the_flags() {
    let r = probe(&["--help"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for flag in [
        "--identity",
        "--upstream-ca",
        "--path",
        "--tls12",
        "--tls13",
        "--json",
        "--record",
        "--timeout",
    ] {
        assert!(
            r.stdout.contains(flag),
            "{flag} missing from:\n{}",
            r.stdout
        );
    }
}

#[test]
fn nginx_asks_in_the_handshake_refuses_none_and_accepts_the_good_identity() {
    let (pki, _d) = pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("start nginx");
    let record_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let record = record_dir.path().join("probe.jsonl");
    let ca = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let r = probe(&[
        &nginx.localhost_url(),
        "--upstream-ca",
        &ca,
        "--identity",
        &good,
        "--json",
        "--timeout",
        "5",
        "--record",
        record.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    assert_eq!(r.json["reachable"], true);

    let root =
        mtlscope::cert::summarize(&mtlscope::pki::load::load_certs(pki.root_ca()).unwrap()[0])
            .unwrap();
    let versions = r.json["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{versions:#?}");
    for v in versions {
        assert_eq!(v["negotiated"], true, "{v:#}");
        assert_eq!(v["asked_in_handshake"], true, "{v:#}");
        assert_eq!(v["cert_request"]["phase"], "handshake");
        assert_eq!(
            v["cert_request"]["ca_names"],
            serde_json::json!([root.subject]),
            "{v:#}"
        );
        assert!(!v["cert_request"]["signature_schemes"]
            .as_array()
            .unwrap()
            .is_empty());
    }
    let all = attempts(&r);
    // Two versions × one path × (none, good, the throw-away identity: the server asks).
    assert_eq!(all.len(), 6, "{all:#?}");
    for a in &all {
        if a["identity"] == "throw-away identity (mtlscope's own throw-away CA)" {
            assert_eq!(a["status"], 400, "nginx verifies: {a:#}");
            assert!(
                a["verdict"]
                    .as_str()
                    .unwrap()
                    .contains("refused mtlscope's throw-away identity"),
                "{a:#}"
            );
            assert!(
                !ids(a).contains(&"client-cert-not-verified".to_string()),
                "{a:#}"
            );
        } else if a["identity"].is_null() {
            assert_eq!(a["status"], 400, "{a:#}");
            assert!(ids(a).contains(&"no-client-cert".to_string()), "{a:#}");
            assert!(
                a["verdict"].as_str().unwrap().starts_with("HTTP 400"),
                "{a:#}"
            );
        } else {
            assert_eq!(a["status"], 200, "{a:#}");
            assert!(
                a["presented"].as_str().unwrap().contains("client-good"),
                "{a:#}"
            );
            assert!(ids(a).is_empty(), "{a:#}");
        }
    }
    for v in ["TLSv1.3", "TLSv1.2"] {
        assert_eq!(path_entry(&r, v, "/")["asked"], "handshake");
    }

    // --record: one probe-mode flow per attempt.
    let lines: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for l in &lines {
        assert_eq!(l["mode"], "probe");
        assert_eq!(l["kind"], "exchange");
        assert!(l["client_leg"].is_null());
        assert!(l["upstream_leg"]["cert_request"].is_object());
    }

    // The text report says the same in words.
    let text = probe(&[
        &nginx.localhost_url(),
        "--upstream-ca",
        &ca,
        "--tls13",
        "--timeout",
        "5",
    ]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout
            .contains("TLSv1.3: asked for a client certificate; CA names"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains(&root.subject), "{}", text.stdout);
    assert!(text.stdout.contains("no-client-cert"), "{}", text.stdout);
}

#[test]
fn apache_tls12_asks_for_secure_only_by_renegotiation() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls12);
    let ca = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    // Both versions: this Apache speaks only TLS 1.2, so TLS 1.3 is refused and skipped.
    let r = probe(&[
        &apache.localhost_url(),
        "--upstream-ca",
        &ca,
        "--identity",
        &good,
        "--path",
        "/",
        "--path",
        "/secure",
        "--json",
        "--timeout",
        "5",
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    let versions = r.json["versions"].as_array().unwrap();
    let v13 = versions
        .iter()
        .find(|v| v["tls_version"] == "TLSv1.3")
        .unwrap();
    assert_eq!(v13["negotiated"], false, "{v13:#}");
    assert!(v13["error"].is_string(), "{v13:#}");
    assert!(!r.json["skipped"].as_array().unwrap().is_empty());
    let v12 = versions
        .iter()
        .find(|v| v["tls_version"] == "TLSv1.2")
        .unwrap();
    assert_eq!(v12["negotiated"], true);
    assert_eq!(v12["asked_in_handshake"], false, "{v12:#}");

    assert_eq!(path_entry(&r, "TLSv1.2", "/")["asked"], "no");
    let secure = path_entry(&r, "TLSv1.2", "/secure");
    assert_eq!(secure["asked"], "renegotiation", "{secure:#}");
    assert_eq!(secure["inferred"], false);

    let all = attempts(&r);
    let public: Vec<_> = all
        .iter()
        .filter(|a| a["tls_version"] == "TLSv1.2" && a["path"] == "/")
        .collect();
    assert_eq!(public.len(), 2);
    assert!(public.iter().all(|a| a["status"] == 200), "{public:#?}");
    let late: Vec<_> = all.iter().filter(|a| a["path"] == "/secure").collect();
    // none, good, and the throw-away identity (the server asked).
    assert_eq!(late.len(), 3, "{all:#?}");
    for a in late {
        assert_eq!(a["cert_request"]["phase"], "renegotiation", "{a:#}");
        assert!(
            ids(a).contains(&"renegotiation-requested".to_string()),
            "{a:#}"
        );
        assert_ne!(a["status"], 200, "{a:#}");
    }
}

#[test]
fn apache_tls13_per_location_is_a_403_without_post_handshake_auth() {
    let (pki, _d) = pki();
    let apache = apache(&pki, TlsVersion::Tls13);
    let ca = pki.root_ca().display().to_string();
    let r = probe(&[
        &apache.localhost_url(),
        "--upstream-ca",
        &ca,
        "--tls13",
        "--path",
        "/",
        "--path",
        "/secure",
        "--json",
        "--timeout",
        "5",
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    assert_eq!(r.json["versions"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["versions"][0]["asked_in_handshake"], false);
    assert_eq!(path_entry(&r, "TLSv1.3", "/")["asked"], "no");
    let secure = path_entry(&r, "TLSv1.3", "/secure");
    assert_eq!(secure["asked"], "post_handshake", "{secure:#}");
    assert_eq!(secure["inferred"], true);
    let a = attempts(&r)
        .into_iter()
        .find(|a| a["path"] == "/secure")
        .unwrap();
    assert_eq!(a["status"], 403, "{a:#}");
    assert!(
        ids(&a).contains(&"post-handshake-auth".to_string()),
        "{a:#}"
    );
}

#[test]
fn an_unreachable_port_exits_1_with_upstream_unreachable() {
    let port = free_port().unwrap();
    let url = format!("https://127.0.0.1:{port}/");
    let r = probe(&[&url, "--json", "--timeout", "5"]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stderr, r.stdout);
    assert_eq!(r.json["reachable"], false);
    let all = attempts(&r);
    assert_eq!(
        all.len(),
        1,
        "stops after the first refused connection: {all:#?}"
    );
    assert!(
        ids(&all[0]).contains(&"upstream-unreachable".to_string()),
        "{:#}",
        all[0]
    );
    assert!(r.stderr.contains("could not be reached"), "{}", r.stderr);
}

#[test]
fn bad_usage_exits_2_naming_the_flag() {
    let r = probe(&[
        "https://localhost:1/",
        "--identity",
        "/nonexistent/c.pem,/nonexistent/c.key",
    ]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--identity"), "{}", r.stderr);
    let r = probe(&["https://localhost:1/", "--path", "secure"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--path"), "{}", r.stderr);
    let r = probe(&["http://localhost:1/"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("https"), "{}", r.stderr);
    let r = probe(&["https://localhost:1/", "--tls12", "--tls13"]);
    assert_eq!(r.code, Some(2));
}

/// nginx (OpenSSL) lists RSA-PSS-with-PSS-key schemes such as 0x0809 in its CertificateRequest:
/// every scheme is printed by its IANA name.
#[test]
fn signature_schemes_are_named_by_iana_name() {
    let (pki, _d) = pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("start nginx");
    let ca = pki.root_ca().display().to_string();
    let r = probe(&[
        &nginx.localhost_url(),
        "--upstream-ca",
        &ca,
        "--timeout",
        "5",
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    assert!(r.stdout.contains("signature schemes:"), "{}", r.stdout);
    assert!(!r.stdout.contains("SignatureScheme("), "{}", r.stdout);
    assert!(r.stdout.contains("rsa_pss_pss_sha256"), "{}", r.stdout);
    assert!(r.stdout.contains("ecdsa_secp256r1_sha256"), "{}", r.stdout);
}
