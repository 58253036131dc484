//! `--upstream-engine auto`: a request the server asked a certificate for late, which the rustls
//! leg could not answer, is replayed once over a new OpenSSL upstream leg.
//!
//! Only a request that is safe to send twice is kept for a replay: an idempotent method
//! (RFC 9110 §9.2.2) whose body, if any, fits [`MAX_REPLAY_BODY`] and arrives within
//! [`BODY_WAIT`]. The decision to replay is the diagnosis's ([`unanswered_late_request`]), read
//! from the facts of the first attempt: a renegotiation rustls refused, or a 403 (Apache) / 500
//! (HTTP.sys) the rules attribute to missing post-handshake auth. The exchange's record carries
//! the replay's leg and response, and the first attempt in `replayed`. The pair's later requests
//! go to the OpenSSL leg while it stays open.

use super::body::RelayBody;
use super::relay::{respond_produced, respond_relayed, Pair, UpstreamSender};
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::LegRecorder;
use crate::diagnose::unanswered_late_request;
use crate::facts::{Replay, Request, Response, ResponseSource};
use crate::upstream::OpensslEngine;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The largest request body kept for a replay (Apache's renegotiation buffer is 128 KiB).
pub const MAX_REPLAY_BODY: usize = 64 * 1024;
/// How long a kept body may take to arrive from the client.
pub const BODY_WAIT: Duration = Duration::from_secs(10);

/// A request body on its way upstream: streamed from the client, or held for a replay.
pub enum UpstreamBody {
    /// Streamed as it arrives.
    Streaming(Incoming),
    /// Read whole; taken on first poll.
    Buffered(Option<Bytes>),
    /// The client's body failed while it was being read for keeping.
    Broken(Option<hyper::Error>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Streaming(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::Buffered(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Broken(e) => Poll::Ready(e.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Streaming(b) => b.is_end_stream(),
            UpstreamBody::Buffered(b) => b.is_none(),
            UpstreamBody::Broken(e) => e.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Streaming(b) => b.size_hint(),
            UpstreamBody::Buffered(b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpstreamBody::Broken(_) => SizeHint::default(),
        }
    }
}

/// A request kept so it can be sent again.
pub struct Kept {
    /// The client's method.
    method: Method,
    /// The client's request target.
    uri: Uri,
    /// The client's headers (hop-by-hop ones are removed when it is sent).
    headers: HeaderMap,
    /// The whole body.
    body: Bytes,
}

/// The replay side of a connection pair under `--upstream-engine auto`.
pub struct AutoReplay {
    /// The engine of the replay leg.
    engine: OpensslEngine,
    /// The identity policy of the pair's upstream.
    identity: IdentityPolicy,
    /// After a successful replay, the OpenSSL leg the pair's later requests go to: the server
    /// has its certificate there, and would ask again on a new rustls leg.
    switched: std::sync::Mutex<Option<Arc<Switched>>>,
}

/// An OpenSSL upstream leg a pair switched to.
struct Switched {
    /// Its HTTP connection.
    sender: UpstreamSender,
    /// Its facts.
    rec: LegRecorder,
}

impl AutoReplay {
    /// Replays over `engine`, presenting by `identity`.
    pub fn new(engine: OpensslEngine, identity: IdentityPolicy) -> AutoReplay {
        AutoReplay {
            engine,
            identity,
            switched: std::sync::Mutex::new(None),
        }
    }

    /// The leg switched to, while it is open.
    fn switched(&self) -> Option<Arc<Switched>> {
        let mut slot = self.switched.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|s| s.sender.is_closed()) {
            *slot = None;
        }
        slot.clone()
    }

    fn switch_to(&self, sw: Switched) {
        *self.switched.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sw));
    }
}

/// After a replay, send the pair's request over the OpenSSL leg it switched to; gives the
/// request back when there is no such leg (any more).
pub async fn on_switched_leg(
    pair: &Arc<Pair>,
    index: u32,
    mut request: Request,
    req: http::Request<Incoming>,
    json: bool,
) -> Result<http::Response<RelayBody>, (Request, http::Request<Incoming>)> {
    let Some(sw) = pair.replay.as_ref().and_then(AutoReplay::switched) else {
        return Err((request, req));
    };
    let upstream_req = pair.upstream_request(req.map(UpstreamBody::Streaming), sw.sender.is_h2());
    request.forwarded_at_ms = Some(pair.clock.ms());
    let sent = match upstream_req {
        Ok(r) => {
            sw.rec.note_request();
            sw.sender
                .send(r)
                .await
                .map_err(|e| super::relay::http_error(&e))
        }
        Err(e) => Err(crate::capture::tls_error::Classified::new(
            "http",
            "bad_request",
            format!("cannot form the upstream request: {e}"),
        )),
    };
    let mut flow = pair.exchange_flow(index, request, Response::default());
    Ok(match sent {
        Ok(resp) => {
            flow.upstream_leg = Some(sw.rec.snapshot());
            respond_relayed(
                flow,
                resp,
                &pair.sink,
                pair.redact,
                pair.clock,
                Some(sw.rec.clone()),
            )
            .await
        }
        Err(c) => {
            sw.rec.fail(&c);
            flow.upstream_leg = Some(sw.rec.snapshot());
            respond_produced(
                flow,
                StatusCode::BAD_GATEWAY,
                json,
                Vec::new(),
                &pair.sink,
                pair.clock,
            )
            .await
        }
    })
}

/// Turn the client's request into the upstream request's body type, keeping a copy when the
/// pair replays and the request is safe to resend.
pub async fn prepare(
    req: http::Request<Incoming>,
    auto: Option<&AutoReplay>,
) -> (http::Request<UpstreamBody>, Option<Kept>) {
    let keepable = auto.is_some()
        && req.method().is_idempotent()
        && req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|n| n <= MAX_REPLAY_BODY as u64);
    if !keepable {
        return (req.map(UpstreamBody::Streaming), None);
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        BODY_WAIT,
        http_body_util::Limited::new(body, MAX_REPLAY_BODY).collect(),
    );
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            let broken = e.downcast::<hyper::Error>().ok().map(|e| *e);
            return (
                http::Request::from_parts(parts, UpstreamBody::Broken(broken)),
                None,
            );
        }
        Err(_) => {
            return (
                http::Request::from_parts(parts, UpstreamBody::Broken(None)),
                None,
            )
        }
    };
    let kept = Kept {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let body = (!body.is_empty()).then_some(body);
    (
        http::Request::from_parts(parts, UpstreamBody::Buffered(body)),
        Some(kept),
    )
}

