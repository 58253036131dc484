//! The response the client gets for one exchange: the upstream's, relayed with a bounded excerpt
//! of an error body read ahead, or one mtlscope produces itself (a failed upstream leg, a 407, a
//! refusal), whose body is the diagnosis.
//!
//! Either way an error response is diagnosed here, once ([`Diagnosed`]): its
//! `Mtlscope-Diagnosis` header, a produced body and the record all carry those findings.

use super::body::RelayBody;
use super::headers::strip_hop_by_hop;
use super::request_excerpt::Excerpt;
use crate::capture::{ConnClock, LegRecorder};
use crate::diagnose::Diagnosed;
use crate::facts::{Flow, Response, ResponseSource};
use crate::record::headers::kept_response;
use crate::record::{Emitted, Sink};
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONNECTION, CONTENT_TYPE};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::time::Duration;

/// The most of an error body kept for the record and the diagnosis.
const EXCERPT_BYTES: usize = 4096;
/// How long to wait for that excerpt before relaying the head anyway.
const EXCERPT_WAIT: Duration = Duration::from_secs(2);

/// The header carrying the finding ids on diagnosed error responses.
pub const DIAGNOSIS_HEADER: &str = "mtlscope-diagnosis";

/// Whether the client prefers a JSON error body.
pub fn wants_json(req: &http::Request<Incoming>) -> bool {
    accepts_json(req.headers().get(ACCEPT))
}

/// Whether relaying a response of `status` first reads an excerpt of its body: error responses
/// do, so the diagnosis can quote the server's error page.
pub fn waits_for_excerpt(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

/// What the relay of one response needs besides the response: where its record goes and how the
/// connection's facts are read.
pub struct RelayTo<'a> {
    /// The recording.
    pub sink: &'a Sink,
    /// Whether credentials in the recorded headers are redacted.
    pub redact: bool,
    /// The connection's clock.
    pub clock: ConnClock,
    /// The upstream leg, whose facts are taken again if the body fails.
    pub upstream: Option<LegRecorder>,
    /// Whether the client speaks HTTP/1.1 (it is told when the upstream closes).
    pub client_h1: bool,
    /// The excerpt of the client's request body, whose end the record waits for; `None` when
    /// the body was read whole before it was sent.
    pub request_body: Option<Excerpt>,
}

/// Relay an upstream response to the client: `flow` holds the request and the legs; the response
/// facts, the excerpt of an error body, and the diagnosis header are added here. The record is
/// emitted when the body ends; if the body fails, `upstream`'s facts are taken again then, so the
/// record shows how the upstream leg ended.
pub async fn respond_relayed(
    flow: Flow,
    resp: http::Response<Incoming>,
    to: RelayTo<'_>,
) -> http::Response<RelayBody> {
    let (parts, mut body) = resp.into_parts();
    let excerpt = if waits_for_excerpt(parts.status) {
        Some(read_excerpt(&mut body).await)
    } else {
        None
    };
    relay_head(flow, parts, body, excerpt, to)
}

/// [`respond_relayed`] once the excerpt of an error body, if any, is read. A success never waits:
/// the relay calls this directly, so its per-request future stays small.
pub fn relay_head(
    mut flow: Flow,
    mut parts: http::response::Parts,
    body: Incoming,
    excerpt: Option<(VecDeque<http_body::Frame<Bytes>>, String)>,
    to: RelayTo<'_>,
) -> http::Response<RelayBody> {
    let status = parts.status;
    let (prefix, excerpt) = match excerpt {
        Some((frames, text)) => (frames, Some(text)),
        None => (VecDeque::new(), None),
    };
    flow.response = Some(Response {
        status: status.as_u16(),
        source: ResponseSource::Upstream,
        headers: kept_response(&parts.headers, to.redact),
        body_excerpt: excerpt,
        removed_headers: Vec::new(),
        at_ms: to.clock.ms(),
    });
    // The upstream ends its connection after this response: pass that on to an HTTP/1.1
    // client, as the server would have told it directly (HTTP/2 clients get a GOAWAY when the
    // upstream connection ends; see `serve_client`).
    let closing = upstream_closes(&parts.headers) && to.client_h1;
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
    // An error response is diagnosed now, once, for its header; the record carries the same
    // findings. A success is diagnosed when its body ends.
    let record = if waits_for_excerpt(status) {
        let diagnosed = Diagnosed::new(flow);
        if let Some(v) = diagnosis_header(&diagnosed) {
            parts.headers.insert(DIAGNOSIS_HEADER, v);
        }
        Emitted::Diagnosed(diagnosed)
    } else {
        Emitted::Facts(flow)
    };
    let body = RelayBody::relayed(
        prefix,
        body,
        record,
        to.sink.clone(),
        to.upstream,
        to.request_body,
    );
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
    // Diagnosed once: the body, the header and the record show the same findings.
    let flow = Diagnosed::new(flow);
    let (body, content_type) = if json {
        (
            crate::render::explain::error_body_json(flow.flow()).to_string(),
            "application/json",
        )
    } else {
        (
            crate::render::explain::error_body_text(flow.flow()),
            "text/plain; charset=utf-8",
        )
    };
    let header = diagnosis_header(&flow);
    sink.emit_diagnosed(flow).await;
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

/// Whether a response's `Connection` header says the connection ends after it.
fn upstream_closes(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// The `Mtlscope-Diagnosis` value for a 4xx/5xx flow with findings.
fn diagnosis_header(flow: &Diagnosed) -> Option<HeaderValue> {
    let status = flow.flow().status()?;
    if status < 400 {
        return None;
    }
    let value = crate::render::explain::diagnosis_header_value(flow.findings())?;
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
