//! Session resumption on the client leg, mirrored on the upstream leg.
//!
//! A listener owns one [`ClientSessions`]: the session cache (TLS 1.2 session ids) and the
//! ticketer (TLS 1.2 and 1.3 tickets) that every client connection's `ServerConfig` shares, so a
//! client can resume across connections as it would with the server itself. rustls checks the
//! SNI of a session before resuming it, so forward's per-host leaves can share one store.
//!
//! Every client handshake runs with a [`Pairing`]: a fresh pair number that the store and the
//! ticketer learn (through a task-local, since rustls calls them from inside the handshake) for
//! every session id and ticket they issue on that connection, and that they report back when a
//! ClientHello brings one of them. After the handshake, the pairing says whether the client
//! resumed and which earlier connection created the session; the upstream leg then resumes with
//! the session store of that earlier connection's upstream leg ([`PairSessions`]) — and does a
//! full handshake whenever the client did, so every full client handshake still shows the
//! server's CertificateRequest.

use crate::upstream::{PairSessions, PairedLeg};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many client sessions (ids and tickets) and pairs are remembered.
const REMEMBERED: usize = 4096;

/// `--upstream-resume`: whether the upstream leg resumes when the client leg did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamResume {
    /// Resume the upstream session paired with the client's (the default).
    #[default]
    Mirror,
    /// Always a full upstream handshake.
    Never,
}

/// A map that forgets its oldest entries beyond a bound.
#[derive(Debug)]
struct Bounded<K, V> {
    /// The entries.
    map: HashMap<K, V>,
    /// Insertion order, oldest first.
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    fn new() -> Bounded<K, V> {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }
}

/// What the store and the ticketer know about the pairs.
#[derive(Debug)]
struct Registry {
    /// Client session id or ticket → the pair whose handshake created it.
    sessions: Mutex<Bounded<Vec<u8>, u64>>,
    /// Pair → its upstream leg's sessions.
    upstream: Mutex<Bounded<u64, Arc<PairSessions>>>,
}

impl Registry {
    /// A session id or ticket was issued on the current handshake.
    fn issued(&self, key: &[u8]) {
        let Ok(pair) = HANDSHAKE.try_with(|h| h.pair) else {
            return;
        };
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(key.to_vec(), pair);
        }
    }

    /// The current handshake's ClientHello brought a session id or ticket that we know.
    fn presented(&self, key: &[u8]) {
        let from = self.sessions.lock().ok().and_then(|s| s.get(&key.to_vec()));
        let _ = HANDSHAKE.try_with(|h| {
            if let Ok(mut r) = h.resumed_from.lock() {
                *r = from;
            }
        });
    }
}

/// The handshake being run on this task.
#[derive(Debug)]
struct Current {
    /// Its pair number.
    pair: u64,
    /// The pair that created the session the ClientHello brought, once looked up.
    resumed_from: Mutex<Option<u64>>,
}

tokio::task_local! {
    static HANDSHAKE: Arc<Current>;
}

/// The session cache of one listener, with the pairs behind it.
#[derive(Debug)]
struct PairingStore {
    /// rustls's cache.
    inner: Arc<ServerSessionMemoryCache>,
    /// The pairs.
    registry: Arc<Registry>,
}

impl StoresServerSessions for PairingStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.registry.issued(&key);
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.inner.get(key);
        if v.is_some() {
            self.registry.presented(key);
        }
        v
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.inner.take(key);
        if v.is_some() {
            self.registry.presented(key);
        }
        v
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// The ticketer of one listener, with the pairs behind it.
#[derive(Debug)]
struct PairingTicketer {
    /// rustls's ticketer (rotating keys).
    inner: Arc<dyn ProducesTickets>,
    /// The pairs.
    registry: Arc<Registry>,
}

impl ProducesTickets for PairingTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let t = self.inner.encrypt(plain)?;
        self.registry.issued(&t);
        Some(t)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let p = self.inner.decrypt(cipher)?;
        self.registry.presented(cipher);
        Some(p)
    }
}

/// The client leg's session storage of one listener (shared by every connection's
/// `ServerConfig`), and the upstream sessions paired with it.
#[derive(Clone, Debug)]
pub struct ClientSessions {
    /// TLS 1.2 session ids (and TLS 1.3 when tickets are off).
    store: Arc<PairingStore>,
    /// TLS 1.2 and 1.3 tickets.
    ticketer: Arc<PairingTicketer>,
    /// The pairs.
    registry: Arc<Registry>,
    /// The next pair number.
    next: Arc<AtomicU64>,
    /// `--upstream-resume`.
    pub upstream: UpstreamResume,
}

