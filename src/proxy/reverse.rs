//! `mtlscope reverse`: a TLS listener whose every connection gets its own upstream connection.

use super::client_leg::{accept, ClientLegOutcome, ClientLegSettings};
use super::relay::{Pair, UpstreamSender};
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{Flow, Mode, RecordKind};
use crate::record::Sink;
use crate::upstream::{Engine, Target};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a client may send as a request head (larger gets 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Everything a reverse listener needs.
#[derive(Clone)]
pub struct ReverseOptions {
    /// The client leg's TLS settings.
    pub client: ClientLegSettings,
    /// The upstream engine.
    pub engine: Engine,
    /// Where to relay.
    pub target: Target,
    /// Where flows go.
    pub sink: Sink,
    /// Redact credentials in records.
    pub redact: bool,
}

/// A running reverse proxy.
pub struct ReverseProxy {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The accept loop.
    task: JoinHandle<()>,
}

impl ReverseProxy {
    /// Bind `listen` and start accepting.
    pub async fn start(listen: SocketAddr, opts: ReverseOptions) -> std::io::Result<ReverseProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, Arc::new(opts)));
        Ok(ReverseProxy { local_addr, task })
    }

    /// Run until the accept loop ends (it does not, short of a panic).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stop accepting. Connections in flight finish on their own.
    pub fn stop(&self) {
        self.task.abort();
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

async fn accept_loop(listener: TcpListener, opts: Arc<ReverseOptions>) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(tcp, peer, id, opts.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(tcp: TcpStream, peer: SocketAddr, id: u64, opts: Arc<ReverseOptions>) {
    let clock = ConnClock::start();
    let _ = tcp.set_nodelay(true);
    let client = LegRecorder::new(clock);
    client.with(|leg| leg.peer = Some(peer.to_string()));
    client.event("tcp_accept", Some(peer.to_string()));

    let tls = match accept(Box::new(tcp), &opts.client, None, &client).await {
        ClientLegOutcome::Established(tls) => tls,
        ClientLegOutcome::Failed => {
            let mut flow = Flow::new(Mode::Reverse, id, clock.started_at());
            flow.kind = RecordKind::Connection;
            flow.client_addr = Some(peer.to_string());
            flow.upstream = Some(opts.target.authority());
            let leg = client.snapshot();
            flow.error = leg.error.clone();
            flow.client_leg = Some(leg);
            opts.sink.emit(flow).await;
            return;
        }
    };

    let upstream = LegRecorder::new(clock);
    let sender = match opts.engine.connect(&opts.target, &upstream).await {
        Ok(conn) => match UpstreamSender::handshake(conn.io, conn.alpn.as_deref()).await {
            Ok(s) => Some(s),
            Err(e) => {
                upstream.fail(&crate::capture::tls_error::Classified {
                    words: format!("HTTP handshake with the upstream failed: {e}"),
                    failure: crate::facts::LegFailure {
                        stage: "http".into(),
                        kind: "http".into(),
                    },
                    alert: None,
                });
                None
            }
        },
        Err(_) => None,
    };

    let pair = Arc::new(Pair {
        id,
        mode: Mode::Reverse,
        clock,
        client_addr: peer.to_string(),
        target: opts.target.clone(),
        client,
        upstream,
        sender,
        faults: Mutex::new(Vec::new()),
        exchanges: AtomicU32::new(0),
        sink: opts.sink.clone(),
        redact: opts.redact,
    });
    let error = serve_client(*tls, pair.clone()).await;
    pair.finish(error).await;
}

/// Serve HTTP/1.1 or HTTP/2 to the client over its TLS stream; the error that ended it, if any.
pub async fn serve_client<IO>(io: IO, pair: Arc<Pair>) -> Option<String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    builder.http2().timer(TokioTimer::new());
    let service = hyper::service::service_fn(move |req| pair.clone().handle(req));
    builder
        .serve_connection(TokioIo::new(io), service)
        .await
        .err()
        .map(|e| format!("client HTTP connection ended: {e}"))
}
