//! The HTTP relay of one connection pair: each client request goes to the connection's own
//! upstream connection; each exchange becomes a record.
//!
//! Bodies stream both ways. Only error responses (400–599) are held back, and only for a bounded
//! excerpt, so the diagnosis — and its `Mtlscope-Diagnosis` header — can quote the server's error
//! page before the head goes to the client.

use super::body::RelayBody;
use super::headers::{asks_for_trailers, strip_hop_by_hop};
use super::late_replay::{AutoReplay, FirstAttempt};
use super::upgrade::UpgradeRequest;
use super::upstream_legs::{LegInUse, NoLeg, NoResponse, Sent, UpstreamBody, UpstreamLegs};
use crate::capture::tls_error::{classify_io, find_io_error, Classified};
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FailureKind, Stage};
use crate::facts::{FaultEffect, Flow, Mode, RecordKind, Request, Response, ResponseSource};
use crate::lifecycle::Lifecycle;
use crate::record::headers::{kept_request, kept_response};
use crate::record::Sink;
use crate::upstream::Target;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONNECTION, CONTENT_TYPE, HOST, TE};
use http::{StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most a client may send as a request head (larger gets 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most of an error body kept for the record and the diagnosis.
const EXCERPT_BYTES: usize = 4096;
/// How long to wait for that excerpt before relaying the head anyway.
const EXCERPT_WAIT: Duration = Duration::from_secs(2);

/// The header carrying the finding ids on diagnosed error responses.
pub const DIAGNOSIS_HEADER: &str = "mtlscope-diagnosis";

/// Everything the relay of one connection pair knows and writes.
pub struct Pair {
    /// Process-unique connection number.
    pub id: u64,
    /// The command relaying.
    pub mode: Mode,
    /// The connection's clock.
    pub clock: ConnClock,
    /// The client's address.
    pub client_addr: String,
    /// Where the upstream leg goes.
    pub target: Target,
    /// The client leg's facts.
    pub client: LegRecorder,
    /// The upstream legs, one at a time (each with its facts, present even when it failed).
    pub legs: UpstreamLegs,
    /// Faults that acted on this pair.
    pub faults: Arc<Mutex<Vec<FaultEffect>>>,
    /// Exchanges so far.
    pub exchanges: AtomicU32,
    /// The client speaks HTTP/1.x on this connection (its ALPN was not `h2`): a close the
    /// upstream announces is passed on as `Connection: close`.
    pub client_h1: bool,
    /// Requests being handled now (their response heads not yet returned).
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// Where finished flows go.
    pub sink: Sink,
    /// Redact credential headers in records.
    pub redact: bool,
    /// The listener's `--fault`s that act per exchange (allow-list, response delay).
    pub fault_config: Arc<crate::faults::Faults>,
    /// The process's stop signals: the client connection closes gracefully on stop.
    pub life: Lifecycle,
    /// Playing a TLS offloader: the identity headers for this connection's requests.
    pub offload: Option<Arc<crate::offload::ConnOffload>>,
    /// `--upstream-engine auto`: how a request refused for a late certificate request is
    /// replayed over OpenSSL.
    pub replay: Option<AutoReplay>,
}

impl Pair {
    /// The pair's facts as they stand, with upstream leg `leg`, as a record of `kind`.
    pub fn flow(&self, kind: RecordKind, leg: &LegInUse) -> Flow {
        let mut flow = Flow::new(self.mode, self.id, self.clock.started_at());
        flow.kind = kind;
        flow.client_addr = Some(self.client_addr.clone());
        flow.upstream = Some(self.target.authority());
        flow.client_leg = Some(self.client.snapshot());
        flow.upstream_leg = Some(leg.rec.snapshot());
        flow.upstream_leg_index = Some(leg.index);
        flow.upstream_connection = leg.pooled;
        flow.faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        flow
    }

    /// Relay one request; never fails (failures become diagnosed responses).
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<RelayBody>, std::convert::Infallible> {
        let index = self.exchanges.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.in_flight);
        // Per-exchange times live in the exchange, not in the legs' events: a leg's events are
        // copied into every record of its connection and must not grow with each request.
        let mut request = request_facts(&req, self.redact, self.clock);
        let wants_json = wants_json(&req);

        if let Some(refusal) = self.allow_list_refusal() {
            self.add_fault(refusal.0, refusal.1);
            let leg = self.legs.current().await;
            let mut flow = self.exchange_flow(index, request, &leg);
            flow.error = Some(refusal.2);
            return Ok(respond_produced(
                flow,
                StatusCode::FORBIDDEN,
                wants_json,
                vec![],
                &self.sink,
                self.clock,
            )
            .await);
        }
        let mut req = req;
        let upgrade = UpgradeRequest::take(&mut req);
        if let Some(o) = &self.offload {
            // Only the stripping here: the offloader's own headers go on in `upstream_request`,
            // after hop-by-hop processing, so `Connection: x-ssl-client-verify` cannot drop them.
            request.forwarded_identity = Some(o.strip(req.headers_mut()));
        }
        let forwarded_at = self.clock.ms();
        // The body copies its bounded, redacted excerpt as it goes (or is read whole when
        // `--upstream-engine auto` may have to send it again).
        let (req, kept, excerpt) =
            super::late_replay::prepare(req, self.replay.is_some(), self.redact).await;
        let sent = self
            .legs
            .send(req, |r, h2| {
                let mut r = self.upstream_request(r, h2);
                if let Some(u) = &upgrade {
                    u.restore(&mut r, h2);
                }
                r
            })
            .await;
        request.forwarded_at_ms = Some(forwarded_at);
        request.body_excerpt = excerpt.take();
        let sent = match sent {
            Ok(sent) => sent,
            Err(NoLeg { leg, retry }) => {
                request.forwarded_at_ms = None;
                let mut flow = self.exchange_flow(index, request, &leg);
                flow.upstream_retry = retry;
                return Ok(self
                    .produce(flow, StatusCode::BAD_GATEWAY, wants_json)
                    .await);
            }
        };
        let Sent {
            leg,
            mut result,
            retry,
        } = sent;
        if let (Some(u), Ok(resp)) = (upgrade, result.as_mut()) {
            u.answered(resp, &self.life);
        }
        if let Err(NoResponse::Http(e)) = &result {
            leg.rec.fail(&http_error(e));
        }
        let first = match &result {
            Ok(resp) => FirstAttempt::Answered(resp),
            Err(_) => FirstAttempt::Failed,
        };
        if let Some(replayed) =
            super::late_replay::after_first_attempt(&self, kept, index, &request, &leg, first).await
        {
            return Ok(replayed);
        }
        let mut flow = self.exchange_flow(index, request, &leg);
        flow.upstream_retry = retry;
        Ok(match result {
            Ok(resp) => self.relay_response(flow, leg, resp).await,
            Err(NoResponse::HeadTimeout(d)) => {
                leg.rec.fail(&Classified::new(
                    Stage::AfterHandshake,
                    FailureKind::TimedOut,
                    format!(
                        "the upstream sent no response head within {} s (--timeout)",
                        d.as_secs()
                    ),
                ));
                let flow = self.exchange_flow_again(flow, &leg);
                self.produce(flow, StatusCode::GATEWAY_TIMEOUT, wants_json)
                    .await
            }
            Err(_) => {
                let flow = self.exchange_flow_again(flow, &leg);
                self.produce(flow, StatusCode::BAD_GATEWAY, wants_json)
                    .await
            }
        })
    }

    /// The request as it goes upstream: origin-form (h1) or absolute (h2), `Host` set to the
    /// upstream, hop-by-hop headers removed. Applying it twice (a request sent again on a new
    /// leg) gives the same request.
    pub(super) fn upstream_request(
        &self,
        req: http::Request<UpstreamBody>,
        h2: bool,
    ) -> http::Request<UpstreamBody> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        // `TE: trailers` is the one TE HTTP/2 allows, and gRPC servers refuse requests without
        // it ("used to detect incompatible proxies"): keep it on an h2 leg.
        let te_trailers = h2 && asks_for_trailers(&parts.headers);
        strip_hop_by_hop(&mut parts.headers);
        if let Some(o) = &self.offload {
            o.add_to(&mut parts.headers);
        }
        if te_trailers {
            parts
                .headers
                .insert(TE, HeaderValue::from_static("trailers"));
        }
        let authority = self.target.authority();
        if h2 {
            match Uri::builder()
                .scheme("https")
                .authority(authority.as_str())
                .path_and_query(path)
                .build()
            {
                Ok(uri) => parts.uri = uri,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot form the upstream URI; sent as received")
                }
            }
            parts.version = Version::HTTP_2;
            parts.headers.remove(HOST);
        } else {
            match Uri::builder().path_and_query(path).build() {
                Ok(uri) => parts.uri = uri,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot form the upstream URI; sent as received")
                }
            }
            parts.version = Version::HTTP_11;
            if let Ok(host) = HeaderValue::from_str(&authority) {
                parts.headers.insert(HOST, host);
            }
        }
        http::Request::from_parts(parts, body)
    }

    async fn relay_response(
        self: &Arc<Self>,
        flow: Flow,
        leg: LegInUse,
        resp: http::Response<Incoming>,
    ) -> http::Response<RelayBody> {
        if let Some(d) = self.fault_config.delay(crate::faults::DelayStep::Response) {
            self.add_fault(
                "delay=response".into(),
                format!("held the response back {} ms", d.as_millis()),
            );
            tokio::time::sleep(d).await;
        }
        let mut flow = flow;
        flow.faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        respond_relayed(
            flow,
            resp,
            &self.sink,
            self.redact,
            self.clock,
            Some(leg.rec),
            self.client_h1,
        )
        .await
    }

    async fn produce(
        self: &Arc<Self>,
        flow: Flow,
        status: StatusCode,
        json: bool,
    ) -> http::Response<RelayBody> {
        respond_produced(flow, status, json, Vec::new(), &self.sink, self.clock).await
    }

    /// The `allow-fingerprint` fault: (fault name, effect, why) when the client's certificate
    /// is not on the allow-list.
    fn allow_list_refusal(&self) -> Option<(String, String, String)> {
        let allowed = self.fault_config.allowed_fingerprints();
        if allowed.is_empty() {
            return None;
        }
        let leaf = self.client.with(|leg| {
            leg.chain
                .first()
                .map(|c| (c.sha256.clone(), c.subject.clone()))
        });
        let why = match &leaf {
            Some((sha, _)) if allowed.contains(&sha.as_str()) => return None,
            Some((sha, subject)) => format!("the access manager's allow-list does not contain {subject} (SHA-256 {sha})"),
            None => "the access manager's allow-list requires a client certificate, and the client presented none".into(),
        };
        Some((
            "allow-fingerprint".into(),
            format!("answered 403: {why}"),
            why,
        ))
    }

    fn add_fault(&self, name: String, effect: String) {
        if let Ok(mut faults) = self.faults.lock() {
            if !faults.iter().any(|f| f.name == name) {
                faults.push(crate::facts::FaultEffect { name, effect });
            }
        }
    }

    /// `flow` with `leg`'s facts taken again (after recording a failure on it).
    fn exchange_flow_again(&self, mut flow: Flow, leg: &LegInUse) -> Flow {
        flow.upstream_leg = Some(leg.rec.snapshot());
        flow
    }

    pub(super) fn exchange_flow(&self, index: u32, request: Request, leg: &LegInUse) -> Flow {
        let mut flow = self.flow(RecordKind::Exchange, leg);
        flow.exchange_index = Some(index);
        flow.request = Some(request);
        flow.response = Some(Response::default());
        flow
    }

    /// Record that the client side ended the connection without any exchange.
    pub async fn finish(&self, error: Option<String>) {
        if self.exchanges.load(Ordering::Relaxed) == 0 {
            let leg = self.legs.current().await;
            let mut flow = self.flow(RecordKind::Connection, &leg);
            // A client that completes the handshake and leaves (`openssl s_client`, a TLS
            // health check) ended nothing in error: only a real error is recorded as one.
            flow.error = error;
            self.sink.emit(flow).await;
        }
        self.sink.connection_closed(self.id).await;
    }
}

