//! Several runs appending to one recording: every record carries its run, and selectors that
//! would be ambiguous (`diff --a-id 1`) refuse, listing the runs, while `RUN/ID` picks one.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One `mtlscope observe` run: relay one connection to a closed port, wait for its record, stop.
fn one_observed_connection(record: &Path, records_before: usize) {
    let closed = common::free_port().expect("free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["observe", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(format!("127.0.0.1:{closed}"))
        .arg("--record")
        .arg(record)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn observe");
    let mut line = String::new();
    let stderr = child.stderr.take().expect("stderr");
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("address")
        .to_string();
    drop(std::net::TcpStream::connect(&addr).expect("connect"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(record).len() <= records_before {
        assert!(Instant::now() < deadline, "no record");
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn lines(record: &Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn mtlscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn records_of_two_runs_are_told_apart() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let record = dir.path().join("rec.jsonl");
    one_observed_connection(&record, 0);
    one_observed_connection(&record, 1);
    let recs = lines(&record);
    assert_eq!(recs.len(), 2);
    let runs: Vec<&str> = recs
        .iter()
        .map(|r| r["run"].as_str().expect("run"))
        .collect();
    assert_eq!(recs[0]["connection_id"], recs[1]["connection_id"]);
    assert_ne!(runs[0], runs[1], "each process has its own run id");
    for run in &runs {
        let (stamp, pid) = run.split_once('-').expect("TIME-PID");
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{run}");
        assert!(pid.parse::<u32>().is_ok(), "{run}");
    }

    let file = record.to_str().expect("utf-8");
    let id = recs[0]["connection_id"].to_string();
    // Ambiguous: refused, naming both runs.
    let o = mtlscope(&["diff", file, file, "--a-id", &id, "--b-id", &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(runs[0]) && err.contains(runs[1]), "{err}");
    // RUN/ID picks one, by flag or in the file argument.
    let a = format!("{}/{id}", runs[0]);
    let b = format!("{file}:{}/{id}", runs[1]);
    let o = mtlscope(&["diff", file, &b, "--a-id", &a, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // report --run shows one run only.
    let o = mtlscope(&["report", file, "--json", "--run", runs[1]]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let rows = v["records"].as_array().expect("records");
    assert_eq!(rows.len(), 1, "{v:#}");
    assert_eq!(rows[0]["run"], runs[1]);
}
