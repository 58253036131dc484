//! The streaming views against what the whole-file readers printed, on a small two-run
//! keep-alive recording (`tests/data/views/small.jsonl`, written by `examples/gen_recording`
//! through mtlscope's own record sink; its outputs in `golden/` were captured before the views
//! streamed); `legs_from` across rotated files; the HAR against a HAR 1.2 schema; and the
//! command-line filters.

use mtlscope::facts::{Flow, Leg, Mode, RecordKind, Request, Response, ResponseSource, TlsVersion};
use mtlscope::record::{RecordSettings, Sink};
use mtlscope::recording::{Item, RecordStream};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/views")
}

/// `mtlscope ARGS` run in `dir`: exit code, stdout, stderr.
fn mtlscope(dir: &Path, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run mtlscope");
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("gzip");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    out.stdout
}

fn har_schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/har-1.2.schema.json"),
        )
        .expect("schema"),
    )
    .expect("schema JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid schema")
}

/// The HAR is HAR 1.2, and every entry carries its legs or names an earlier entry of its
/// connection that does.
fn check_har(har: &Value) {
    let errors: Vec<String> = har_schema()
        .iter_errors(har)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not HAR 1.2: {errors:#?}");
    let entries = har["log"]["entries"].as_array().expect("entries");
    for (i, e) in entries.iter().enumerate() {
        let m = &e["_mtlscope"];
        if let Some(src) = m["legs_same_as"]["entry"].as_u64() {
            let src = &entries[usize::try_from(src).unwrap()];
            assert!(
                src["_mtlscope"]["upstream_leg"].is_object(),
                "entry {i} names an entry without legs"
            );
            assert_eq!(
                src["_mtlscope"]["connection_id"], m["connection_id"],
                "entry {i}"
            );
            assert!(
                m.get("upstream_leg").is_none(),
                "entry {i} repeats its legs"
            );
        } else {
            assert!(
                m["upstream_leg"].is_object(),
                "entry {i} has neither legs nor a reference"
            );
        }
    }
}

#[test]
fn streaming_views_print_what_the_whole_file_readers_printed() {
    let golden = data().join("golden");
    let f = "../small.jsonl";
    let cases: &[(&[&str], &str)] = &[
        (&["report", f], "report.txt"),
        (&["report", f, "--json"], "report.json"),
        (&["report", f, "-v"], "report_explain.txt"),
        (&["report", f, "--only-failures"], "report_failures.txt"),
        (
            &["report", f, "--id", "no-client-cert", "--json"],
            "report_id.json",
        ),
        (
            &["report", f, "--run", "20260301T100000Z-777"],
            "report_run.txt",
        ),
        (
            &["diff", "../small.jsonl:1", "../small.jsonl:5"],
            "diff_1_5.txt",
        ),
        (
            &["diff", "../small.jsonl:2", "../small.jsonl:80", "--json"],
            "diff_2_80.json",
        ),
        (
            &["diff", f, "../small.jsonl:20260301T100000Z-777/5"],
            "diff_default_conn.txt",
        ),
        (
            &[
                "diff",
                "../small.jsonl:3",
                f,
                "--b-id",
                "20260301T100000Z-777/7",
                "--json",
            ],
            "diff_bid.json",
        ),
    ];
    for (args, want) in cases {
        let (code, stdout, stderr) = mtlscope(&golden, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        let expected = std::fs::read(golden.join(want)).unwrap();
        assert!(
            stdout == expected,
            "{args:?} differs from {want}:\n{}",
            String::from_utf8_lossy(&stdout)
        );
        // `diff` stops reading once it has both records, so it may never reach the bad line.
        if args[0] == "report" {
            assert!(
                stderr.contains("small.jsonl:61: skipped: malformed JSON"),
                "{stderr}"
            );
        }
    }
    let (code, _, stderr) = mtlscope(&golden, &["diff", f, "../small.jsonl:5", "--a-id", "3"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        std::fs::read_to_string(golden.join("diff_ambiguous.stderr")).unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let (code, _, stderr) = mtlscope(&golden, &["report", f, "--html", html.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        std::fs::read(&html).unwrap() == gunzip(&golden.join("report.html.gz")),
        "report --html differs"
    );

    let har = dir.path().join("all.har");
    let (code, _, stderr) = mtlscope(
        &golden,
        &[
            "export",
            f,
            "--har",
            har.to_str().unwrap(),
            "--har-legs",
            "all",
            "--har-der",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("(76 entries, 4 connection records)"),
        "{stderr}"
    );
    let old: Value = serde_json::from_slice(&gunzip(&golden.join("old.har.gz"))).unwrap();
    let new: Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    assert!(
        old == new,
        "--har-legs all --har-der is not the HAR the whole-file export wrote"
    );
}

#[test]
fn the_default_har_is_har_1_2_small_and_without_der() {
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("out.har");
    let rec = data().join("small.jsonl");
    let (code, _, stderr) = mtlscope(
        dir.path(),
        &[
            "export",
            rec.to_str().unwrap(),
            "--har",
            har.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&har).unwrap();
    assert!(!text.contains("_der\""), "DER hex without --har-der");
    let size = text.len() as f64 / std::fs::metadata(&rec).unwrap().len() as f64;
    assert!(size <= 4.0, "the HAR is {size:.1}× the recording");
    let v: Value = serde_json::from_str(&text).unwrap();
    check_har(&v);
    let entries = v["log"]["entries"].as_array().unwrap();
    let refs = entries
        .iter()
        .filter(|e| e["_mtlscope"]["legs_same_as"].is_object())
        .count();
    assert!(refs >= 40, "only {refs} entries name their legs' entry");
    // A failing exchange explains itself: its legs are in its own entry.
    for e in entries.iter().filter(|e| e["response"]["status"] == 502) {
        assert!(e["_mtlscope"]["upstream_leg"]["alerts"].is_array(), "{e}");
    }
}

#[test]
fn filters_apply_while_reading() {
    let golden = data().join("golden");
    let f = "../small.jsonl";
    let count = |extra: &[&str]| -> u64 {
        let mut args = vec!["report", f, "--json"];
        args.extend_from_slice(extra);
        let (code, out, stderr) = mtlscope(&golden, &args);
        assert_eq!(code, Some(0), "{extra:?}: {stderr}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        v["summary"]["records"].as_u64().unwrap()
    };
    assert_eq!(count(&[]), 80);
    assert_eq!(count(&["--status", "5xx"]), 5);
    assert_eq!(count(&["--status", "403,502"]), 7);
    assert_eq!(count(&["--status", "none"]), 4);
    assert_eq!(count(&["--finding", "no-client-cert"]), 5);
    assert_eq!(
        count(&[
            "--finding",
            "no-client-cert",
            "--run",
            "20260301T100000Z-777"
        ]),
        2
    );
    assert_eq!(count(&["--host", "svc2.example.test"]), 16);
    assert_eq!(count(&["--host", "*.example.test", "--status", "200"]), 69);
    assert_eq!(count(&["--since", "2999-01-01T00:00:00Z"]), 0);
    assert_eq!(count(&["--until", "2999-01-01T00:00:00Z"]), 80);
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("f.har");
    let (code, _, stderr) = mtlscope(
        &golden,
        &[
            "export",
            f,
            "--har",
            har.to_str().unwrap(),
            "--status",
            "5xx",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("(5 entries, 0 connection records)"),
        "{stderr}"
    );
    for (args, says) in [
        (
            &["report", f, "--status", "6xx"][..],
            "--status: \"6xx\" is not a status",
        ),
        (
            &["report", f, "--since", "yesterday"][..],
            "--since: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            &["report", f, "--finding", "no-such-id"][..],
            "--finding: \"no-such-id\" is not a finding id",
        ),
    ] {
        let (code, _, stderr) = mtlscope(&golden, args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// An exchange on connection `conn` whose legs are `legs` (shared, as the relay shares them).
fn exchange(conn: u64, index: u32, legs: &(Arc<Leg>, Arc<Leg>)) -> Flow {
    let mut f = Flow::new(Mode::Reverse, conn, time::OffsetDateTime::now_utc());
    f.kind = RecordKind::Exchange;
    f.exchange_index = Some(index);
    f.upstream = Some("server.test:8443".into());
    f.client_leg = Some(legs.0.clone());
    f.upstream_leg = Some(legs.1.clone());
    f.request = Some(Request {
        method: "GET".into(),
        uri: format!("/item/{index}"),
        version: mtlscope::facts::HttpVersion::Http11,
        at_ms: 1.0 + f64::from(index),
        ..Request::default()
    });
    f.response = Some(Response {
        status: 200,
        source: ResponseSource::Upstream,
        at_ms: 2.0 + f64::from(index),
        ..Response::default()
    });
    f
}

fn leg(sni: String) -> Arc<Leg> {
    Arc::new(Leg {
        tls_version: Some(TlsVersion::Tls13),
        alpn: Some("http/1.1".into()),
        sni: Some(sni),
        cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
        handshake_done_ms: Some(0.5),
        ..Leg::default()
    })
}

#[tokio::test]
async fn legs_from_resolves_across_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    let sink = Sink::open(&RecordSettings {
        path: Some(path.clone()),
        max_size: Some(6 * 1024),
    })
    .unwrap();
    // Four keep-alive connections, their exchanges interleaved, each longer than a file.
    let legs: Vec<(Arc<Leg>, Arc<Leg>)> = (0..4)
        .map(|c| {
            (
                leg(format!("c{c}.example.test")),
                leg(format!("u{c}.example.test")),
            )
        })
        .collect();
    for i in 0..40u32 {
        for (c, l) in legs.iter().enumerate() {
            sink.emit(exchange(c as u64 + 1, i, l)).await;
        }
    }
    for c in 1..=4 {
        sink.connection_closed(c).await;
    }
    let stats = sink.flush().await;
    assert!(stats.rotations >= 3, "{stats:?}");
    // The writer keeps nine rotated files: count what is left.
    assert!(stats.compacted > 0, "{stats:?}");
    // Oldest first: rec.jsonl.N … rec.jsonl.1 rec.jsonl.
    let mut files: Vec<PathBuf> = (1..=9)
        .rev()
        .map(|n| dir.path().join(format!("rec.jsonl.{n}")))
        .filter(|p| p.exists())
        .collect();
    files.push(path.clone());
    let compacted = files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .matches("\"legs_from\"")
                .count()
        })
        .sum::<usize>();
    assert!(compacted > 0);
    let lines: usize = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    let mut records = 0;
    for item in RecordStream::open(&files).unwrap() {
        let Item::Record(r) = item.unwrap() else {
            panic!("a skipped line in a fresh recording");
        };
        records += 1;
        let f = &r.flow;
        assert!(f.legs_from.is_none(), "{}: legs_from unresolved", r.label());
        let sni = f.upstream_leg.as_ref().and_then(|l| l.sni.clone());
        assert_eq!(
            sni,
            Some(format!("u{}.example.test", f.connection_id - 1)),
            "{}",
            r.label()
        );
    }
    assert_eq!(records, lines);
    assert!(records >= 40, "{records}");
    let names: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let har = dir.path().join("out.har");
    let mut args = vec![
        "export",
        "--har",
        har.to_str().unwrap(),
        "--har-legs",
        "all",
    ];
    args.extend(&names);
    let (code, _, stderr) = mtlscope(dir.path(), &args);
    assert_eq!(code, Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = v["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), lines);
    assert!(entries
        .iter()
        .all(|e| e["_mtlscope"]["upstream_leg"]["sni"].is_string()));
    let mut args = vec!["export", "--har", har.to_str().unwrap()];
    args.extend(&names);
    assert_eq!(mtlscope(dir.path(), &args).0, Some(0));
    check_har(&serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap());
}
