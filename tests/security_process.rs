//! Issue 24, "safe to leave running", for what needs mtlscope as a process, run as a user
//! runs it: `forward` refuses requests to its own web view (`curl -x`); recordings are 0600 and
//! carry no secret query values; a certificate's escape sequences never reach the terminal.
//! The attacks on the relay itself are in `security.rs`, in-process.

mod common;

use common::{free_port, wait_for_tcp, Curl, Mtlscope};
use mtlscope::lab::echo::LabEcho;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `mtlscope reverse` (a child process, recording to a file) in front of `upstream`, asking
/// for optional client certificates.
fn reverse(pki: &mtlscope::pki::DevPki, upstream: &str, extra: &[&str]) -> Mtlscope {
    let args = common::reverse_args(pki, upstream, extra);
    Mtlscope::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `forward --ui`: the proxy does not reach its own web view, as a plain request or a CONNECT,
/// by any local name; the refusal is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_refuses_its_own_web_view() {
    let ca = common::tmpdir();
    let ui_port = free_port().unwrap();
    let ui = format!("127.0.0.1:{ui_port}");
    let p = Mtlscope::start(&[
        "forward",
        "--ca-dir",
        ca.path().to_str().unwrap(),
        "--ui",
        &ui,
    ]);
    let proxy = format!("http://127.0.0.1:{}", p.port());
    // The web view answers directly...
    let direct = Curl::new(format!("http://{ui}/api/stats"))
        .run_async()
        .await;
    assert_eq!(direct.status, 200, "{direct:?}");
    let mut n = 0;
    for host in ["127.0.0.1", "localhost", "127.0.0.2", "[::ffff:127.0.0.1]"] {
        let r = Curl::new(format!("http://{host}:{ui_port}/api/stats"))
            .proxy(&proxy)
            .run_async()
            .await;
        assert_eq!(r.status, 403, "{host}: {r:?}");
        assert!(!r.body.contains("\"kept\""), "{host}: {}", r.body);
        n += 1;
    }
    // ...and a CONNECT to it is refused before any tunnel.
    let r = Curl::new(format!("https://127.0.0.1:{ui_port}/api/flows"))
        .proxy(&proxy)
        .insecure()
        .run_async()
        .await;
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    assert!(r.stderr.contains("403"), "{r:?}");
    n += 1;
    let records = p.records(n);
    for rec in &records {
        let err = rec["error"].as_str().unwrap_or_default();
        assert!(
            err.contains("own listener") && err.contains("web view"),
            "{rec}"
        );
        assert_eq!(rec["response"]["status"], 403, "{rec}");
    }
}

/// Recordings are 0600, and secret query parameters, form fields and `Location` query strings
/// are redacted; `--no-redact` keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_private_and_carry_no_secret_values() {
    use std::os::unix::fs::PermissionsExt;
    let (pki, _pki_dir) = common::dev_pki();
    let echo = LabEcho::start(None).await.unwrap();
    let files = common::tmpdir();
    let keylog = files.path().join("keys.log");
    let p = reverse(&pki, &echo.url(), &["--keylog", keylog.to_str().unwrap()]);
    let url = format!(
        "https://localhost:{}/cb?state=ok&code=CODE123&access%5Ftoken=TOKEN456",
        p.port()
    );
    let r = Curl::new(&url)
        .cacert(pki.root_ca())
        .arg("--data")
        .arg("user=ann&pwd=PWD789&pin=PINX4U")
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = Curl::new(format!("https://localhost:{}/up", p.port()))
        .cacert(pki.root_ca())
        .arg("-F")
        .arg("user=ann")
        .arg("-F")
        .arg("passphrase=MULTI999")
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let records = p.records(2);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p.record), 0o600);
    assert_eq!(mode(&keylog), 0o600);
    let har = files.path().join("out.har");
    let exported = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .arg("export")
        .arg(&p.record)
        .arg("--har")
        .arg(&har)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    assert_eq!(mode(&har), 0o600);
    assert!(!std::fs::read_to_string(&har).unwrap().contains("CODE123"));
    let text = std::fs::read_to_string(&p.record).unwrap();
    for secret in ["CODE123", "TOKEN456", "PWD789", "PINX4U", "MULTI999"] {
        assert!(!text.contains(secret), "{secret} recorded: {text}");
    }
    assert!(
        records[0]["request"]["uri"]
            .as_str()
            .unwrap()
            .contains("state=ok"),
        "{}",
        records[0]
    );
    assert!(text.contains("user=ann"), "{text}");

    let kept = reverse(&pki, &echo.url(), &["--no-redact"]);
    let url = format!("https://localhost:{}/cb?code=CODE123", kept.port());
    Curl::new(&url).cacert(pki.root_ca()).run_async().await;
    kept.records(1);
    assert!(std::fs::read_to_string(&kept.record)
        .unwrap()
        .contains("CODE123"));
}

/// A client certificate whose subject carries terminal escapes prints cleaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_in_a_certificate_never_reach_the_terminal() {
    let (pki, _pki_dir) = common::dev_pki();
    let dir = common::tmpdir();
    let (cert, key) = (dir.path().join("evil.pem"), dir.path().join("evil.key"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "evil\u{1b}]0;PWNED\u{7}\u{1b}[2J",
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let k = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&k).unwrap();
    std::fs::write(&cert, c.pem()).unwrap();
    std::fs::write(&key, k.serialize_pem()).unwrap();
    let echo = LabEcho::start(None).await.unwrap();
    let port = free_port().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["reverse", "--upstream", &echo.url(), "--server-cert"])
        .arg(pki.server().arg())
        .args(["--client-auth", "optional", "--client-ca"])
        .arg(pki.root_ca())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = common::process::lines_of(child.stdout.take().expect("stdout"));
    wait_for_tcp(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(15),
    )
    .unwrap();
    let r = Curl::new(format!("https://localhost:{port}/"))
        .cacert(pki.root_ca())
        .identity(&cert, &key)
        .run_async()
        .await;
    // The printed lines, up to the one naming the certificate (bounded).
    let printed = tokio::task::spawn_blocking(move || {
        common::process::read_until(&lines, Duration::from_secs(10), |t| t.contains("evil"))
    })
    .await
    .expect("reader");
    let _ = child.kill();
    let _ = child.wait();
    assert!(printed.contains("evil"), "{r:?} printed {printed:?}");
    assert!(
        !printed.chars().any(|c| c.is_control() && c != '\n'),
        "control characters printed: {printed:?}"
    );
}
