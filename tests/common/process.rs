//! Child processes for tests: long-running servers in their own process group (stopped on
//! drop, children included) and one-shot commands run to completion under a hard timeout.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to exit after SIGTERM before its process group is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A server process started in a new process group, so stopping it also stops the workers
/// it forked (Apache's children, which hold the listening socket too).
#[derive(Debug)]
pub struct ServerProcess {
    /// The server's main process; its pid is also the process group id.
    child: Child,
    /// Short name for messages (`nginx`, `apache2`).
    name: &'static str,
    /// Set once stopped, so a later stop never signals a process group id that may be reused.
    stopped: bool,
}

impl ServerProcess {
    /// Spawns `cmd` in its own process group with stdin closed and stdout/stderr sent to the
    /// given files (servers log there before their own error log is open).
    pub fn spawn(name: &'static str, mut cmd: Command, log: std::fs::File) -> Result<Self, String> {
        let log2 = log
            .try_clone()
            .map_err(|e| format!("clone log file: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd.spawn().map_err(|e| format!("spawn {name}: {e}"))?;
        Ok(ServerProcess {
            child,
            name,
            stopped: false,
        })
    }

    /// The exit status if the main process has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the whole process group: SIGTERM, a bounded wait, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.exited().is_some() {
            // The main process is gone; workers may still linger in the group.
            signal_group(self.child.id(), "KILL");
            return;
        }
        signal_group(self.child.id(), "TERM");
        if wait_bounded(&mut self.child, STOP_GRACE).is_none() {
            eprintln!(
                "{}: no exit {STOP_GRACE:?} after SIGTERM, killing",
                self.name
            );
            signal_group(self.child.id(), "KILL");
            let _ = self.child.kill();
            let _ = wait_bounded(&mut self.child, STOP_GRACE);
        }
        // Workers that outlived the master (they should not) must not keep the port.
        signal_group(self.child.id(), "KILL");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` to process group `pgid` with the shell's `kill` (no unsafe code, no procps
/// needed). Errors (group already gone) are ignored.
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} -{pgid} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Polls `child` until it exits or `timeout` passes.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// What a one-shot command did.
#[derive(Debug, Clone)]
pub struct ProcOutput {
    /// Exit code; `None` when killed by a signal (including our own timeout kill).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// True when the command was killed because it ran past its timeout.
    pub timed_out: bool,
}

/// Runs `cmd` to completion, feeding it `stdin` (then closing it), and kills it if it runs
/// longer than `timeout`. Blocking; from async code use [`run_bounded_async`].
pub fn run_bounded(mut cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> ProcOutput {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ProcOutput {
                code: None,
                stdout: Vec::new(),
                stderr: format!("spawn {:?}: {e}", cmd.get_program()).into_bytes(),
                timed_out: false,
            }
        }
    };
    // Pipes are drained and fed on threads so a chatty child never blocks on a full pipe.
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(data)) => Some(thread::spawn(move || {
            let _ = pipe.write_all(&data);
            // Dropping the pipe closes the child's stdin.
        })),
        _ => None,
    };
    let out_reader = child.stdout.take().map(drain);
    let err_reader = child.stderr.take().map(drain);

    let status = wait_bounded(&mut child, timeout);
    let timed_out = status.is_none();
    if timed_out {
        let _ = child.kill();
        let _ = wait_bounded(&mut child, STOP_GRACE);
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    ProcOutput {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
    }
}

/// [`run_bounded`] on tokio's blocking pool, so an async test's runtime (which may be serving
/// the proxy under test) keeps running while the client waits.
pub async fn run_bounded_async(
    cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> ProcOutput {
    match tokio::task::spawn_blocking(move || run_bounded(cmd, stdin, timeout)).await {
        Ok(out) => out,
        Err(e) => ProcOutput {
            code: None,
            stdout: Vec::new(),
            stderr: format!("client task failed: {e}").into_bytes(),
            timed_out: false,
        },
    }
}

/// Reads a pipe to its end on a new thread.
fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// How many fresh ports a server start tries before giving up.
const START_ATTEMPTS: usize = 5;
/// How long a started server gets to accept its first TCP connection.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a server on a free 127.0.0.1 port and waits until it accepts TCP.
///
/// `prepare(port)` writes the server's config for that port and returns the command to run.
/// `logs` are the server's own log files: removed before each attempt and read for the error
/// message if it exits early. A start that fails with "address already in use" (another
/// process took the port between our probe and the server's bind) is retried on a new port.
pub fn start_server(
    name: &'static str,
    dir: &std::path::Path,
    logs: &[std::path::PathBuf],
    mut prepare: impl FnMut(u16) -> Result<Command, String>,
) -> Result<(ServerProcess, u16), String> {
    let console = dir.join(format!("{name}.console.log"));
    let mut last_failure = String::new();
    for _ in 0..START_ATTEMPTS {
        for p in logs.iter().chain(std::iter::once(&console)) {
            let _ = std::fs::remove_file(p);
        }
        let port = super::net::free_port()?;
        let cmd = prepare(port)?;
        let out = std::fs::File::create(&console)
            .map_err(|e| format!("create {}: {e}", console.display()))?;
        let mut server = ServerProcess::spawn(name, cmd, out)?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.exited() {
                let output = read_logs(logs.iter().chain(std::iter::once(&console)));
                last_failure = format!("{name} exited with {status} on port {port}:\n{output}");
                break;
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok((server, port));
            }
            if Instant::now() >= deadline {
                server.stop();
                let output = read_logs(logs.iter().chain(std::iter::once(&console)));
                return Err(format!(
                    "{name} did not accept on {addr} within {START_TIMEOUT:?}:\n{output}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        if !last_failure.contains("Address already in use") {
            return Err(last_failure);
        }
    }
    Err(format!(
        "{name}: port taken {START_ATTEMPTS} times in a row; last: {last_failure}"
    ))
}

/// The concatenated contents of whichever of `paths` exist.
pub fn read_logs<'a>(paths: impl Iterator<Item = &'a std::path::PathBuf>) -> String {
    let mut all = String::new();
    for p in paths {
        if let Ok(text) = std::fs::read_to_string(p) {
            all.push_str(&format!("--- {}\n{text}", p.display()));
        }
    }
    all
}

/// Polls `path` until it contains `needle` or `timeout` passes; servers may write a log line
/// just after the response that caused it.
pub fn wait_for_log(path: &std::path::Path, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A real server started from its own temp dir: the process, its port, and the directory holding
/// its config and logs. Nginx and Apache are this plus how they are configured.
#[derive(Debug)]
pub struct RunningServer {
    /// The server process. Declared first so it is stopped before `dir` is removed.
    process: ServerProcess,
    /// The port it listens on, on 127.0.0.1.
    port: u16,
    /// Config, pid, logs (and document root); removed on drop.
    dir: tempfile::TempDir,
}

impl RunningServer {
    /// Wrap a started server.
    pub fn new(process: ServerProcess, port: u16, dir: tempfile::TempDir) -> Self {
        RunningServer { process, port, dir }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT`. For a server certificate that names only `localhost`, use
    /// [`RunningServer::localhost_url`] with curl's `--resolve localhost:PORT:127.0.0.1`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `https://localhost:PORT`.
    pub fn localhost_url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// `127.0.0.1:PORT`, for `openssl s_client -connect` and TCP clients.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The temp dir holding config and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The error log so far (empty if unreadable).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The access log so far (empty if unreadable).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits until the error log contains `needle`, at most `timeout`.
    pub fn wait_for_error_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for_log(&self.dir.path().join("error.log"), needle, timeout)
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The lines a child writes to `out`, sent one by one from a reader thread as they come.
pub fn lines_of(out: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The lines received until the text so far satisfies `done`, or `timeout` passes, or the
/// writer closes, joined with newlines. Waits on the lines themselves, never on a clock tick.
pub fn read_until(
    lines: &std::sync::mpsc::Receiver<String>,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    while !done(&text) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(_) => break,
        }
    }
    text
}
