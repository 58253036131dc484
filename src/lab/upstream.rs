//! An in-process HTTPS server that asks for client certificates the way real servers do:
//! required, optional (with an application that answers 403 without one), or not at all; with
//! CA names or an empty list; on TLS 1.2 or 1.3.
//!
//! Besides `/app` (the certificate-checking application) and the greeting every other path gets,
//! it has routes for exercising a proxy's streaming and failure handling:
//! `/echo` streams the request body back, `/big?n=BYTES[&status=CODE]` streams `n` bytes of
//! `a..z` (with that status, default 200), and `/die` sends a response head and part of its
//! body, then drops the connection; `/stall?ms=N` answers after N ms.

use crate::pki::load::Identity;
use crate::proxy::client_leg::FixedServerCert;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The body type of every lab response.
type LabBody = BoxBody<Bytes, BoxError>;
/// A body error of any kind.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much of its promised body `/die` sends before dropping the connection.
const DIE_AFTER_BYTES: usize = 16 * 1024;
/// What `/die` promises in `Content-Length`.
const DIE_PROMISED_BYTES: u64 = 1024 * 1024;
/// The largest HTTP/2 request head the lab server takes.
const LAB_MAX_HEAD_BYTES: u32 = 64 * 1024;
/// The size of the chunks `/big` streams.
const BIG_CHUNK: u64 = 64 * 1024;

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
    /// Refuse a missing or invalid certificate by closing the connection without an alert
    /// (TLS 1.2: instead of the alert; TLS 1.3: right after the handshake).
    pub silent_reject: bool,
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
        let strict = if cfg.silent_reject {
            Some(strict_verifier(&cfg)?)
        } else {
            None
        };
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
                let strict = strict.clone();
                tokio::spawn(async move {
                    let tcp = super::silent::DropAlerts::new(tcp, cfg.silent_reject);
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Some(strict) = &strict {
                        if !super::silent::accepts(strict, tls.get_ref().1.peer_certificates()) {
                            // Dropped without close_notify: the client sees only the close.
                            return;
                        }
                    }
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| crate::cert::summarize(c).ok());
                    // `/die` asks for the whole connection to be dropped, mid-response.
                    let die = Arc::new(Notify::new());
                    let die_route = die.clone();
                    let service = hyper::service::service_fn(move |req| {
                        // `/stall?ms=N` holds the response head back (at most 60 s).
                        let stall = (req.uri().path() == "/stall")
                            .then(|| query_param(&req, "ms").unwrap_or(0).min(60_000));
                        let reply = respond(&cfg, peer.as_ref(), req, &die_route);
                        async move {
                            if let Some(ms) = stall {
                                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                            }
                            Ok::<_, std::convert::Infallible>(reply)
                        }
                    });
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    // Heads as large as a proxy in front may relay (h2's default is 16 KiB).
                    builder.http2().max_header_list_size(LAB_MAX_HEAD_BYTES);
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = die.notified() => {}
                    }
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

/// The verifier that decides, in `silent_reject` mode, whether a client certificate is good.
fn strict_verifier(
    cfg: &LabUpstreamConfig,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, LabError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in &cfg.client_cas {
        roots
            .add(ca.clone())
            .map_err(|e| LabError::Tls(e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| LabError::Tls(e.to_string()))
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
        let verifier = v.build().map_err(|e| LabError::Tls(e.to_string()))?;
        if cfg.silent_reject && !cfg.tls12_only {
            // TLS 1.3: refuse after the handshake (see `silent`), so accept any chain here.
            builder
                .with_client_cert_verifier(Arc::new(super::silent::AcceptAny { strict: verifier }))
        } else {
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(FixedServerCert(cfg.server.certified.clone())));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn respond(
    cfg: &LabUpstreamConfig,
    peer: Option<&crate::facts::CertSummary>,
    req: http::Request<Incoming>,
    die: &Arc<Notify>,
) -> http::Response<LabBody> {
    match req.uri().path() {
        "/echo" => {
            let body = req.into_body().map_err(BoxError::from).boxed();
            return http::Response::new(body);
        }
        "/big" => {
            let n = query_param(&req, "n").unwrap_or(0);
            let status = query_param(&req, "status")
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| http::StatusCode::from_u16(s).ok())
                .unwrap_or(http::StatusCode::OK);
            let mut resp = http::Response::new(Pattern { left: n, sent: 0 }.boxed());
            *resp.status_mut() = status;
            return resp;
        }
        "/die" => {
            let body = DieBody {
                state: DieState::Head,
                die: die.clone(),
            };
            let mut resp = http::Response::new(body.boxed());
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, DIE_PROMISED_BYTES.into());
            return resp;
        }
        _ => {}
    }
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
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = http::Response::new(body);
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp
}

/// A numeric query parameter.
fn query_param(req: &http::Request<Incoming>, name: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// `/big`: `left` more bytes of `a..z`, repeating, in chunks.
struct Pattern {
    /// Bytes still to send.
    left: u64,
    /// Bytes sent so far (the pattern's phase).
    sent: u64,
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let len = self.left.min(BIG_CHUNK);
        let start = self.sent;
        let chunk: Vec<u8> = (start..start + len)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        self.left -= len;
        self.sent += len;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// `/die`: part of the promised body, a pause so it is flushed, then the connection is dropped.
struct DieBody {
    /// Where the body is.
    state: DieState,
    /// Tells the connection task to drop the connection.
    die: Arc<Notify>,
}

enum DieState {
    /// The partial body is still to be sent.
    Head,
    /// Sent; waiting for it to reach the socket.
    Flushing(Pin<Box<tokio::time::Sleep>>),
    /// The connection is being dropped; no more frames.
    Dead,
}

impl Body for DieBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.state {
            DieState::Head => {
                let pause = tokio::time::sleep(Duration::from_millis(100));
                self.state = DieState::Flushing(Box::pin(pause));
                let part = Bytes::from(vec![b'x'; DIE_AFTER_BYTES]);
                Poll::Ready(Some(Ok(Frame::data(part))))
            }
            DieState::Flushing(pause) => {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.die.notify_one();
                self.state = DieState::Dead;
                Poll::Pending
            }
            DieState::Dead => Poll::Pending,
        }
    }
}
