//! The upstream leg's session store: a per-connection [`LegSessions`] that says when a TLS 1.3
//! ticket arrived, and keeps sessions only in the [`PairSessions`] of its client pairing.
//!
//! By default nothing is offered: a debugging proxy must see every handshake whole, and a
//! resumed session carries no CertificateRequest. The upstream leg resumes only when the client
//! leg resumed (`--upstream-resume mirror`, see `proxy::resumption`), with the sessions of the
//! upstream leg paired with the client's original handshake.
//!
//! The arrival of a NewSessionTicket is worth knowing either way: servers send tickets only
//! after they have accepted the client's Finished (and so its certificate), which makes it the
//! earliest sign that a TLS 1.3 server took the certificate.

use crate::facts::CertSummary;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
use rustls::client::{Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The upstream sessions of one client pairing: filled by the upstream leg of a full client
/// handshake, offered by the upstream leg of each client handshake that resumes it.
#[derive(Debug)]
pub struct PairSessions {
    /// TLS 1.2 sessions and TLS 1.3 tickets from the server (bounded by rustls).
    cache: ClientSessionMemoryCache,
    /// The chain mtlscope presented in the full upstream handshake that made the session:
    /// what a resumed upstream leg's server still associates with it.
    chain: Mutex<Vec<CertSummary>>,
    /// What there is to resume, and how many legs may still bring something: a client
    /// resumes as soon as its handshake ends, while the ticket of the paired upstream leg (or
    /// the new ticket of the last leg that resumed) may still be on its way.
    state: tokio::sync::watch::Sender<PairState>,
    /// The verifier the sessions are bound to (see `upstream::routed`).
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    /// The resolver the sessions are bound to.
    resolver: Arc<dyn rustls::client::ResolvesClientCert>,
}

impl Default for PairSessions {
    fn default() -> Self {
        PairSessions::new()
    }
}

impl PairSessions {
    /// An empty store (the next upstream handshake is a full one).
    pub fn new() -> PairSessions {
        PairSessions {
            cache: ClientSessionMemoryCache::new(4),
            chain: Mutex::new(Vec::new()),
            state: tokio::sync::watch::Sender::new(PairState::default()),
            verifier: Arc::new(super::routed::RoutedVerifier),
            resolver: Arc::new(super::routed::RoutedResolver),
        }
    }

    /// The store of a full client handshake's pairing, with its first upstream leg counted as
    /// on its way: a client that resumes this session on another connection may be quicker
    /// than this leg, and its leg then waits for this leg's session instead of making one that
    /// this leg would take.
    pub fn fresh() -> (Arc<PairSessions>, LegInFlight) {
        let p = Arc::new(PairSessions::new());
        p.state.send_modify(|s| s.in_flight = 1);
        (p.clone(), LegInFlight(p))
    }

    /// The verifier every leg of the pairing is configured with.
    pub fn verifier(&self) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        self.verifier.clone()
    }

    /// The resolver every leg of the pairing is configured with.
    pub fn resolver(&self) -> Arc<dyn rustls::client::ResolvesClientCert> {
        self.resolver.clone()
    }

    /// Wait (at most `bound`) until there is a session to resume, or no leg of the pairing is
    /// still on its way to bringing one; then count this leg as on its way. The returned guard
    /// ends that when dropped (after the leg's ticket arrived, or it gave up).
    pub async fn begin_leg(self: &Arc<Self>, bound: std::time::Duration) -> LegInFlight {
        let mut rx = self.state.subscribe();
        let ready = |s: &PairState| s.gave_up || s.tickets > 0 || s.tls12 || s.in_flight == 0;
        if tokio::time::timeout(bound, rx.wait_for(ready))
            .await
            .is_err()
        {
            self.give_up();
        }
        self.state.send_modify(|s| s.in_flight += 1);
        LegInFlight(self.clone())
    }

    /// Whether a session is worth waiting for (no wait for one has timed out).
    pub fn expects_tickets(&self) -> bool {
        !self.state.borrow().gave_up
    }

    /// A wait for a session timed out: do not wait for this server again.
    pub fn give_up(&self) {
        self.state.send_modify(|s| s.gave_up = true);
    }

    /// Remember what the full handshake presented.
    pub fn set_chain(&self, chain: Vec<CertSummary>) {
        if let Ok(mut c) = self.chain.lock() {
            *c = chain;
        }
    }

    /// What the full handshake that made the session presented.
    pub fn chain(&self) -> Vec<CertSummary> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// What a pairing's sessions hold now.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairState {
    /// TLS 1.3 tickets stored and not yet taken.
    tickets: u32,
    /// Whether a TLS 1.2 session is stored (reusable).
    tls12: bool,
    /// Legs between their start and their ticket (or their end).
    in_flight: u32,
    /// A wait for a session timed out: this server is not waited for again.
    gave_up: bool,
}

