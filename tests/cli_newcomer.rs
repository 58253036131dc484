//! The command line as a newcomer meets it: a closed stdout (`| head`), exit codes of
//! `certs inspect`, host names in `--listen`, spellings of `--identity`, and settings that would
//! do nothing. Each runs the real binary.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};

fn mtlscope() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtlscope"));
    c.env("HOME", std::env::temp_dir());
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
    let dir = tempfile::tempdir().expect("temp dir");
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
