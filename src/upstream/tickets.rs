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
    /// Whether the first leg has left something to resume (a TLS 1.2 session, a TLS 1.3
    /// ticket), or given up: a client resumes as soon as its handshake ends, while the ticket
    /// of the paired upstream leg may still be on its way.
    settled: tokio::sync::watch::Sender<bool>,
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
            settled: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Nothing more will arrive to resume (or something did).
    pub fn settle(&self) {
        self.settled.send_replace(true);
    }

    /// Wait (at most `bound`) until the paired leg has left a session to resume; a bound that
    /// passes settles it, so that later connections do not wait for a server that sends none.
    pub async fn settled(&self, bound: std::time::Duration) {
        let mut rx = self.settled.subscribe();
        if tokio::time::timeout(bound, rx.wait_for(|s| *s)).await.is_err() {
            self.settle();
        }
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

/// One upstream connection's session store.
#[derive(Debug, Default)]
pub struct LegSessions {
    /// Woken when a ticket arrives.
    seen: Arc<Notify>,
    /// The pairing's sessions; `None`: store and offer nothing.
    pair: Option<Arc<PairSessions>>,
    /// Whether the ClientHello offered a stored session.
    offered: AtomicBool,
}

impl LegSessions {
    /// A store for one connection, keeping sessions in `pair` when there is one.
    pub fn new(pair: Option<Arc<PairSessions>>) -> LegSessions {
        LegSessions {
            pair,
            ..LegSessions::default()
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
            p.settle();
        }
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        let s = self.pair.as_ref().and_then(|p| p.cache.tls12_session(name));
        if s.is_some() {
            self.offered.store(true, Ordering::Relaxed);
        }
        s
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        if let Some(p) = &self.pair {
            p.cache.remove_tls12_session(name);
        }
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        // notify_one stores a permit, so a ticket that arrives before anyone waits still counts.
        self.seen.notify_one();
        if let Some(p) = &self.pair {
            p.cache.insert_tls13_ticket(name, value);
            p.settle();
        }
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        let t = self.pair.as_ref().and_then(|p| p.cache.take_tls13_ticket(name));
        if t.is_some() {
            self.offered.store(true, Ordering::Relaxed);
        }
        t
    }
}