/// A leg of a pairing on its way to a ticket; ends when dropped.
#[derive(Debug)]
pub struct LegInFlight(Arc<PairSessions>);

impl Drop for LegInFlight {
    fn drop(&mut self) {
        self.0
            .state
            .send_modify(|s| s.in_flight = s.in_flight.saturating_sub(1));
    }
}

/// A pairing's sessions as a connection's first upstream leg gets them.
#[derive(Debug)]
pub struct PairedLeg {
    /// The pairing's sessions.
    pub sessions: Arc<PairSessions>,
    /// `Some` for the leg of a full client handshake (its place among the legs on their way,
    /// taken when the pairing was made): it offers nothing, whatever another leg of the pairing
    /// stored meanwhile, so a full client handshake always has a full upstream handshake.
    /// `None` for a resuming client: the leg waits for a session and offers it.
    pub original: Option<LegInFlight>,
}

/// One upstream connection's session store.
#[derive(Debug, Default)]
pub struct LegSessions {
    /// Woken when a ticket arrives.
    seen: Arc<Notify>,
    /// The pairing's sessions; `None`: store and offer nothing.
    pair: Option<Arc<PairSessions>>,
    /// Whether the ClientHello offered a stored session.
    offered: AtomicBool,
    /// This leg on its way to a session for the pairing: ended by the first session the server
    /// gives, or when the connection (and so this store) is dropped.
    in_flight: Mutex<Option<LegInFlight>>,
    /// Whether the server gave this leg a session.
    got: AtomicBool,
    /// Whether a stored session may be offered (false: store only).
    offers: bool,
}

impl LegSessions {
    /// A store for one connection, keeping sessions in `pair` when there is one, and offering
    /// them when `offers`.
    pub fn new(
        pair: Option<Arc<PairSessions>>,
        in_flight: Option<LegInFlight>,
        offers: bool,
    ) -> LegSessions {
        LegSessions {
            pair,
            in_flight: Mutex::new(in_flight),
            offers,
            ..LegSessions::default()
        }
    }

    /// Whether the server gave this leg a session (a TLS 1.2 session or a TLS 1.3 ticket).
    pub fn got_session(&self) -> bool {
        self.got.load(Ordering::Relaxed)
    }

    /// The server gave a session: the pairing's waiting legs may go on.
    fn arrived(&self) {
        self.got.store(true, Ordering::Relaxed);
        if let Ok(mut f) = self.in_flight.lock() {
            f.take();
        }
    }

    /// What to await for the first ticket.
    pub fn notify(&self) -> Arc<Notify> {
        self.seen.clone()
    }

    /// Whether sessions are kept (and so TLS 1.2 resumption should be enabled).
    pub fn keeps(&self) -> bool {
        self.pair.is_some()
    }

    /// Whether the ClientHello offered a session.
    pub fn offered(&self) -> bool {
        self.offered.load(Ordering::Relaxed)
    }
}

impl ClientSessionStore for LegSessions {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        if let Some(p) = &self.pair {
            p.cache.set_kx_hint(name, group);
        }
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.pair.as_ref().and_then(|p| p.cache.kx_hint(name))
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        if let Some(p) = &self.pair {
            p.cache.set_tls12_session(name, value);
            p.state.send_modify(|s| s.tls12 = true);
        }
        self.arrived();
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        let s = self
            .pair
            .as_ref()
            .filter(|_| self.offers)
            .and_then(|p| p.cache.tls12_session(name));
        if s.is_some() {
            self.offered.store(true, Ordering::Relaxed);
        }
        s
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        if let Some(p) = &self.pair {
            p.cache.remove_tls12_session(name);
            p.state.send_modify(|s| s.tls12 = false);
        }
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        // notify_one stores a permit, so a ticket that arrives before anyone waits still counts.
        self.seen.notify_one();
        if let Some(p) = &self.pair {
            p.cache.insert_tls13_ticket(name, value);
            p.state.send_modify(|s| s.tickets += 1);
        }
        self.arrived();
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        let p = self.pair.as_ref().filter(|_| self.offers)?;
        let t = p.cache.take_tls13_ticket(name);
        if t.is_some() {
            self.offered.store(true, Ordering::Relaxed);
            p.state
                .send_modify(|s| s.tickets = s.tickets.saturating_sub(1));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_resuming_leg_waits_for_the_original_leg_not_past_it() {
        let (pair, original) = PairSessions::fresh();
        let waiting = tokio::spawn({
            let pair = pair.clone();
            async move { pair.begin_leg(Duration::from_secs(30)).await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiting.is_finished(),
            "the original leg is on its way: nothing to resume yet"
        );
        drop(original);
        let _leg = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the original leg's end lets it go on")
            .unwrap();
        assert!(pair.expects_tickets(), "no wait timed out");
    }
}
