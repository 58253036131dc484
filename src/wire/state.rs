//! [`WireParser`]: the pure, incremental reading of one TLS connection from both directions'
//! bytes. It knows where encryption starts (TLS 1.2: after each direction's ChangeCipherSpec;
//! TLS 1.3: after the ServerHello, both directions), when the handshake is done, and after that
//! classifies TLS 1.2 records by outer type: a handshake record is a renegotiation, an alert
//! record an encrypted alert. No I/O and no clock: the caller passes each chunk's time.

use super::msg::{self, ty};
use super::split::{content, Item, Splitter};
use super::{Dir, TapFacts, TapRole};
use crate::cert::{dn_to_string, hex, summarize_chain};
use crate::facts::{
    Alert, AlertLevel, CertRequest, ClientHelloFacts, Direction, Event, Initiator, Phase,
    Renegotiation, TlsVersion,
};
use crate::facts::{
    AlertDescription, AlertSource, EventKind, RenegotiationOutcome, ENCRYPTED_ALERT_CODE,
};

/// Caps on what one connection may accumulate, so a flood of tiny records stays bounded.
const MAX_EVENTS: usize = 512;
const MAX_ALERTS: usize = 64;
const MAX_RENEGOTIATIONS: usize = 64;

/// Both directions of one connection, read incrementally.
#[derive(Debug, Default)]
pub struct WireParser {
    /// Record splitters, indexed by [`Dir::index`].
    split: [Splitter; 2],
    /// What the records meant.
    s: Session,
}

/// A renegotiation in progress (TLS 1.2, after the first handshake).
#[derive(Debug, Default)]
struct RenegProgress {
    /// Index into `Session::renegotiations`.
    index: usize,
    /// ChangeCipherSpec seen per direction during this renegotiation.
    ccs: [bool; 2],
    /// Finished (the handshake record after the CCS) seen per direction.
    fin: [bool; 2],
    /// Encrypted handshake records per direction before that direction's CCS.
    pre_ccs: [u32; 2],
    /// Time of the server's latest handshake record before its CCS (its last hello flight).
    last_server_flight_ms: Option<f64>,
    /// Whether it has ended (completed or an alert came).
    ended: bool,
}

/// The interpretation of both directions.
#[derive(Debug, Default)]
struct Session {
    /// Bumped whenever a fact other than the application-data counters changes, so a reader
    /// can tell that nothing it shows moved (see [`WireParser::generation`]).
    generation: u64,
    version: Option<TlsVersion>,
    tls13: bool,
    server_hello_seen: bool,
    /// Whether each direction is encrypted now.
    enc: [bool; 2],
    /// Whether each direction's Finished was seen (TLS 1.2 initial handshake).
    fin: [bool; 2],
    done_ms: Option<f64>,
    client_hello: Option<ClientHelloFacts>,
    client_random: Option<[u8; 32]>,
    server_alpn: Option<String>,
    cert_request: Option<CertRequest>,
    /// Certificate DERs per direction (summarised on snapshot, not on the I/O path).
    chains: [Option<Vec<Vec<u8>>>; 2],
    /// Their summaries, made on the first snapshot and kept: a chain is set once per
    /// direction, and the proxy snapshots a leg for every exchange.
    chain_summaries: [std::cell::OnceCell<Vec<crate::facts::CertSummary>>; 2],
    /// Alerts with their TLS direction (made relative to the role on snapshot).
    alerts: Vec<(Dir, Alert)>,
    renegotiations: Vec<Renegotiation>,
    reneg: Option<RenegProgress>,
    events: Vec<Event>,
    events_dropped: u64,
    last_app: [Option<f64>; 2],
    last_post_handshake_ms: Option<f64>,
    bytes: [u64; 2],
    not_tls: Option<String>,
}

impl WireParser {
    /// A parser for a new connection.
    pub fn new() -> WireParser {
        WireParser::default()
    }

