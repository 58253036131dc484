//! The command line as a newcomer meets it: a closed stdout (`| head`), exit codes of
//! `certs inspect`, host names in `--listen`, spellings of `--identity`, and settings that would
//! do nothing. Each runs the real binary.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};

fn mtlscope() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    c.env("HOME", env!("CARGO_TARGET_TMPDIR"));
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `cmd` with stdout the write end of a socket whose other end is already closed: every
/// write fails with EPIPE, as when `| head` has exited.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    drop(ours);
    cmd.stdout(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .output()
        .expect("runs")
}

#[test]
fn a_closed_stdout_ends_each_command_quietly() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let pki = dir.path().join("pki");
    let ca = dir.path().join("ca");
    let o = mtlscope()
        .args(["certs", "dev", "--out"])
        .arg(&pki)
        .output()
        .expect("certs dev");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cases: Vec<Vec<String>> = vec![
        vec!["ca".into(), "--ca-dir".into(), ca.display().to_string()],
        vec![
            "certs".into(),
            "inspect".into(),
            pki.join("client-good.pem").display().to_string(),
        ],
        vec![
            "certs".into(),
            "dev".into(),
            "--out".into(),
            dir.path().join("pki2").display().to_string(),
        ],
    ];
    for args in cases {
        let o = with_closed_stdout(mtlscope().args(&args));
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A dev PKI made by the binary itself, in a temp dir.
fn dev_pki() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let out = dir.path().join("pki");
    let o = mtlscope()
        .args(["certs", "dev", "--out"])
        .arg(&out)
        .output()
        .expect("certs dev");
    assert!(o.status.success(), "{}", text(&o.stderr));
    (dir, out)
}

fn inspect(args: &[&std::ffi::OsStr]) -> Output {
    mtlscope()
        .args(["certs", "inspect"])
        .args(args)
        .output()
        .expect("inspect runs")
}

