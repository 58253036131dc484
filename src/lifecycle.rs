//! The life of a listening process, shared by `reverse`, `forward` and `observe`: one accept
//! loop with a connection limit, every connection task tracked, and the stop on SIGTERM/SIGINT
//! (stop accepting, let in-flight exchanges finish within the grace period, then end what is
//! left so that it still writes its record).

use crate::facts::{Flow, Mode, OwnLimit, RecordKind};
use crate::record::Sink;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a connection may take to write its record once told to end at once.
const HARD_STOP_WAIT: Duration = Duration::from_secs(2);

/// The stop signals and the tasks they wait for. Cheap to clone; one per listener process.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    /// Cancelled when the process starts stopping: listeners stop accepting, client
    /// connections finish their exchange in flight and close.
    stopping: CancellationToken,
    /// Cancelled when the grace period is over: whatever still runs ends now (tunnels, slow
    /// bodies) and writes its record.
    ending: CancellationToken,
    /// Every connection task, so the stop can wait for them.
    tasks: TaskTracker,
}

impl Lifecycle {
    /// A lifecycle that has not started stopping.
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    /// Run `task` as a tracked connection task.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// The tracker of the tasks the stop waits for (a cheap clone, for a task spawned where
    /// the whole lifecycle is not needed).
    pub fn tracker(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Resolves when the process starts stopping.
    pub async fn stopping(&self) {
        self.stopping.cancelled().await
    }

    /// Whether the process has started stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Resolves when the grace period is over and every task must end now.
    pub async fn ending(&self) {
        self.ending.cancelled().await
    }

    /// Stop: no new connections; in-flight ones get `grace` to finish, then are told to end
    /// and get a little longer to write their records. Returns whether every task ended.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return true;
        }
        tracing::warn!(
            tasks = self.tasks.len(),
            "grace period over; ending the connections still open"
        );
        self.ending.cancel();
        tokio::time::timeout(HARD_STOP_WAIT, self.tasks.wait())
            .await
            .is_ok()
    }
}

/// What the accept loop needs besides the listener.
#[derive(Clone)]
pub struct AcceptLimits {
    /// `--max-connections`: at most this many client connections at once; `None` = no limit.
    pub max_connections: Option<usize>,
    /// Only loopback clients are served (forward without `--allow-remote`).
    pub loopback_only: bool,
    /// The mode recorded on refused connections.
    pub mode: Mode,
    /// Where refused connections are recorded.
    pub sink: Sink,
}

/// Accept until the lifecycle stops, handing each connection (with its slot under the limit,
/// held until the handler ends) to `handle` on a tracked task. A connection over the limit is
/// closed at once and recorded with the reason.
pub async fn accept_loop<H, Fut>(
    listener: TcpListener,
    life: Lifecycle,
    limits: AcceptLimits,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = life.stopping() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if limits.loopback_only && !peer.ip().is_loopback() {
            tracing::warn!(%peer, "refused a client that is not on loopback (use --allow-remote)");
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let id = next_connection_id();
        let permit: Option<OwnedSemaphorePermit> = match &slots {
            None => None,
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    drop(tcp);
                    let max = limits.max_connections.unwrap_or_default();
                    let sink = limits.sink.clone();
                    let mode = limits.mode;
                    life.spawn(async move {
                        sink.emit(refused_flow(mode, id, peer, max)).await;
                    });
                    continue;
                }
            },
        };
        let task = handle(tcp, peer, id);
        life.spawn(async move {
            task.await;
            drop(permit);
        });
    }
}

/// Process-unique connection numbers, shared by every listener.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The next connection number.
pub fn next_connection_id() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// The record of a connection refused because `--max-connections` was reached.
fn refused_flow(mode: Mode, id: u64, peer: SocketAddr, max: usize) -> Flow {
    let mut flow = Flow::new(mode, id, time::OffsetDateTime::now_utc());
    flow.kind = RecordKind::Connection;
    flow.client_addr = Some(peer.to_string());
    flow.error = Some(format!(
        "closed at accept: {max} client connections were already open (--max-connections {max})"
    ));
    flow.own_limit = Some(OwnLimit::MaxConnections { max });
    flow
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
pub async fn stop_signal() {
    first_signal().await;
    tokio::spawn(async {
        first_signal().await;
        eprintln!("mtlscope: second signal, exiting at once");
        std::process::exit(1);
    });
}

#[cfg(unix)]
async fn first_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn first_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_tasks_within_grace() {
        let life = Lifecycle::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let l2 = life.clone();
        life.spawn(async move {
            l2.stopping().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(());
        });
        assert!(life.stop(Duration::from_secs(5)).await);
        assert!(
            rx.await.is_ok(),
            "the task finished its work before stop returned"
        );
    }

    #[tokio::test]
    async fn a_task_past_grace_is_told_to_end() {
        let life = Lifecycle::new();
        let l2 = life.clone();
        life.spawn(async move {
            // Ignores "stopping"; obeys "ending".
            l2.ending().await;
        });
        assert!(life.stop(Duration::from_millis(50)).await);
    }

    #[tokio::test]
    async fn over_the_limit_is_refused_and_recorded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sink, mut flows) = Sink::observed();
        let life = Lifecycle::new();
        let limits = AcceptLimits {
            max_connections: Some(1),
            loopback_only: true,
            mode: Mode::Reverse,
            sink,
        };
        let hold = life.clone();
        tokio::spawn(accept_loop(
            listener,
            life.clone(),
            limits,
            move |_tcp, _peer, _id| {
                let hold = hold.clone();
                async move { hold.stopping().await }
            },
        ));
        let _first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        let flow = tokio::time::timeout(Duration::from_secs(5), flows.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(flow.client_addr.is_some());
        assert!(flow.error.unwrap().contains("--max-connections 1"));
        assert_eq!(flow.own_limit, Some(OwnLimit::MaxConnections { max: 1 }));
        assert!(flow.faults.is_empty(), "a limit is not a fault");
        assert!(life.stop(Duration::from_secs(5)).await);
    }
}
