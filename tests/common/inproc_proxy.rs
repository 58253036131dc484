//! `mtlscope reverse`/`forward` started inside the test (`mtlscope::cli::embed`): the same
//! words a user types, on the test's runtime, listening on 127.0.0.1:0, with each diagnosed
//! [`Flow`] awaited from a channel (no recording file, no polling, no fixed sleep).
//!
//! ```ignore
//! let mut p = Proxy::start(&["reverse", "--upstream", &url, "--server-cert", &cert]).await;
//! // … a client talks to p.port() …
//! let f = p.flow().await;
//! assert_eq!(flows::ids(&f), [FindingId::NoClientCert]);
//! ```

use mtlscope::cli::embed::Embedded;
use mtlscope::facts::Flow;
use std::time::Duration;

/// How long a test waits for the proxy's next flow before failing.
pub const FLOW_WAIT: Duration = Duration::from_secs(10);

/// A proxy running in the test's runtime; it stops accepting when dropped.
pub struct Proxy {
    /// The embedded listener and its flow channel.
    inner: Embedded,
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
        let mut words = args.to_vec();
        words.extend(["--listen", "127.0.0.1:0"]);
        let inner = mtlscope::cli::embed::start(&words)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Proxy {
            addr: inner.local_addr.to_string(),
            inner,
            seen: Vec::new(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.inner.local_addr.port()
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
            match tokio::time::timeout(FLOW_WAIT, self.inner.flows.recv()).await {
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

    /// The first flow so far (waiting for it) that `pick` accepts, waiting for more flows
    /// until one does. Connection tasks emit concurrently, so tests find flows by content.
    pub async fn find(&mut self, what: &str, pick: impl Fn(&Flow) -> bool) -> Flow {
        loop {
            if let Some(f) = self.seen.iter().find(|f| pick(f)) {
                return f.clone();
            }
            match tokio::time::timeout(FLOW_WAIT, self.inner.flows.recv()).await {
                Ok(Some(flow)) => self.seen.push(flow),
                _ => panic!("no flow {what} within {FLOW_WAIT:?}: {:#?}", self.seen),
            }
        }
    }
}
