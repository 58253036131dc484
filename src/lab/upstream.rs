//! An in-process HTTPS server that asks for client certificates the way real servers do:
//! required, optional (with an application that answers 403 without one), or not at all; with
//! CA names or an empty list; on TLS 1.2 or 1.3.

use crate::pki::load::Identity;
use crate::proxy::client_leg::FixedServerCert;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the lab server asks for a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabClientAuth {
    /// No CertificateRequest.
    None,
    /// Ask; without a certificate, `/app` answers 403 (an application-level refusal).
    Optional,
    /// Ask and refuse the handshake without a valid certificate.
    Required,
}

/// A lab server's configuration.
#[derive(Clone, Debug)]
pub struct LabUpstreamConfig {
    /// The server's certificate and key.
    pub server: Arc<Identity>,
    /// Whether and how to ask for a client certificate.
    pub client_auth: LabClientAuth,
    /// Trusted client CAs (their subjects are the CA names sent, unless `empty_ca_names`).
    pub client_cas: Vec<CertificateDer<'static>>,
    /// Send an empty CA list (the IIS 8+ default).
    pub empty_ca_names: bool,
    /// Offer only TLS 1.2.
    pub tls12_only: bool,
    /// Fingerprints (SHA-256 hex) the application accepts on `/app`; empty = any verified one.
    pub allowed_sha256: Vec<String>,
}

/// A running lab server.
pub struct LabUpstream {
    /// Where it listens (127.0.0.1, port chosen by the OS).
    pub addr: SocketAddr,
    /// The accept loop.
    task: JoinHandle<()>,
}

impl Drop for LabUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LabUpstream {
    /// Start on 127.0.0.1:0.
    pub async fn start(cfg: LabUpstreamConfig) -> Result<LabUpstream, LabError> {
        let tls = Arc::new(server_config(&cfg)?);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(LabError::Io)?;
        let addr = listener.local_addr().map_err(LabError::Io)?;
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| crate::cert::summarize(c).ok());
                    let service = hyper::service::service_fn(move |req| {
                        let reply = respond(&cfg, peer.as_ref(), &req);
                        async move { Ok::<_, std::convert::Infallible>(reply) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(LabUpstream { addr, task })
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

/// Why a lab server could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// TLS configuration.
    #[error("lab server TLS configuration: {0}")]
    Tls(String),
    /// Binding.
    #[error("lab server socket: {0}")]
    Io(std::io::Error),
}

fn server_config(cfg: &LabUpstreamConfig) -> Result<rustls::ServerConfig, LabError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::ALL_VERSIONS
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| LabError::Tls(e.to_string()))?;
    let builder = if cfg.client_auth == LabClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for ca in &cfg.client_cas {
            roots
                .add(ca.clone())
                .map_err(|e| LabError::Tls(e.to_string()))?;
        }
        let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if cfg.empty_ca_names {
            v = v.clear_root_hint_subjects();
        }
        if cfg.client_auth == LabClientAuth::Optional {
            v = v.allow_unauthenticated();
        }
        builder.with_client_cert_verifier(v.build().map_err(|e| LabError::Tls(e.to_string()))?)
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(FixedServerCert(cfg.server.certified.clone())));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn respond(
    cfg: &LabUpstreamConfig,
    peer: Option<&crate::facts::CertSummary>,
    req: &http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    let (status, body) = match (req.uri().path(), peer) {
        ("/app", None) => (
            403,
            "403 Forbidden: a client certificate is required for /app\n".to_string(),
        ),
        ("/app", Some(p))
            if !cfg.allowed_sha256.is_empty() && !cfg.allowed_sha256.contains(&p.sha256) =>
        {
            (
                403,
                format!(
                    "403 Forbidden: certificate {} is not on the allow-list\n",
                    p.subject
                ),
            )
        }
        (_, Some(p)) => (200, format!("hello {}\n", p.subject)),
        (_, None) => (200, "hello anonymous\n".to_string()),
    };
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp
}
