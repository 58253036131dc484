//! Each flow is diagnosed exactly once: a relayed 4xx (whose `Mtlscope-Diagnosis` header is
//! written before the body is relayed), a 502 mtlscope produces itself (whose body is the
//! diagnosis), and a success. `mtlscope reverse` runs in-process on port 0 in front of an
//! in-process lab upstream, with `Sink::observed()`, and the test reads the process's count of
//! diagnoses around each exchange.
//!
//! The count is process-wide, so this file holds one test and nothing else diagnoses meanwhile.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mtlscope::cli::proxy_args::ProxyArgs;
use mtlscope::diagnose;
use mtlscope::facts::{Flow, Mode};
use mtlscope::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use mtlscope::pki::load::load_certs;
use mtlscope::pki::DevPki;
use mtlscope::proxy::reverse::{ReverseOptions, ReverseProxy};
use mtlscope::record::Sink;
use mtlscope::settings::CertKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// What the client got.
struct Answer {
    status: u16,
    /// The `Mtlscope-Diagnosis` header, if any.
    header: Option<String>,
    body: String,
}

async fn lab_upstream(pki: &DevPki, auth: LabClientAuth) -> LabUpstream {
    LabUpstream::start(LabUpstreamConfig {
        server: Arc::new(pki.server().load().expect("server identity")),
        client_auth: auth,
        client_cas: load_certs(pki.root_ca()).expect("dev root"),
        empty_ca_names: false,
        tls12_only: false,
        allowed_sha256: vec![],
        silent_reject: false,
    })
    .await
    .expect("lab upstream")
}

/// `mtlscope reverse` (no identity) in front of `up`, in this process, and its flows.
async fn reverse(pki: &DevPki, up: &LabUpstream) -> (ReverseProxy, UnboundedReceiver<Flow>) {
    let mut args = ProxyArgs::default();
    args.run.listen = Some("127.0.0.1:0".into());
    args.run.quiet = true;
    let server = pki.server();
    args.tls.server_cert = Some(CertKey::pem(&server.cert, &server.key));
    args.upstream.upstream_ca = vec![pki.root_ca().to_path_buf()];
    args.upstream.timeout = Some(5);
    let origins = args.load("reverse", &mut []).expect("settings");
    let built = args
        .build(&origins, "127.0.0.1:0", |inputs| {
            Ok(inputs.fixed_server_cert()?.expect("server certificate"))
        })
        .expect("build");
    let (sink, flows) = Sink::observed();
    let target = mtlscope::cli::reverse::parse_upstream(&up.url()).expect("upstream");
    let opts = ReverseOptions {
        session: built.session_context(Mode::Reverse, sink),
        identity: built.identity,
        target,
    };
    let proxy = ReverseProxy::start(built.listen, opts, None)
        .await
        .expect("start reverse");
    (proxy, flows)
}

/// One GET through the proxy on a connection of its own, reading the whole body.
async fn get(pki: &DevPki, port: u16, path: &str) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(load_certs(pki.root_ca()).expect("dev root"));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS to mtlscope");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1");
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, format!("localhost:{port}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get("mtlscope-diagnosis")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        header,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The next flow, within 10 s.
async fn next_flow(flows: &mut UnboundedReceiver<Flow>) -> Flow {
    tokio::time::timeout(Duration::from_secs(10), flows.recv())
        .await
        .expect("a flow within 10 s")
        .expect("the sink is open")
}

fn ids(flow: &Flow) -> Vec<String> {
    flow.findings
        .iter()
        .map(|f| f.id.as_str().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flow_is_diagnosed_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let pki = DevPki::generate(dir.path()).expect("dev pki");

    // The upstream asks for a certificate and lets the handshake go on without one; its `/app`
    // answers 403 without one, `/` answers 200.
    let optional = lab_upstream(&pki, LabClientAuth::Optional).await;
    let (proxy, mut flows) = reverse(&pki, &optional).await;
    let port = proxy.local_addr.port();

    let before = diagnose::calls();
    let answer = get(&pki, port, "/app").await;
    let flow = next_flow(&mut flows).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(
        diagnose::calls() - before,
        1,
        "a relayed 403 is diagnosed once (its header and its record share the diagnosis)"
    );
    assert!(flow.diagnosed, "the record says its findings were computed");
    let header = answer.header.expect("a diagnosed 403 carries the header");
    assert!(!flow.findings.is_empty());
    assert_eq!(
        header
            .split(',')
            .map(|s| s.trim().to_string())
            .collect::<Vec<_>>(),
        ids(&flow),
        "the header names the record's findings"
    );

    let before = diagnose::calls();
    let answer = get(&pki, port, "/").await;
    let flow = next_flow(&mut flows).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header, None);
    assert_eq!(diagnose::calls() - before, 1, "a success is diagnosed once");
    assert!(flow.diagnosed);
    proxy.stop();

    // The upstream refuses the handshake without a certificate: mtlscope answers 502 itself.
    let required = lab_upstream(&pki, LabClientAuth::Required).await;
    let (proxy, mut flows) = reverse(&pki, &required).await;
    let before = diagnose::calls();
    let answer = get(&pki, proxy.local_addr.port(), "/").await;
    let flow = next_flow(&mut flows).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert_eq!(
        diagnose::calls() - before,
        1,
        "a produced 502 is diagnosed once (its body, its header and its record)"
    );
    assert_eq!(
        ids(&flow).first().map(String::as_str),
        Some("no-client-cert")
    );
    let header = answer.header.expect("a diagnosed 502 carries the header");
    assert_eq!(
        header
            .split(',')
            .map(|s| s.trim().to_string())
            .collect::<Vec<_>>(),
        ids(&flow)
    );
    assert!(
        answer.body.contains("no-client-cert"),
        "the body is the diagnosis: {}",
        answer.body
    );
    proxy.stop();

    // Nothing else was emitted (and so nothing else diagnosed) for these connections.
    assert!(flows.try_recv().is_err());
}
