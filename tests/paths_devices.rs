//! Finding the middlebox, with `mtlscope forward` (in-process) as the device in front of real
//! servers: a device that rewrites the CA list and wants proxy credentials, one that cuts TLS
//! 1.2 renegotiation before Apache's per-location client authentication, one that does not
//! forward the identity; and `--via` values that are usage errors.

mod common;

use common::paths_cli::{diff_paths, mtlscope, path_findings, sorted};
use common::{Nginx, Proxy, TlsVersion, VerifyClient};
use mtlscope::pki::ClientCert;

#[test]
fn a_device_that_empties_the_ca_list_changes_it_and_wants_its_proxy_credentials() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let ca_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let device = Proxy::start_blocking(&[
        "forward",
        "--ca-dir",
        ca_dir.path().to_str().unwrap(),
        "--upstream-ca",
        &root,
        "--identity",
        &good,
        "--client-auth",
        "required",
        "--client-ca",
        &root,
        "--fault",
        "empty-ca-list",
        "--proxy-auth",
        "ops:s3cret",
    ]);
    let device_ca = ca_dir.path().join("ca.pem").display().to_string();
    let rec_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let record = rec_dir.path().join("probe.jsonl");
    let via = format!("http://ops:s3cret@{}", device.addr);
    let r = mtlscope(
        &[
            "probe",
            &nginx.localhost_url(),
            "--via",
            &via,
            "--upstream-ca",
            &root,
            "--upstream-ca",
            &device_ca,
            "--identity",
            &good,
            "--json",
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    let found = path_findings(&r);
    assert!(
        found.contains(&"path-changes-ca-list".to_string()),
        "{found:?}\n{:#}",
        r.json
    );
    let f = r.json["comparisons"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "path-changes-ca-list")
        .unwrap()
        .clone();
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains("added by the path: none; removed by the path: "),
        "{evidence}"
    );
    assert!(evidence.contains("an empty list"), "{evidence}");
    // The password is never shown.
    assert!(!r.stdout.contains("s3cret"));
    assert_eq!(sorted(diff_paths(&record)), sorted(found));

    // Wrong credentials: the device's 407 is the path's answer.
    let bad = format!("http://ops:wrong@{}", device.addr);
    let r = mtlscope(
        &[
            "probe",
            &nginx.localhost_url(),
            "--via",
            &bad,
            "--upstream-ca",
            &root,
            "--tls13",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, Some(0), "direct is reachable: {}", r.stderr);
    let attempt = &r.json["paths"][1]["probe"]["attempts"][0];
    assert!(
        attempt["error"].as_str().unwrap_or("").contains("407"),
        "{attempt:#}"
    );
}

#[test]
fn a_device_that_cuts_renegotiation_blocks_apaches_late_request() {
    let (pki, _d) = common::dev_pki();
    let apache = common::apache_secure_location(&pki, TlsVersion::Tls12);
    let ca_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let device = Proxy::start_blocking(&[
        "forward",
        "--ca-dir",
        ca_dir.path().to_str().unwrap(),
        "--upstream-ca",
        &root,
        "--passthrough",
        "localhost",
        "--fault",
        "block-renegotiation",
    ]);
    let rec_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let record = rec_dir.path().join("probe.jsonl");
    let via = format!("http://{}", device.addr);
    let r = mtlscope(
        &[
            "probe",
            &apache.localhost_url(),
            "--via",
            &via,
            "--upstream-ca",
            &root,
            "--identity",
            &good,
            "--tls12",
            "--path",
            "/",
            "--path",
            "/secure",
            "--json",
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    let found = path_findings(&r);
    assert_eq!(found, ["path-blocks-late-request"], "{:#}", r.json);
    let f = &r.json["comparisons"][0]["findings"][0];
    let evidence = f["evidence"].to_string();
    assert!(evidence.contains("GET /secure"), "{evidence}");
    assert!(evidence.contains("TLS 1.2 renegotiation"), "{evidence}");
    assert!(
        !evidence.contains("GET / "),
        "the open path is not blocked: {evidence}"
    );
    assert_eq!(sorted(diff_paths(&record)), sorted(found));
}

#[test]
fn a_device_that_does_not_forward_the_identity_strips_it() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let ca_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    // Asks the client with the server's own CA names, and forwards nothing upstream.
    let device = Proxy::start_blocking(&[
        "forward",
        "--ca-dir",
        ca_dir.path().to_str().unwrap(),
        "--upstream-ca",
        &root,
        "--client-auth",
        "required",
        "--client-ca",
        &root,
        "--fault",
        "strip-client-cert",
    ]);
    let device_ca = ca_dir.path().join("ca.pem").display().to_string();
    let r = mtlscope(
        &[
            "probe",
            &nginx.localhost_url(),
            "--via",
            &format!("http://{}", device.addr),
            "--upstream-ca",
            &root,
            "--upstream-ca",
            &device_ca,
            "--identity",
            &good,
            "--tls13",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    let found = path_findings(&r);
    assert_eq!(
        sorted(found),
        ["intercepted-upstream", "path-strips-client-cert"],
        "{:#}",
        r.json["comparisons"]
    );
    let f = r.json["comparisons"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "path-strips-client-cert")
        .unwrap()
        .clone();
    let evidence = f["evidence"].to_string();
    assert!(evidence.contains("HTTP 200"), "{evidence}");
    assert!(evidence.contains("HTTP 400"), "{evidence}");
    assert!(f["fix"].as_str().unwrap().contains("pass-through"));
}

#[test]
fn bad_via_values_are_usage_errors() {
    let help = mtlscope(&["probe", "--help"], &[]);
    assert!(help.stdout.contains("--via"), "{}", help.stdout);
    let help = mtlscope(&["diff", "--help"], &[]);
    assert!(help.stdout.contains("--paths"), "{}", help.stdout);
    let r = mtlscope(
        &["probe", "https://localhost:1", "--via", "socks5://p:1"],
        &[],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--via"), "{}", r.stderr);
    let r = mtlscope(
        &["probe", "https://localhost:1", "--via", "env"],
        &[("HTTPS_PROXY", "ftp://p:1")],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("HTTPS_PROXY"), "{}", r.stderr);
}
