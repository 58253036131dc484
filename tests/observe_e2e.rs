//! End-to-end tests of `mtlscope observe` with real peers: `openssl s_server` behind it and
//! `openssl s_client` in front, on loopback, with bounded waits everywhere. The wire facts are
//! read from observe in-process (typed flows); what a user sees (the terminal line, `report`
//! of the `--record` file) from the binary.
//!
//! Certificates come from the project's dev PKI.

mod common;

use common::flows::wire;
use common::Proxy;
use mtlscope::facts::{FailureKind, Flow, Initiator, Mode, Phase, RecordKind, Stage};
use mtlscope::facts::{RenegotiationOutcome, TlsVersion};
use mtlscope::pki::DevPki;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The dev PKI, made once per run: `root.pem`, `server.pem`/`.key`, `client-good.pem`/`.key`
/// (leaf + intermediate) in one directory the openssl tools run in.
fn pki() -> &'static Path {
    static PKI: OnceLock<(DevPki, tempfile::TempDir)> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        (DevPki::generate(dir.path()).expect("dev pki"), dir)
    })
    .0
    .out_dir()
}

/// The subject of a PEM file's first certificate, as mtlscope records it.
fn subject_of(file: &str) -> String {
    let certs = mtlscope::pki::load::load_certs(&pki().join(file)).expect("certs");
    mtlscope::cert::summarize(&certs[0])
        .expect("summary")
        .subject
}

fn free_port() -> u16 {
    common::free_port().expect("free port")
}

fn wait_listening(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    common::wait_for_tcp(addr, Duration::from_secs(10)).expect("listening");
}

