//! The upstream leg's session store: stores nothing, and says when a TLS 1.3 ticket arrived.
//!
//! Nothing is stored because a debugging proxy must see every handshake whole: a resumed
//! session carries no CertificateRequest, and the record would wrongly say the server never
//! asked. The arrival of a NewSessionTicket is still worth knowing: servers send tickets only
//! after they have accepted the client's Finished (and so its certificate), which makes it the
//! earliest sign that a TLS 1.3 server took the certificate.

use rustls::client::ClientSessionStore;
use rustls::client::{Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;
use std::sync::Arc;
use tokio::sync::Notify;

/// A per-connection store that only signals tickets.
#[derive(Debug, Default)]
pub struct TicketSignal {
    /// Woken when a ticket arrives.
    seen: Arc<Notify>,
}

impl TicketSignal {
    /// A new signal for one connection.
    pub fn new() -> TicketSignal {
        TicketSignal::default()
    }

    /// What to await for the first ticket.
    pub fn notify(&self) -> Arc<Notify> {
        self.seen.clone()
    }
}

impl ClientSessionStore for TicketSignal {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {
        // notify_one stores a permit, so a ticket that arrives before anyone waits still counts.
        self.seen.notify_one();
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}
