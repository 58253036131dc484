//! Issue 24, "safe to leave running", tried as an attacker would, against real peers: forged
//! identity headers in every spelling never reach a WSGI backend (Python's `wsgiref`, which
//! folds `_` and `-` into one variable) nor the header-echo backend, over HTTP/1.1 and HTTP/2;
//! `Connection` cannot drop mtlscope's own headers; an unverified certificate is not forwarded
//! by default; `forward` refuses requests to its own web view (`curl -x`); reverse mode with
//! the local CA answers only for its names (`openssl s_client -servername other.example`);
//! idle client connections are closed with their upstream leg; recordings are 0600 and carry
//! no secret query values; a certificate's escape sequences never reach the terminal.

mod common;
#[path = "common/offload.rs"]
mod fixture;

use common::{free_port, wait_for_tcp, Curl, Mtlscope, SClient};
use fixture::OffloadClient;
use mtlscope::lab::echo::LabEcho;
use mtlscope::pki::DevPki;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A WSGI app that answers with the `HTTP_*` variables it received, as JSON.
const WSGI_APP: &str = r#"
import json, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler

class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass

def app(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=Quiet).serve_forever()
"#;

/// The WSGI backend, killed on drop.
struct Wsgi {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Wsgi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Wsgi {
    fn start() -> Wsgi {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("app.py");
        std::fs::write(&script, WSGI_APP).unwrap();
        let port = free_port().unwrap();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        wait_for_tcp(
            format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(10),
        )
        .expect("wsgiref listening");
        Wsgi {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

struct Setup {
    pki: DevPki,
    client: OffloadClient,
    /// A self-signed certificate claiming `CN=admin` with a SPIFFE URI, and its key.
    rogue: (PathBuf, PathBuf),
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn setup() -> Setup {
    let (pki, pki_dir) = common::dev_pki();
    let dir = tempfile::tempdir().unwrap();
    let client = OffloadClient::issue(pki.out_dir(), dir.path());
    let (cert, key) = (dir.path().join("rogue.pem"), dir.path().join("rogue.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "30", "-subj", "/O=prod/CN=admin"])
        .args([
            "-addext",
            "subjectAltName=URI:spiffe://prod/ns/admin/sa/admin",
        ])
        .args(["-addext", "extendedKeyUsage=clientAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    Setup {
        pki,
        client,
        rogue: (cert, key),
        _dirs: (pki_dir, dir),
    }
}

fn reverse(s: &Setup, upstream: &str, extra: &[&str]) -> Mtlscope {
    let server = s.pki.server().arg();
    let root = s.pki.root_ca().display().to_string();
    let mut args = vec![
        "reverse",
        "--upstream",
        upstream,
        "--server-cert",
        &server,
        "--client-auth",
        "optional",
        "--client-ca",
        &root,
    ];
    args.extend_from_slice(extra);
    Mtlscope::start(&args)
}

/// The headers a backend saw, as (lowercase name with `_` for `-`, value) pairs: the WSGI app's
/// `HTTP_X_Y` variables or the echo's header list.
fn seen(body: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    match &v {
        Value::Object(m) if m.contains_key("headers") => v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str()
                        .unwrap()
                        .to_ascii_lowercase()
                        .replace('-', "_"),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.trim_start_matches("HTTP_").to_ascii_lowercase(),
                    v.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        _ => panic!("unexpected backend answer {body}"),
    }
}

/// The forged headers, in every spelling a backend might fold together.
const FORGED: &[&str] = &[
    "X_SSL_Client_Verify: SUCCESS",
    "X_SSL_Client_S_DN: CN=admin",
    "x-ssl-client-s-dn: CN=admin",
    "X-SSL-CLIENT-S-DN: CN=admin",
    "x_ssl_client_cert: forged",
    "X-Client-Cert: forged",
    "X_Client_Cert: forged",
    "X-Client-Cert-Verify: SUCCESS",
    "X_Forwarded_Client_Cert: Subject=\"CN=admin\"",
];

fn identity_names(seen: &[(String, String)]) -> Vec<String> {
    seen.iter()
        .filter(|(n, _)| {
            n.starts_with("x_ssl_client")
                || n.starts_with("x_client_cert")
                || n.contains("forwarded_client")
        })
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_never_reach_a_wsgi_or_echo_backend_in_any_spelling() {
    let s = setup();
    let wsgi = Wsgi::start();
    let echo = LabEcho::start(None).await.unwrap();
    for upstream in [wsgi.url(), echo.url()] {
        let p = reverse(
            &s,
            &upstream,
            &[
                "--forward-client-cert",
                "nginx",
                "--forward-client-cert",
                "xfcc",
                "--expect-client-cert-header",
                "X-Client-Cert",
            ],
        );
        for (i, h2) in [false, true].into_iter().enumerate() {
            let mut curl =
                Curl::new(format!("https://localhost:{}/who", p.port())).cacert(s.pki.root_ca());
            curl = if h2 {
                curl.arg("--http2")
            } else {
                curl.http1_1()
            };
            for h in FORGED {
                curl = curl.header(*h);
            }
            let r = curl.run_async().await;
            assert_eq!(r.status, 200, "{upstream} h2={h2}: {r:?}");
            let got = seen(&r.body);
            assert!(
                identity_names(&got).is_empty(),
                "{upstream} h2={h2}: forged identity reached the backend: {:?}",
                identity_names(&got)
            );
            let rec = &p.records(i + 1)[i];
            assert_eq!(
                rec["request"]["version"],
                if h2 { "HTTP/2.0" } else { "HTTP/1.1" },
                "{rec}"
            );
            let stripped = rec["request"]["forwarded_identity"]["stripped"]
                .as_array()
                .unwrap()
                .len();
            assert_eq!(stripped, FORGED.len(), "{rec}");
            assert!(
                common::finding_ids(rec).contains(&"client-sent-identity-header".to_string()),
                "{rec}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_drop_mtlscopes_headers() {
    let s = setup();
    let wsgi = Wsgi::start();
    let p = reverse(
        &s,
        &wsgi.url(),
        &[
            "--forward-client-cert",
            "nginx",
            "--forward-client-cert-verify",
        ],
    );
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(s.pki.root_ca())
        .identity(&s.client.chain, &s.client.key)
        .http1_1()
        .header("Connection: x-ssl-client-verify, X_SSL_Client_S_DN, x-client-cert-verify")
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got: BTreeMap<String, String> = seen(&r.body).into_iter().collect();
    assert_eq!(
        got.get("x_ssl_client_verify").map(String::as_str),
        Some("SUCCESS"),
        "{got:?}"
    );
    assert_eq!(
        got.get("x_client_cert_verify").map(String::as_str),
        Some("SUCCESS"),
        "{got:?}"
    );
    assert_eq!(
        got.get("x_ssl_client_s_dn"),
        Some(&s.client.subject),
        "{got:?}"
    );
    assert!(got.contains_key("x_ssl_client_cert"), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_certificate_is_not_forwarded_unless_asked_for() {
    let s = setup();
    let echo = LabEcho::start(None).await.unwrap();
    let wsgi = Wsgi::start();
    let (cert, key) = &s.rogue;
    for upstream in [wsgi.url(), echo.url()] {
        let p = reverse(
            &s,
            &upstream,
            &[
                "--forward-client-cert",
                "xfcc",
                "--forward-client-cert",
                "aws-alb",
            ],
        );
        let r = Curl::new(format!("https://localhost:{}/", p.port()))
            .cacert(s.pki.root_ca())
            .identity(cert, key)
            .run_async()
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let got = seen(&r.body);
        assert!(
            !got.iter()
                .any(|(n, _)| n.contains("forwarded_client") || n.starts_with("x_amzn")),
            "an unverified certificate reached {upstream}: {got:?}"
        );
        let rec = &p.records(1)[0];
        let fi = &rec["request"]["forwarded_identity"];
        assert_eq!(fi["client_cert"], true, "{rec}");
        assert!(fi["withheld"].is_string(), "{rec}");
    }
    // Asked for: forwarded, and always with its verify status.
    let p = reverse(
        &s,
        &echo.url(),
        &[
            "--forward-client-cert",
            "xfcc",
            "--forward-client-cert-unverified",
        ],
    );
    let r = Curl::new(format!("https://localhost:{}/", p.port()))
        .cacert(s.pki.root_ca())
        .identity(cert, key)
        .run_async()
        .await;
    let got: BTreeMap<String, String> = seen(&r.body).into_iter().collect();
    assert!(
        got["x_forwarded_client_cert"].contains("CN=admin"),
        "{got:?}"
    );
    assert!(
        got["x_client_cert_verify"].starts_with("FAILED:"),
        "{got:?}"
    );
}

/// `forward --ui`: the proxy does not reach its own web view, as a plain request or a CONNECT,
/// by any local name; the refusal is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_refuses_its_own_web_view() {
    let ca = tempfile::tempdir().unwrap();
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

/// Reverse mode without `--server-cert` mints leaves only for the upstream's host and the
/// `--server-name`s; another SNI gets `unrecognized_name` and no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_with_the_local_ca_answers_only_for_its_names() {
    let ca = tempfile::tempdir().unwrap();
    let closed = free_port().unwrap();
    let upstream = format!("https://localhost:{closed}");
    let p = Mtlscope::start(&[
        "reverse",
        "--upstream",
        &upstream,
        "--ca-dir",
        ca.path().to_str().unwrap(),
        "--server-name",
        "api.example",
    ]);
    let connect = format!("127.0.0.1:{}", p.port());
    let other = SClient::new(&connect)
        .servername("other.example")
        .run_async()
        .await;
    assert!(
        !other.stdout.contains("BEGIN CERTIFICATE"),
        "{}",
        other.stdout
    );
    assert!(
        other.stderr.contains("unrecognized name") || other.stderr.contains("alert number 112"),
        "{}",
        other.stderr
    );
    let rec = &p.records(1)[0];
    assert_eq!(rec["client_leg"]["sni"], "other.example", "{rec}");
    assert_eq!(
        rec["client_leg"]["failure"]["kind"], "unserved_name",
        "{rec}"
    );
    assert!(
        rec["error"].as_str().unwrap().contains("api.example"),
        "{rec}"
    );
    for name in ["localhost", "api.example", "API.example."] {
        let ok = SClient::new(&connect)
            .servername(name)
            .arg("-showcerts")
            .run_async()
            .await;
        assert!(
            ok.stdout.contains("BEGIN CERTIFICATE"),
            "{name}: {}",
            ok.stderr
        );
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        assert!(
            ok.stdout.contains("mtlscope local CA") && ok.stdout.contains(&want),
            "{name}: {}",
            ok.stdout
        );
    }
}

/// A TLS client that sends one request and then idles is closed after `--idle-timeout`, and
/// the upstream connection with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_closed_with_its_upstream_leg() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup();
    // A keep-alive backend (wsgiref closes after each response, which would end the pair).
    let echo = LabEcho::start(None).await.unwrap();
    let echo_port: u16 = echo
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let p = reverse(&s, &echo.url(), &["--idle-timeout", "2"]);
    let mut roots = rustls::RootCertStore::empty();
    for c in mtlscope::pki::load::load_certs(s.pki.root_ca()).unwrap() {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.port()))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after 15 s");
    let idle = started.elapsed();
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    assert!(
        idle >= Duration::from_millis(1500),
        "closed too early: {idle:?}"
    );
    // The upstream connection is gone too (the backend has no established connection left).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ss = Command::new("ss")
            .args(["-Htn", "state", "established"])
            .arg(format!("( sport = :{echo_port} )"))
            .output()
            .unwrap();
        let open = String::from_utf8_lossy(&ss.stdout).lines().count();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream connection still open: {open}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Recordings are 0600, and secret query parameters, form fields and `Location` query strings
/// are redacted; `--no-redact` keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_private_and_carry_no_secret_values() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let echo = LabEcho::start(None).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let keylog = files.path().join("keys.log");
    let p = reverse(&s, &echo.url(), &["--keylog", keylog.to_str().unwrap()]);
    let url = format!(
        "https://localhost:{}/cb?state=ok&code=CODE123&access%5Ftoken=TOKEN456",
        p.port()
    );
    let r = Curl::new(&url)
        .cacert(s.pki.root_ca())
        .arg("--data")
        .arg("user=ann&pwd=PWD789&pin=PINX4U")
        .run_async()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = Curl::new(format!("https://localhost:{}/up", p.port()))
        .cacert(s.pki.root_ca())
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

    let kept = reverse(&s, &echo.url(), &["--no-redact"]);
    let url = format!("https://localhost:{}/cb?code=CODE123", kept.port());
    Curl::new(&url).cacert(s.pki.root_ca()).run_async().await;
    kept.records(1);
    assert!(std::fs::read_to_string(&kept.record)
        .unwrap()
        .contains("CODE123"));
}

/// A client certificate whose subject carries terminal escapes prints cleaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_in_a_certificate_never_reach_the_terminal() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
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
    let out = dir.path().join("stdout.txt");
    let port = free_port().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["reverse", "--upstream", &echo.url(), "--server-cert"])
        .arg(s.pki.server().arg())
        .args(["--client-auth", "optional", "--client-ca"])
        .arg(s.pki.root_ca())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_tcp(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(15),
    )
    .unwrap();
    let r = Curl::new(format!("https://localhost:{port}/"))
        .cacert(s.pki.root_ca())
        .identity(&cert, &key)
        .run_async()
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let printed = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("evil") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(printed.contains("evil"), "{r:?} printed {printed:?}");
    assert!(
        !printed.chars().any(|c| c.is_control() && c != '\n'),
        "control characters printed: {printed:?}"
    );
}
