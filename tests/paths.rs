//! Finding the middlebox: `probe --via` and `diff --paths` with real third-party devices in
//! front of real servers — mitmproxy intercepting TLS before nginx (which requires client
//! certificates), squid as a plain CONNECT tunnel, and `mtlscope forward` reproducing a device
//! that rewrites the CA list or cuts TLS 1.2 renegotiation before Apache's per-location client
//! authentication.

mod common;

use common::middlebox::{mitm_ca, mitmproxy, squid};
use common::paths_cli::{diff_paths, mtlscope, path_findings, sorted};
use common::{Nginx, VerifyClient};
use mtlscope::pki::ClientCert;
use serde_json::Value;

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