    /// Feed the bytes that moved in `dir` at `at_ms` (ms from the connection start).
    pub fn feed(&mut self, dir: Dir, at_ms: f64, bytes: &[u8]) {
        let d = dir.index();
        let s = &mut self.s;
        s.bytes[d] = s.bytes[d].saturating_add(bytes.len() as u64);
        let Some(split) = self.split.get_mut(d) else {
            return;
        };
        let mut input = bytes;
        loop {
            let encrypted = s.enc[d];
            let Some(item) = split.next(&mut input, encrypted) else {
                break;
            };
            s.item(dir, at_ms, item);
        }
    }

    /// The time of the latest handshake record after the handshake completed (a TLS 1.2
    /// renegotiation step), ms from the connection start.
    pub fn last_post_handshake_ms(&self) -> Option<f64> {
        self.s.last_post_handshake_ms
    }

    /// A number that changes whenever the facts change, except the application-data times and
    /// byte counts: what a cache of the merged leg facts is keyed on.
    pub fn generation(&self) -> u64 {
        self.s.generation
    }

    /// The ClientHello random, once seen: the key that joins NSS key-log lines.
    pub fn client_random(&self) -> Option<[u8; 32]> {
        self.s.client_random
    }

    /// See [`Splitter::opaque_left`]: bytes of `dir`'s current record that are skipped unread.
    pub fn opaque_left(&self, dir: Dir) -> usize {
        self.split.get(dir.index()).map_or(0, Splitter::opaque_left)
    }

    /// Everything seen so far; alert directions relative to `role`.
    pub fn facts(&self, role: TapRole) -> TapFacts {
        let s = &self.s;
        let mut renegotiations = s.renegotiations.clone();
        if let Some(p) = s.reneg.as_ref().filter(|p| !p.ended) {
            if let Some(r) = renegotiations.get_mut(p.index) {
                r.outcome.get_or_insert(RenegotiationOutcome::Incomplete);
            }
        }
        let chain = |d: Dir| {
            s.chains[d.index()].as_ref().map(|c| {
                s.chain_summaries[d.index()]
                    .get_or_init(|| summarize_chain(c.iter().map(Vec::as_slice)))
                    .clone()
            })
        };
        TapFacts {
            tls_version: s.version,
            client_hello: s.client_hello.clone(),
            client_random: s.client_random.map(|r| hex(&r)),
            server_alpn: s.server_alpn.clone(),
            cert_request: s.cert_request.clone(),
            client_chain: chain(Dir::ClientToServer),
            server_chain: chain(Dir::ServerToClient),
            alerts: s
                .alerts
                .iter()
                .map(|(d, a)| Alert {
                    direction: role.direction_of(*d),
                    ..a.clone()
                })
                .collect(),
            renegotiations,
            events: s.events.clone(),
            events_dropped: s.events_dropped,
            handshake_done_ms: s.done_ms,
            last_app_data_from_client_ms: s.last_app[Dir::ClientToServer.index()],
            last_app_data_from_server_ms: s.last_app[Dir::ServerToClient.index()],
            last_post_handshake_ms: s.last_post_handshake_ms,
            bytes_client_to_server: s.bytes[Dir::ClientToServer.index()],
            bytes_server_to_client: s.bytes[Dir::ServerToClient.index()],
            not_tls: s.not_tls.clone(),
        }
    }
}

impl Session {
    fn event(&mut self, at_ms: f64, kind: EventKind, detail: Option<String>) {
        self.push_event(Event::new(at_ms, kind, detail));
    }

    /// A message `dir`'s sender sent: `from client[, rest]`.
    fn sent(&mut self, dir: Dir, at_ms: f64, kind: EventKind, rest: Option<&str>) {
        self.push_event(Event::from_peer(at_ms, kind, dir.peer(), rest));
    }

    fn push_event(&mut self, e: Event) {
        self.generation += 1;
        if self.events.len() >= MAX_EVENTS {
            self.events_dropped += 1;
            return;
        }
        self.events.push(e);
    }

