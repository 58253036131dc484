//! What every client connection of a listener shares ([`SessionContext`]): the client leg's
//! TLS settings, the upstream engine, the sink, the faults. Its own module so the upstream legs
//! can read it without importing the session that drives them.

use super::client_leg::ClientLegSettings;
use crate::facts::Mode;
use crate::faults::Faults;
use crate::lifecycle::Lifecycle;
use crate::record::Sink;
use crate::upstream::Engine;
use std::sync::Arc;

/// What a session needs from its listener.
#[derive(Clone)]
pub struct SessionContext {
    /// The command.
    pub mode: Mode,
    /// The client leg's TLS settings.
    pub client: ClientLegSettings,
    /// The upstream engine.
    pub engine: Engine,
    /// Where flows go.
    pub sink: Sink,
    /// Redact credentials in records.
    pub redact: bool,
    /// `--fault`s: middlebox behaviour on purpose.
    pub faults: Arc<Faults>,
    /// The process's stop signals and connection tasks.
    pub life: Lifecycle,
    /// Playing a TLS offloader: identity headers to pass on (None: not playing one).
    pub offload: Option<Arc<crate::offload::OffloadSettings>>,
    /// `--idle-timeout`: a client connection idle this long is closed with its upstream leg.
    pub idle_timeout: std::time::Duration,
    /// The server names answered for (reverse with the local CA); None answers any.
    pub served_names: Option<Arc<super::sni_gate::ServedNames>>,
    /// `--upstream-pool`: upstream connections reused across client connections.
    pub pool: Option<Arc<super::pool::UpstreamPool>>,
}

impl SessionContext {
    /// The engine for a client that offered (or negotiated) HTTP/2 or not: the upstream leg
    /// speaks the client's protocol, as the server would with the client directly.
    pub fn engine_for(&self, client_h2: bool) -> Engine {
        if client_h2 {
            return self.engine.clone();
        }
        self.engine
            .http1_only()
            .unwrap_or_else(|| self.engine.clone())
    }
}

/// `--idle-timeout` when not told: nginx's `keepalive_timeout`.
pub const DEFAULT_IDLE_SECS: u64 = 75;
