//! The web view (`--ui ADDR` on the proxy modes, `mtlscope ui FILE…` for recordings): a live
//! flow list, each flow's two-leg handshake ladder and findings, two flows compared, and
//! downloads, served by mtlscope itself from assets embedded in the binary.
//!
//! Flows reach it from the record sink through a [`Subscriber`]: a bounded channel that drops
//! (and counts) rather than waits, so the web view never slows the relay. The page is plain
//! JavaScript over a JSON API and renders every recorded value with DOM text APIs.

pub mod api;
pub mod bounds;
pub mod column;
pub mod files;
pub mod index;
pub mod readback;
mod respond;
pub mod server;
pub mod store;

use crate::record::Subscriber;
use crate::recording::Record;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Flows in flight from the relay to the web view before new ones are dropped.
const FEED_DEPTH: usize = 1024;

/// How long the web view lets flows gather before taking them in: one wake-up of its task per
/// pause rather than one per flow (about 100 flows at 50,000 exchanges a second, well inside
/// [`FEED_DEPTH`]). A page sees a flow at most this much later.
const INGEST_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// How the web view is served.
#[derive(Clone, Debug)]
pub struct UiOptions {
    /// Where to listen (`--ui`, or `ui --listen`).
    pub listen: SocketAddr,
    /// `USER:PASS` the page requires (Basic), if any.
    pub auth: Option<String>,
    /// Flows kept in memory (`--ui-max-flows`).
    pub max_flows: usize,
    /// Megabytes of flows kept in memory (`--ui-max-mb`).
    pub max_mb: usize,
    /// The `--keylog` file, offered per flow as a download of its legs' lines.
    pub keylog: Option<PathBuf>,
    /// `mtlscope ui FILE…`: the recordings' index, served from the files.
    pub file: Option<Arc<index::FileIndex>>,
    /// The live view's recording (`--record`): flows that left memory are read back from it.
    pub recording: Option<Arc<crate::record::locate::Locator>>,
}

/// Why the web view could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct UiError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The I/O error.
    pub source: std::io::Error,
}

/// A running web view. Dropping it stops the server.
pub struct Ui {
    /// The address it listens on (the port chosen, for `:0`).
    pub local_addr: SocketAddr,
    /// The flows.
    store: Arc<Store>,
    /// The feed's sending end, for the sink.
    subscriber: Subscriber,
    /// The accept loop and the feed's reader.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Ui {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The `Authorization` value a browser sends for `user:pass`.
fn basic(user_pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

impl Ui {
    /// Bind and start serving (on the current tokio runtime).
    pub async fn start(opts: UiOptions) -> Result<Ui, UiError> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| UiError {
                addr: opts.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| UiError {
            addr: opts.listen,
            source,
        })?;
        let (subscriber, mut feed) = Subscriber::channel(FEED_DEPTH);
        let mut store = Store::new(opts.max_flows, subscriber.dropped()).with_max_mb(opts.max_mb);
        if let Some(locator) = opts.recording {
            store = store.with_read_back(readback::ReadBack::new(locator, opts.max_flows));
        }
        let store = Arc::new(store);
        let state = Arc::new(server::State {
            store: store.clone(),
            auth: opts.auth.as_deref().map(basic),
            hosts: local_addr
                .ip()
                .is_loopback()
                .then(|| server::loopback_hosts(local_addr)),
            keylog: opts.keylog,
            file: opts.file,
        });
        let ingest = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(FEED_DEPTH);
                while feed.recv_many(&mut batch, FEED_DEPTH).await > 0 {
                    for mut flow in batch.drain(..) {
                        bounds::cut_shared_for_view(&mut flow);
                        store.push_with(|id| Record {
                            file: PathBuf::from("live"),
                            line: 0,
                            index: usize::try_from(id).unwrap_or(usize::MAX),
                            flow,
                            diagnosed_on_read: false,
                        });
                    }
                    tokio::time::sleep(INGEST_PAUSE).await;
                }
            })
        };
        let accept = tokio::spawn(server::serve(listener, state));
        Ok(Ui {
            local_addr,
            store,
            subscriber,
            tasks: vec![ingest, accept],
        })
    }

    /// The feed to hand to the record sink ([`crate::record::Sink::with_subscriber`]).
    pub fn subscriber(&self) -> Subscriber {
        self.subscriber.clone()
    }

    /// Show recorded flows (`mtlscope ui FILE…`), in order.
    pub fn load(&self, records: Vec<Record>) {
        for mut r in records {
            bounds::cut_shared_for_view(&mut r.flow);
            self.store.push_with(|_| r);
        }
    }
}