    fn item(&mut self, dir: Dir, at: f64, item: Item<'_>) {
        // Application data only moves `last_app` and the byte counts.
        if !matches!(
            item,
            Item::Record {
                ty: content::APPLICATION_DATA,
                ..
            }
        ) {
            self.generation += 1;
        }
        match item {
            Item::Record { ty, len, plain, .. } => self.record(dir, at, ty, len, plain),
            Item::HandshakeStart { ty, len, kept } => {
                let kind = msg::handshake_kind(ty);
                let too_large = (!kept && matches!(ty, ty::CLIENT_HELLO | ty::CERTIFICATE))
                    .then(|| format!("{len} bytes: too large to parse"));
                self.sent(dir, at, kind, too_large.as_deref());
            }
            Item::Handshake { ty, body } => self.handshake(dir, at, ty, body),
            Item::Alert { level, code } => {
                let level = match level {
                    1 => AlertLevel::Warning,
                    2 => AlertLevel::Fatal,
                    _ => AlertLevel::Unknown,
                };
                self.alert(dir, at, level, code);
            }
            Item::NotTls(why) => {
                self.not_tls
                    .get_or_insert_with(|| format!("from the {}: {why}", dir.sender()));
                self.push_event(Event::from_peer(
                    at,
                    EventKind::NotTls,
                    dir.peer(),
                    Some(why),
                ));
            }
        }
    }

    fn record(&mut self, dir: Dir, at: f64, t: u8, len: u16, plain: bool) {
        let d = dir.index();
        match t {
            content::CCS => {
                if self.tls13 {
                    let ccs = Event::from_peer_noting(
                        at,
                        EventKind::ChangeCipherSpec,
                        dir.peer(),
                        "compatibility",
                    );
                    self.push_event(ccs);
                } else {
                    self.sent(dir, at, EventKind::ChangeCipherSpec, None);
                }
                if self.tls13 {
                    return;
                }
                match self.reneg.as_mut().filter(|_| self.done_ms.is_some()) {
                    Some(p) if !p.ended => {
                        p.ccs[d] = true;
                        if dir == Dir::ClientToServer {
                            self.maybe_infer_renegotiation_request();
                        }
                    }
                    _ => self.enc[d] = true,
                }
            }
            content::HANDSHAKE if !plain => self.encrypted_handshake(dir, at, len),
            content::ALERT if !plain => self.encrypted_alert(dir, at),
            content::APPLICATION_DATA => {
                if self.tls13
                    && self.done_ms.is_none()
                    && dir == Dir::ClientToServer
                    && self.server_hello_seen
                {
                    // The client's Finished (with its Certificate if asked for) or an alert:
                    // encrypted, the wire cannot tell which, so no `handshake_done` is claimed.
                    // The wire's own reading of the session goes on as after a handshake.
                    self.done_ms = Some(at);
                    let rest = "encrypted: its Finished (and Certificate, if asked for) or an alert; the wire cannot tell which";
                    self.sent(dir, at, EventKind::ClientEncryptedFlight, Some(rest));
                    return;
                }
                if self.done_ms.is_some() {
                    self.last_app[d] = Some(at);
                }
            }
            _ => {}
        }
    }

