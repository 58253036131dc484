//! What decrypted records showed, and how it joins the wire facts of the record.

use crate::cert::{dn_to_string, hex, summarize_chain};
use crate::facts::{
    Alert, AlertDescription, AlertLevel, AlertSource, CertRequest, CertSummary, Direction, Event,
    EventKind, Flow, HttpVersion, Phase, Request, Response, ResponseSource, Wire,
};
use crate::wire::{msg, Dir};

/// Largest body excerpt kept from an error response.
const MAX_BODY: usize = 4096;

/// Facts read from decrypted records.
#[derive(Default)]
pub struct Found {
    /// A CertificateRequest (the first one).
    cert_request: Option<CertRequest>,
    /// The client's Certificate (the first one).
    client_chain: Option<Vec<CertSummary>>,
    /// The server's.
    server_chain: Option<Vec<CertSummary>>,
    /// ALPN from EncryptedExtensions.
    alpn: Option<String>,
    /// Alerts.
    alerts: Vec<Alert>,
    /// Steps, marked decrypted.
    events: Vec<Event>,
    /// The first request line.
    request: Option<Request>,
    /// The first status line.
    response: Option<Response>,
    /// HTTP/2 reading by [`Dir::index`], once a direction turned out to speak it.
    h2: [Option<super::h2::H2Side>; 2],
    /// Directions whose first request or response is known (or never will be).
    http_done: [bool; 2],
}

impl Found {
    /// Note a message `dir`'s sender sent (`from client, {rest}`).
    pub fn sent(&mut self, at: f64, kind: EventKind, dir: Dir, rest: &str) {
        if self.events.len() < 64 {
            self.events
                .push(Event::from_peer(at, kind, dir.peer(), Some(rest)));
        }
    }

    /// Note a step.
    pub fn event(&mut self, at: f64, kind: EventKind, detail: String) {
        if self.events.len() < 64 {
            self.events.push(Event::new(at, kind, Some(detail)));
        }
    }

    /// A decrypted handshake message other than the ones that change keys.
    pub fn message(
        &mut self,
        dir: Dir,
        at: f64,
        t: u8,
        body: &[u8],
        tls13: bool,
        client_done: bool,
    ) {
        let from = dir.sender();
        match t {
            8 => {
                self.alpn = encrypted_extensions_alpn(body);
                self.sent(at, EventKind::EncryptedExtensions, dir, "decrypted");
            }
            13 => match msg::certificate_request(body, tls13) {
                Some(cr) => {
                    let phase = match (tls13, client_done) {
                        (_, false) => Phase::Handshake,
                        (true, true) => Phase::PostHandshake,
                        (false, true) => Phase::Renegotiation,
                    };
                    let names: Vec<String> = cr.ca_names.iter().map(|n| dn_to_string(n)).collect();
                    let detail = format!("decrypted, {} CA names", names.len());
                    if self.cert_request.is_none() {
                        self.cert_request = Some(CertRequest {
                            phase,
                            ca_names: Some(names),
                            ca_names_der: cr.ca_names.iter().map(|n| hex(n)).collect(),
                            signature_schemes: cr
                                .signature_schemes
                                .iter()
                                .map(|s| crate::wire::scheme_name(*s))
                                .collect(),
                            mandatory: None,
                            at_ms: at,
                            after_request_ms: None,
                        });
                    }
                    self.sent(at, EventKind::CertificateRequest, dir, &detail);
                }
                None => self.event(
                    at,
                    EventKind::WireAnomaly,
                    format!("malformed CertificateRequest from {from} (decrypted)"),
                ),
            },
            11 => match msg::certificate(body, tls13) {
                Some(ders) => {
                    let n = ders.len();
                    let slot = match dir {
                        Dir::ClientToServer => &mut self.client_chain,
                        Dir::ServerToClient => &mut self.server_chain,
                    };
                    if slot.is_none() {
                        *slot = Some(summarize_chain(ders.iter().copied()));
                    }
                    self.sent(
                        at,
                        EventKind::Certificate,
                        dir,
                        &format!("decrypted, {n} certificates"),
                    );
                }
                None => self.event(
                    at,
                    EventKind::WireAnomaly,
                    format!("malformed Certificate from {from} (decrypted)"),
                ),
            },
            15 => self.sent(at, EventKind::CertificateVerify, dir, "decrypted"),
            _ => {}
        }
    }

    /// A decrypted alert.
    pub fn alert(&mut self, dir: Dir, at: f64, level: u8, code: u8) {
        let level = match level {
            1 => AlertLevel::Warning,
            2 => AlertLevel::Fatal,
            _ => AlertLevel::Unknown,
        };
        let description = AlertDescription::from_code(code);
        let lvl = match level {
            AlertLevel::Warning => "warning ",
            AlertLevel::Fatal => "fatal ",
            AlertLevel::Unknown => "",
        };
        self.event(
            at,
            EventKind::Alert,
            format!(
                "{lvl}{} from {} (decrypted)",
                description.as_str(),
                dir.sender()
            ),
        );
        if self.alerts.len() < 64 {
            self.alerts.push(Alert {
                direction: match dir {
                    Dir::ClientToServer => Direction::Sent,
                    Dir::ServerToClient => Direction::Received,
                },
                level,
                description,
                at_ms: at,
                source: AlertSource::Wire,
                encrypted: false,
            });
        }
    }

