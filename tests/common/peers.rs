//! More real peers for tests: Caddy (Go's crypto/tls), a tiny Java `SSLServerSocket` server
//! (compiled with javac at test time), `python3 -m http.server` (a CRL distribution point) and
//! `openssl ocsp` (an OCSP responder). Each runs from its own temp dir on a free 127.0.0.1
//! port, started through [`process::start_server`] (bounded wait) and stopped on drop.

use super::process::{self, run_bounded, RunningServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Caddy's `client_auth` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaddyClientAuth {
    /// `mode require_and_verify` with `trusted_ca_cert_file`: the CA named and checked.
    RequireAndVerify,
    /// `mode require`: any certificate, an empty acceptable-CA list, nothing verified.
    Require,
}

/// Start Caddy answering `200 ok` on `https://localhost:PORT` with `cert`/`key`, asking for
/// client certificates as `auth` says (`ca` is the trusted CA file).
pub fn caddy(
    cert: &Path,
    key: &Path,
    ca: &Path,
    auth: CaddyClientAuth,
) -> Result<RunningServer, String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("caddy temp dir: {e}"))?;
    let file = dir.path().join("Caddyfile");
    let pidfile = dir.path().join("caddy.pid");
    let client_auth = match auth {
        CaddyClientAuth::RequireAndVerify => format!(
            "mode require_and_verify\n        trusted_ca_cert_file {}",
            ca.display()
        ),
        CaddyClientAuth::Require => "mode require".to_string(),
    };
    let (process, port) = process::start_server("caddy", dir.path(), &[], |port| {
        let conf = format!(
            "{{\n  admin off\n  auto_https off\n}}\nhttps://localhost:{port} {{\n  bind 127.0.0.1\n  tls {} {} {{\n    client_auth {{\n        {client_auth}\n    }}\n  }}\n  respond \"ok\" 200\n}}\n",
            cert.display(),
            key.display()
        );
        std::fs::write(&file, conf).map_err(|e| format!("write Caddyfile: {e}"))?;
        let mut cmd = Command::new("caddy");
        cmd.arg("run")
            .arg("--config")
            .arg(&file)
            .arg("--adapter")
            .arg("caddyfile")
            .arg("--pidfile")
            .arg(&pidfile)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"));
        Ok(cmd)
    })?;
    Ok(RunningServer::new(process, port, dir))
}

/// The Java server: needClientAuth, trusting (and naming) only the CAs of its trust store.
const JAVA_SERVER: &str = r#"
import javax.net.ssl.*;
import java.io.*;
import java.net.InetAddress;
import java.security.KeyStore;

public class Server {
    public static void main(String[] a) throws Exception {
        char[] pw = "changeit".toCharArray();
        KeyStore k = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(a[1])) { k.load(in, pw); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(k, pw);
        KeyStore t = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(a[2])) { t.load(in, pw); }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(t);
        SSLContext c = SSLContext.getInstance("TLS");
        c.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        SSLServerSocket s = (SSLServerSocket) c.getServerSocketFactory()
            .createServerSocket(Integer.parseInt(a[0]), 50, InetAddress.getByName("127.0.0.1"));
        s.setNeedClientAuth(true);
        while (true) {
            SSLSocket x = (SSLSocket) s.accept();
            new Thread(() -> {
                try (SSLSocket sock = x) {
                    sock.startHandshake();
                    BufferedReader r = new BufferedReader(new InputStreamReader(sock.getInputStream()));
                    String line;
                    while ((line = r.readLine()) != null && !line.isEmpty()) { }
                    OutputStream o = sock.getOutputStream();
                    o.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n".getBytes());
                    o.flush();
                } catch (Exception e) {
                    System.err.println("connection: " + e);
                }
            }).start();
        }
    }
}
"#;

/// Start the Java server with `cert` (leaf and chain, PEM) and `key`, trusting only `ca`.
pub fn java(cert: &Path, key: &Path, ca: &Path) -> Result<RunningServer, String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("java temp dir: {e}"))?;
    let d = dir.path();
    std::fs::write(d.join("Server.java"), JAVA_SERVER).map_err(|e| e.to_string())?;
    run(
        Command::new("javac").current_dir(d).arg("Server.java"),
        "javac",
    )?;
    run(
        Command::new("openssl")
            .current_dir(d)
            .args([
                "pkcs12",
                "-export",
                "-passout",
                "pass:changeit",
                "-out",
                "server.p12",
                "-in",
            ])
            .arg(cert)
            .arg("-inkey")
            .arg(key),
        "openssl pkcs12",
    )?;
    run(
        Command::new("keytool")
            .current_dir(d)
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-storetype",
                "PKCS12",
                "-keystore",
                "trust.p12",
                "-storepass",
                "changeit",
                "-file",
            ])
            .arg(ca),
        "keytool",
    )?;
    let (process, port) = process::start_server("java", d, &[], |port| {
        let mut cmd = Command::new("java");
        cmd.current_dir(d)
            .args(["-cp", ".", "Server"])
            .arg(port.to_string())
            .args(["server.p12", "trust.p12"]);
        Ok(cmd)
    })?;
    Ok(RunningServer::new(process, port, dir))
}

/// Run a set-up command to completion (≤ 60 s), or say what it printed.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let taken = std::mem::replace(cmd, Command::new("true"));
    let out = run_bounded(taken, None, Duration::from_secs(60));
    if out.code == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({:?}): {}{}",
            out.code,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `python3 -m http.server` serving `root` on 127.0.0.1 (files may be added after it starts).
pub fn http_files(root: &Path) -> Result<RunningServer, String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("http temp dir: {e}"))?;
    let root: PathBuf = root.to_path_buf();
    let (process, port) = process::start_server("http.server", dir.path(), &[], |port| {
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&root);
        Ok(cmd)
    })?;
    Ok(RunningServer::new(process, port, dir))
}

/// `openssl ocsp` answering from `index` (an `openssl ca` index file), signing with the CA
/// `ca_cert`/`ca_key` itself.
pub fn ocsp_responder(
    index: &Path,
    ca_cert: &Path,
    ca_key: &Path,
) -> Result<RunningServer, String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("ocsp temp dir: {e}"))?;
    let (index, ca_cert, ca_key) = (
        index.to_path_buf(),
        ca_cert.to_path_buf(),
        ca_key.to_path_buf(),
    );
    let (process, port) = process::start_server("openssl-ocsp", dir.path(), &[], |port| {
        let mut cmd = Command::new("openssl");
        cmd.arg("ocsp")
            .arg("-index")
            .arg(&index)
            .arg("-port")
            .arg(port.to_string())
            .arg("-rsigner")
            .arg(&ca_cert)
            .arg("-rkey")
            .arg(&ca_key)
            .arg("-CA")
            .arg(&ca_cert)
            .arg("-ignore_err")
            // One responder process hangs for good on the start-up probe's empty connection
            // (OpenSSL 3.0): serve from several.
            .args(["-multi", "4"]);
        Ok(cmd)
    })?;
    Ok(RunningServer::new(process, port, dir))
}