/// A child process killed on drop, its stdout collected in the background.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(cmd: &mut Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        let stdin = child.stdin.take();
        let out = Arc::new(Mutex::new(String::new()));
        let readers: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for mut r in readers.into_iter().flatten() {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .expect("lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Peer { child, stdin, out }
    }

    fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Wait (bounded) until the output contains `needle`.
    fn wait_output(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.out.lock().expect("lock").contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Wait (bounded) for the process to exit.
    fn wait_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_server` on a free port with `flags`.
fn s_server(flags: &[&str]) -> (Peer, u16) {
    let port = free_port();
    let p = pki();
    let peer = Peer::spawn(
        Command::new("openssl")
            .current_dir(p)
            .args([
                "s_server",
                "-accept",
                &port.to_string(),
                "-cert",
                "server.pem",
                "-key",
                "server.key",
            ])
            .args(flags),
    );
    wait_listening(port);
    (peer, port)
}

/// `mtlscope observe` relaying a free port to `upstream`, recording into a temp file.
fn observe(upstream: u16) -> (Peer, u16, PathBuf, tempfile::TempDir) {
    let port = free_port();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let record = dir.path().join("rec.jsonl");
    let peer = Peer::spawn(Command::new(env!("CARGO_BIN_EXE_mtlscope")).args([
        "observe",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--upstream",
        &format!("127.0.0.1:{upstream}"),
        "--record",
        record.to_str().expect("utf-8 path"),
    ]));
    wait_listening(port);
    (peer, port, record, dir)
}

/// `mtlscope observe` in this process in front of `upstream`, its flows awaited typed.
fn observe_inproc(upstream: u16) -> Proxy {
    Proxy::start_blocking(&["observe", "--upstream", &format!("127.0.0.1:{upstream}")])
}

/// The next flow that read a ClientHello off the wire (a connection that never sent one, like
/// a port check, makes a flow without it).
fn tls_flow(p: &mut Proxy) -> Flow {
    p.find_blocking("with a ClientHello", |f| {
        f.wire.as_ref().is_some_and(|w| w.client_random.is_some())
    })
}

/// `openssl s_client` to the observe port.
fn s_client(port: u16, flags: &[&str]) -> Peer {
    Peer::spawn(
        Command::new("openssl")
            .current_dir(pki())
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "localhost",
            ])
            .args(flags),
    )
}

/// Wait (bounded) until the recording holds `n` records with a `wire` object (the probes of
/// `wait_listening` make records without one), and return them.
fn records(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let recs: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["wire"]["client_random"].is_string())
            .collect();
        if recs.len() >= n || Instant::now() > deadline {
            assert!(
                recs.len() >= n,
                "only {} records in {}:\n{text}",
                recs.len(),
                path.display()
            );
            return recs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls12_certificate_request_and_client_chain_from_the_wire() {
    let (mut server, sport) = s_server(&["-tls1_2", "-Verify", "3", "-CAfile", "root.pem"]);
    let mut obs = observe_inproc(sport);
    let oport = obs.port();
    let mut client = s_client(
        oport,
        &[
            "-tls1_2",
            "-cert",
            "client-good.pem",
            "-cert_chain",
            "intermediate.pem",
            "-key",
            "client-good.key",
        ],
    );
    assert!(
        client.wait_output("Verify return code"),
        "handshake through observe"
    );
    client.send("hello through observe\n");
    assert!(server.wait_output("hello through observe"), "data relayed");
    client.send("Q\n");
    client.wait_exit();
    server.send("Q\n");

    let rec = tls_flow(&mut obs);
    assert_eq!(rec.mode, Mode::Observe);
    assert_eq!(rec.kind, RecordKind::Connection);
    assert!(rec.client_leg.is_none() && rec.upstream_leg.is_none());
    let w = wire(&rec);
    assert_eq!(w.tls_version, Some(TlsVersion::Tls12));
    assert_eq!(w.sni.as_deref(), Some("localhost"));
    let request = w.cert_request.as_ref().expect("a certificate request");
    assert_eq!(request.phase, Phase::Handshake);
    assert_eq!(request.ca_names, Some(vec![subject_of("root.pem")]));
    let client_chain = w.client_chain.as_deref().expect("the client's chain");
    assert_eq!(client_chain[0].subject, subject_of("client-good.pem"));
    assert_eq!(client_chain[1].subject, subject_of("intermediate.pem"));
    let server_chain = w.server_chain.as_deref().expect("the server's chain");
    assert_eq!(server_chain[0].subject, subject_of("server.pem"));
    assert!(w.bytes_client_to_server > 0);
    assert!(w.bytes_server_to_client > 0);
    assert_eq!(w.client_random.as_deref().map(str::len), Some(64));
}

#[test]
fn tls12_server_renegotiation_completes_through_observe_and_is_recorded() {
    let (mut server, sport) =
        s_server(&["-tls1_2", "-CAfile", "root.pem", "-no_cache", "-no_ticket"]);
    let mut obs = observe_inproc(sport);
    let oport = obs.port();
    let mut client = s_client(
        oport,
        &[
            "-tls1_2",
            "-cert",
            "client-good.pem",
            "-cert_chain",
            "intermediate.pem",
            "-key",
            "client-good.key",
        ],
    );
    assert!(
        client.wait_output("Verify return code"),
        "handshake through observe"
    );
    client.send("before\n");
    assert!(
        server.wait_output("before"),
        "data relayed before renegotiation"
    );
    // s_server's "R": renegotiate and ask for a client certificate (as Apache's per-location
    // SSLVerifyClient does).
    server.send("R\n");
    assert!(
        server.wait_output("depth=0"),
        "the server verified the certificate in the renegotiation"
    );
    client.send("after\n");
    assert!(
        server.wait_output("after"),
        "data relayed after renegotiation"
    );
    client.send("Q\n");
    client.wait_exit();

    let rec = tls_flow(&mut obs);
    let w = wire(&rec);
    let renegs = &w.renegotiations;
    assert_eq!(renegs.len(), 1, "{w:#?}");
    assert_eq!(renegs[0].initiated_by, Initiator::Server);
    assert_eq!(renegs[0].outcome, Some(RenegotiationOutcome::Completed));
    assert!(
        renegs[0].after_app_data_ms.is_some(),
        "client data came before it"
    );
    let request = w.cert_request.as_ref().expect("a certificate request");
    assert_eq!(request.phase, Phase::Renegotiation);
    assert!(request.ca_names.is_none(), "encrypted in the renegotiation");
    assert!(common::flows::event_names(&w.events)
        .iter()
        .any(|e| e == "renegotiation_request"));
}

#[test]
fn tls13_client_hello_post_handshake_auth_offer() {
    let (_server, sport) = s_server(&["-tls1_3"]);
    let mut obs = observe_inproc(sport);
    let oport = obs.port();
    for (i, flags) in [&["-tls1_3", "-enable_pha"][..], &["-tls1_3"][..]]
        .into_iter()
        .enumerate()
    {
        let mut client = s_client(oport, flags);
        assert!(
            client.wait_output("Verify return code"),
            "handshake through observe"
        );
        client.send("Q\n");
        client.wait_exit();
        let rec = obs.flows_blocking(i + 1).remove(i);
        let w = wire(&rec);
        assert_eq!(w.tls_version, Some(TlsVersion::Tls13));
        assert_eq!(w.client_offered_pha, i == 0, "{flags:?}");
    }
}

#[test]
fn upstream_refused_is_a_recorded_connection() {
    let closed = free_port();
    let mut obs = observe_inproc(closed);
    let mut client = s_client(obs.port(), &[]);
    client.wait_exit();
    let rec = obs.flows_blocking(1).remove(0);
    assert_eq!(rec.mode, Mode::Observe);
    assert!(
        rec.error
            .as_deref()
            .is_some_and(|e| e.contains("cannot connect")),
        "{rec:#?}"
    );
    let failure = wire(&rec).failure.as_ref().expect("a failure");
    assert_eq!(failure.kind, FailureKind::ConnectionRefused);
    assert_eq!(failure.stage, Stage::Connect);
}

#[test]
fn bad_addresses_exit_2_naming_the_flag() {
    for (args, flag) in [
        (
            ["--listen", "not-an-address", "--upstream", "127.0.0.1:1"],
            "--listen",
        ),
        (
            ["--listen", "127.0.0.1:0", "--upstream", "https://example:1"],
            "--upstream",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
            .arg("observe")
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{args:?}"
        );
    }
}

/// nginx asking for (and verifying) client certificates on `version` only.
fn nginx_on(pki: &DevPki, version: common::TlsVersion) -> common::Nginx {
    common::Nginx::start(common::NginxConfig {
        protocols: vec![version],
        ..common::nginx_config(pki, common::VerifyClient::On)
    })
    .expect("start nginx")
}

/// curl through observe to `nginx` with the good client certificate; asserts the 200.
fn curl_good_through(pki: &DevPki, oport: u16, version: common::TlsVersion) {
    let good = pki.client(mtlscope::pki::ClientCert::Good);
    let r = common::Curl::new(format!("https://localhost:{oport}/"))
        .resolve("localhost", oport, "127.0.0.1")
        .cacert(pki.root_ca())
        .identity(&good.cert, &good.key)
        .tls_only(version)
        .run();
    assert_eq!(r.status, 200, "curl through observe: {r:?}");
    assert!(r.body.contains("verify=SUCCESS"), "{}", r.body);
}

#[test]
fn tls12_success_with_curl_and_nginx_ends_with_a_presumed_close_notify_not_a_failure() {
    let (pki, _pdir) = common::dev_pki();
    let nginx = nginx_on(&pki, common::TlsVersion::Tls12);
    let (obs, oport, record, _dir) = observe(nginx.port());
    curl_good_through(&pki, oport, common::TlsVersion::Tls12);

    let rec = &records(&record, 1)[0];
    let w = &rec["wire"];
    assert_eq!(w["tls_version"], "TLSv1.2");
    let findings = rec["findings"].as_array().expect("findings");
    assert!(findings.is_empty(), "a success has no findings: {rec:#}");
    let alerts = w["alerts"].as_array().expect("alerts");
    assert!(!alerts.is_empty(), "the encrypted alert is recorded: {w:#}");
    for a in alerts {
        assert_eq!(a["description"], "close_notify", "{a}");
        assert_eq!(a["code"], 0, "{a}");
        assert_eq!(a["level"], "unknown", "{a}");
        assert_eq!(a["encrypted"], true, "{a}");
    }
    // The server's answer is encrypted: the line says it cannot tell, never ✓ (nor ✗).
    assert!(
        obs.wait_output("cannot tell whether the server accepted"),
        "the terminal line says the answer is not visible"
    );
    let out = obs.out.lock().expect("lock").clone();
    assert!(!out.contains("✗") && !out.contains("✓"), "{out}");
    assert!(!out.contains("handshake-rejected"), "{out}");

    // `report` counts no finding and no failure.
    let report = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["report", "--json"])
        .arg(&record)
        .output()
        .expect("report runs");
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(!text.contains("handshake-rejected"), "{text}");
    let html = record.with_extension("html");
    let o = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["report", "--html"])
        .arg(&html)
        .arg(&record)
        .output()
        .expect("report --html runs");
    assert!(o.status.success());
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(
        page.contains("presumed"),
        "the page says the close_notify is presumed"
    );
}

#[test]
fn tls13_server_that_asks_is_never_shown_as_asking_for_no_cert() {
    let (pki, _pdir) = common::dev_pki();
    let nginx = nginx_on(&pki, common::TlsVersion::Tls13);
    let (obs, oport, record, _dir) = observe(nginx.port());
    curl_good_through(&pki, oport, common::TlsVersion::Tls13);

    let rec = &records(&record, 1)[0];
    assert_eq!(rec["wire"]["tls_version"], "TLSv1.3");
    assert!(obs.wait_output("wire TLSv1.3"), "the facts line is printed");
    let out = obs.out.lock().expect("lock").clone();
    assert!(!out.contains("asked for no cert"), "{out}");
    assert!(out.contains("encrypted: cannot tell"), "{out}");

    // The report's table says "?" (not visible), not "-" (not asked).
    let report = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["report", "--json"])
        .arg(&record)
        .output()
        .expect("report runs");
    let v: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let row = v["records"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["tls_version"] == "TLSv1.3")
        .cloned()
        .expect("the TLS 1.3 row");
    assert_eq!(row["cert_request_hidden"], true, "{row:#}");
}