    /// Decrypted application bytes one way, until its first request or response head is read:
    /// HTTP/2 (the client's preface, or frames after it) or an HTTP/1.x first line.
    pub fn app_data(&mut self, dir: Dir, at: f64, plain: &[u8]) {
        let d = dir.index();
        if self.http_done.get(d).copied().unwrap_or(true) {
            return;
        }
        let first = self.h2.get(d).is_some_and(Option::is_none);
        if first {
            let is_h2 = match dir {
                Dir::ClientToServer => plain.starts_with(super::h2::PREFACE),
                // A server's HTTP/2 starts with a SETTINGS frame (type 4).
                Dir::ServerToClient => plain.get(3) == Some(&4) && !plain.starts_with(b"HTTP/"),
            };
            if !is_h2 {
                self.http_done[d] = true;
                self.http1(dir, at, plain);
                return;
            }
            self.h2[d] = Some(super::h2::H2Side::new(dir == Dir::ClientToServer));
        }
        let Some(side) = self.h2.get_mut(d).and_then(Option::as_mut) else {
            return;
        };
        let fields = side.feed(plain);
        if side.done {
            self.http_done[d] = true;
        }
        let Some(fields) = fields else { return };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        match dir {
            Dir::ServerToClient => {
                if let Some(status) = get(":status").and_then(|s| s.parse::<u16>().ok()) {
                    self.response = Some(Response {
                        status,
                        source: ResponseSource::Upstream,
                        at_ms: at,
                        ..Response::default()
                    });
                    self.event(
                        at,
                        EventKind::HttpResponse,
                        format!("HTTP/2 :status {status} (decrypted)"),
                    );
                }
            }
            Dir::ClientToServer => {
                if let (Some(method), Some(path)) = (get(":method"), get(":path")) {
                    self.event(
                        at,
                        EventKind::HttpRequest,
                        format!("{method} {path} (HTTP/2, decrypted)"),
                    );
                    self.request = Some(Request {
                        method,
                        uri: path,
                        version: HttpVersion::Http2,
                        at_ms: at,
                        ..Request::default()
                    });
                }
            }
        }
    }

    /// An HTTP/1.x request or status line.
    fn http1(&mut self, dir: Dir, at: f64, plain: &[u8]) {
        let line_end = plain
            .iter()
            .position(|b| *b == b'\r' || *b == b'\n')
            .unwrap_or(plain.len().min(200));
        let line = String::from_utf8_lossy(plain.get(..line_end).unwrap_or(&[])).to_string();
        let mut words = line.split(' ');
        match dir {
            Dir::ServerToClient => {
                let (Some(v), Some(code)) = (words.next(), words.next()) else {
                    return;
                };
                let Ok(status) = code.parse::<u16>() else {
                    return;
                };
                if !v.starts_with("HTTP/1.") {
                    return;
                }
                let body = (status >= 400)
                    .then(|| {
                        let start = plain.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
                        let body = plain.get(start..)?;
                        let body = body.get(..body.len().min(MAX_BODY))?;
                        Some(String::from_utf8_lossy(body).into_owned())
                    })
                    .flatten();
                self.response = Some(Response {
                    status,
                    source: ResponseSource::Upstream,
                    body_excerpt: body,
                    at_ms: at,
                    ..Response::default()
                });
                self.event(at, EventKind::HttpResponse, format!("{line} (decrypted)"));
            }
            Dir::ClientToServer => {
                let (Some(method), Some(uri), Some(version)) =
                    (words.next(), words.next(), words.next())
                else {
                    return;
                };
                if !version.starts_with("HTTP/1.")
                    || !method.bytes().all(|b| b.is_ascii_uppercase())
                {
                    return;
                }
                self.request = Some(Request {
                    method: method.into(),
                    uri: uri.into(),
                    version: HttpVersion::from_name(version),
                    at_ms: at,
                    ..Request::default()
                });
                self.event(
                    at,
                    EventKind::HttpRequest,
                    format!("{method} {uri} (decrypted)"),
                );
            }
        }
    }

    /// Say that renegotiations could not be read for lack of their keys.
    pub fn missing_keys(&mut self, n: u32, wire: &Wire) {
        let at = wire.renegotiations.first().map_or(0.0, |r| r.at_ms);
        self.event(
            at,
            EventKind::DecryptionGap,
            format!(
                "{n} renegotiations: no CLIENT_RANDOM line in the key log for their ClientHello"
            ),
        );
    }

    /// Join into the record: decrypted facts fill what the wire could not show; an alert the
    /// wire saw as encrypted at the same moment gets its decrypted description.
    pub fn apply(self, wire: &mut Wire, flow: &mut Flow) {
        if self.cert_request.is_some() {
            wire.cert_request = self.cert_request;
        }
        if self.client_chain.is_some() {
            wire.client_chain = self.client_chain;
        }
        if self.server_chain.is_some() && wire.server_chain.is_none() {
            wire.server_chain = self.server_chain;
        }
        if let Some(alpn) = self.alpn {
            wire.alpn = Some(alpn);
        }
        for a in self.alerts {
            let same = wire
                .alerts
                .iter_mut()
                .find(|w| w.encrypted && w.direction == a.direction && w.at_ms == a.at_ms);
            match same {
                Some(w) => *w = a,
                None => wire.alerts.push(a),
            }
        }
        wire.alerts.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        wire.events.extend(self.events);
        if self.request.is_some() {
            flow.request = self.request;
        }
        if self.response.is_some() {
            flow.response = self.response;
        }
        // A decrypted request and its answer make the record an exchange, as in the proxies.
        if flow.request.is_some() && flow.response.is_some() {
            flow.kind = crate::facts::RecordKind::Exchange;
            flow.exchange_index = Some(0);
        }
    }
}

/// The ALPN protocol in an EncryptedExtensions body.
fn encrypted_extensions_alpn(body: &[u8]) -> Option<String> {
    let mut r = msg::Reader::new(body);
    let mut exts = r.vec16()?;
    while !exts.is_empty() {
        let ty = exts.u16()?;
        let mut data = exts.vec16()?;
        if ty == 16 {
            let mut list = data.vec16()?;
            let name = list.vec8()?.rest();
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}
