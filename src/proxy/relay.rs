//! The HTTP relay of one connection pair ([`Pair`]): each client request goes to the
//! connection's own upstream connection; each exchange becomes a record.
//!
//! Bodies stream both ways. Only error responses (400–599) are held back, and only for a bounded
//! excerpt, so the diagnosis — and its `Mtlscope-Diagnosis` header — can quote the server's error
//! page before the head goes to the client (see [`super::respond`]).

use super::body::RelayBody;
use super::late_replay::FirstAttempt;
use super::pair::{http_error, Pair};
use super::request_excerpt::Excerpt;
use super::respond::{
    relay_head, respond_produced, respond_relayed, waits_for_excerpt, wants_json,
};
use super::upgrade::UpgradeRequest;
use super::upstream_legs::{LegInUse, NoLeg, NoResponse, Sent};
use crate::capture::tls_error::Classified;
use crate::capture::ConnClock;
use crate::facts::{FailureKind, Flow, Request, Stage};
use crate::io::linger::{LingerSwitch, Lingering};
use crate::record::headers::kept_request;
use http::StatusCode;
use http::Version;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The most a client may send as a request head (larger gets 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;

impl Pair {
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
            return Ok(self.produce(flow, StatusCode::FORBIDDEN, wants_json).await);
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
            super::late_replay::prepare(req, self.replay.is_some(), self.redact, &self.life).await;
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
        // Boxed, and only with a replay engine: its future is large and most runs have none.
        if self.replay.is_some() {
            let replayed = Box::pin(super::late_replay::after_first_attempt(
                &self, kept, index, &request, &leg, first,
            ));
            if let Some(replayed) = replayed.await {
                return Ok(replayed);
            }
        }
        let mut flow = self.exchange_flow(index, request, &leg);
        flow.upstream_retry = retry;
        Ok(match result {
            Ok(resp) => self.relay_response(flow, leg, resp, excerpt).await,
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

    /// Relay the upstream's response. A success with no fault to apply is relayed at once
    /// (no await, so the per-request future stays small); an error response first reads an
    /// excerpt of its body, in a boxed future.
    async fn relay_response(
        self: &Arc<Self>,
        mut flow: Flow,
        leg: LegInUse,
        resp: http::Response<Incoming>,
        request_body: Excerpt,
    ) -> http::Response<RelayBody> {
        let delay = self.fault_config.delay(crate::faults::DelayStep::Response);
        if let Some(d) = delay {
            self.add_fault(
                "delay=response".into(),
                format!("held the response back {} ms", d.as_millis()),
            );
        }
        flow.faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        if delay.is_none() && !waits_for_excerpt(resp.status()) {
            let (parts, body) = resp.into_parts();
            let to = self.relay_to(Some(leg.rec), Some(request_body));
            return relay_head(flow, parts, body, None, to);
        }
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let to = self.relay_to(Some(leg.rec), Some(request_body));
            respond_relayed(flow, resp, to).await
        })
        .await
    }

    async fn produce(
        self: &Arc<Self>,
        flow: Flow,
        status: StatusCode,
        json: bool,
    ) -> http::Response<RelayBody> {
        // Boxed: the rare path should not size every exchange's future.
        Box::pin(respond_produced(
            flow,
            status,
            json,
            Vec::new(),
            &self.sink,
            self.clock,
        ))
        .await
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
        version: req.version().into(),
        headers: kept_request(req.headers(), redact),
        at_ms: clock.ms(),
        forwarded_at_ms: None,
        body_excerpt: None,
        forwarded_identity: None,
    }
}

/// Serve HTTP/1.1 or HTTP/2 to the client over its TLS stream; the error that ended it, if any.
/// When the upstream ends a leg's connection, or the process stops, the client connection
/// closes gracefully: after the response in flight (HTTP/1.1), with a GOAWAY (HTTP/2). A
/// connection whose request mtlscope refused lingers ([`crate::io::linger`]).
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
    let idle = crate::io::idle::IdleClock::new(idle);
    let linger = LingerSwitch::default();
    let io = Lingering::new(
        crate::io::idle::Activity::new(io, idle.clone()),
        linger.clone(),
    );
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
    if let Err(e) = &result {
        // Refused mid-request: the stream (dropped with `conn`) lingers so the refusal is read.
        if refused_mid_request(&**e) {
            linger.on();
        }
    }
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

/// Whether the error that ended a client's HTTP connection means mtlscope refused a request
/// the client may still be sending (hyper answered 431, 400 or 408 before closing).
fn refused_mid_request(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<hyper::Error>()
        .is_some_and(|e| e.is_parse() || e.is_parse_too_large() || e.is_timeout())
}
