//! `certs choose` beyond the live stacks: a recording answers offline as the live server did,
//! the text table names every stack, a late request is read over OpenSSL, and the request is
//! asked through a CONNECT proxy. The lab is `tests/common/choose_lab.rs`.

mod common;

use common::choose_lab::*;
use mtlscope::pki::dev::ClientCert;
use serde_json::Value;
use std::process::Command;

#[test]
fn a_recording_answers_offline_as_the_live_server_did() {
    let root = common::tmpdir();
    let dir = root.path();
    let pki = Pki::new();
    pki.client(dir, "stranger", false, false, false);
    pki.client(dir, "good", true, false, false);
    let port = serve(pki.server_config(true, false));
    let url = format!("https://127.0.0.1:{port}/");
    let rec = dir.join("flows.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["probe", &url, "--insecure-upstream", "--tls13", "--record"])
        .arg(&rec)
        .output()
        .expect("probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pairs = ["stranger.pem,stranger.key", "good.pem,good.key"];
    let (live, _) = mtlscope(
        dir,
        &["--for", &url, "--insecure-upstream", pairs[0], pairs[1]],
    );
    let (offline, _) = mtlscope(dir, &["--for", "flows.jsonl:1", pairs[0], pairs[1]]);
    assert_eq!(live["stacks"], offline["stacks"]);
    assert_eq!(offline["request"]["ca_names"][0], "CN=Good CA");
    // Documented-only stacks say so.
    let schannel = &offline["stacks"][4];
    assert_eq!(schannel["stack"], "schannel");
    assert_eq!(schannel["basis"], "documented");
    assert_eq!(predicted(&offline, "go"), "good");
    assert_eq!(predicted(&offline, "openssl"), "stranger");

    // `certs inspect --for` gives the same answer for the files it inspects.
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args([
            "certs",
            "inspect",
            "stranger.pem",
            "good.pem",
            "--for",
            "flows.jsonl:1",
            "--json",
        ])
        .current_dir(dir)
        .output()
        .expect("inspect");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(v["would_send"]["stacks"], offline["stacks"]);

    // Bad input names the file or the record.
    std::fs::write(dir.join("junk.txt"), "not a certificate").expect("write");
    for (args, says) in [
        (
            vec!["--for", "flows.jsonl:1", "junk.txt"],
            "junk.txt: not a certificate",
        ),
        (
            vec!["--for", "flows.jsonl:9", "good.pem"],
            "flows.jsonl:9: has no record 9",
        ),
        (
            vec!["--for", "flows.jsonl:1", "good.pem,stranger.key"],
            "does not match",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .args(["certs", "choose"])
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn text_table_names_every_stack_and_the_documented_ones() {
    let root = common::tmpdir();
    let dir = root.path();
    let pki = Pki::new();
    pki.client(dir, "a", true, false, false);
    pki.client(dir, "b", false, false, false);
    let port = serve(pki.server_config(true, false));
    let url = format!("https://127.0.0.1:{port}/");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args([
            "certs",
            "choose",
            "--for",
            &url,
            "--insecure-upstream",
            "a.pem,a.key",
            "b.pem,b.key",
        ])
        .current_dir(dir)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stack in ["openssl", "java", "java-pkix", "go"] {
        assert!(
            text.lines().any(|l| l.starts_with(stack)),
            "{stack} missing:\n{text}"
        );
    }
    for stack in ["schannel", "chrome", "firefox"] {
        assert!(
            text.contains(&format!("{stack} (documented only)")),
            "{text}"
        );
    }
    assert!(text.contains("acceptable CAs: CN=Good CA"), "{text}");
    assert!(text.contains("issuer not among the CA names"), "{text}");
}

#[test]
fn a_late_request_is_read_over_openssl() {
    let (pki, _d) = common::dev_pki();
    for version in [common::TlsVersion::Tls12, common::TlsVersion::Tls13] {
        let apache = common::apache_secure_location(&pki, version);
        let url = format!("{}/secure", apache.localhost_url());
        let ca = pki.root_ca().display().to_string();
        let other = pki.client(ClientCert::OtherCa).arg();
        let good = pki.client(ClientCert::Good).arg();
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // rustls alone sees no request in the handshake, and says so.
        let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .args([
                "certs",
                "choose",
                "--for",
                &url,
                "--upstream-ca",
                &ca,
                &other,
                &good,
            ])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{version:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("asked for no client certificate"));
        let (v, _) = mtlscope(
            &dir,
            &[
                "--for",
                &url,
                "--upstream-ca",
                &ca,
                "--upstream-engine",
                "openssl",
                &other,
                &good,
            ],
        );
        let phase = match version {
            common::TlsVersion::Tls12 => "renegotiation",
            _ => "post_handshake",
        };
        let source = v["request"]["source"].as_str().unwrap_or_default();
        assert!(
            source.ends_with(&format!("(asked in {phase})")),
            "{version:?}: {source}"
        );
        assert_eq!(
            v["request"]["ca_names"][0],
            "CN=mtlscope dev root, O=mtlscope dev"
        );
        assert_eq!(predicted(&v, "go"), "client-good");
        assert_eq!(predicted(&v, "openssl"), "client-other-ca");
    }
}

#[test]
fn the_request_is_asked_through_a_connect_proxy() {
    let (pki, _d) = common::dev_pki();
    let nginx =
        common::Nginx::start(common::nginx_config(&pki, common::VerifyClient::On)).expect("nginx");
    let sq = common::middlebox::squid();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let other = pki.client(ClientCert::OtherCa).arg();
    let url = nginx.localhost_url();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (v, _) = mtlscope(
        &dir,
        &[
            "--for",
            &url,
            "--upstream-ca",
            &root,
            "--via",
            &sq.url(),
            &other,
            &good,
        ],
    );
    assert_eq!(v["request"]["source"], url.as_str(), "{}", sq.logs());
    assert!(v["request"]["ca_names"]
        .as_array()
        .is_some_and(|n| !n.is_empty()));
    assert_eq!(predicted(&v, "go"), "client-good");
    // The proxy carried it: squid logged the CONNECT.
    assert!(sq.logs().contains("CONNECT"), "{}", sq.logs());
}
