//! `mtlscope report`, `diff` and `export` on a real recording: `mtlscope reverse` in front of an
//! in-process lab upstream that requires client certificates, with curl as the client, once with
//! a good identity, once with none and once with an expired one. The three recordings are joined
//! into one file with a garbage line in the middle, as a hand-edited or damaged file would be.

mod common;

use common::{Curl, Mtlscope};
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::load_certs;
use mtlscope::pki::{ClientCert, DevPki};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a finished `mtlscope` view command did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `mtlscope <args>` to completion, at most 30 s.
fn mtlscope(args: &[&str]) -> Run {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn mtlscope");
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status.code(),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mtlscope {args:?} did not finish in 30 s");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Run {
        code,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// One proxy run with `identity` (or none) and one curl request; the recording's text.
async fn record_one(pki: &DevPki, up: &LabUpstream, identity: Option<ClientCert>) -> String {
    let url = up.url();
    let server = pki.server().arg();
    let ca = pki.root_ca().display().to_string();
    let id = identity.map(|c| pki.client(c).arg());
    let mut args = vec![
        "reverse",
        "--upstream",
        &url,
        "--server-cert",
        &server,
        "--upstream-ca",
        &ca,
    ];
    if let Some(id) = &id {
        args.extend(["--identity", id.as_str()]);
    }
    let p = Mtlscope::start(&args);
    let r = Curl::new(format!("https://localhost:{}/secure?q=1", p.port()))
        .cacert(pki.root_ca())
        .header("User-Agent: <script>alert('ua')</script>")
        .header("Authorization: Bearer s3cret")
        .run_async()
        .await;
    let expected = if identity == Some(ClientCert::Good) {
        200
    } else {
        502
    };
    assert_eq!(r.status, expected, "curl: {r:?}");
    p.records(1);
    std::fs::read_to_string(&p.record).expect("recording")
}

/// good (200), no identity (502), garbage line, expired identity (502).
async fn recording(dir: &Path) -> std::path::PathBuf {
    let pki = DevPki::generate(dir).expect("dev pki");
    let up = LabUpstream::start(LabUpstreamConfig {
        server: Arc::new(pki.server().load().expect("server identity")),
        client_auth: LabClientAuth::Required,
        client_cas: load_certs(pki.root_ca()).expect("root"),
        empty_ca_names: false,
        tls12_only: false,
        allowed_sha256: vec![],
        silent_reject: false,
    })
    .await
    .expect("lab upstream");
    let good = record_one(&pki, &up, Some(ClientCert::Good)).await;
    let none = record_one(&pki, &up, None).await;
    let expired = record_one(&pki, &up, Some(ClientCert::Expired)).await;
    // An attacker-controlled body: the upstream's 502 excerpt replaced, as a hostile server's
    // error page would arrive.
    let mut expired: Value =
        serde_json::from_str(expired.lines().next().expect("line")).expect("record is JSON");
    expired["response"]["body_excerpt"] = "<script>alert('body')</script>".into();
    let text = format!(
        "{}{}{{\"schema\": 1, \"kind\": \"exch\n{}\n",
        good,
        none,
        serde_json::to_string(&expired).expect("json")
    );
    let path = dir.join("joined.jsonl");
    std::fs::write(&path, text).expect("write recording");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_diff_and_har_views_of_a_real_recording() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let rec = recording(dir.path()).await;
    let rec_s = rec.display().to_string();

    // report: the table, the summary, and the garbage line named.
    let r = mtlscope(&["report", &rec_s]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("{rec_s}:3: skipped: malformed JSON")),
        "{}",
        r.stderr
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{}", r.stdout);
    let rows: Vec<&str> = lines[1..4].to_vec();
    assert!(
        rows[0].contains("GET /secure?q=1") && rows[0].contains(" 200 "),
        "{rows:?}"
    );
    assert!(rows[0].contains("CN=client-good"), "{rows:?}");
    assert!(
        rows[1].contains(" 502 ") && rows[1].contains("(none)"),
        "{rows:?}"
    );
    assert!(rows[1].contains("no-client-cert"), "{rows:?}");
    assert!(rows[2].contains("cert-expired"), "{rows:?}");
    assert!(r
        .stdout
        .contains("3 records (3 exchanges, 0 connections); 1 line skipped"));
    assert!(
        r.stdout.contains("     1  no-client-cert\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("     1  cert-expired\n"), "{}", r.stdout);
    assert!(r.stdout.contains("     2  502\n"), "{}", r.stdout);

    // report --json --only-failures, and --id.
    let r = mtlscope(&["report", &rec_s, "--json", "--only-failures"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("report JSON");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(2), "{v:#}");
    assert_eq!(v["summary"]["statuses"]["502"], 2);
    assert_eq!(v["skipped"][0]["line"], 3);
    let r = mtlscope(&["report", &rec_s, "--json", "--id", "cert-expired"]);
    let v: Value = serde_json::from_str(&r.stdout).expect("report JSON");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(1), "{v:#}");
    assert_eq!(v["records"][0]["line"], 4);

    // report --html: self-contained, recorded strings escaped.
    let html_path = dir.path().join("report.html");
    let r = mtlscope(&["report", &rec_s, "--html", &html_path.display().to_string()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let html = std::fs::read_to_string(&html_path).expect("html written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script"),
        "a recorded <script> came out raw"
    );
    assert!(html.contains("&lt;script&gt;alert(&#39;body&#39;)&lt;/script&gt;"));
    assert!(html.contains("&lt;script&gt;alert(&#39;ua&#39;)&lt;/script&gt;"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for needle in [
        "CertificateRequest",
        "certificate_required",
        "SHA-256",
        "Fix:",
    ] {
        assert!(html.contains(needle), "html lacks {needle}");
    }
    assert!(!html.contains("s3cret"), "a redacted credential leaked");

    // diff: the working flow against the one without an identity, then the expired one.
    let r = mtlscope(&["diff", &format!("{rec_s}:1"), &format!("{rec_s}:2")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let diffs = r.stdout.split("Side by side").next().unwrap_or("");
    assert!(
        diffs.contains("upstream chain.subjects: [CN=client-good"),
        "{diffs}"
    );
    assert!(diffs.contains("vs []"), "{diffs}");
    assert!(
        diffs.contains("upstream identity.chosen: client-good.pem vs none"),
        "{diffs}"
    );
    assert!(diffs.contains("response.status: 200 vs 502"), "{diffs}");
    assert!(!diffs.contains("upstream cert_request.ca_names"), "{diffs}");
    let r = mtlscope(&["diff", &rec_s, &format!("{rec_s}:3"), "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("diff JSON");
    let differing: Vec<&str> = v["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|d| d["fact"].as_str())
        .collect();
    for fact in [
        "upstream chain.sha256",
        "upstream chain.not_after",
        "upstream identity.chosen",
        "findings",
    ] {
        assert!(differing.contains(&fact), "{fact} not in {differing:?}");
    }
    assert_eq!(v["b"]["line"], 4);

    // export --har: one entry per exchange, statuses, redaction kept, facts attached.
    let har_path = dir.path().join("out.har");
    let r = mtlscope(&["export", &rec_s, "--har", &har_path.display().to_string()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let har: Value =
        serde_json::from_str(&std::fs::read_to_string(&har_path).expect("har written"))
            .expect("HAR is JSON");
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(har["log"]["creator"]["name"], "mtlscope");
    let entries = har["log"]["entries"].as_array().expect("entries");
    let statuses: Vec<u64> = entries
        .iter()
        .filter_map(|e| e["response"]["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![200, 502, 502]);
    let e0 = &entries[0];
    assert_eq!(e0["request"]["method"], "GET");
    assert!(
        e0["request"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://localhost") && u.ends_with("/secure?q=1")),
        "{}",
        e0["request"]
    );
    assert_eq!(e0["request"]["queryString"][0]["name"], "q");
    let auth = e0["request"]["headers"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["name"] == "authorization"))
        .expect("authorization header kept");
    assert_eq!(auth["value"], "<redacted>");
    assert!(e0["timings"]["wait"].as_f64().is_some_and(|w| w >= 0.0));
    assert_eq!(
        e0["_mtlscope"]["upstream_leg"]["cert_request"]["phase"],
        "handshake"
    );
    assert_eq!(
        entries[1]["_mtlscope"]["findings"][0]["id"],
        "no-client-cert"
    );
    assert_eq!(
        entries[2]["response"]["content"]["text"],
        "<script>alert('body')</script>"
    );
}

#[test]
fn bad_input_exit_codes_and_damaged_files() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let missing = dir.path().join("missing.jsonl").display().to_string();
    let r = mtlscope(&["report", &missing]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("missing.jsonl"), "{}", r.stderr);
    let r = mtlscope(&["export", &missing, "--har", "/dev/null"]);
    assert_eq!(r.code, Some(2));
    let r = mtlscope(&["report"]);
    assert_eq!(r.code, Some(2));

    // Only damage: a newer schema, a truncated line, bytes that are not UTF-8.
    let junk = dir.path().join("junk.jsonl");
    let newer = r#"{"schema": 99, "kind": "exchange"}"#;
    let mut bytes = format!("{newer}\n\u{1b}[2J\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n{\"schema\": 1, \"kin");
    std::fs::write(&junk, bytes).expect("write");
    let junk_s = junk.display().to_string();
    let r = mtlscope(&["report", &junk_s]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(":1: skipped: schema 99 is newer"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(":3: skipped: malformed line: not UTF-8"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(":4: skipped: truncated last line"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(r
        .stdout
        .contains("0 records (0 exchanges, 0 connections); 4 lines skipped"));
    let r = mtlscope(&["diff", &junk_s, &junk_s]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("has no readable record"), "{}", r.stderr);
    let r = mtlscope(&[
        "export",
        &junk_s,
        "--har",
        &dir.path().join("x.har").display().to_string(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}
