//! Bad input to the real binary: every mistake ends with exit code 2 and one message that names
//! the flag, the file and (for config files) the line at fault — never a panic, never a listener.

mod common;

use common::process::{run_bounded, ProcOutput};
use mtlscope::pki::{ClientCert, DevPki};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A start-up error must come well inside this.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// The dev PKI and a scratch directory (also HOME, so nothing lands in the real user's files).
struct Fixture {
    pki: DevPki,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let pki = DevPki::generate(&dir.path().join("pki")).expect("dev pki");
    Fixture { pki, dir }
}

impl Fixture {
    /// Write `text` to `name` in the scratch directory.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write fixture file");
        path
    }

    /// A path in the scratch directory that does not exist.
    fn missing(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Run `mtlscope args` to completion.
    fn run(&self, args: &[&str]) -> ProcOutput {
        run_in(self.dir.path(), args)
    }

    /// `reverse` with a valid server certificate and upstream trust, plus `extra`.
    fn reverse(&self, extra: &[&str]) -> ProcOutput {
        let server = self.pki.server().arg();
        let root = s(self.pki.root_ca());
        let mut args = vec![
            "reverse",
            "--listen",
            "127.0.0.1:0",
            "--server-cert",
            &server,
            "--upstream-ca",
            &root,
        ];
        if !extra.contains(&"--upstream") && !extra.contains(&"--config") {
            args.extend(["--upstream", "https://localhost:9"]);
        }
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

fn run_in(home: &Path, args: &[&str]) -> ProcOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("RUST_LOG");
    run_bounded(cmd, None, RUN_LIMIT)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Assert a usage error: exit code 2, no panic, and a message holding every one of `needles`.
/// Returns stderr for further checks.
#[track_caller]
fn usage_error(out: &ProcOutput, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.timed_out, "the command did not end: {stderr}");
    assert_eq!(out.code, Some(2), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "message should name {n:?}: {stderr}");
    }
    stderr
}

#[test]
fn reverse_with_a_missing_server_cert_file_names_the_flag_and_the_file() {
    let f = fixture();
    let cert = f.missing("nope.pem");
    let key = f.missing("nope.key");
    let pair = format!("{},{}", cert.display(), key.display());
    let root = s(f.pki.root_ca());
    let out = f.run(&[
        "reverse",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "https://localhost:9",
        "--upstream-ca",
        &root,
        "--server-cert",
        &pair,
    ]);
    usage_error(&out, &["--server-cert", &s(&cert)]);
}

#[test]
fn an_identity_whose_key_belongs_to_another_certificate_is_refused() {
    let f = fixture();
    let good = f.pki.client(ClientCert::Good);
    let other = f.pki.client(ClientCert::Expired);
    let pair = format!("{},{}", good.cert.display(), other.key.display());
    let out = f.reverse(&["--identity", &pair]);
    let msg = usage_error(
        &out,
        &[
            "--identity",
            &s(&good.cert),
            &s(&other.key),
            "does not match",
        ],
    );
    // The subject of the certificate the key should have belonged to.
    assert!(msg.contains("client-good"), "{msg}");
}

#[test]
fn a_garbage_pem_as_identity_certificate_is_refused() {
    let f = fixture();
    let garbage = f.file("garbage.pem", "-----BEGIN NONSENSE-----\nnot base64 !!\n");
    let key = f.pki.client(ClientCert::Good).key.clone();
    let pair = format!("{},{}", garbage.display(), key.display());
    let out = f.reverse(&["--identity", &pair]);
    usage_error(&out, &["--identity", &s(&garbage), "no PEM certificate"]);
}

#[test]
fn an_identity_without_a_comma_is_refused() {
    let f = fixture();
    let out = f.reverse(&["--identity", "only-a-cert.pem"]);
    usage_error(&out, &["--identity", "only-a-cert.pem", "CERT,KEY"]);
}

#[test]
fn a_bad_listen_address_is_named() {
    let f = fixture();
    // `reverse()` passes its own --listen, and clap refuses a repeated single-value flag.
    let server = f.pki.server().arg();
    let root = s(f.pki.root_ca());
    let out = f.run(&[
        "reverse",
        "--listen",
        "not-an-address",
        "--upstream",
        "https://localhost:9",
        "--server-cert",
        &server,
        "--upstream-ca",
        &root,
    ]);
    usage_error(&out, &["--listen", "not-an-address"]);
}

#[test]
fn a_listen_address_in_use_is_named() {
    let f = fixture();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let server = f.pki.server().arg();
    let root = s(f.pki.root_ca());
    let out = f.run(&[
        "reverse",
        "--listen",
        &addr,
        "--upstream",
        "https://localhost:9",
        "--server-cert",
        &server,
        "--upstream-ca",
        &root,
    ]);
    usage_error(&out, &["--listen", &addr]);
}

