//! What OpenSSL's callbacks report, written into the upstream leg's recorder: the same facts
//! the rustls engine writes, and the late ones rustls never gets to see.
//!
//! Every handshake message arrives here decrypted, in order, from the first handshake, a TLS 1.2
//! renegotiation or TLS 1.3 post-handshake auth alike: CertificateRequests (with their phase and
//! the delay since the HTTP request), the server's Certificate, tickets, our Finished (which
//! completes a late request), and every alert in both directions. The certificate callback
//! presents the identity the request's CA names chose.

use super::ffi::{Observer, CONTENT_ALERT, CONTENT_HANDSHAKE, CONTENT_INNER_TYPE};
use crate::capture::upstream_auth::{cert_request, record_request, IdentityPolicy};
use crate::capture::LegRecorder;
use crate::facts::EventKind;
use crate::facts::{Alert, AlertLevel, Direction, Phase};
use crate::wire::msg::{self, ty as handshake_type};
use openssl::pkey::{PKey, Private};
use openssl::ssl::SslRef;
use openssl::x509::X509;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The handshake type of Finished.
const FINISHED: u8 = 20;
/// The handshake type of NewSessionTicket.
const NEW_SESSION_TICKET: u8 = 4;
/// The record content type of application data.
const APPLICATION_DATA: u8 = 23;

/// One configured identity in OpenSSL's types: leaf, intermediates, key.
pub struct OpensslIdentity {
    /// The leaf certificate.
    leaf: X509,
    /// The intermediates, in order.
    chain: Vec<X509>,
    /// The private key.
    key: PKey<Private>,
}

impl std::fmt::Debug for OpensslIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslIdentity")
            .field("leaf", &self.leaf.subject_name())
            .finish_non_exhaustive()
    }
}

