//! `probe --via` and `diff --paths` run as a user runs them (the binary, with the test's own
//! proxy variables removed), and what their JSON says.

use super::process::run_bounded;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one command did.
pub struct Run {
    pub code: Option<i32>,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

/// Run `mtlscope ARGS` with `env` set and every proxy variable of the test's own environment
/// removed, bounded at 120 s.
pub fn mtlscope(args: &[&str], env: &[(&str, &str)]) -> Run {
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

pub fn ids(findings: &Value) -> Vec<String> {
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
pub fn path_findings(r: &Run) -> Vec<String> {
    let c = r.json["comparisons"].as_array().expect("comparisons");
    assert_eq!(c.len(), 1, "{:#}", r.json);
    ids(&c[0]["findings"])
}

/// Split a `probe --via` recording into the direct flows and the flows through a proxy (those
/// whose upstream leg recorded a `proxy_connect` event): the two recordings `diff --paths`
/// compares, as a direct probe and a probe through the device would have written them.
pub fn split(record: &Path, dir: &Path) -> (String, String) {
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
pub fn diff_paths(record: &Path) -> Vec<String> {
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

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