/// Counts a request as in flight until dropped.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Relay an upstream response to the client: `flow` holds the request and the legs; the response
/// facts, the excerpt of an error body, and the diagnosis header are added here. The record is
/// emitted when the body ends; if the body fails, `upstream`'s facts are taken again then, so the
/// record shows how the upstream leg ended.
pub async fn respond_relayed(
    mut flow: Flow,
    resp: http::Response<Incoming>,
    sink: &Sink,
    redact: bool,
    clock: ConnClock,
    upstream: Option<LegRecorder>,
    client_h1: bool,
) -> http::Response<RelayBody> {
    let (mut parts, mut body) = resp.into_parts();
    let status = parts.status;
    let mut prefix = VecDeque::new();
    let mut excerpt = None;
    if status.is_client_error() || status.is_server_error() {
        let (frames, text) = read_excerpt(&mut body).await;
        prefix = frames;
        excerpt = Some(text);
    }
    flow.response = Some(Response {
        status: status.as_u16(),
        source: ResponseSource::Upstream,
        headers: kept_response(&parts.headers, redact),
        body_excerpt: excerpt,
        removed_headers: Vec::new(),
        at_ms: clock.ms(),
    });
    // The upstream ends its connection after this response: pass that on to an HTTP/1.1
    // client, as the server would have told it directly (HTTP/2 clients get a GOAWAY when the
    // upstream connection ends; see `serve_client`).
    let closing = upstream_closes(&parts.headers) && client_h1;
    let switching_to = super::upgrade::switching_to(status, &parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    if let Some(r) = flow.response.as_mut() {
        r.removed_headers = super::headers::remove_around_the_proxy(&mut parts.headers);
    }
    super::upgrade::mark_switching(switching_to, &mut parts.headers);
    if closing {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(v) = diagnosis_header(&flow) {
        parts.headers.insert(DIAGNOSIS_HEADER, v);
    }
    let body = RelayBody::relayed(prefix, body, flow, sink.clone(), upstream);
    http::Response::from_parts(parts, body)
}

/// A response mtlscope produces itself (a failed upstream leg, a 407, a loop): the diagnosis is
/// the body (JSON when the client accepts it). `headers` are added to the response. The record
/// is emitted at once.
pub async fn respond_produced(
    mut flow: Flow,
    status: StatusCode,
    json: bool,
    headers: Vec<(http::header::HeaderName, HeaderValue)>,
    sink: &Sink,
    clock: ConnClock,
) -> http::Response<RelayBody> {
    flow.response = Some(Response {
        status: status.as_u16(),
        source: ResponseSource::Mtlscope,
        headers: headers
            .iter()
            .map(|(n, v)| crate::facts::Header {
                name: n.to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect(),
        at_ms: clock.ms(),
        ..Response::default()
    });
    flow.findings = crate::diagnose::diagnose(&flow);
    let (body, content_type) = if json {
        (
            crate::render::explain::error_body_json(&flow).to_string(),
            "application/json",
        )
    } else {
        (
            crate::render::explain::error_body_text(&flow),
            "text/plain; charset=utf-8",
        )
    };
    let header = diagnosis_header(&flow);
    sink.emit(flow).await;
    let mut resp = http::Response::new(RelayBody::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (n, v) in headers {
        resp.headers_mut().insert(n, v);
    }
    if let Some(v) = header {
        resp.headers_mut().insert(DIAGNOSIS_HEADER, v);
    }
    resp
}

/// The request facts of a client request.
pub fn request_facts(req: &http::Request<Incoming>, redact: bool, clock: ConnClock) -> Request {
    // HTTP/2 carries the target as :path plus :authority; record the path, as HTTP/1.1 would.
    let uri = if req.version() == Version::HTTP_2 {
        req.uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string())
    } else {
        req.uri().to_string()
    };
    let uri = if redact {
        crate::record::redact::uri(&uri, false)
    } else {
        uri
    };
    Request {
        method: req.method().to_string(),
        uri,
        version: format!("{:?}", req.version()),
        headers: kept_request(req.headers(), redact),
        at_ms: clock.ms(),
        forwarded_at_ms: None,
        body_excerpt: None,
        forwarded_identity: None,
    }
}

/// Whether a response's `Connection` header says the connection ends after it.
fn upstream_closes(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// Whether the client prefers a JSON error body.
pub fn wants_json(req: &http::Request<Incoming>) -> bool {
    accepts_json(req.headers().get(ACCEPT))
}

/// The `Mtlscope-Diagnosis` value for a 4xx/5xx flow with findings.
fn diagnosis_header(flow: &Flow) -> Option<HeaderValue> {
    let status = flow.status()?;
    if status < 400 {
        return None;
    }
    let findings = crate::diagnose::diagnose(flow);
    let value = crate::render::explain::diagnosis_header_value(&findings)?;
    HeaderValue::from_str(&value).ok()
}

async fn read_excerpt(body: &mut Incoming) -> (VecDeque<http_body::Frame<Bytes>>, String) {
    let mut frames = VecDeque::new();
    let mut text = Vec::new();
    let collect = async {
        while text.len() < EXCERPT_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = EXCERPT_BYTES - text.len();
                        text.extend_from_slice(&data[..data.len().min(room)]);
                    }
                    frames.push_back(frame);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "error body ended early");
                    break;
                }
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(EXCERPT_WAIT, collect).await;
    (frames, String::from_utf8_lossy(&text).into_owned())
}

fn accepts_json(accept: Option<&HeaderValue>) -> bool {
    accept
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// Classify a hyper client error, using the I/O (and TLS) error inside it when there is one.
pub(super) fn http_error(e: &hyper::Error) -> Classified {
    match find_io_error(e) {
        Some(io) => classify_io(Stage::AfterHandshake, io),
        None if e.is_incomplete_message() => Classified::new(
            Stage::AfterHandshake,
            FailureKind::Eof,
            "the server closed the connection before sending a response",
        ),
        None => Classified::new(
            Stage::AfterHandshake,
            FailureKind::Http,
            format!("the upstream HTTP exchange failed: {e}"),
        ),
    }
}

/// Serve HTTP/1.1 or HTTP/2 to the client over its TLS stream; the error that ended it, if any.
/// When the upstream ends a leg's connection, or the process stops, the client connection
/// closes gracefully: after the response in flight (HTTP/1.1), with a GOAWAY (HTTP/2).
///
/// A connection idle for `idle` (no byte either way, no request in flight) is closed, and
/// the record of its last exchange or its connection record says so.
pub async fn serve_client<IO>(
    io: IO,
    pair: Arc<Pair>,
    head_timeout: Duration,
    idle: Duration,
) -> Option<String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    // The same head limit on both protocols (h2's default is 16 KiB).
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let served = pair.clone();
    let service = hyper::service::service_fn(move |req| served.clone().handle(req));
    let idle = super::idle::IdleClock::new(idle);
    let io = super::idle::Activity::new(io, idle.clone());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    let mut idled = false;
    let mut next_check = idle.deadline();
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = tokio::time::sleep_until(next_check) => {
                if idle.expired() && pair.in_flight.load(Ordering::Acquire) == 0 {
                    // Idle: close now. A request in flight is `--timeout`'s business.
                    idled = true;
                    break Ok(());
                }
                let soon = tokio::time::Instant::now() + Duration::from_millis(100).min(idle.limit);
                next_check = idle.deadline().max(soon);
            }
            leg = pair.legs.ended(), if !closing => {
                // An idle close of the leg in use is passed on; a leg that ended while a
                // request was on it (that request's own handling decides) or that mtlscope
                // already replaced is not.
                if pair.in_flight.load(Ordering::Acquire) == 0 && pair.legs.is_current(leg).await {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = pair.life.stopping(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = pair.life.ending() => {
                break Err("mtlscope stopped: the grace period ended".into());
            }
        }
    };
    if idled {
        return Some(format!(
            "mtlscope closed the client connection: idle for {} s (--idle-timeout)",
            idle.limit.as_secs()
        ));
    }
    result
        .err()
        .map(|e| format!("client HTTP connection ended: {e}"))
}
