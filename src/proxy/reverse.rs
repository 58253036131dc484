//! `mtlscope reverse`: a TLS listener whose every connection gets its own upstream connection.

use super::context::SessionContext;
use super::session::{self, Accepted};
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::EventKind;
use crate::lifecycle::{accept_loop, AcceptLimits};
use crate::upstream::Target;
use std::net::SocketAddr;
use std::sync::Arc;
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
    /// Bind `listen` and start accepting; `max_connections` bounds the open client
    /// connections.
    pub async fn start(
        listen: SocketAddr,
        opts: ReverseOptions,
        max_connections: Option<usize>,
    ) -> std::io::Result<ReverseProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let life = opts.session.life.clone();
        let limits = AcceptLimits {
            max_connections,
            loopback_only: false,
            mode: opts.session.mode,
            sink: opts.session.sink.clone(),
        };
        let opts = Arc::new(opts);
        let task = tokio::spawn(accept_loop(listener, life, limits, move |tcp, peer, id| {
            connection(tcp, peer, id, opts.clone())
        }));
        Ok(ReverseProxy { local_addr, task })
    }

    /// Run until the accept loop ends (when the process stops).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stop accepting. Connections in flight finish on their own.
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn connection(tcp: TcpStream, peer: SocketAddr, id: u64, opts: Arc<ReverseOptions>) {
    let clock = ConnClock::start();
    let client = LegRecorder::new(clock);
    client.with(|leg| leg.peer = Some(peer.to_string()));
    client.event(EventKind::TcpAccept, Some(peer.to_string()));
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
