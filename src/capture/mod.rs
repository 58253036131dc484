//! Capture: the hooks that see things happen on a connection and write them down as facts.
//!
//! Capturers record; they do not interpret. Each leg has one [`LegRecorder`] that every hook
//! of that leg (verifier, resolver, relay) writes into, with times from the connection's
//! [`ConnClock`].

pub mod client_auth;
pub mod clock;
pub mod flights;
pub mod flush;
pub mod keylog;
pub mod server_auth;
pub mod signatures;
pub mod sniff;
pub mod tls_error;
pub mod upstream_auth;
pub mod verdict_cache;
pub mod wire_merge;

pub use clock::ConnClock;

use crate::facts::{Alert, Event, EventKind, Leg, Peer};
use crate::wire::TapHandle;
use std::sync::{Arc, Mutex, MutexGuard};
use wire_merge::MergeContext;

/// What a leg snapshot was taken from.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SnapshotKey {
    /// [`LegState::version`].
    version: u64,
    /// The tap's generation.
    tap: Option<u64>,
    /// The last request's time, when the merge uses it.
    request_ms: Option<f64>,
}

/// The shared, growing facts of one leg. Cheap to clone; all clones write the same leg.
#[derive(Clone, Debug)]
pub struct LegRecorder {
    /// The leg's facts so far, and the tap below its TLS.
    state: Arc<Mutex<LegState>>,
    /// The connection's clock, for `at_ms`.
    clock: ConnClock,
}

#[derive(Debug, Default)]
struct LegState {
    /// What the hooks wrote.
    leg: Leg,
    /// Bumped by every change through [`LegRecorder::with`] (and a new tap).
    version: u64,
    /// The last snapshot and what it was taken from: a keep-alive connection's exchanges
    /// share it instead of merging the tap again for each.
    cached: Option<(SnapshotKey, Arc<Leg>)>,
    /// The wire tap under this leg's TLS, merged in at each snapshot.
    tap: Option<TapHandle>,
    /// What the merge needs to know about this leg.
    merge: MergeContext,
}

impl LegRecorder {
    /// A recorder for a new, empty leg.
    pub fn new(clock: ConnClock) -> LegRecorder {
        LegRecorder {
            state: Arc::new(Mutex::new(LegState::default())),
            clock,
        }
    }

    /// Attach the tap that sees this leg's records; `refuses_renegotiation` says the TLS engine
    /// on this leg refuses TLS 1.2 renegotiation (rustls).
    pub fn attach_tap(&self, tap: TapHandle, refuses_renegotiation: bool) {
        let mut state = self.lock();
        state.version += 1;
        state.merge.tls_server = tap.role() == crate::wire::TapRole::Server;
        state.tap = Some(tap);
        state.merge.refuses_renegotiation = refuses_renegotiation;
    }

    /// Note that an HTTP request went out on this leg now (a late certificate request is timed
    /// from it).
    pub fn note_request(&self) {
        let at_ms = self.clock.ms();
        self.lock().merge.last_request_ms = Some(at_ms);
    }

    /// When the latest HTTP request went out on this leg, ms from connection start.
    pub fn last_request_ms(&self) -> Option<f64> {
        self.lock().merge.last_request_ms
    }

    /// The connection clock.
    pub fn clock(&self) -> ConnClock {
        self.clock
    }

    /// Change the leg's facts. Critical sections are short; a poisoned lock still records.
    pub fn with<R>(&self, f: impl FnOnce(&mut Leg) -> R) -> R {
        let mut state = self.lock();
        state.version += 1;
        f(&mut state.leg)
    }

    /// Append a timed step.
    pub fn event(&self, kind: EventKind, detail: Option<String>) {
        let at_ms = self.clock.ms();
        self.with(|leg| leg.events.push(Event::new(at_ms, kind, detail)));
    }

    /// Append a message `peer` sent (`from client, {rest}`).
    pub fn sent(&self, kind: EventKind, peer: Peer, rest: &str) {
        let at_ms = self.clock.ms();
        self.with(|leg| {
            leg.events
                .push(Event::from_peer(at_ms, kind, peer, Some(rest)))
        });
    }

    /// Append an alert, unless the same alert is already recorded (the wire and the TLS
    /// library may both report it).
    pub fn alert(&self, alert: Alert) {
        self.with(|leg| {
            let dup = leg.alerts.iter().any(|a| {
                a.direction == alert.direction
                    && a.description == alert.description
                    && a.source != alert.source
            });
            if !dup {
                leg.alerts.push(alert);
            }
        });
    }

    /// Record what a completed handshake negotiated (version, cipher, ALPN) and when.
    pub fn handshake_done(&self, conn: &rustls::CommonState) {
        let version = conn
            .protocol_version()
            .and_then(|v| crate::facts::TlsVersion::from_wire(u16::from(v)));
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()));
        let alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let at_ms = self.clock.ms();
        self.with(|leg| {
            leg.resumed = resumed;
            leg.tls_version = version;
            leg.cipher = cipher;
            leg.alpn = alpn;
            leg.handshake_done_ms = Some(at_ms);
        });
        self.event(EventKind::HandshakeDone, None);
    }

    /// Record the error that ended the leg: words, classification, and the alert it implies.
    /// The first error is the cause; later ones (the HTTP layer's view of it) are not recorded.
    pub fn fail(&self, c: &tls_error::Classified) {
        if self.with(|leg| leg.failure.is_some()) {
            return;
        }
        let at_ms = self.clock.ms();
        if let Some((dir, desc)) = c.alert {
            self.alert(tls_error::alert_fact(dir, desc, at_ms));
        }
        self.event(EventKind::Error, Some(c.words.clone()));
        self.with(|leg| {
            leg.error = Some(c.words.clone());
            leg.failure = Some(c.failure.clone());
        });
    }

    /// A copy of the facts as they stand now, with what the tap saw merged in. Taken again
    /// only when something changed since the last one.
    pub fn snapshot(&self) -> Arc<Leg> {
        let mut state = self.lock();
        let key = SnapshotKey {
            version: state.version,
            tap: state.tap.as_ref().map(|t| t.generation()),
            // The time of the last request matters only once a late handshake was seen.
            request_ms: state
                .tap
                .as_ref()
                .and_then(|t| t.last_post_handshake_ms())
                .and(state.merge.last_request_ms),
        };
        if let Some((k, leg)) = &state.cached {
            if *k == key {
                return leg.clone();
            }
        }
        let mut leg = state.leg.clone();
        if let Some(tap) = &state.tap {
            wire_merge::merge(&mut leg, &tap.snapshot(), state.merge);
        }
        let leg = Arc::new(leg);
        state.cached = Some((key, leg.clone()));
        leg
    }

    fn lock(&self) -> MutexGuard<'_, LegState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
