//! Real third-party middleboxes for path tests, each from its own temporary directory on a free
//! loopback port: mitmproxy (`mitmdump`, intercepting TLS with its own CA) and squid (a plain
//! CONNECT tunnel). Stopped (process group and all) when dropped.

use super::process::{start_server, ServerProcess};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running middlebox.
pub struct Middlebox {
    /// The process (its group is stopped on drop).
    _process: ServerProcess,
    /// The loopback port it listens on.
    pub port: u16,
    /// Its working directory (config, logs, mitmproxy's CA).
    pub dir: tempfile::TempDir,
}

impl Middlebox {
    /// `http://127.0.0.1:PORT`, for `--via`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    all.push_str(&format!("--- {}\n", p.display()));
                    all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        all
    }
}

/// The `mitmdump` command: from PATH (pip's scripts directory), else from pyenv's or the
/// user's script directories, else through `python3` (the package installed without scripts
/// on PATH).
fn mitmdump() -> Command {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("mitmdump").is_file()))
        .unwrap_or(false);
    if on_path {
        return Command::new("mitmdump");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    for dir in [
        home.join(".local/bin"),
        home.join(".pyenv/shims"),
        "/usr/local/bin".into(),
    ] {
        if dir.join("mitmdump").is_file() {
            return Command::new(dir.join("mitmdump"));
        }
    }
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "from mitmproxy.tools.main import mitmdump; mitmdump()",
    ]);
    c
}

/// mitmproxy in its regular (intercepting) mode: it terminates the client's TLS with leaves
/// from its own CA and opens its own TLS to the server, without verifying the server (the
/// test's server has a dev certificate) and without a client certificate of its own.
pub fn mitmproxy() -> Middlebox {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let log = dir.path().join("mitmdump.log");
    let (process, port) =
        start_server("mitmdump", dir.path(), std::slice::from_ref(&log), |port| {
            let mut c = mitmdump();
            c.args([
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                &port.to_string(),
            ])
            .args(["--set", &format!("confdir={}", dir.path().display())])
            .args(["--ssl-insecure", "--set", "termlog_verbosity=warn"])
            .current_dir(dir.path());
            Ok(c)
        })
        .expect("start mitmdump (pip install mitmproxy)");
    let mb = Middlebox {
        _process: process,
        port,
        dir,
    };
    // The CA is written at start-up; wait for it (bounded).
    let ca = mitm_ca(&mb);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ca.is_file() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ca.is_file(), "mitmproxy wrote no CA:\n{}", mb.logs());
    mb
}

/// mitmproxy's CA certificate (what a client would have to trust).
pub fn mitm_ca(mb: &Middlebox) -> PathBuf {
    mb.dir.path().join("mitmproxy-ca-cert.pem")
}

/// squid as a plain CONNECT tunnel from localhost to any port, with no cache, its own pid file
/// and logs.
pub fn squid() -> Middlebox {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    // squid drops root privileges to its own user, which must still write the logs here.
    open_up(dir.path());
    let logs = [dir.path().join("cache.log"), dir.path().join("access.log")];
    let (process, port) = start_server("squid", dir.path(), &logs, |port| {
        let d = dir.path().display();
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {d}/squid.pid\n\
             cache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\n\
             coredump_dir {d}\n\
             cache deny all\n\
             cache_mem 0 MB\n\
             shutdown_lifetime 0 seconds\n\
             acl self src 127.0.0.1/32 ::1\n\
             acl CONNECT method CONNECT\n\
             http_access allow self CONNECT\n\
             http_access deny all\n"
        );
        let path = dir.path().join("squid.conf");
        std::fs::write(&path, conf).map_err(|e| format!("write squid.conf: {e}"))?;
        let squid = ["/usr/sbin/squid", "/usr/local/sbin/squid"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or("squid");
        let mut c = Command::new(squid);
        c.arg("-N").arg("-f").arg(&path).current_dir(dir.path());
        Ok(c)
    })
    .expect("start squid");
    Middlebox {
        _process: process,
        port,
        dir,
    }
}

fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
}
