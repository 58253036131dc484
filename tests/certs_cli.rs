//! The `certs` and `ca` subcommands, run as the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mtlscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run mtlscope")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh dev PKI in a temp dir, made by the binary.
fn dev() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = dir.path().join("out");
    let o = mtlscope(&["certs", "dev", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, out)
}

#[test]
fn certs_dev_writes_every_file_and_says_what_it_is_for() {
    let (_dir, out) = dev();
    let o = mtlscope(&["certs", "dev", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for name in [
        "root",
        "intermediate",
        "other-ca",
        "server",
        "client-good",
        "client-expired",
        "client-not-yet-valid",
        "client-server-eku",
        "client-other-ca",
        "client-no-intermediate",
        "client-self-signed",
        "ca-bundle",
    ] {
        let pem = out.join(format!("{name}.pem"));
        assert!(pem.is_file(), "{name}.pem missing");
        assert!(
            text.contains(&format!("{name}.pem")),
            "{name}.pem not described:\n{text}"
        );
    }
    assert!(text.contains("expired yesterday"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("client-good.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn openssl_agrees_with_the_dev_pki() {
    let (_dir, out) = dev();
    let verify = |purpose: &str, name: &str| {
        Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(out.join("root.pem"))
            .arg("-untrusted")
            .arg(out.join("intermediate.pem"))
            .arg(out.join(format!("{name}.pem")))
            .output()
            .expect("run openssl")
            .status
            .success()
    };
    assert!(verify("sslserver", "server"));
    assert!(verify("sslclient", "client-good"));
    assert!(
        verify("sslclient", "client-no-intermediate"),
        "fine once given the intermediate"
    );
    for bad in [
        "client-expired",
        "client-not-yet-valid",
        "client-server-eku",
        "client-other-ca",
        "client-self-signed",
    ] {
        assert!(!verify("sslclient", bad), "{bad} verified");
    }
}

#[test]
fn certs_dev_with_a_recipe_file_and_a_broken_recipe() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let recipe = dir.path().join("mine.toml");
    std::fs::write(
        &recipe,
        "[[ca]]\nname = \"lab-root\"\ncn = \"lab\"\nnot_after_days = 30\n\
         [[cert]]\nname = \"alice\"\nissuer = \"lab-root\"\ncn = \"alice\"\neku = [\"clientAuth\"]\nnot_after_days = 30\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = mtlscope(&["certs", "dev", "--out", s(&out), "--recipe", s(&recipe)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("alice.pem").is_file() && out.join("alice.key").is_file());
    assert!(!out.join("client-good.pem").exists());

    std::fs::write(
        &recipe,
        "[[cert]]\nname = \"bob\"\nissuer = \"nobody\"\ncn = \"b\"\nnot_after_days = 3\n",
    )
    .unwrap();
    let o = mtlscope(&["certs", "dev", "--out", s(&out), "--recipe", s(&recipe)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("mine.toml") && stderr(&o).contains("nobody"),
        "{}",
        stderr(&o)
    );

    let o = mtlscope(&[
        "certs",
        "dev",
        "--out",
        s(&out),
        "--recipe",
        s(&dir.path().join("none.toml")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("none.toml"), "{}", stderr(&o));
}

#[test]
fn inspect_text_calls_out_validity_and_purpose() {
    let (_dir, out) = dev();
    let o = mtlscope(&[
        "certs",
        "inspect",
        s(&out.join("client-expired.pem")),
        s(&out.join("client-not-yet-valid.pem")),
        s(&out.join("client-server-eku.pem")),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "negative verdicts: {}",
        stderr(&o)
    );
    let text = stdout(&o);
    assert!(text.contains("EXPIRED"), "{text}");
    assert!(text.contains("NOT YET VALID"), "{text}");
    assert!(text.contains("lacks clientAuth"), "{text}");
    assert!(text.contains("SHA-256") && text.contains("SHA-1"), "{text}");
}

#[test]
fn inspect_json_and_at() {
    let (_dir, out) = dev();
    let expired = out.join("client-expired.pem");
    let o = mtlscope(&["certs", "inspect", "--json", s(&expired)]);
    assert_eq!(o.status.code(), Some(3), "expired: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let leaf = &v["files"][0]["certificates"][0];
    assert_eq!(leaf["validity"], "expired");
    assert_eq!(leaf["eku"][0], "clientAuth");
    assert_eq!(leaf["subject"], "CN=client-expired, O=mtlscope dev");
    // Judged the moment it became valid, it is valid.
    let not_before = leaf["not_before"].as_str().unwrap();
    let o = mtlscope(&[
        "certs",
        "inspect",
        "--json",
        "--at",
        not_before,
        s(&expired),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"][0]["certificates"][0]["validity"], "valid");
    assert_eq!(v["at"], not_before);

    let o = mtlscope(&["certs", "inspect", "--at", "yesterday", s(&expired)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--at"), "{}", stderr(&o));
}

#[test]
fn inspect_against_ca_names() {
    let (_dir, out) = dev();
    let bundle = out.join("ca-bundle.pem");
    let o = mtlscope(&[
        "certs",
        "inspect",
        "--json",
        "--ca-names",
        s(&bundle),
        s(&out.join("client-good.pem")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"][0]["ca_names_check"]["satisfied"], true);

    let o = mtlscope(&[
        "certs",
        "inspect",
        "--ca-names",
        s(&bundle),
        s(&out.join("client-no-intermediate.pem")),
    ]);
    assert_eq!(o.status.code(), Some(3), "a negative verdict");
    let text = stdout(&o);
    assert!(text.contains("NOT SATISFIED"), "{text}");
    assert!(text.contains("names only CN=mtlscope dev root"), "{text}");
    assert!(text.contains("lacks the intermediate"), "{text}");

    let o = mtlscope(&[
        "certs",
        "inspect",
        "--json",
        "--ca-names",
        s(&bundle),
        s(&out.join("client-other-ca.pem")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"][0]["ca_names_check"]["satisfied"], false);
}

#[test]
fn inspect_bad_input_exits_2_naming_the_file() {
    let (dir, out) = dev();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, b"\x00\x01 this is not a certificate").unwrap();
    let key = out.join("client-good.key");
    let missing = dir.path().join("missing.pem");
    for bad in [&garbage, &key, &missing] {
        let o = mtlscope(&["certs", "inspect", s(&out.join("client-good.pem")), s(bad)]);
        assert_eq!(o.status.code(), Some(2), "{}", bad.display());
        assert!(stderr(&o).contains(s(bad)), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "no partial report");
    }
    let o = mtlscope(&[
        "certs",
        "inspect",
        "--ca-names",
        s(&garbage),
        s(&out.join("client-good.pem")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("garbage.pem"));
    let o = mtlscope(&["certs", "inspect"]);
    assert_eq!(o.status.code(), Some(2), "no files is a usage error");
}

#[test]
fn ca_creates_once_prints_how_to_trust_and_refuses_a_broken_pair() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ca_dir = dir.path().join("ca");
    let o = mtlscope(&["ca", "--ca-dir", s(&ca_dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let cert = ca_dir.join("ca.pem");
    assert!(text.contains(s(&cert)), "{text}");
    for hint in [
        "--cacert",
        "curl -x",
        "update-ca-certificates",
        "keytool -importcert",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
    ] {
        assert!(text.contains(hint), "{hint} missing:\n{text}");
    }
    assert!(text.contains("created"), "{text}");
    let pem = std::fs::read(&cert).unwrap();

    let o = mtlscope(&["ca", "--ca-dir", s(&ca_dir)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("using"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&cert).unwrap(), pem, "existing CA reused");

    std::fs::remove_file(ca_dir.join("ca.key")).unwrap();
    let o = mtlscope(&["ca", "--ca-dir", s(&ca_dir)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ca.key"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&cert).unwrap(), pem);
}
