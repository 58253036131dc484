//! `mtlscope report` shows the findings a recording carries and never diagnoses;
//! `report --rediagnose` applies this mtlscope's rules. The recording is old-style: records
//! without `"diagnosed"`, one written without findings and one with a finding today's rules do
//! not draw (as a recording made by an older mtlscope, or by hand, can be).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// A real 502 record (`no-client-cert` today) from the views' test recording.
fn no_client_cert_record() -> Value {
    let rec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/views/small.jsonl");
    let text = std::fs::read_to_string(rec).expect("small.jsonl");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["response"]["status"] == 502)
        .expect("a 502 record")
}

/// `mtlscope report --json FILE [--rediagnose]`: its rows, and its stderr.
fn report(file: &Path, rediagnose: bool) -> (Vec<Value>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.args(["report", "--json"]).arg(file);
    if rediagnose {
        cmd.arg("--rediagnose");
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run mtlscope");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    (v["records"].as_array().expect("records").clone(), stderr)
}

fn ids(row: &Value) -> Vec<&str> {
    row["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn report_shows_recorded_findings_and_rediagnose_applies_todays_rules() {
    let record = no_client_cert_record();
    assert!(record.get("diagnosed").is_none(), "an old-style record");
    let mut without = record.clone();
    without["findings"] = Value::Array(vec![]);
    let mut stale = record.clone();
    stale["connection_id"] = Value::from(9001);
    let mut finding = record["findings"][0].clone();
    finding["id"] = Value::from("unexplained");
    stale["findings"] = Value::Array(vec![finding]);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let file = dir.path().join("old.jsonl");
    std::fs::write(&file, format!("{without}\n{stale}\n")).expect("write recording");

    let (rows, stderr) = report(&file, false);
    assert_eq!(
        ids(&rows[0]),
        Vec::<&str>::new(),
        "report diagnosed a record"
    );
    assert_eq!(
        ids(&rows[1]),
        vec!["unexplained"],
        "report changed a finding"
    );
    assert!(rows.iter().all(|r| r["diagnosed_on_read"] == false));
    assert!(
        stderr.contains("2 record(s)") && stderr.contains("--rediagnose"),
        "{stderr}"
    );

    let (rows, stderr) = report(&file, true);
    for row in &rows {
        assert_eq!(ids(row).first().copied(), Some("no-client-cert"), "{row:#}");
        assert_eq!(row["diagnosed_on_read"], true);
    }
    assert!(!stderr.contains("--rediagnose"), "{stderr}");
}

#[test]
fn a_new_record_says_it_was_diagnosed_and_reads_back_unchanged() {
    // What the writer writes for a new flow: its findings, and "diagnosed": true.
    let mut record = no_client_cert_record();
    record["diagnosed"] = Value::Bool(true);
    record["findings"] = Value::Array(vec![]);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let file = dir.path().join("new.jsonl");
    std::fs::write(&file, format!("{record}\n")).expect("write recording");
    let (rows, stderr) = report(&file, false);
    // Diagnosed when it was written and nothing found: shown as recorded, with no note.
    assert_eq!(ids(&rows[0]), Vec::<&str>::new());
    assert!(!stderr.contains("--rediagnose"), "{stderr}");
}