impl OpensslIdentity {
    /// Convert a loaded identity (its chain and key were checked at start-up).
    pub fn from_identity(
        id: &crate::pki::load::Identity,
    ) -> Result<Self, openssl::error::ErrorStack> {
        let mut certs = id
            .chain
            .iter()
            .map(|c| X509::from_der(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let key = PKey::private_key_from_der(id.key.secret_der())?;
        let leaf = certs.remove(0);
        Ok(OpensslIdentity {
            leaf,
            chain: certs,
            key,
        })
    }

    /// The identities of a policy, in the policy's order.
    pub fn of_policy(policy: &IdentityPolicy) -> Result<Vec<Self>, openssl::error::ErrorStack> {
        policy
            .candidates()
            .iter()
            .map(|id| Self::from_identity(id))
            .collect()
    }
}

/// The callbacks' view of one upstream connection.
pub struct Capture {
    /// The upstream leg.
    rec: LegRecorder,
    /// Which identity answers a request.
    policy: IdentityPolicy,
    /// The policy's identities in OpenSSL's types, same order.
    identities: Vec<OpensslIdentity>,
    /// Woken at the first TLS 1.3 session ticket (the server accepted our Finished).
    ticket: Arc<Notify>,
    /// What the message stream has shown so far.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The ServerHello chose TLS 1.3.
    tls13: bool,
    /// The first handshake is complete: any request from now on is late.
    established: bool,
    /// The identity chosen for the pending request (outer None: no request seen).
    pending_choice: Option<Option<usize>>,
    /// A late request is being answered; set until it completes or fails.
    late_pending: Option<Phase>,
    /// TLS 1.3: our Finished answered a post-handshake request and the server has not yet
    /// shown that it accepted it (data or a ticket after it); an alert now undoes completion.
    pha_unconfirmed: bool,
    /// The last fatal alert received and sent, for naming the error that follows.
    fatal_received: Option<u8>,
    fatal_sent: Option<u8>,
    /// A ticket was already noted.
    ticket_seen: bool,
}

impl Capture {
    /// A capture for one connection recording into `rec`.
    pub fn new(rec: LegRecorder, policy: IdentityPolicy, identities: Vec<OpensslIdentity>) -> Self {
        Capture {
            rec,
            policy,
            identities,
            ticket: Arc::new(Notify::new()),
            state: Mutex::new(State::default()),
        }
    }

    /// What to await for the first session ticket.
    pub fn ticket(&self) -> Arc<Notify> {
        self.ticket.clone()
    }

    /// The first handshake finished: requests from now on are late.
    pub fn established(&self) {
        self.lock().established = true;
    }

    /// The last fatal alert received, and sent, if any.
    pub fn fatal_alerts(&self) -> (Option<u8>, Option<u8>) {
        let s = self.lock();
        (s.fatal_received, s.fatal_sent)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handshake(&self, sent: bool, bytes: &[u8]) {
        let (Some(&ty), Some(body)) = (bytes.first(), bytes.get(4..)) else {
            return;
        };
        match (sent, ty) {
            (false, handshake_type::SERVER_HELLO) => {
                if let Some(sh) = msg::server_hello(body) {
                    self.lock().tls13 = sh.version() == 0x0304;
                }
            }
            (false, handshake_type::CERTIFICATE_REQUEST) => self.certificate_request(body),
            (false, handshake_type::CERTIFICATE) => {
                let tls13 = self.lock().tls13;
                if let Some(ders) = msg::certificate(body, tls13) {
                    let chain = crate::cert::summarize_chain(ders);
                    self.rec.event(
                        EventKind::ServerCertificate,
                        chain.first().map(|c| c.subject.clone()),
                    );
                    self.rec.with(|leg| leg.server_chain = chain);
                }
            }
            (false, NEW_SESSION_TICKET) => {
                let first = {
                    let mut s = self.lock();
                    s.pha_unconfirmed = false;
                    !std::mem::replace(&mut s.ticket_seen, true)
                };
                if first {
                    self.ticket.notify_one();
                }
            }
            // TLS 1.3 post-handshake auth ends with our Finished; a TLS 1.2 renegotiation with
            // the server's, which it sends only if it accepted our certificate.
            (true, FINISHED) => {
                let completed = {
                    let mut s = self.lock();
                    match s.late_pending {
                        Some(Phase::PostHandshake) => {
                            s.pha_unconfirmed = true;
                            s.late_pending.take()
                        }
                        _ => None,
                    }
                };
                self.completed(completed);
            }
            (false, FINISHED) => {
                let completed = {
                    let mut s = self.lock();
                    match s.late_pending {
                        Some(Phase::Renegotiation) => s.late_pending.take(),
                        _ => None,
                    }
                };
                self.completed(completed);
            }
            _ => {}
        }
    }

    fn completed(&self, phase: Option<Phase>) {
        if let Some(phase) = phase {
            self.rec
                .with(|leg| leg.completed_late_request = Some(phase));
            self.rec.event(
                EventKind::LateRequestCompleted,
                Some(format!(
                    "mtlscope answered the {} request",
                    phase_words(phase)
                )),
            );
        }
    }

    fn certificate_request(&self, body: &[u8]) {
        let (tls13, established) = {
            let s = self.lock();
            (s.tls13, s.established)
        };
        let phase = match (established, tls13) {
            (false, _) => Phase::Handshake,
            (true, true) => Phase::PostHandshake,
            (true, false) => Phase::Renegotiation,
        };
        let parsed = msg::certificate_request(body, tls13).unwrap_or_default();
        let at_ms = self.rec.clock().ms();
        let after_request_ms = match phase {
            Phase::Handshake => None,
            _ => self
                .rec
                .last_request_ms()
                .filter(|r| *r <= at_ms)
                .map(|r| ((at_ms - r) * 1000.0).round() / 1000.0),
        };
        let request = cert_request(
            phase,
            &parsed.ca_names,
            parsed
                .signature_schemes
                .iter()
                .map(|s| msg::scheme_name(*s))
                .collect(),
            at_ms,
            after_request_ms,
        );
        let choice = record_request(&self.rec, &self.policy, request);
        let mut s = self.lock();
        s.pending_choice = Some(choice);
        if phase != Phase::Handshake {
            s.late_pending = Some(phase);
        }
    }

    fn alert(&self, sent: bool, bytes: &[u8]) {
        let [level, code] = match bytes {
            [l, c] => [*l, *c],
            _ => return,
        };
        // close_notify ends every connection; the rustls engine does not record it either.
        if code == 0 {
            return;
        }
        let level = match level {
            1 => AlertLevel::Warning,
            2 => AlertLevel::Fatal,
            _ => AlertLevel::Unknown,
        };
        if level == AlertLevel::Fatal {
            let undo = {
                let mut s = self.lock();
                if sent {
                    s.fatal_sent = Some(code);
                } else {
                    s.fatal_received = Some(code);
                }
                // A late request that ends in an alert was not completed.
                s.late_pending = None;
                std::mem::take(&mut s.pha_unconfirmed)
            };
            if undo {
                self.rec.with(|leg| leg.completed_late_request = None);
            }
        }
        self.rec.alert(Alert {
            direction: if sent {
                Direction::Sent
            } else {
                Direction::Received
            },
            level,
            description: crate::facts::AlertDescription::from_code(code),
            at_ms: self.rec.clock().ms(),
            source: crate::facts::AlertSource::Tls,
            encrypted: false,
        });
    }
}

impl Observer for Capture {
    fn message(&self, sent: bool, content_type: i32, bytes: &[u8]) {
        match content_type {
            CONTENT_HANDSHAKE => self.handshake(sent, bytes),
            CONTENT_ALERT => self.alert(sent, bytes),
            // TLS 1.3 reports each record's inner type: data from the server after our Finished
            // means it accepted the certificate.
            CONTENT_INNER_TYPE if !sent && bytes == [APPLICATION_DATA] => {
                self.lock().pha_unconfirmed = false;
            }
            _ => {}
        }
    }

    fn choose_certificate(&self, ssl: &mut SslRef) -> bool {
        let choice = self.lock().pending_choice.take().flatten();
        let Some(id) = choice.and_then(|i| self.identities.get(i)) else {
            return true;
        };
        let mut set = || -> Result<(), openssl::error::ErrorStack> {
            ssl.set_certificate(&id.leaf)?;
            ssl.set_private_key(&id.key)?;
            for c in &id.chain {
                ssl.add_chain_cert(c.clone())?;
            }
            Ok(())
        };
        if let Err(e) = set() {
            self.rec.event(
                EventKind::CertificateNotSet,
                Some(format!("OpenSSL refused the identity: {e}")),
            );
        }
        true
    }
}

/// A phase in the words of an event.
pub fn phase_words(phase: Phase) -> &'static str {
    match phase {
        Phase::Handshake => "handshake",
        Phase::Renegotiation => "renegotiation",
        Phase::PostHandshake => "post-handshake",
    }
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
