//! Finding the middlebox: `probe --via` and `diff --paths` with real third-party devices in
//! front of real servers — mitmproxy intercepting TLS before nginx (which requires client
//! certificates), squid as a plain CONNECT tunnel, and `mtlscope forward` reproducing a device
//! that rewrites the CA list or cuts TLS 1.2 renegotiation before Apache's per-location client
//! authentication.

mod common;

use common::middlebox::{mitm_ca, mitmproxy, squid};
use common::process::run_bounded;
use common::{Mtlscope, Nginx, TlsVersion, VerifyClient};
use mtlscope::pki::ClientCert;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one command did.
struct Run {
    code: Option<i32>,
    json: Value,
    stdout: String,
    stderr: String,
}

/// Run `mtlscope ARGS` with `env` set and every proxy variable of the test's own environment
/// removed, bounded at 120 s.
fn mtlscope(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.args(args);
    for v in [
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = run_bounded(cmd, None, Duration::from_secs(120));
    assert!(!out.timed_out, "mtlscope {args:?} ran past 120 s");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.code,
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ids(findings: &Value) -> Vec<String> {
    findings
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The findings of the one comparison in a `probe --via --json` answer.
fn path_findings(r: &Run) -> Vec<String> {
    let c = r.json["comparisons"].as_array().expect("comparisons");
    assert_eq!(c.len(), 1, "{:#}", r.json);
    ids(&c[0]["findings"])
}

/// Split a `probe --via` recording into the direct flows and the flows through a proxy (those
/// whose upstream leg recorded a `proxy_connect` event): the two recordings `diff --paths`
/// compares, as a direct probe and a probe through the device would have written them.
fn split(record: &Path, dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(record).expect("recording");
    let (mut direct, mut via) = (String::new(), String::new());
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        let proxied = v["upstream_leg"]["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["name"] == "proxy_connect"));
        let out = if proxied { &mut via } else { &mut direct };
        out.push_str(line);
        out.push('\n');
    }
    assert!(!direct.is_empty() && !via.is_empty(), "{text}");
    let (a, b) = (dir.join("direct.jsonl"), dir.join("via.jsonl"));
    std::fs::write(&a, direct).unwrap();
    std::fs::write(&b, via).unwrap();
    (a.display().to_string(), b.display().to_string())
}

/// `diff --paths --json` of the two halves of `record`: the finding ids of its one host.
fn diff_paths(record: &Path) -> Vec<String> {
    let dir = record.parent().unwrap();
    let (a, b) = split(record, dir);
    let r = mtlscope(&["diff", "--paths", &a, &b, "--json"], &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    let hosts = r.json["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1, "{:#}", r.json);
    let text = mtlscope(&["diff", "--paths", &a, &b], &[]);
    assert!(
        text.stdout.contains("compared with") && text.stdout.contains("Side by side"),
        "{}",
        text.stdout
    );
    ids(&hosts[0]["findings"])
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn mitmproxy_in_front_of_nginx_is_intercepted_and_removes_the_cert_request() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let mitm = mitmproxy();
    let rec_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let record = rec_dir.path().join("probe.jsonl");
    let root = pki.root_ca().display().to_string();
    let device_ca = mitm_ca(&mitm).display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let r = mtlscope(
        &[
            "probe",
            &nginx.localhost_url(),
            "--via",
            &mitm.url(),
            // The client trusts the device's CA, as a managed laptop behind it would.
            "--upstream-ca",
            &root,
            "--upstream-ca",
            &device_ca,
            "--identity",
            &good,
            "--timeout",
            "10",
            "--json",
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        r.code,
        Some(0),
        "{}\n{}\n{}",
        r.stderr,
        r.stdout,
        mitm.logs()
    );
    let found = path_findings(&r);
    for id in ["intercepted-upstream", "path-removes-cert-request"] {
        assert!(
            found.contains(&id.to_string()),
            "{id} not in {found:?}\n{:#}",
            r.json
        );
    }
    // The same identity nginx accepts directly is refused through the device.
    assert!(
        found.contains(&"path-strips-client-cert".to_string()),
        "{found:?}"
    );
    let c = &r.json["comparisons"][0];
    let intercepted = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "intercepted-upstream")
        .unwrap();
    let summary = intercepted["summary"].as_str().unwrap();
    // mitmproxy's CA is named as the issuer the client would have to trust.
    assert!(summary.contains("mitmproxy"), "{summary}");
    assert!(summary.contains("would have to trust"), "{summary}");
    let leaf_sha = |i: usize| r.json["paths"][i]["facts"]["server_chain"][0]["sha256"].clone();
    assert_ne!(leaf_sha(0), leaf_sha(1));
    assert!(c["differences"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["fact"] == "server leaf issuer"));
    // Directly nginx asked in the handshake and accepted the identity; through the device it
    // never asked.
    let direct = &r.json["paths"][0]["probe"];
    assert_eq!(direct["versions"][0]["asked_in_handshake"], true);
    let via = &r.json["paths"][1]["probe"];
    assert_eq!(via["versions"][0]["asked_in_handshake"], false);

    let text = mtlscope(
        &[
            "probe",
            &nginx.localhost_url(),
            "--via",
            &mitm.url(),
            "--upstream-ca",
            &root,
            "--upstream-ca",
            &device_ca,
            "--tls13",
        ],
        &[],
    );
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout
            .contains(&format!("{} compared with direct:", mitm.url())),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("* server leaf sha256"),
        "{}",
        text.stdout
    );

    let from_recordings = diff_paths(&record);
    assert_eq!(sorted(from_recordings), sorted(found));
}

#[test]
fn a_squid_tunnel_shows_the_same_server_and_gives_no_path_finding() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let sq = squid();
    let rec_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let record = rec_dir.path().join("probe.jsonl");
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let url = nginx.localhost_url();
    let args = |via: &str| {
        vec![
            "probe".to_string(),
            url.clone(),
            "--via".into(),
            via.to_string(),
            "--upstream-ca".into(),
            root.clone(),
            "--identity".into(),
            good.clone(),
            "--json".into(),
            "--record".into(),
            record.display().to_string(),
        ]
    };
    let a = args(&sq.url());
    let r = mtlscope(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(r.code, Some(0), "{}\n{}\n{}", r.stderr, r.stdout, sq.logs());
    assert_eq!(path_findings(&r), Vec::<String>::new(), "{:#}", r.json);
    assert_eq!(
        r.json["comparisons"][0]["differences"],
        serde_json::json!([])
    );
    let status = |i: usize| {
        r.json["paths"][i]["facts"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(status(0), status(1));
    assert!(
        status(1).contains(&serde_json::json!(200)),
        "{:?}",
        status(1)
    );
    assert!(
        sq.logs().contains("CONNECT localhost:"),
        "squid carried nothing:\n{}",
        sq.logs()
    );
    assert!(diff_paths(&record).is_empty());

    // `--via env`: HTTPS_PROXY names squid; NO_PROXY exempts the host, as curl would.
    let e = args("env");
    let e: Vec<&str> = e.iter().map(String::as_str).collect();
    let r = mtlscope(&e, &[("HTTPS_PROXY", &sq.url())]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.json["paths"][1]["path"],
        format!("{} (from HTTPS_PROXY)", sq.url())
    );
    assert_eq!(path_findings(&r), Vec::<String>::new());
    let r = mtlscope(
        &e,
        &[
            ("HTTPS_PROXY", &sq.url()),
            ("no_proxy", "example.com,localhost"),
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.json["paths"][1]["path"],
        "direct (no_proxy entry \"localhost\" matches localhost)"
    );
}

#[test]
fn a_device_that_empties_the_ca_list_changes_it_and_wants_its_proxy_credentials() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let ca_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let device = Mtlscope::start(&[
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
    let device = Mtlscope::start(&[
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
    let device = Mtlscope::start(&[
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

/// `--via PROXY --via direct` and the reverse order give the same findings: the direct path is
/// the reference whatever the order. mitmproxy's CA is not trusted: the probe records the
/// untrusted certificate, finishes the handshake without presenting an identity, and so still
/// sees that the path asks for no certificate; it never presents the identity through it.
#[test]
fn the_order_of_via_does_not_change_the_reference_and_an_untrusted_device_still_shows() {
    let (pki, _d) = common::dev_pki();
    let nginx = Nginx::start(common::nginx_config(&pki, VerifyClient::On)).expect("nginx");
    let mitm = mitmproxy();
    let root = pki.root_ca().display().to_string();
    let good = pki.client(ClientCert::Good).arg();
    let url = nginx.localhost_url();
    let rec_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let probe = |first: &str, second: &str, record: &str| {
        let record = rec_dir.path().join(record).display().to_string();
        let r = mtlscope(
            &[
                "probe",
                &url,
                "--via",
                first,
                "--via",
                second,
                "--upstream-ca",
                &root,
                "--identity",
                &good,
                "--timeout",
                "10",
                "--json",
                "--record",
                &record,
            ],
            &[],
        );
        assert_eq!(
            r.code,
            Some(0),
            "{}\n{}\n{}",
            r.stderr,
            r.stdout,
            mitm.logs()
        );
        (r, record)
    };
    let (a, rec_a) = probe(&mitm.url(), "direct", "a.jsonl");
    let (b, _) = probe("direct", &mitm.url(), "b.jsonl");
    for r in [&a, &b] {
        assert_eq!(r.json["paths"][0]["path"], "direct", "{:#}", r.json);
        assert_eq!(r.json["paths"][1]["path"], mitm.url(), "{:#}", r.json);
    }
    let (fa, fb) = (sorted(path_findings(&a)), sorted(path_findings(&b)));
    assert_eq!(fa, fb, "{:#}\n{:#}", a.json, b.json);
    for id in ["intercepted-upstream", "path-removes-cert-request"] {
        assert!(
            fa.contains(&id.to_string()),
            "{id} not in {fa:?}\n{:#}",
            a.json
        );
    }
    // The interceptor's chain is named as the intruder's, never the direct one.
    let intercepted = a.json["comparisons"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "intercepted-upstream")
        .unwrap()
        .to_string();
    assert!(intercepted.contains("mitmproxy"), "{intercepted}");
    assert!(
        !intercepted.contains("A device on the path direct"),
        "{intercepted}"
    );

    // Through the untrusted device: the attempt without an identity finished its handshake
    // (verdict recorded, not enforced) and got an answer; no identity was ever presented.
    let text = std::fs::read_to_string(&rec_a).unwrap();
    let through: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            v["upstream_leg"]["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["name"] == "proxy_connect"))
        })
        .collect();
    assert!(!through.is_empty(), "{text}");
    for v in &through {
        let up = &v["upstream_leg"];
        assert_eq!(up["server_verification"]["ok"], false, "{v:#}");
        assert_eq!(up["chain"], serde_json::json!([]), "{v:#}");
        assert!(
            up["identity"]["candidates"]
                .as_array()
                .is_none_or(|c| c.is_empty()),
            "{v:#}"
        );
    }
    assert!(
        through.iter().any(|v| v["response"]["status"].is_number()),
        "{text}"
    );
    let skipped = a.json["paths"][1]["probe"].to_string();
    assert!(skipped.contains("does not trust"), "{skipped}");
}