#[test]
fn an_upstream_without_https_is_refused() {
    let f = fixture();
    let out = f.reverse(&["--upstream", "localhost:9443"]);
    usage_error(&out, &["--upstream", "localhost:9443", "https://"]);
    let out = f.reverse(&["--upstream", "ftp://localhost:9443"]);
    usage_error(&out, &["--upstream", "ftp://localhost:9443", "https://"]);
}

#[test]
fn reverse_without_any_upstream_says_it_is_required() {
    let f = fixture();
    let server = f.pki.server().arg();
    let out = f.run(&[
        "reverse",
        "--listen",
        "127.0.0.1:0",
        "--server-cert",
        &server,
    ]);
    usage_error(&out, &["--upstream"]);
}

#[test]
fn a_config_syntax_error_names_the_file_and_line() {
    let f = fixture();
    let cfg = f.file(
        "syntax.toml",
        "# a comment\nupstream = \"https://localhost:9\"\nclient_auth = optional\n",
    );
    let out = f.reverse(&["--config", &s(&cfg)]);
    usage_error(&out, &[&s(&cfg), "line 3"]);
}

#[test]
fn an_unknown_config_key_names_the_file_line_and_key() {
    let f = fixture();
    let cfg = f.file(
        "unknown.toml",
        "upstream = \"https://localhost:9\"\n\nclient_aut = \"optional\"\n",
    );
    let out = f.reverse(&["--config", &s(&cfg)]);
    usage_error(&out, &[&s(&cfg), "line 3", "client_aut"]);
}

#[test]
fn a_bad_client_auth_value_in_config_names_the_file_line_and_value() {
    let f = fixture();
    let cfg = f.file(
        "auth.toml",
        "upstream = \"https://localhost:9\"\nclient_auth = \"sometimes\"\n",
    );
    let out = f.reverse(&["--config", &s(&cfg)]);
    usage_error(&out, &[&s(&cfg), "line 2", "sometimes"]);
}

#[test]
fn a_bad_client_auth_flag_is_a_usage_error() {
    let f = fixture();
    let out = f.reverse(&["--client-auth", "sometimes"]);
    usage_error(&out, &["--client-auth", "sometimes"]);
}

#[test]
fn a_missing_config_file_is_named() {
    let f = fixture();
    let cfg = f.missing("absent.toml");
    let out = f.reverse(&["--config", &s(&cfg)]);
    usage_error(&out, &[&s(&cfg)]);
}

#[test]
fn a_missing_file_named_in_a_config_names_the_config_key() {
    let f = fixture();
    let cfg = f.file(
        "paths.toml",
        "upstream = \"https://localhost:9\"\nidentity = [\"gone.pem,gone.key\"]\n",
    );
    let out = f.reverse(&["--config", &s(&cfg)]);
    usage_error(&out, &[&s(&cfg), "identity", "gone.pem"]);
}

#[test]
fn forward_host_identity_without_equals_is_refused() {
    let f = fixture();
    let ca_dir = s(&f.dir.path().join("local-ca"));
    let good = f.pki.client(ClientCert::Good).arg();
    let out = f.run(&[
        "forward",
        "--listen",
        "127.0.0.1:0",
        "--ca-dir",
        &ca_dir,
        "--host-identity",
        &good,
    ]);
    usage_error(&out, &["--host-identity", &good, "PATTERN=CERT,KEY"]);
}

#[test]
fn certs_inspect_of_a_missing_file_names_it() {
    let f = fixture();
    let missing = f.missing("not-here.pem");
    let out = f.run(&["certs", "inspect", &s(&missing)]);
    usage_error(&out, &[&s(&missing)]);
}

#[test]
fn an_unknown_subcommand_or_flag_is_a_usage_error() {
    let f = fixture();
    let out = f.run(&["reverse", "--no-such-flag"]);
    usage_error(&out, &["--no-such-flag"]);
    let out = f.run(&["frobnicate"]);
    usage_error(&out, &["frobnicate"]);
}

#[test]
fn help_exits_0_with_usage_text() {
    let f = fixture();
    for args in [
        &["--help"][..],
        &["reverse", "--help"],
        &["forward", "--help"],
    ] {
        let out = f.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.code,
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
    }
    let top = f.run(&["--help"]);
    let stdout = String::from_utf8_lossy(&top.stdout);
    for sub in ["reverse", "forward", "observe", "demo", "certs", "ca"] {
        assert!(stdout.contains(sub), "--help should list {sub}: {stdout}");
    }
    let rev = f.run(&["reverse", "--help"]);
    let stdout = String::from_utf8_lossy(&rev.stdout);
    for flag in ["--upstream", "--server-cert", "--identity", "--config"] {
        assert!(stdout.contains(flag), "reverse --help should list {flag}");
    }
}
