//! A real browser for the web view's tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver, via fantoccini), `mtlscope` started as the binary with the
//! addresses it prints collected, and a plain HTTP/1.1 GET.

use super::wait_for_tcp;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one wait for the page may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A child process (and its process group: chromedriver's Chromium) killed on drop.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The shell's builtin `kill`: procps-ng 4.0.2's /usr/bin/kill sends `-SIG -PGID` to
        // every process on the machine instead of the group.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -KILL -{} 2>/dev/null", self.child.id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `mtlscope ARGS` and collect, from stderr, the lines that name the addresses.
pub fn start_mtlscope(args: &[&str], wanted: &[&str]) -> (Proc, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn mtlscope");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let proc = Proc { child };
    let deadline = Instant::now() + WAIT;
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    let mut seen = Vec::new();
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("mtlscope did not start; stderr: {seen:#?}"));
        for (i, w) in wanted.iter().enumerate() {
            if let Some(rest) = line.split(w).nth(1) {
                let addr = rest
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .split(['/', ' '])
                    .next()
                    .unwrap_or("")
                    .to_string();
                found[i] = Some(addr);
            }
        }
        seen.push(line);
    }
    (proc, found.into_iter().flatten().collect())
}

/// A GET over plain HTTP/1.1; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the web view");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Headless Chromium under chromedriver, with a WebDriver session.
pub struct Browser {
    pub client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = super::free_port().expect("free port");
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver (Debian package chromium-driver)");
        let driver = Proc { child: driver };
        wait_for_tcp(([127, 0, 0, 1], port).into(), WAIT).expect("chromedriver listens");
        let profile = super::tmpdir();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1500",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session with headless Chromium");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Run `script` (a function body returning a value) until it returns something truthy.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut last;
        loop {
            match self.client.execute(script, vec![]).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => last = v,
                Err(e) => last = json!(e.to_string()),
            }
            if Instant::now() > deadline {
                let text = self.js("return document.body.innerText").await;
                panic!("waited for {what}; last {last}; page text:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect(script)
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}
