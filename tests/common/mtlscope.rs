//! The `mtlscope` binary as a child process under test, and reading its recording.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `mtlscope` child, killed on drop.
pub struct Mtlscope {
    /// The child process.
    child: Child,
    /// The address it reported listening on.
    pub addr: String,
    /// Its recording file.
    pub record: PathBuf,
    /// Keeps the temp dir alive.
    _dir: tempfile::TempDir,
}

impl Drop for Mtlscope {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mtlscope {
    /// Start `mtlscope <args> --listen 127.0.0.1:0 --record <tmp>` and wait (≤ 15 s) for its
    /// "listening on" line.
    pub fn start(args: &[&str]) -> Mtlscope {
        Mtlscope::start_command(Command::new(env!("CARGO_BIN_EXE_mtlscope")), args)
    }

    /// [`Mtlscope::start`] allowed to run on CPU 0 only (`taskset -c 0`), as on a one-CPU
    /// machine or container.
    pub fn start_on_one_cpu(args: &[&str]) -> Mtlscope {
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", "0", env!("CARGO_BIN_EXE_mtlscope")]);
        Mtlscope::start_command(taskset, args)
    }

    fn start_command(mut command: Command, args: &[&str]) -> Mtlscope {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let record = dir.path().join("record.jsonl");
        let mut child = command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--record"])
            .arg(&record)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mtlscope");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches(',')
                        .to_string();
                    let _ = tx.send(Ok(addr));
                } else {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(addr)) => {
                    return Mtlscope {
                        child,
                        addr,
                        record,
                        _dir: dir,
                    }
                }
                Ok(Err(line)) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("mtlscope did not start listening; stderr: {seen:#?}");
                }
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (e.g. `TERM`) to the child.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Wait up to `timeout` for the child to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (≤ 20 s) for the child, told to stop (SIGTERM), to exit with success, and return
    /// every record of its recording (each line must be a whole record).
    pub fn exited_records(&mut self) -> Vec<Value> {
        let status = self
            .wait_exit(Duration::from_secs(20))
            .expect("mtlscope exited");
        assert!(status.success(), "{status:?}");
        let text = std::fs::read_to_string(&self.record).expect("recording");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a whole record"))
            .collect()
    }

    /// Wait (≤ 10 s) until the recording has at least `n` records, and return them.
    pub fn records(&self, n: usize) -> Vec<Value> {
        wait_records(&self.record, n)
    }
}

/// Wait (≤ 10 s) until `path` has at least `n` JSON lines, and return them all.
pub fn wait_records(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Only whole lines: a record longer than the writer's buffer reaches the file in
        // several writes, and this read may land between them.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let records: Vec<Value> = complete
            .lines()
            .map(|l| serde_json::from_str(l).expect("record is JSON"))
            .collect();
        if records.len() >= n || Instant::now() > deadline {
            assert!(
                records.len() >= n,
                "expected {n} records, got {}: {records:#?}",
                records.len()
            );
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finding ids of a record.
pub fn finding_ids(record: &Value) -> Vec<String> {
    record["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
