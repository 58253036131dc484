//! The README's walkthrough ("## Using it" up to the next top-level heading), replayed as written: every
//! indented command is read from README.md and run by `sh` in a fresh directory, with the
//! `mtlscope` binary on `PATH`, `HOME` in that directory, the walkthrough's ports swapped for
//! free ones, and a real nginx on the port the README calls `localhost:9443` (started once the
//! README's own `certs dev` has made the PKI). Long-running commands (`reverse`, `forward`,
//! `observe`) run in the background until the next one starts; `curl` must get nginx's 200.
//! Change the README's commands and this test runs the new ones.

mod common;

use common::process::run_bounded;
use common::{Nginx, NginxConfig, VerifyClient};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long any one command may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Proxy variables that would send curl elsewhere.
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// The commands of the walkthrough, continuation lines joined, in README order.
fn walkthrough_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme.find("## Using it").expect("a '## Using it' section");
    // The walkthrough is the "Using it" section, up to the next top-level heading.
    let end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 1 + i);
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in readme[start..end].lines() {
        let Some(code) = line.strip_prefix("    ") else {
            continue;
        };
        let code = code.trim();
        let continued = code.ends_with('\\');
        current.push_str(code.trim_end_matches('\\').trim_end());
        if continued {
            current.push(' ');
        } else {
            commands.push(std::mem::take(&mut current));
        }
    }
    commands
}

/// A background command, stopped on drop as its user would: Ctrl-C (SIGINT), so it writes
/// its last records, then a bounded wait, then SIGKILL.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -INT {} 2>/dev/null", self.0.id()))
            .status();
        let deadline = std::time::Instant::now() + LIMIT;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shell every command runs in.
struct Shell {
    /// The working directory (and HOME).
    dir: PathBuf,
    /// `PATH` with the binary's directory first.
    path: String,
    /// README port → port used here.
    ports: Vec<(&'static str, u16)>,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("exec {}", self.adapt(line)))
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env("PATH", &self.path);
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        cmd
    }

    /// The line with the README's ports replaced.
    fn adapt(&self, line: &str) -> String {
        let mut out = line.to_string();
        for (from, to) in &self.ports {
            out = out.replace(&format!(":{from}"), &format!(":{to}"));
        }
        out
    }

    /// Start a long-running command and wait (bounded) for its "listening on" line.
    fn start(&self, line: &str) -> Background {
        let mut child = self
            .command(line)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let deadline = std::time::Instant::now() + LIMIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("listening on") => return Background(child),
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = child.kill();
                    panic!("`{}` did not start listening: {seen:#?}", self.adapt(line));
                }
            }
        }
    }

    /// Run a one-shot command; its exit code and output.
    fn run(&self, line: &str) -> (Option<i32>, String, String) {
        let out = run_bounded(self.command(line), None, LIMIT);
        assert!(!out.timed_out, "`{}` ran past {LIMIT:?}", self.adapt(line));
        (
            out.code,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// nginx wanting client certificates from the walkthrough's dev root, on `port`'s behalf.
fn nginx_for(dir: &Path) -> Nginx {
    let out = dir.join("certs-dev/out");
    Nginx::start(NginxConfig {
        verify_client: VerifyClient::On,
        client_certificate: Some(out.join("root.pem")),
        verify_depth: Some(3),
        ..NginxConfig::new(out.join("server.pem"), out.join("server.key"))
    })
    .expect("start nginx")
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let commands = walkthrough_commands();
    assert!(
        commands.len() >= 10,
        "the walkthrough lost its commands: {commands:#?}"
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mtlscope"));
    let bin_dir = bin.parent().expect("binary directory");
    let mut shell = Shell {
        dir: dir.path().to_path_buf(),
        path: format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        ports: Vec::new(),
    };
    let mut nginx: Option<Nginx> = None;
    let mut background: Option<Background> = None;
    let mut ran = Vec::new();
    for line in &commands {
        let program = line.split_whitespace().next().unwrap_or("");
        let sub = line.split_whitespace().nth(1).unwrap_or("");
        match (program, sub) {
            ("mtlscope", "reverse" | "forward" | "observe") => {
                let n = nginx.get_or_insert_with(|| nginx_for(dir.path()));
                if shell.ports.is_empty() {
                    shell.ports = vec![
                        ("9443", n.port()),
                        ("8443", common::free_port().expect("port")),
                        ("8080", common::free_port().expect("port")),
                        ("9444", common::free_port().expect("port")),
                    ];
                }
                // Stop the previous one first: ports are reused.
                drop(background.take());
                background = Some(shell.start(line));
            }
            ("curl", _) => {
                assert!(background.is_some(), "`{line}` needs a running mtlscope");
                let (code, out, err) = shell.run(line);
                assert_eq!(code, Some(0), "`{}`: {err}", shell.adapt(line));
                assert!(
                    out.contains("verify=SUCCESS"),
                    "`{}` did not reach nginx with a good certificate: {out}{err}",
                    shell.adapt(line)
                );
            }
            ("mtlscope", _) => {
                if sub == "report" || sub == "diff" || sub == "export" {
                    // The user has stopped the proxy (Ctrl-C) before reading what it recorded.
                    drop(background.take());
                }
                if sub == "probe" || sub == "report" || sub == "diff" || sub == "export" {
                    let n = nginx.get_or_insert_with(|| nginx_for(dir.path()));
                    if shell.ports.is_empty() {
                        shell.ports = vec![("9443", n.port())];
                    }
                }
                let (code, out, err) = shell.run(line);
                assert_eq!(code, Some(0), "`{}`:\n{out}\n{err}", shell.adapt(line));
            }
            _ => panic!("the walkthrough has a command this test does not know: `{line}`"),
        }
        ran.push(line.clone());
    }
    drop(background);
    // The recording the walkthrough made holds both reverse runs' exchanges, each with its run.
    let text = std::fs::read_to_string(dir.path().join("flows.jsonl")).expect("flows.jsonl");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    assert!(records.iter().all(|r| r["run"].is_string()));
    assert!(
        dir.path().join("flows.har").exists(),
        "export wrote flows.har"
    );
    assert!(
        ran.iter().any(|l| l.starts_with("mtlscope probe")),
        "{ran:#?}"
    );
}
