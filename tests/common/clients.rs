//! Real clients for tests: `curl` and `openssl s_client`, each run under a hard timeout.
//!
//! Both are builders: set the options a test needs, then `run()` (blocking, for plain `#[test]`)
//! or `run_async().await` (for `#[tokio::test]`, where blocking would stall the server under
//! test). Proxy variables from the environment are removed so 127.0.0.1 is reached directly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{run_bounded, run_bounded_async, ProcOutput};
use super::TlsVersion;

/// Proxy environment variables curl and OpenSSL would otherwise honour.
const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// Extra time the process gets past its own time limit before it is killed.
const KILL_SLACK: Duration = Duration::from_secs(5);

/// A `curl` invocation. `--max-time` is always passed; `-w '%{http_code}'` gives the status.
#[derive(Debug, Clone)]
pub struct Curl {
    /// The URL requested.
    url: String,
    /// Options in the order they were added.
    args: Vec<String>,
    /// curl's own `--max-time`; the process is killed a little after it.
    max_time: Duration,
}

/// What a curl run produced.
#[derive(Debug, Clone)]
pub struct CurlResult {
    /// curl's exit code (0 = transfer done, 35 = TLS handshake failed, 56 = receive failure,
    /// 28 = timeout...); `None` if curl was killed.
    pub exit_code: Option<i32>,
    /// The HTTP status, 0 when no response arrived.
    pub status: u16,
    /// The response body (lossy UTF-8).
    pub body: String,
    /// The response headers as received, status line included (curl's `-D`).
    pub headers: String,
    /// curl's stderr (its error message; the TLS trace too with [`Curl::verbose`]).
    pub stderr: String,
    /// True when our hard timeout killed curl.
    pub timed_out: bool,
}

impl Curl {
    /// A GET of `url` with a 10 s `--max-time`.
    pub fn new(url: impl Into<String>) -> Self {
        Curl {
            url: url.into(),
            args: Vec::new(),
            max_time: Duration::from_secs(10),
        }
    }

    /// Adds one raw option.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds an option and its value.
    fn opt(self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.arg(name).arg(value)
    }

    /// Client certificate (PEM).
    pub fn cert(self, path: impl AsRef<Path>) -> Self {
        self.opt("--cert", path.as_ref())
    }

    /// Client private key (PEM).
    pub fn key(self, path: impl AsRef<Path>) -> Self {
        self.opt("--key", path.as_ref())
    }

    /// Client certificate and key together.
    pub fn identity(self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.cert(cert).key(key)
    }

    /// CA bundle to verify the server with.
    pub fn cacert(self, path: impl AsRef<Path>) -> Self {
        self.opt("--cacert", path.as_ref())
    }

    /// Skip server certificate verification (`-k`).
    pub fn insecure(self) -> Self {
        self.arg("--insecure")
    }

    /// Highest TLS version offered (`--tls-max`).
    pub fn tls_max(self, v: TlsVersion) -> Self {
        self.opt("--tls-max", v.number())
    }

    /// Lowest TLS version accepted: `--tlsv1.2` or `--tlsv1.3`.
    pub fn tls_min(self, v: TlsVersion) -> Self {
        match v {
            TlsVersion::Tls12 => self.arg("--tlsv1.2"),
            TlsVersion::Tls13 => self.arg("--tlsv1.3"),
        }
    }

    /// Exactly one TLS version (min and max).
    pub fn tls_only(self, v: TlsVersion) -> Self {
        self.tls_min(v).tls_max(v)
    }

    /// HTTP(S) proxy (`-x`).
    pub fn proxy(self, url: impl AsRef<str>) -> Self {
        self.opt("-x", url.as_ref())
    }

    /// CA bundle to verify an HTTPS proxy with.
    pub fn proxy_cacert(self, path: impl AsRef<Path>) -> Self {
        self.opt("--proxy-cacert", path.as_ref())
    }

    /// Skip verification of an HTTPS proxy's certificate.
    pub fn proxy_insecure(self) -> Self {
        self.arg("--proxy-insecure")
    }

    /// Resolve `host:port` to `addr` (`--resolve`), to request a name on 127.0.0.1.
    pub fn resolve(self, host: &str, port: u16, addr: &str) -> Self {
        self.opt("--resolve", format!("{host}:{port}:{addr}"))
    }

    /// A request header, `Name: value`.
    pub fn header(self, h: impl AsRef<str>) -> Self {
        self.opt("-H", h.as_ref())
    }

    /// Force HTTP/1.1.
    pub fn http1_1(self) -> Self {
        self.arg("--http1.1")
    }

    /// `-v`: the TLS and HTTP trace goes to [`CurlResult::stderr`].
    pub fn verbose(self) -> Self {
        self.arg("-v")
    }

    /// curl's `--max-time` (default 10 s).
    pub fn max_time(mut self, d: Duration) -> Self {
        self.max_time = d;
        self
    }

    /// Runs curl, blocking the calling thread.
    pub fn run(&self) -> CurlResult {
        let (cmd, files) = match self.command() {
            Ok(v) => v,
            Err(e) => return CurlResult::failed(e),
        };
        let out = run_bounded(cmd, None, self.max_time + KILL_SLACK);
        CurlResult::from_output(out, &files)
    }

    /// Runs curl on tokio's blocking pool.
    pub async fn run_async(&self) -> CurlResult {
        let (cmd, files) = match self.command() {
            Ok(v) => v,
            Err(e) => return CurlResult::failed(e),
        };
        let out = run_bounded_async(cmd, None, self.max_time + KILL_SLACK).await;
        CurlResult::from_output(out, &files)
    }

