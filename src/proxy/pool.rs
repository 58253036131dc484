//! `--upstream-pool`: upstream connections kept open after their client connection ended and
//! given to a later client connection with the same key.
//!
//! The key is what Pingora keys its upstream pool by — the identity mtlscope presents, the
//! server name (SNI) and address, the verification settings and the engine — plus the
//! certificate the client presented on its own leg, so one client's requests never ride on a
//! connection opened for another client (or for a client without a certificate). A connection
//! is lent to one client connection at a time (HTTP/1.1 and HTTP/2 alike) and comes back when
//! that client connection ends, if it is still open and idle.
//!
//! What is given up: the server's CertificateRequest (and the whole handshake) is seen once per
//! pooled connection, in the records of the client connection it was opened for; an exchange
//! on a reused connection says so in `upstream_connection` (`reused: true`, `opened_for`).

use super::upstream_sender::UpstreamSender;
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::LegRecorder;
use crate::facts::PooledConnection;
use crate::upstream::{Engine, Target};
use aws_lc_rs::digest::{digest, SHA256};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an idle pooled connection is kept (nginx's upstream `keepalive_timeout`).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Idle connections kept per key.
const IDLE_PER_KEY: usize = 64;
/// Idle connections kept in all.
const IDLE_IN_ALL: usize = 1024;
/// How long a returned HTTP/1.1 connection may take to finish its last response.
const READY_WAIT: Duration = Duration::from_millis(50);

/// What a pooled connection may be reused for: only a client connection with an equal key.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PoolKey {
    /// The engine kind and its settings object (trust anchors, `--insecure-upstream`,
    /// versions, ALPN): one per configured engine, alive for the process.
    engine: (&'static str, usize),
    /// `host:port` and where it connects (`--resolve`, a CONNECT proxy).
    target: String,
    /// The server name sent (the target's host).
    sni: String,
    /// The identities on offer upstream (SHA-256 of each chain, in order) and how one is
    /// chosen; empty when nothing is presented.
    identity: (u8, Vec<Vec<u8>>),
    /// SHA-256 of the certificate the client presented on its leg; `None`: it presented none.
    client: Option<Vec<u8>>,
}

impl PoolKey {
    /// The key of a client connection.
    pub fn new(
        engine: &Engine,
        target: &Target,
        identity: &IdentityPolicy,
        client_chain: Option<&[CertificateDer<'_>]>,
    ) -> PoolKey {
        let chains = |ids: &[Arc<crate::pki::load::Identity>]| -> Vec<Vec<u8>> {
            ids.iter().map(|i| chain_digest(&i.chain)).collect()
        };
        let identity = match identity {
            IdentityPolicy::None => (0, Vec::new()),
            IdentityPolicy::Fixed(i) => (1, chains(std::slice::from_ref(i))),
            IdentityPolicy::Auto(ids) => (2, chains(ids)),
        };
        let via = target.via.as_ref().map(|p| p.url());
        PoolKey {
            engine: engine.pool_id(),
            target: format!("{} {:?} {:?}", target.authority(), target.connect_addr, via),
            sni: target.host.clone(),
            identity,
            client: client_chain
                .filter(|c| !c.is_empty())
                .map(|c| chain_digest(c)),
        }
    }
}

fn chain_digest(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut all = Vec::new();
    for c in chain {
        all.extend_from_slice(digest(&SHA256, c.as_ref()).as_ref());
    }
    digest(&SHA256, &all).as_ref().to_vec()
}

/// A pooled upstream connection lent to a client connection.
pub struct PooledLeg {
    /// Its number, and the client connection it was opened for.
    pub facts: PooledConnection,
    /// Its facts (the handshake it was opened with).
    pub rec: LegRecorder,
    /// Its HTTP connection.
    pub sender: Arc<UpstreamSender>,
}

/// An idle pooled connection.
struct Idle {
    /// The connection.
    leg: PooledLeg,
    /// When it came back.
    since: Instant,
}

/// The upstream connections of one listener that no client connection holds.
#[derive(Default)]
pub struct UpstreamPool {
    /// Idle connections by key, most recently returned last.
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    /// The last connection number given out.
    last_id: AtomicU64,
}

impl UpstreamPool {
    /// An empty pool.
    pub fn new() -> Arc<UpstreamPool> {
        Arc::new(UpstreamPool::default())
    }

    /// The facts of a connection just opened for client connection `client_conn`.
    pub fn opened(&self, client_conn: u64) -> PooledConnection {
        PooledConnection {
            id: self.last_id.fetch_add(1, Ordering::Relaxed) + 1,
            opened_for: client_conn,
            reused: false,
        }
    }

    /// The most recently returned idle connection for `key` that is still open.
    pub fn take(&self, key: &PoolKey) -> Option<PooledLeg> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(i) = list.pop() {
            if i.since.elapsed() < IDLE_FOR && !i.leg.sender.is_closed() {
                let mut leg = i.leg;
                leg.facts.reused = true;
                return Some(leg);
            }
        }
        idle.remove(key);
        None
    }

    /// Take `leg` back when it is open and idle (an HTTP/1.1 connection whose last response
    /// did not finish is closed instead), within the pool's bounds.
    pub async fn give_back(&self, key: PoolKey, leg: PooledLeg) {
        if !leg.sender.idle_ready(READY_WAIT).await {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        // Forget what has expired or closed before counting.
        idle.retain(|_, list| {
            list.retain(|i| i.since.elapsed() < IDLE_FOR && !i.leg.sender.is_closed());
            !list.is_empty()
        });
        let all: usize = idle.values().map(Vec::len).sum();
        let list = idle.entry(key).or_default();
        if all < IDLE_IN_ALL && list.len() < IDLE_PER_KEY {
            list.push(Idle {
                leg,
                since: Instant::now(),
            });
        }
    }

    /// How many idle connections there are (for tests).
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .map(|i| i.values().map(Vec::len).sum())
            .unwrap_or(0)
    }
}

/// A client connection's place at its listener's pool.
#[derive(Clone)]
pub struct PoolSlot {
    /// The listener's pool.
    pub pool: Arc<UpstreamPool>,
    /// This client connection's key.
    pub key: PoolKey,
    /// This client connection's number.
    pub client_conn: u64,
}

impl PoolSlot {
    /// An idle connection for this client connection, if the pool has one.
    pub fn take(&self) -> Option<PooledLeg> {
        self.pool.take(&self.key)
    }

    /// The facts of a connection opened now for this client connection.
    pub fn opened(&self) -> PooledConnection {
        self.pool.opened(self.client_conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::PlainEngine;

    fn cert(b: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from(b.to_vec())
    }

    #[test]
    fn keys_differ_by_the_clients_certificate_and_its_absence() {
        let engine = Engine::Plain(PlainEngine {
            timeout: Duration::from_secs(1),
        });
        let target = Target::new("localhost", 443);
        let key = |c: Option<&[CertificateDer<'_>]>| {
            PoolKey::new(&engine, &target, &IdentityPolicy::None, c)
        };
        let (a, b) = ([cert(b"alice")], [cert(b"bob")]);
        assert_eq!(key(Some(&a)), key(Some(&[cert(b"alice")])));
        assert_ne!(key(Some(&a)), key(Some(&b)));
        assert_ne!(key(Some(&a)), key(None));
        assert_eq!(
            key(None),
            key(Some(&[])),
            "an empty chain is no certificate"
        );
        let other = Target::new("127.0.0.1", 443);
        assert_ne!(
            PoolKey::new(&engine, &other, &IdentityPolicy::None, None),
            key(None),
            "another server name"
        );
    }

    #[test]
    fn connection_numbers_count_up_from_one() {
        let pool = UpstreamPool::new();
        assert_eq!(pool.opened(7).id, 1);
        let second = pool.opened(8);
        assert_eq!((second.id, second.opened_for, second.reused), (2, 8, false));
    }
}