/// The ticketer could not be made (the crypto provider refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot make the session ticket key: {0}")]
pub struct TicketerError(#[from] rustls::Error);

impl ClientSessions {
    /// A listener's session storage.
    pub fn new(upstream: UpstreamResume) -> Result<ClientSessions, TicketerError> {
        let registry = Arc::new(Registry {
            sessions: Mutex::new(Bounded::new()),
            upstream: Mutex::new(Bounded::new()),
        });
        Ok(ClientSessions {
            store: Arc::new(PairingStore {
                inner: ServerSessionMemoryCache::new(REMEMBERED),
                registry: registry.clone(),
            }),
            ticketer: Arc::new(PairingTicketer {
                inner: rustls::crypto::aws_lc_rs::Ticketer::new()?,
                registry: registry.clone(),
            }),
            registry,
            next: Arc::new(AtomicU64::new(1)),
            upstream,
        })
    }

    /// Give a connection's `ServerConfig` the listener's storage.
    pub fn install(&self, config: &mut rustls::ServerConfig) {
        config.session_storage = self.store.clone();
        config.ticketer = self.ticketer.clone();
    }

    /// A new pairing for one client handshake.
    pub fn pairing(&self) -> Pairing {
        Pairing {
            current: Arc::new(Current {
                pair: self.next.fetch_add(1, Ordering::Relaxed),
                resumed_from: Mutex::new(None),
            }),
            sessions: self.clone(),
        }
    }
}

/// One client handshake's place among the pairs.
pub struct Pairing {
    /// What the store and ticketer report into.
    current: Arc<Current>,
    /// The listener's storage.
    sessions: ClientSessions,
}

impl Pairing {
    /// Run the client handshake `fut` so that the sessions it issues or resumes are seen.
    pub async fn scope<F: std::future::Future>(&self, fut: F) -> F::Output {
        HANDSHAKE.scope(self.current.clone(), fut).await
    }

    /// The upstream sessions for this connection's first upstream leg, once the client
    /// handshake is over: a resumed client leg gets those of the leg paired with the handshake
    /// that created its session (nothing when they are forgotten or there were none); a full
    /// handshake gets a new, empty store (so a full upstream handshake) that later
    /// resumptions of this connection's sessions will use, and that leg offers nothing even if
    /// a quicker resuming connection stores a session there first. `None` with
    /// `--upstream-resume never`.
    pub fn upstream(&self, client_resumed: bool) -> Option<PairedLeg> {
        if self.sessions.upstream == UpstreamResume::Never {
            return None;
        }
        let registry = &self.sessions.registry;
        let from = client_resumed
            .then(|| self.current.resumed_from.lock().ok().and_then(|r| *r))
            .flatten();
        let paired = from.and_then(|p| registry.upstream.lock().ok().and_then(|u| u.get(&p)));
        let leg = match paired {
            Some(sessions) => PairedLeg {
                sessions,
                original: None,
            },
            None => {
                let (sessions, original) = PairSessions::fresh();
                PairedLeg {
                    sessions,
                    original: Some(original),
                }
            }
        };
        // Sessions this handshake issued resume into the same upstream sessions.
        if let Ok(mut u) = registry.upstream.lock() {
            u.insert(self.current.pair, leg.sessions.clone());
        }
        Some(leg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_forgets_oldest() {
        let mut b = Bounded::new();
        for i in 0..(REMEMBERED + 10) {
            b.insert(i, i);
        }
        assert_eq!(b.get(&0), None);
        assert_eq!(b.get(&(REMEMBERED + 9)), Some(REMEMBERED + 9));
        assert_eq!(b.map.len(), REMEMBERED);
    }

    #[tokio::test]
    async fn a_ticket_issued_in_one_pairing_is_found_in_the_next() {
        let s = ClientSessions::new(UpstreamResume::Mirror).unwrap();
        let first = s.pairing();
        let ticket = first
            .scope(async { s.ticketer.encrypt(b"session").unwrap() })
            .await;
        let up = first.upstream(false).unwrap();
        assert!(
            up.original.is_some(),
            "a full handshake's leg is the original"
        );
        let second = s.pairing();
        second
            .scope(async { assert!(s.ticketer.decrypt(&ticket).is_some()) })
            .await;
        let again = second.upstream(true).unwrap();
        assert!(
            Arc::ptr_eq(&up.sessions, &again.sessions),
            "the resumed pair gets the first pair's sessions"
        );
        assert!(again.original.is_none(), "and resumes them");
        let third = s.pairing();
        assert!(!Arc::ptr_eq(
            &third.upstream(false).unwrap().sessions,
            &up.sessions
        ));
    }

    #[tokio::test]
    async fn never_gives_no_upstream_sessions() {
        let s = ClientSessions::new(UpstreamResume::Never).unwrap();
        assert!(s.pairing().upstream(true).is_none());
    }
}
