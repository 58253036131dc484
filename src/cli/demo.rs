//! `mtlscope demo`: the whole thing on an embedded default, with nothing else running.
//!
//! It generates the dev PKI into a temporary directory, starts an in-process upstream that
//! requires client certificates, and for each kind of client (good, none, expired, wrong CA,
//! leaf without intermediate, wrong purpose) starts mtlscope in front of it presenting that
//! identity, sends one request through, and prints what mtlscope saw and concluded.

use super::proxy_args::ProxyArgs;
use crate::error::CommandError;
use crate::facts::{Flow, Mode};
use crate::lab::upstream::{LabClientAuth, LabUpstream, LabUpstreamConfig};
use crate::pki::load::load_certs;
use crate::pki::{ClientCert, DevPki};
use crate::proxy::reverse::{ReverseOptions, ReverseProxy};
use crate::record::Sink;
use crate::settings::CertKey;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One demo client: what it presents, and what to call it.
struct Scenario {
    /// Shown as the heading.
    title: &'static str,
    /// The identity mtlscope presents upstream on this client's behalf; None = no certificate.
    cert: Option<ClientCert>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        title: "a good client certificate (leaf + intermediate)",
        cert: Some(ClientCert::Good),
    },
    Scenario {
        title: "no client certificate",
        cert: None,
    },
    Scenario {
        title: "an expired client certificate",
        cert: Some(ClientCert::Expired),
    },
    Scenario {
        title: "a certificate from the wrong CA",
        cert: Some(ClientCert::OtherCa),
    },
    Scenario {
        title: "a leaf without its intermediate",
        cert: Some(ClientCert::NoIntermediate),
    },
    Scenario {
        title: "a serverAuth-only certificate (wrong purpose)",
        cert: Some(ClientCert::ServerAuthOnly),
    },
];

/// Run the demo, printing to stdout.
pub fn run() -> Result<(), CommandError> {
    let dir = tempfile::Builder::new()
        .prefix("mtlscope-demo-")
        .tempdir()
        .map_err(|e| CommandError::runtime(format!("cannot create a temporary directory: {e}")))?;
    let rt = super::runtime()?;
    let result = rt.block_on(demo(dir.path()));
    // Stop every task before the PKI directory goes.
    drop(rt);
    result
}

async fn demo(dir: &Path) -> Result<(), CommandError> {
    let pki = DevPki::generate(dir).map_err(|e| CommandError::runtime(format!("dev PKI: {e}")))?;
    let server = Arc::new(pki.server().load()?);
    let upstream = LabUpstream::start(LabUpstreamConfig {
        server,
        client_auth: LabClientAuth::Required,
        client_cas: load_certs(pki.root_ca())?,
        empty_ca_names: false,
        tls12_only: false,
        allowed_sha256: Vec::new(),
        silent_reject: false,
    })
    .await
    .map_err(CommandError::runtime)?;
    crate::outln!("mtlscope demo");
    crate::outln!(
        "  upstream: an in-process HTTPS server on {} that requires a client certificate",
        upstream.addr
    );
    crate::outln!("  issued by the dev root CA; mtlscope sits in front of it and presents each identity below.\n");

    let mut failures = 0;
    for scenario in SCENARIOS {
        let flow = run_scenario(&pki, &upstream, scenario).await?;
        let failed = flow.status().is_none_or(|s| s >= 400);
        failures += usize::from(failed);
        crate::outln!("▶ {}", scenario.title);
        crate::outln!("{}", crate::render::explain::demo_block(&flow));
    }
    crate::outln!(
        "{} exchanges, {} failed and were explained. Run `mtlscope reverse --help` to put mtlscope in front of your own server.",
        SCENARIOS.len(),
        failures
    );
    Ok(())
}

async fn run_scenario(
    pki: &DevPki,
    upstream: &LabUpstream,
    scenario: &Scenario,
) -> Result<Flow, CommandError> {
    let mut args = ProxyArgs::default();
    args.run.listen = Some("127.0.0.1:0".into());
    args.run.quiet = true;
    let server = pki.server();
    args.tls.server_cert = Some(CertKey::pem(&server.cert, &server.key));
    args.upstream.identity = scenario
        .cert
        .map(|c| pki.client(c))
        .map(|id| CertKey::pem(&id.cert, &id.key))
        .into_iter()
        .collect();
    args.upstream.upstream_ca = vec![pki.root_ca().to_path_buf()];
    args.upstream.timeout = Some(5);
    let origins = args.load("reverse", &mut [])?;
    let built = args.build(&origins, "127.0.0.1:0", |inputs| {
        inputs
            .fixed_server_cert()?
            .ok_or_else(|| CommandError::runtime("demo server certificate missing"))
    })?;
    let (sink, mut flows) = Sink::observed();
    let target = crate::upstream::parse_upstream(&upstream.url()).map_err(CommandError::runtime)?;
    let opts = ReverseOptions {
        session: built.session_context(Mode::Reverse, sink),
        identity: built.identity,
        target,
    };
    let proxy = ReverseProxy::start(built.listen, opts, None)
        .await
        .map_err(CommandError::runtime)?;
    let request = get(pki, proxy.local_addr.port()).await;
    if let Err(e) = &request {
        tracing::debug!(error = %e, "demo client request failed");
    }
    let flow = tokio::time::timeout(Duration::from_secs(10), flows.recv())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| CommandError::runtime("the demo exchange was not recorded within 10 s"))?;
    proxy.stop();
    Ok(flow)
}

/// One GET through the proxy, trusting the dev root, reading the whole body.
async fn get(pki: &DevPki, port: u16) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(pki.root_ca()).map_err(|e| e.to_string())? {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(super::proxy_args::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header(http::header::HOST, format!("localhost:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}
