//! `mtlscope reverse`: a TLS listener whose every connection gets its own upstream connection.

use super::session::{self, Accepted, SessionContext};
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::upstream::Target;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Everything a reverse listener needs.
#[derive(Clone)]
pub struct ReverseOptions {
    /// Client leg, engine, sink.
    pub session: SessionContext,
    /// Which identity to present upstream.
    pub identity: IdentityPolicy,
    /// Where to relay.
    pub target: Target,
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
    let accepted = Accepted {
        io: Box::new(tcp),
        peer: peer.to_string(),
        id,
        clock,
        client,
        faults: Vec::new(),
    };
    session::run(
        accepted,
        opts.target.clone(),
        opts.identity.clone(),
        &opts.session,
    )
    .await;
}
