//! `--upstream-engine auto`: a request the server asked a certificate for late, which the rustls
//! leg could not answer, is replayed once over a new OpenSSL upstream leg.
//!
//! Only a request that is safe to send twice is kept for a replay: an idempotent method
//! (RFC 9110 §9.2.2) whose body, if any, fits [`MAX_REPLAY_BODY`] and arrives within
//! [`BODY_WAIT`]. The decision to replay is the diagnosis's ([`unanswered_late_request`]), read
//! from the facts of the first attempt: a renegotiation rustls refused, or a 403 (Apache) / 500
//! (HTTP.sys) the rules attribute to missing post-handshake auth. The exchange's record carries
//! the replay's leg and response, and the first attempt in `replayed`. The pair's later legs use
//! OpenSSL too (the server would ask late again on a rustls leg).

use super::body::RelayBody;
use super::pair::{http_error, Pair};
use super::request_body::TeeBody;
use super::request_excerpt::Excerpt;
use super::respond::{respond_produced, respond_relayed};
use super::upstream_legs::{LegInUse, NoResponse, UpstreamBody};
use crate::diagnose::unanswered_late_request;
use crate::facts::EventKind;
use crate::facts::{Replay, Request, Response, ResponseSource};
use crate::upstream::Engine;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

/// The largest request body kept for a replay (Apache's renegotiation buffer is 128 KiB).
pub const MAX_REPLAY_BODY: usize = 64 * 1024;
/// How long a kept body may take to arrive from the client.
pub const BODY_WAIT: Duration = Duration::from_secs(10);

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

/// Turn the client's request into the upstream request's body, with the excerpt the record
/// gets, keeping a copy when `keep` (the pair replays) and the request is safe to resend.
pub async fn prepare(
    req: http::Request<Incoming>,
    keep: bool,
    redact: bool,
    life: &crate::lifecycle::Lifecycle,
) -> (http::Request<UpstreamBody>, Option<Kept>, Excerpt) {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let keepable = keep
        && req.method().is_idempotent()
        && req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|n| n <= MAX_REPLAY_BODY as u64);
    let (parts, body) = req.into_parts();
    if !keepable {
        let (body, excerpt) = TeeBody::new(body, content_type.as_deref(), redact, life);
        let req = http::Request::from_parts(parts, UpstreamBody::Streaming(body));
        return (req, None, excerpt);
    }
    let excerpt = Excerpt::new(content_type.as_deref(), redact);
    let read = tokio::time::timeout(
        BODY_WAIT,
        http_body_util::Limited::new(body, MAX_REPLAY_BODY).collect(),
    );
    // The body whole, or why not (the body's own error; none when it took too long).
    let body = match read.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(e.downcast::<hyper::Error>().ok().map(|e| *e)),
        Err(_) => Err(None),
    };
    if let Ok(body) = &body {
        excerpt.copy(body);
    }
    // Read whole or given up on: either way the client's body is over for the record.
    excerpt.end();
    let body = match body {
        Ok(body) => body,
        Err(broken) => {
            let req = http::Request::from_parts(parts, UpstreamBody::Broken(broken));
            return (req, None, excerpt);
        }
    };
    let kept = Kept {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let body = (!body.is_empty()).then_some(body);
    let req = http::Request::from_parts(parts, UpstreamBody::Buffered(body));
    (req, Some(kept), excerpt)
}

/// What the first attempt ended with.
pub enum FirstAttempt<'a> {
    /// The server answered.
    Answered(&'a http::Response<Incoming>),
    /// The upstream leg failed before an answer.
    Failed,
}

/// After the first attempt on `leg`: if the diagnosis says the server asked late and the rustls
/// leg could not answer, replay the kept request over a new OpenSSL leg and return the client's
/// response.
pub async fn after_first_attempt(
    pair: &Arc<Pair>,
    kept: Option<Kept>,
    index: u32,
    request: &Request,
    leg: &LegInUse,
    first: FirstAttempt<'_>,
) -> Option<http::Response<RelayBody>> {
    let engine = pair.replay.as_ref()?;
    let kept = kept?;
    let first_status = match &first {
        // A success needs no replay, whatever happened on the way.
        FirstAttempt::Answered(resp) if resp.status().as_u16() < 400 => return None,
        FirstAttempt::Answered(resp) => Some(resp.status()),
        FirstAttempt::Failed => None,
    };
    let mut probe = pair.exchange_flow(index, request.clone(), leg);
    probe.response = match &first {
        FirstAttempt::Answered(resp) => Some(Response {
            status: resp.status().as_u16(),
            source: ResponseSource::Upstream,
            headers: crate::record::headers::kept_response(resp.headers(), pair.redact),
            body_excerpt: None,
            removed_headers: Vec::new(),
            at_ms: pair.clock.ms(),
        }),
        FirstAttempt::Failed => None,
    };
    let reason = unanswered_late_request(&probe)?;
    let replay = Replay {
        reason,
        first_leg: probe
            .upstream_leg
            .take()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default(),
        first_status: first_status.map(|s| s.as_u16()),
        at_ms: pair.clock.ms(),
    };
    let json = kept
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let new_leg = pair
        .legs
        .switch_engine(Engine::Openssl(engine.clone()))
        .await;
    new_leg.rec.event(
        EventKind::Replay,
        Some("the request is replayed over a new OpenSSL leg".into()),
    );
    let mut req = http::Request::new(UpstreamBody::Buffered(
        (!kept.body.is_empty()).then_some(kept.body),
    ));
    *req.method_mut() = kept.method;
    *req.uri_mut() = kept.uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = kept.headers;
    let sent = pair
        .legs
        .send_on(&new_leg, req, |r, h2| pair.upstream_request(r, h2))
        .await;
    let mut request = request.clone();
    request.forwarded_at_ms = Some(replay.at_ms);
    let mut flow = pair.exchange_flow(index, request, &new_leg);
    flow.replayed = Some(Box::new(replay));
    Some(match sent {
        Ok(resp) => {
            respond_relayed(flow, resp, pair.relay_to(Some(new_leg.rec.clone()), None)).await
        }
        Err(e) => {
            if let NoResponse::Http(e) = &e {
                new_leg.rec.fail(&http_error(e));
            }
            flow.upstream_leg = Some(new_leg.rec.snapshot());
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