    /// A TLS 1.2 encrypted handshake record: a Finished, or a renegotiation step.
    fn encrypted_handshake(&mut self, dir: Dir, at: f64, len: u16) {
        let d = dir.index();
        if self.done_ms.is_none() {
            if self.enc[d] && !self.fin[d] {
                self.fin[d] = true;
                self.sent(dir, at, EventKind::Finished, None);
                if self.fin == [true, true] {
                    self.done_ms = Some(at);
                    self.event(at, EventKind::HandshakeDone, None);
                }
            }
            return;
        }
        self.last_post_handshake_ms = Some(at);
        if let Some(p) = self.reneg.as_mut().filter(|p| !p.ended) {
            if p.ccs[d] {
                p.fin[d] = true;
                if p.fin == [true, true] {
                    p.ended = true;
                    if let Some(r) = self.renegotiations.get_mut(p.index) {
                        r.outcome = Some(RenegotiationOutcome::Completed);
                    }
                    self.event(at, EventKind::RenegotiationDone, None);
                }
            } else {
                p.pre_ccs[d] = p.pre_ccs[d].saturating_add(1);
                if dir == Dir::ServerToClient {
                    p.last_server_flight_ms = Some(at);
                }
            }
            return;
        }
        if self.renegotiations.len() >= MAX_RENEGOTIATIONS {
            self.events_dropped += 1;
            return;
        }
        let (initiated_by, detail) = match dir {
            Dir::ServerToClient => (Initiator::Server, "HelloRequest from server"),
            Dir::ClientToServer => (Initiator::Client, "ClientHello from client"),
        };
        let last_app = match self.last_app {
            [Some(a), Some(b)] => Some(a.max(b)),
            [a, b] => a.or(b),
        };
        self.renegotiations.push(Renegotiation {
            at_ms: at,
            initiated_by,
            after_app_data_ms: last_app.map(|t| round_us(at - t)),
            outcome: None,
            refused_by_mtlscope: false,
        });
        let mut p = RenegProgress {
            index: self.renegotiations.len() - 1,
            ..RenegProgress::default()
        };
        p.pre_ccs[d] = 1;
        self.reneg = Some(p);
        self.event(
            at,
            EventKind::RenegotiationRequest,
            Some(format!("{detail}, encrypted, {len} bytes")),
        );
    }

    /// In a TLS 1.2 renegotiation the CertificateRequest is encrypted. A client that sends three
    /// or more handshake records before its CCS (ClientHello, Certificate, ClientKeyExchange
    /// [, CertificateVerify]) answered one; without a request it sends two. Implementations that
    /// coalesce messages into one record are not detected (ca_names stay null either way).
    fn maybe_infer_renegotiation_request(&mut self) {
        let Some(p) = self.reneg.as_ref() else {
            return;
        };
        let client_records = p.pre_ccs[Dir::ClientToServer.index()];
        if client_records < 3 || self.cert_request.is_some() {
            return;
        }
        let at = p.last_server_flight_ms.unwrap_or(0.0);
        self.cert_request = Some(CertRequest {
            phase: Phase::Renegotiation,
            ca_names: None,
            ca_names_der: Vec::new(),
            signature_schemes: Vec::new(),
            mandatory: None,
            at_ms: at,
            after_request_ms: None,
        });
        let detail = format!(
            "inferred: encrypted in a renegotiation; the client answered with {client_records} \
             handshake records before its ChangeCipherSpec"
        );
        self.event(at, EventKind::CertificateRequest, Some(detail));
    }

    /// A TLS 1.2 alert in an encrypted record. After application data and outside a
    /// renegotiation it is presumed close_notify: a session that carried data ends with one, and
    /// a fatal alert there would need a failure the wire would have shown (a renegotiation).
    /// Elsewhere (e.g. a failed Finished) its description stays unknown.
    fn encrypted_alert(&mut self, dir: Dir, at: f64) {
        let in_reneg = self.reneg.as_ref().is_some_and(|p| !p.ended);
        let after_data = self.done_ms.is_some() && self.last_app.iter().any(Option::is_some);
        if after_data && !in_reneg {
            let detail = "close_notify (presumed: encrypted, after application data)";
            self.push_alert(dir, at, AlertLevel::Unknown, 0, detail, true);
        } else {
            self.push_alert(dir, at, AlertLevel::Unknown, ENCRYPTED_ALERT_CODE, "", true);
        }
    }

    fn alert(&mut self, dir: Dir, at: f64, level: AlertLevel, code: u8) {
        self.push_alert(dir, at, level, code, "", false);
    }

