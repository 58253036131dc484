//! The HTTP relay of one connection pair: each client request goes to the connection's own
//! upstream connection; each exchange becomes a record.
//!
//! Bodies stream both ways. Only error responses (400–599) are held back, and only for a bounded
//! excerpt, so the diagnosis — and its `Mtlscope-Diagnosis` header — can quote the server's error
//! page before the head goes to the client (see [`super::respond`]).

use super::body::RelayBody;
use super::headers::{asks_for_trailers, strip_hop_by_hop};
use super::late_replay::{AutoReplay, FirstAttempt};
use super::respond::{respond_produced, respond_relayed, wants_json};
use super::upgrade::UpgradeRequest;
use super::upstream_legs::{LegInUse, NoLeg, NoResponse, Sent, UpstreamBody, UpstreamLegs};
use crate::capture::tls_error::{classify_io, find_io_error, Classified};
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FailureKind, Stage};
use crate::facts::{FaultEffect, Flow, Mode, RecordKind, Request, Response};
use crate::lifecycle::Lifecycle;
use crate::record::headers::kept_request;
use crate::record::Sink;
use crate::upstream::Target;
use http::header::{HeaderValue, HOST, TE};
use http::{StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most a client may send as a request head (larger gets 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;

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
