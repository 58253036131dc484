//! Issue 24, "safe to leave running", tried as an attacker would, against real peers, with the
//! proxy in-process: forged identity headers in every spelling never reach a WSGI backend
//! (Python's `wsgiref`, which folds `_` and `-` into one variable) nor the header-echo backend,
//! over HTTP/1.1 and HTTP/2; `Connection` cannot drop mtlscope's own headers; an unverified
//! certificate is not forwarded by default; reverse mode with the local CA answers only for its
//! names (`openssl s_client -servername other.example`); idle client connections are closed
//! with their upstream leg. What needs the process (its web view, its files, its terminal) is
//! in `security_process.rs`.

mod common;
#[path = "common/offload.rs"]
mod fixture;

use common::flows::{client, has, http_version};
use common::{free_port, wait_for_tcp, Curl, Proxy, SClient};
use fixture::OffloadLab;
use mtlscope::facts::{FailureKind, FindingId, ForwardedIdentity};
use mtlscope::lab::echo::LabEcho;
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
        let dir = common::tmpdir();
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

/// The offload lab and a rogue certificate.
struct Setup {
    lab: OffloadLab,
    /// A self-signed certificate claiming `CN=admin` with a SPIFFE URI, and its key.
    rogue: (PathBuf, PathBuf),
}

impl std::ops::Deref for Setup {
    type Target = OffloadLab;
    fn deref(&self) -> &OffloadLab {
        &self.lab
    }
}

fn setup() -> Setup {
    let lab = OffloadLab::new();
    let (cert, key) = (lab.dir().join("rogue.pem"), lab.dir().join("rogue.key"));
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
        lab,
        rogue: (cert, key),
    }
}

fn forwarded(flow: &mtlscope::facts::Flow) -> &ForwardedIdentity {
    flow.request
        .as_ref()
        .and_then(|r| r.forwarded_identity.as_ref())
        .unwrap_or_else(|| panic!("no forwarded identity: {flow:#?}"))
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
        let mut p = s
            .reverse(
                &upstream,
                &[
                    "--forward-client-cert",
                    "nginx",
                    "--forward-client-cert",
                    "xfcc",
                    "--expect-client-cert-header",
                    "X-Client-Cert",
                ],
            )
            .await;
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
            let rec = &p.flows(i + 1).await[i];
            assert_eq!(
                http_version(rec),
                if h2 { "HTTP/2.0" } else { "HTTP/1.1" },
                "{rec:#?}"
            );
            assert_eq!(forwarded(rec).stripped.len(), FORGED.len(), "{rec:#?}");
            assert!(has(rec, FindingId::ClientSentIdentityHeader), "{rec:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_drop_mtlscopes_headers() {
    let s = setup();
    let wsgi = Wsgi::start();
    let p = s
        .reverse(
            &wsgi.url(),
            &[
                "--forward-client-cert",
                "nginx",
                "--forward-client-cert-verify",
            ],
        )
        .await;
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
        let mut p = s
            .reverse(
                &upstream,
                &[
                    "--forward-client-cert",
                    "xfcc",
                    "--forward-client-cert",
                    "aws-alb",
                ],
            )
            .await;
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
        let rec = p.flow().await;
        let fi = forwarded(&rec);
        assert!(fi.client_cert, "{rec:#?}");
        assert!(fi.withheld.is_some(), "{rec:#?}");
    }
    // Asked for: forwarded, and always with its verify status.
    let p = s
        .reverse(
            &echo.url(),
            &[
                "--forward-client-cert",
                "xfcc",
                "--forward-client-cert-unverified",
            ],
        )
        .await;
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

/// Reverse mode without `--server-cert` mints leaves only for the upstream's host and the
/// `--server-name`s; another SNI gets `unrecognized_name` and no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_with_the_local_ca_answers_only_for_its_names() {
    let ca = common::tmpdir();
    let closed = free_port().unwrap();
    let upstream = format!("https://localhost:{closed}");
    let mut p = Proxy::start(&[
        "reverse",
        "--upstream",
        &upstream,
        "--ca-dir",
        ca.path().to_str().unwrap(),
        "--server-name",
        "api.example",
    ])
    .await;
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
    let rec = p.flow().await;
    assert_eq!(
        client(&rec).sni.as_deref(),
        Some("other.example"),
        "{rec:#?}"
    );
    assert_eq!(
        client(&rec).failure.as_ref().map(|f| f.kind),
        Some(FailureKind::UnservedName),
        "{rec:#?}"
    );
    assert!(
        rec.error
            .as_deref()
            .unwrap_or_default()
            .contains("api.example"),
        "{rec:#?}"
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
    let p = s.reverse(&echo.url(), &["--idle-timeout", "2"]).await;
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