/// What the first attempt ended with.
pub enum FirstAttempt<'a> {
    /// The server answered.
    Answered(&'a http::Response<Incoming>),
    /// The upstream leg failed before an answer.
    Failed,
}

/// After the first attempt: if the diagnosis says the server asked late and the rustls leg could
/// not answer, replay the kept request over a new OpenSSL leg and return the client's response.
pub async fn after_first_attempt(
    pair: &Arc<Pair>,
    kept: Option<Kept>,
    index: u32,
    request: &Request,
    first: FirstAttempt<'_>,
) -> Option<http::Response<RelayBody>> {
    let auto = pair.replay.as_ref()?;
    let kept = kept?;
    let first_status = match &first {
        // A success needs no replay, whatever happened on the way.
        FirstAttempt::Answered(resp) if resp.status().as_u16() < 400 => return None,
        FirstAttempt::Answered(resp) => Some(resp.status()),
        FirstAttempt::Failed => None,
    };
    let mut probe = pair.exchange_flow(index, request.clone(), Response::default());
    probe.response = match &first {
        FirstAttempt::Answered(resp) => Some(Response {
            status: resp.status().as_u16(),
            source: ResponseSource::Upstream,
            headers: super::headers::kept_response(resp.headers(), pair.redact),
            body_excerpt: None,
            at_ms: pair.clock.ms(),
        }),
        FirstAttempt::Failed => None,
    };
    let reason = unanswered_late_request(&probe)?;
    let replay = Replay {
        reason,
        first_leg: probe.upstream_leg.take().unwrap_or_default(),
        first_status: first_status.map(|s| s.as_u16()),
        at_ms: pair.clock.ms(),
    };
    let json = kept
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let rec = LegRecorder::new(pair.clock);
    let mut request = request.clone();
    let outcome = match send_again(pair, auto, kept, &rec).await {
        Some((resp, sender)) => {
            auto.switch_to(Switched {
                sender,
                rec: rec.clone(),
            });
            Some(resp)
        }
        None => None,
    };
    request.forwarded_at_ms = Some(replay.at_ms);
    let mut flow = pair.exchange_flow(index, request, Response::default());
    flow.upstream_leg = Some(rec.snapshot());
    flow.replayed = Some(replay);
    Some(match outcome {
        Some(resp) => {
            respond_relayed(flow, resp, &pair.sink, pair.redact, pair.clock, Some(rec)).await
        }
        None => {
            flow.upstream_leg = Some(rec.snapshot());
            respond_produced(
                flow,
                StatusCode::BAD_GATEWAY,
                json,
                Vec::new(),
                &pair.sink,
                pair.clock,
            )
            .await
        }
    })
}

/// Open the OpenSSL leg and send the kept request over it; the response and the leg's HTTP
/// connection, or None when the leg or the exchange failed (recorded on `rec`).
async fn send_again(
    pair: &Arc<Pair>,
    auto: &AutoReplay,
    kept: Kept,
    rec: &LegRecorder,
) -> Option<(http::Response<Incoming>, UpstreamSender)> {
    rec.event(
        "replay",
        Some("the request is replayed over a new OpenSSL leg".into()),
    );
    let conn = auto
        .engine
        .connect(&pair.target, &auto.identity, rec)
        .await
        .ok()?;
    let sender = match UpstreamSender::handshake(conn.io, conn.alpn.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            rec.fail(&crate::capture::tls_error::Classified::new(
                "http",
                "http",
                format!("HTTP handshake with the upstream failed: {e}"),
            ));
            return None;
        }
    };
    let mut req = http::Request::new(UpstreamBody::Buffered(
        (!kept.body.is_empty()).then_some(kept.body),
    ));
    *req.method_mut() = kept.method;
    *req.uri_mut() = kept.uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = kept.headers;
    let req = match pair.upstream_request(req, sender.is_h2()) {
        Ok(r) => r,
        Err(e) => {
            rec.fail(&crate::capture::tls_error::Classified::new(
                "http",
                "bad_request",
                format!("cannot form the upstream request: {e}"),
            ));
            return None;
        }
    };
    rec.note_request();
    match sender.send(req).await {
        Ok(resp) => Some((resp, sender)),
        Err(e) => {
            rec.fail(&super::relay::http_error(&e));
            None
        }
    }
}