    /// Record an alert; `detail` overrides the event's description.
    fn push_alert(
        &mut self,
        dir: Dir,
        at: f64,
        level: AlertLevel,
        code: u8,
        detail: &str,
        encrypted: bool,
    ) {
        let alert = Alert {
            direction: Direction::Sent, // made relative to the role on snapshot
            level,
            description: AlertDescription::from_code(code),
            at_ms: at,
            source: AlertSource::Wire,
            encrypted,
        };
        if let Some(p) = self.reneg.as_mut().filter(|p| !p.ended) {
            p.ended = true;
            if let Some(r) = self.renegotiations.get_mut(p.index) {
                r.outcome = Some(match dir {
                    Dir::ClientToServer => RenegotiationOutcome::AlertFromClient,
                    Dir::ServerToClient => RenegotiationOutcome::AlertFromServer,
                });
            }
        }
        let lvl = match level {
            AlertLevel::Warning => "warning ",
            AlertLevel::Fatal => "fatal ",
            AlertLevel::Unknown => "",
        };
        let shown = if detail.is_empty() {
            alert.name()
        } else {
            detail
        };
        let detail = format!("{lvl}{shown} from {}", dir.sender());
        self.event(at, EventKind::Alert, Some(detail));
        if self.alerts.len() >= MAX_ALERTS {
            self.events_dropped += 1;
            return;
        }
        self.alerts.push((dir, alert));
    }

    fn handshake(&mut self, dir: Dir, at: f64, t: u8, body: &[u8]) {
        match t {
            ty::CLIENT_HELLO if self.client_hello.is_none() => match msg::client_hello(body) {
                Some(ch) => {
                    let mut random = [0u8; 32];
                    for (slot, b) in random.iter_mut().zip(ch.random) {
                        *slot = *b;
                    }
                    self.client_random = Some(random);
                    let versions = if ch.versions.is_empty() {
                        vec![ch.legacy_version]
                    } else {
                        ch.versions.clone()
                    };
                    self.client_hello = Some(ClientHelloFacts {
                        sni: ch.sni.map(str::to_string),
                        alpn: ch.alpn,
                        versions: versions
                            .into_iter()
                            .filter_map(TlsVersion::from_wire)
                            .collect(),
                        signature_schemes: names(&ch.signature_schemes),
                        offered_pha: ch.offered_pha,
                    });
                }
                None => self.malformed(dir, at, "ClientHello"),
            },
            ty::SERVER_HELLO => match msg::server_hello(body) {
                Some(sh) if sh.is_hrr => {
                    // Only TLS 1.3 retries: CCS from here on is for compatibility, and the next
                    // ClientHello and ServerHello are still plaintext.
                    self.tls13 = true;
                    self.event(at, EventKind::HelloRetryRequest, None);
                }
                Some(sh) => {
                    self.server_hello_seen = true;
                    self.version = TlsVersion::from_wire(sh.version());
                    self.server_alpn = sh.alpn.clone();
                    if sh.version() == 0x0304 {
                        self.tls13 = true;
                        self.enc = [true, true];
                    }
                }
                None => self.malformed(dir, at, "ServerHello"),
            },
            ty::CERTIFICATE => match msg::certificate(body, self.tls13) {
                Some(ders) => {
                    let slot = &mut self.chains[dir.index()];
                    if slot.is_none() {
                        *slot = Some(ders.into_iter().map(<[u8]>::to_vec).collect());
                    }
                }
                None => self.malformed(dir, at, "Certificate"),
            },
            ty::CERTIFICATE_REQUEST if self.cert_request.is_none() => {
                match msg::certificate_request(body, self.tls13) {
                    Some(cr) => {
                        self.cert_request = Some(CertRequest {
                            phase: if self.done_ms.is_some() {
                                Phase::Renegotiation
                            } else {
                                Phase::Handshake
                            },
                            ca_names: Some(cr.ca_names.iter().map(|n| dn_to_string(n)).collect()),
                            ca_names_der: cr.ca_names.iter().map(|n| hex(n)).collect(),
                            signature_schemes: names(&cr.signature_schemes),
                            mandatory: None,
                            at_ms: at,
                            after_request_ms: None,
                        })
                    }
                    None => self.malformed(dir, at, "CertificateRequest"),
                }
            }
            _ => {}
        }
    }

    fn malformed(&mut self, dir: Dir, at: f64, what: &str) {
        let detail = format!("malformed {what} from {}", dir.sender());
        self.event(at, EventKind::WireAnomaly, Some(detail));
    }
}

fn names(schemes: &[u16]) -> Vec<String> {
    schemes.iter().map(|s| msg::scheme_name(*s)).collect()
}

/// Round to microseconds, as every `at_ms` is.
fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}