#[test]
fn certs_inspect_exit_codes_follow_the_verdict() {
    let (_dir, pki) = dev_pki();
    let f = |n: &str| pki.join(n).into_os_string();
    // An expired certificate: never "usable", exit 3.
    let o = inspect(&[&f("client-expired.pem")]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("NOT USABLE"), "{out}");
    assert!(!out.contains(": usable"), "{out}");
    // A good chain: exit 0.
    let o = inspect(&[&f("client-good.pem")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("verdict: usable"));
}

#[test]
fn certs_inspect_trust_is_what_openssl_verify_would_say() {
    let (_dir, pki) = dev_pki();
    let f = |n: &str| pki.join(n).into_os_string();
    let trust = std::ffi::OsString::from("--trust");
    for (cert, anchors, ok) in [
        ("client-good.pem", "root.pem", true),
        ("client-other-ca.pem", "root.pem", false),
        ("client-no-intermediate.pem", "root.pem", false),
        ("client-good.pem", "other-ca.pem", false),
    ] {
        let o = inspect(&[&trust, &f(anchors), &f(cert)]);
        let out = text(&o.stdout);
        let verify = Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(f(anchors))
            .arg("-untrusted")
            .arg(f(cert))
            .arg(f(cert))
            .output()
            .expect("openssl verify");
        assert_eq!(verify.status.success(), ok, "openssl agrees on {cert}");
        let want = if ok { 0 } else { 3 };
        assert_eq!(o.status.code(), Some(want), "{cert} vs {anchors}: {out}");
        assert!(
            out.contains(if ok { "trust" } else { "does not verify" }),
            "{out}"
        );
    }
}

#[test]
fn certs_inspect_key_says_whether_it_matches() {
    let (_dir, pki) = dev_pki();
    let f = |n: &str| pki.join(n).into_os_string();
    let key = std::ffi::OsString::from("--key");
    let o = inspect(&[&key, &f("client-good.key"), &f("client-good.pem")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("matches"));
    let o = inspect(&[&key, &f("client-expired.key"), &f("client-good.pem")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("DOES NOT MATCH"));
}

#[test]
fn listen_takes_a_host_name() {
    let ca = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let ca = ca.path().to_str().expect("utf-8");
    for args in [
        &[
            "observe",
            "--listen",
            "localhost:0",
            "--upstream",
            "127.0.0.1:1",
        ][..],
        &["forward", "--listen", "localhost:0", "--ca-dir", ca][..],
    ] {
        let line = stderr_until_listening(args);
        assert!(line.contains("listening on"), "{args:?}: {line}");
        assert!(line.contains("127.0.0.1:"), "{args:?}: {line}");
    }
    let line = stderr_until_listening(&[
        "observe",
        "--listen",
        "no-such-host.invalid:0",
        "--upstream",
        "127.0.0.1:1",
    ]);
    assert!(
        line.contains("--listen") && line.contains("cannot resolve"),
        "{line}"
    );
}

/// `probe` against a closed port: it reaches identity loading first, so load errors show.
fn probe_with(args: &[&str]) -> Output {
    let port = common::free_port().expect("free port");
    mtlscope()
        .args([
            "probe",
            &format!("https://127.0.0.1:{port}/"),
            "--timeout",
            "2",
            "--tls12",
        ])
        .args(args)
        .output()
        .expect("probe runs")
}

#[test]
fn identity_spellings_a_newcomer_tries() {
    let (_dir, pki) = dev_pki();
    let cert = pki.join("client-good.pem").display().to_string();
    let key = pki.join("client-good.key").display().to_string();
    // A space after the comma is fine: the probe runs (exit 1: nothing listens), no usage error.
    let o = probe_with(&["--identity", &format!("{cert}, {key}")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    // Swapped: a hint at the order.
    let o = probe_with(&["--identity", &format!("{key},{cert}")]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("CERT,KEY, certificate first"), "{err}");
    // curl's spelling.
    let o = probe_with(&["--cert", &cert, "--key", &key]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let o = probe_with(&["--cert", &cert]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--key"), "{err}");
    // The proxies take the same spellings.
    let ca = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let ca = ca.path().to_str().expect("utf-8");
    let line = stderr_until_listening(&[
        "forward",
        "--listen",
        "127.0.0.1:0",
        "--ca-dir",
        ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    assert!(line.contains("listening on"), "{line}");
}

/// Write config file `name` in `dir`; its path.
fn write_config(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p.display().to_string()
}

/// Run mtlscope with `args`, expecting a usage error (exit 2): its stderr.
fn refused(args: &[&str]) -> String {
    let o = mtlscope().args(args).output().expect("runs");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    err
}

/// Start `mtlscope args…`, collect stderr until the "listening on" line (bounded), kill it.
fn stderr_until_listening(args: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = mtlscope()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut all = String::new();
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        all.push_str(&line);
        all.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    all
}

#[test]
fn settings_that_would_do_nothing_are_refused_or_warned_about() {
    let (_dir, pki) = dev_pki();
    let root = pki.join("root.pem").display().to_string();
    let server = format!(
        "{},{}",
        pki.join("server.pem").display(),
        pki.join("server.key").display()
    );
    let base = [
        "reverse",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "https://localhost:1",
        "--server-cert",
        &server,
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    // reverse cannot block a renegotiation it terminates: refused, naming where it applies.
    let o = mtlscope()
        .args(run(&["--fault", "block-renegotiation"]))
        .output()
        .expect("runs");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("observe") && err.contains("--passthrough"),
        "{err}"
    );
    // --enforce with nothing to enforce against: refused.
    let o = mtlscope()
        .args(run(&["--client-auth", "required", "--enforce"]))
        .output()
        .expect("runs");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--client-ca"), "{err}");
    // Asking without CA names: runs, with a warning saying what would work.
    let args = run(&["--client-auth", "optional"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = stderr_until_listening(&args);
    assert!(
        err.contains("warning") && err.contains("--client-ca FILE"),
        "{err}"
    );
    assert!(err.contains("listening on"), "{err}");
    // CA names without asking: a warning too.
    let args = run(&["--client-ca", &root]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = stderr_until_listening(&args);
    assert!(
        err.contains("warning") && err.contains("--client-auth optional"),
        "{err}"
    );
}

#[test]
fn one_config_file_serves_every_command_and_names_lines() {
    let (dir, pki) = dev_pki();
    let write = |name: &str, text: &str| write_config(dir.path(), name, text);
    let ca = dir.path().join("ca").display().to_string();
    // forward refuses `upstream`, naming its line.
    let cfg = write(
        "fwd.toml",
        "listen = \"127.0.0.1:0\"\n\nupstream = \"https://localhost:1\"\n",
    );
    let err = refused(&["forward", "--ca-dir", &ca, "--config", &cfg]);
    assert!(
        err.contains("line 3") && err.contains("`upstream`"),
        "{err}"
    );
    // A bad path in the file: the error carries the file and the line.
    let cfg = write(
        "bad.toml",
        "listen = \"127.0.0.1:0\"\nupstream = \"https://localhost:1\"\n\
         identity = [\"missing.pem,missing.key\"]\n",
    );
    let err = refused(&["reverse", "--ca-dir", &ca, "--config", &cfg]);
    assert!(err.contains("bad.toml line 3"), "{err}");
    // timeout, resolve, the PKCS#12 password settings and quiet are keys now.
    let cfg = write(
        "keys.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"https://localhost:1\"\ntimeout = 3\n\
             resolve = [\"localhost:1:127.0.0.1\"]\npkcs12_password_env = \"NOPE\"\n\
             quiet = true\nexplain = true\nidentity = [\"{},{}\"]\n",
            pki.join("client-good.pem").display(),
            pki.join("client-good.key").display()
        ),
    );
    let err = stderr_until_listening(&["reverse", "--ca-dir", &ca, "--config", &cfg]);
    assert!(err.contains("listening on"), "{err}");
    // observe and probe take --config.
    let cfg = write(
        "obs.toml",
        "listen = \"localhost:0\"\nupstream = \"127.0.0.1:1\"\nquiet = true\n",
    );
    let err = stderr_until_listening(&["observe", "--config", &cfg]);
    assert!(err.contains("listening on 127.0.0.1:"), "{err}");
    let cfg = write(
        "obs-bad.toml",
        "upstream = \"127.0.0.1:1\"\nidentity = [\"a.pem,a.key\"]\n",
    );
    let err = refused(&["observe", "--config", &cfg]);
    assert!(
        err.contains("line 2") && err.contains("`identity`"),
        "{err}"
    );
    let cfg = write(
        "probe.toml",
        &format!(
            "timeout = 2\nidentity = [\"{}, {}\"]\n",
            pki.join("client-good.pem").display(),
            pki.join("client-good.key").display()
        ),
    );
    let port = common::free_port().expect("free port");
    let o = mtlscope()
        .args([
            "probe",
            &format!("https://127.0.0.1:{port}/"),
            "--tls12",
            "--json",
            "--config",
            &cfg,
        ])
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "unreachable, not a usage error: {}",
        text(&o.stderr)
    );
    let cfg = write(
        "probe-bad.toml",
        "identity = [\"nowhere.pem,nowhere.key\"]\n",
    );
    let err = refused(&[
        "probe",
        &format!("https://127.0.0.1:{port}/"),
        "--config",
        &cfg,
    ]);
    assert!(
        err.contains("nowhere.pem"),
        "the file's identity was loaded: {err}"
    );
}

/// One settings model: what used to be flags only (the web view, observe's stop and limits,
/// probe's own options) reads the same from the file, and its errors name the file's line.
#[test]
fn every_flag_is_also_a_config_key() {
    let (dir, _pki) = dev_pki();
    let write = |name: &str, text: &str| write_config(dir.path(), name, text);
    let ca = dir.path().join("ca").display().to_string();
    // The web view from the file.
    let cfg = write(
        "ui.toml",
        "listen = \"127.0.0.1:0\"\nupstream = \"https://localhost:1\"\nui = \"127.0.0.1:0\"\n\
         ui_max_flows = 5\n",
    );
    let err = stderr_until_listening(&["reverse", "--ca-dir", &ca, "--config", &cfg]);
    assert!(err.contains("web view on http://127.0.0.1:"), "{err}");
    // observe's grace, limit, rotation and idle bound.
    let cfg = write(
        "obs.toml",
        "listen = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:1\"\ngrace = 1\nmax_connections = 2\n\
         record_max_size = \"1M\"\nidle_timeout = 5\n",
    );
    let err = stderr_until_listening(&["observe", "--config", &cfg]);
    assert!(err.contains("listening on 127.0.0.1:"), "{err}");
    let cfg = write(
        "obs-size.toml",
        "upstream = \"127.0.0.1:1\"\n\nrecord_max_size = \"12 parsecs\"\n",
    );
    let err = refused(&["observe", "--config", &cfg]);
    assert!(
        err.contains("obs-size.toml line 3 (record_max_size)"),
        "{err}"
    );
    // probe's own options: json from the file, a bad path named by its line.
    let port = common::free_port().expect("free port");
    let url = format!("https://127.0.0.1:{port}/");
    let cfg = write("probe.toml", "tls12 = true\njson = true\ntimeout = 2\n");
    let o = mtlscope()
        .args(["probe", &url, "--config", &cfg])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("json = true gives JSON");
    assert!(json.is_object(), "{json}");
    let cfg = write("probe-path.toml", "\npath = [\"secure\"]\n");
    let err = refused(&["probe", &url, "--config", &cfg]);
    assert!(err.contains("probe-path.toml line 2 (path)"), "{err}");
    // A flag still wins over the file: --path given, the file's bad one is not read.
    let o = mtlscope()
        .args([
            "probe",
            &url,
            "--config",
            &cfg,
            "--path",
            "/ok",
            "--timeout",
            "1",
        ])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
}