    /// The command line, and the temp dir curl writes body and headers to (kept alive by the
    /// caller until the output is read).
    fn command(&self) -> Result<(Command, tempfile::TempDir), String> {
        let files = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .map_err(|e| format!("curl temp dir: {e}"))?;
        let mut cmd = Command::new("curl");
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        cmd.arg("-sS")
            .arg("--max-time")
            .arg(format!("{:.3}", self.max_time.as_secs_f64()))
            .arg("-o")
            .arg(files.path().join("body"))
            .arg("-D")
            .arg(files.path().join("headers"))
            .arg("-w")
            .arg("%{http_code}")
            .args(&self.args)
            .arg("--")
            .arg(&self.url);
        Ok((cmd, files))
    }
}

impl CurlResult {
    /// A result for a curl that could not even be started.
    fn failed(why: String) -> Self {
        CurlResult {
            exit_code: None,
            status: 0,
            body: String::new(),
            headers: String::new(),
            stderr: why,
            timed_out: false,
        }
    }

    /// The value of the last response header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .next_back()
    }

    fn from_output(out: ProcOutput, files: &tempfile::TempDir) -> Self {
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let body = std::fs::read(files.path().join("body")).unwrap_or_default();
        let headers = std::fs::read(files.path().join("headers")).unwrap_or_default();
        CurlResult {
            exit_code: out.code,
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            headers: String::from_utf8_lossy(&headers).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            timed_out: out.timed_out,
        }
    }
}

/// An `openssl s_client` run that sends one request on stdin, closes stdin, and reads until
/// the server closes (`-ign_eof`), all under a hard timeout. `-nocommands` keeps request
/// lines from being read as s_client commands.
#[derive(Debug, Clone)]
pub struct SClient {
    /// `host:port` for `-connect`.
    connect: String,
    /// Options in the order they were added.
    args: Vec<String>,
    /// Bytes written to stdin before closing it.
    request: Vec<u8>,
    /// The process is killed after this long.
    timeout: Duration,
}

/// What an s_client run produced.
#[derive(Debug, Clone)]
pub struct SClientResult {
    /// s_client's exit code; `None` if it was killed.
    pub exit_code: Option<i32>,
    /// The status of the first HTTP response line seen, if any.
    pub status: Option<u16>,
    /// The HTTP response (from its status line on), empty if none arrived.
    pub response: String,
    /// All of stdout: handshake summary, acceptable CA names, the response.
    pub stdout: String,
    /// stderr: verification messages, TLS errors and alerts.
    pub stderr: String,
    /// True when our timeout killed s_client.
    pub timed_out: bool,
}

impl SClient {
    /// Connects to `host:port` and sends `GET / HTTP/1.1` with `Connection: close`;
    /// times out after 10 s.
    pub fn new(connect: impl Into<String>) -> Self {
        let connect = connect.into();
        let host = connect
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| connect.clone());
        SClient {
            connect,
            args: Vec::new(),
            request: http_get("/", &host),
            timeout: Duration::from_secs(10),
        }
    }

    /// Adds one raw option.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    fn opt(self, name: &str, value: &Path) -> Self {
        let value = value.to_string_lossy().into_owned();
        self.arg(name).arg(value)
    }

    /// SNI name (`-servername`).
    pub fn servername(self, name: &str) -> Self {
        self.arg("-servername").arg(name)
    }

    /// Client certificate (`-cert`).
    pub fn cert(self, path: impl AsRef<Path>) -> Self {
        self.opt("-cert", path.as_ref())
    }

    /// Client key (`-key`).
    pub fn key(self, path: impl AsRef<Path>) -> Self {
        self.opt("-key", path.as_ref())
    }

    /// Client certificate and key together.
    pub fn identity(self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.cert(cert).key(key)
    }

    /// CA file to verify the server with (`-CAfile`).
    pub fn cafile(self, path: impl AsRef<Path>) -> Self {
        self.opt("-CAfile", path.as_ref())
    }

    /// Only this TLS version: `-tls1_2` or `-tls1_3`.
    pub fn tls(self, v: TlsVersion) -> Self {
        match v {
            TlsVersion::Tls12 => self.arg("-tls1_2"),
            TlsVersion::Tls13 => self.arg("-tls1_3"),
        }
    }

    /// Offer TLS 1.3 post-handshake authentication (`-enable_pha`).
    pub fn enable_pha(self) -> Self {
        self.arg("-enable_pha")
    }

    /// Sends `GET path HTTP/1.1` with `Host` and `Connection: close` instead of `GET /`.
    pub fn get(mut self, path: &str, host: &str) -> Self {
        self.request = http_get(path, host);
        self
    }

    /// Sends these raw bytes instead of the default request.
    pub fn request(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.request = bytes.into();
        self
    }

    /// Hard timeout for the whole run (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Runs s_client, blocking the calling thread.
    pub fn run(&self) -> SClientResult {
        SClientResult::from_output(run_bounded(
            self.command(),
            Some(self.request.clone()),
            self.timeout,
        ))
    }

    /// Runs s_client on tokio's blocking pool.
    pub async fn run_async(&self) -> SClientResult {
        SClientResult::from_output(
            run_bounded_async(self.command(), Some(self.request.clone()), self.timeout).await,
        )
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("openssl");
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        cmd.arg("s_client")
            .arg("-connect")
            .arg(&self.connect)
            .arg("-ign_eof")
            .arg("-nocommands")
            .args(&self.args);
        cmd
    }
}

impl SClientResult {
    fn from_output(out: ProcOutput) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let response = stdout
            .find("HTTP/1.")
            .map(|i| stdout[i..].to_string())
            .unwrap_or_default();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok());
        SClientResult {
            exit_code: out.code,
            status,
            response,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            timed_out: out.timed_out,
        }
    }
}

/// A minimal HTTP/1.1 GET that asks the server to close afterwards.
fn http_get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}
