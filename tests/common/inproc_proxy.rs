//! `mtlscope reverse`/`forward` started inside the test process (`mtlscope::cli::embed`): the
//! same words a user types, listening on 127.0.0.1:0, with each diagnosed [`Flow`] awaited from
//! a channel (no recording file, no polling, no fixed sleep).
//!
//! The proxy gets a runtime of its own on its own thread, as the binary has: a test that blocks
//! its runtime (a blocking client, a server start-up) cannot stall the proxy, and the proxy's
//! timing does not depend on the test's runtime flavour.
//!
//! ```ignore
//! let mut p = Proxy::start(&["reverse", "--upstream", &url, "--server-cert", &cert]).await;
//! // … a client talks to p.port() …
//! let f = p.flow().await;
//! assert_eq!(flows::ids(&f), [FindingId::NoClientCert]);
//! ```

use mtlscope::facts::Flow;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a test waits for the proxy's next flow before failing.
pub const FLOW_WAIT: Duration = Duration::from_secs(10);

/// A proxy running in this process; it stops (with its runtime) when dropped.
pub struct Proxy {
    /// Where it listens.
    local_addr: SocketAddr,
    /// Its diagnosed flows.
    flows: mpsc::UnboundedReceiver<Flow>,
    /// Dropping this stops the proxy's thread.
    _stop: oneshot::Sender<()>,
    /// `host:port` it listens on.
    pub addr: String,
    /// Every flow received so far, in arrival order.
    seen: Vec<Flow>,
}

impl Proxy {
    /// Start `mtlscope <args> --listen 127.0.0.1:0` in this runtime; panics with the error's
    /// message when the flags are refused.
    pub async fn start(args: &[&str]) -> Proxy {
        Proxy::try_start(args)
            .await
            .unwrap_or_else(|e| panic!("mtlscope {args:?} did not start: {e}"))
    }

    /// [`Proxy::start`], returning the refusal instead of panicking.
    pub async fn try_start(args: &[&str]) -> Result<Proxy, String> {
        let (ready, stop) = spawn(args)?;
        let started = ready
            .await
            .map_err(|_| "the proxy thread ended before it started".to_string())?;
        Proxy::started(started, stop)
    }

    /// [`Proxy::start`] for a test without a runtime of its own (a plain `#[test]`).
    pub fn start_blocking(args: &[&str]) -> Proxy {
        let started = spawn(args).and_then(|(ready, stop)| {
            let started = ready
                .blocking_recv()
                .map_err(|_| "the proxy thread ended before it started".to_string())?;
            Proxy::started(started, stop)
        });
        started.unwrap_or_else(|e| panic!("mtlscope {args:?} did not start: {e}"))
    }

    /// The proxy once its thread reported.
    fn started(started: Started, stop: oneshot::Sender<()>) -> Result<Proxy, String> {
        let (local_addr, flows) = started?;
        Ok(Proxy {
            local_addr,
            flows,
            _stop: stop,
            addr: local_addr.to_string(),
            seen: Vec::new(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The next flow not yet returned by `flow` or counted by `flows` (≤ [`FLOW_WAIT`]).
    pub async fn flow(&mut self) -> Flow {
        let n = self.seen.len() + 1;
        self.flows(n).await.pop().expect("n ≥ 1")
    }

    /// Wait (≤ [`FLOW_WAIT`] for each) until `n` flows have come in all told, and return all
    /// of them so far (like reading a recording that has at least `n` records).
    pub async fn flows(&mut self, n: usize) -> Vec<Flow> {
        while self.seen.len() < n {
            match tokio::time::timeout(FLOW_WAIT, self.flows.recv()).await {
                Ok(Some(flow)) => self.seen.push(flow),
                Ok(None) => panic!("the proxy stopped after {} flows", self.seen.len()),
                Err(_) => panic!(
                    "expected {n} flows, got {} within {FLOW_WAIT:?} of the last: {:#?}",
                    self.seen.len(),
                    self.seen
                ),
            }
        }
        self.seen.clone()
    }

    /// [`Proxy::flows`] for a plain `#[test]`.
    pub fn flows_blocking(&mut self, n: usize) -> Vec<Flow> {
        waiter().block_on(self.flows(n))
    }

    /// [`Proxy::find`] for a plain `#[test]`.
    pub fn find_blocking(&mut self, what: &str, pick: impl Fn(&Flow) -> bool) -> Flow {
        waiter().block_on(self.find(what, pick))
    }

    /// The first flow so far (waiting for it) that `pick` accepts, waiting for more flows
    /// until one does. Connection tasks emit concurrently, so tests find flows by content.
    pub async fn find(&mut self, what: &str, pick: impl Fn(&Flow) -> bool) -> Flow {
        loop {
            if let Some(f) = self.seen.iter().find(|f| pick(f)) {
                return f.clone();
            }
            match tokio::time::timeout(FLOW_WAIT, self.flows.recv()).await {
                Ok(Some(flow)) => self.seen.push(flow),
                _ => panic!("no flow {what} within {FLOW_WAIT:?}: {:#?}", self.seen),
            }
        }
    }
}

/// A runtime for a plain `#[test]` to await flows on (the proxy has its own).
fn waiter() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime to wait on")
}

/// Start the proxy's thread for `mtlscope <args> --listen 127.0.0.1:0`: where it will report,
/// and the handle whose drop stops it.
fn spawn(args: &[&str]) -> Result<(oneshot::Receiver<Started>, oneshot::Sender<()>), String> {
    let mut words: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    words.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
    let (started, ready) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("mtlscope-under-test".into())
        .spawn(move || serve(words, started, stopped))
        .map_err(|e| format!("proxy thread: {e}"))?;
    Ok((ready, stop))
}

/// What the proxy's thread reports once it listens (or why it does not).
type Started = Result<(SocketAddr, mpsc::UnboundedReceiver<Flow>), String>;

/// The proxy's thread: its own runtime, the embedded proxy on it until `stopped` resolves.
fn serve(words: Vec<String>, started: oneshot::Sender<Started>, stopped: oneshot::Receiver<()>) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(format!("proxy runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match mtlscope::cli::embed::start(&words).await {
            Ok(mut proxy) => {
                let flows = std::mem::replace(&mut proxy.flows, mpsc::unbounded_channel().1);
                if started.send(Ok((proxy.local_addr, flows))).is_ok() {
                    // Sender dropped or sent: either way the test is done with the proxy.
                    let _ = stopped.await;
                }
            }
            Err(e) => {
                let _ = started.send(Err(e.to_string()));
            }
        }
    });
    rt.shutdown_background();
}
