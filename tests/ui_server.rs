//! The web view's guards, over plain HTTP: loopback unless allowed with a credential, the Basic
//! credential, the `Host` check (DNS rebinding), read-only routes, and the API's answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mtlscope");

/// A minimal recording: one connection record with no legs.
const RECORD: &str = r#"{"schema":1,"kind":"connection","mode":"reverse","connection_id":4,"started_at":"2026-01-15T10:00:00Z","client_leg":null,"upstream_leg":null,"error":"the peer closed the connection","findings":[]}"#;

struct Viewer {
    child: Child,
    addr: String,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn viewer(extra: &[&str]) -> (Viewer, tempfile::TempDir) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, format!("{RECORD}\n")).unwrap();
    let mut child = Command::new(BIN)
        .arg("ui")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Owned by a Viewer from here on, so a failed start still kills and reaps it.
    let mut v = Viewer {
        child,
        addr: String::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("mtlscope ui prints its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            v.addr = rest.trim_end_matches('/').to_string();
            return (v, dir);
        }
    }
}

/// Send a raw request head; return (status, headers, body).
fn request(addr: &str, head: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = h.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, h.to_ascii_lowercase(), b.to_string())
}

fn get(addr: &str, path: &str, extra: &str) -> (u16, String, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"),
    )
}

#[test]
fn a_remote_address_needs_allow_remote_and_a_credential() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, format!("{RECORD}\n")).unwrap();
    for extra in [&[][..], &["--allow-remote"][..], &["--ui-auth", "u:p"][..]] {
        let out = Command::new(BIN)
            .arg("ui")
            .arg(&file)
            .args(["--listen", "0.0.0.0:0"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(
            err.contains("--listen 0.0.0.0:0") && err.contains("--allow-remote"),
            "{err}"
        );
    }
    let out = Command::new(BIN)
        .args([
            "observe",
            "--upstream",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--ui", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--ui 0.0.0.0:0"), "{err}");
}

#[test]
fn credential_host_check_and_read_only_routes() {
    let (v, _dir) = viewer(&["--ui-auth", "alice:s3cret"]);
    let auth = "Authorization: Basic YWxpY2U6czNjcmV0\r\n";

    let (st, h, _) = get(&v.addr, "/", "");
    assert_eq!(st, 401);
    assert!(h.contains("www-authenticate: basic"), "{h}");
    assert_eq!(
        get(&v.addr, "/", "Authorization: Basic d3Jvbmc6d3Jvbmc=\r\n").0,
        401
    );

    let (st, h, body) = get(&v.addr, "/", auth);
    assert_eq!(st, 200);
    assert!(
        h.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{h}"
    );
    assert!(body.contains("<script src=\"/app.js\""), "{body}");

    // Another site's page reaching the port through DNS rebinding names its own host.
    let (st, _, _) = request(
        &v.addr,
        &format!(
            "GET /api/flows/1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n{auth}\r\n"
        ),
    );
    assert_eq!(st, 421);

    let (st, _, _) = request(
        &v.addr,
        &format!("POST /api/flows/1 HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n{auth}\r\n", v.addr),
    );
    assert_eq!(st, 405);

    let (st, _, body) = get(&v.addr, "/api/flows/1", auth);
    assert_eq!(st, 200);
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["row"]["connection"], "4");
    assert_eq!(d["row"]["error"], "the peer closed the connection");
    assert_eq!(d["keylog"], false);
    assert_eq!(get(&v.addr, "/api/flows/2", auth).0, 404);
    assert_eq!(get(&v.addr, "/api/flows/1/keylog.txt", auth).0, 404);
    assert_eq!(get(&v.addr, "/api/diff?a=1", auth).0, 400);
    let (st, _, body) = get(&v.addr, "/api/diff?a=1&b=1", auth);
    assert_eq!(st, 200);
    assert!(body.contains("\"differences\":[]"), "{body}");
}
