//! The HTTP relay of one connection pair: each client request goes to the connection's own
//! upstream connection; each exchange becomes a record.
//!
//! Bodies stream both ways. Only error responses (400–599) are held back, and only for a bounded
//! excerpt, so the diagnosis — and its `Mtlscope-Diagnosis` header — can quote the server's error
//! page before the head goes to the client.

use super::body::RelayBody;
use super::headers::{kept_request, kept_response, strip_hop_by_hop};
use super::late_replay::{AutoReplay, FirstAttempt, UpstreamBody};
use crate::capture::tls_error::{classify_io, find_io_error, Classified};
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FaultEffect, Flow, Mode, RecordKind, Request, Response, ResponseSource};
use crate::record::Sink;
use crate::upstream::{BoxIo, Target};
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
use http::{StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a client may send as a request head (larger gets 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most of an error body kept for the record and the diagnosis.
const EXCERPT_BYTES: usize = 4096;
/// How long to wait for that excerpt before relaying the head anyway.
const EXCERPT_WAIT: Duration = Duration::from_secs(2);

/// The header carrying the finding ids on diagnosed error responses.
pub const DIAGNOSIS_HEADER: &str = "mtlscope-diagnosis";

/// The upstream HTTP connection of a pair.
pub enum UpstreamSender {
    /// HTTP/1.1: one request at a time.
    H1(tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<UpstreamBody>>),
    /// HTTP/2: multiplexed.
    H2(hyper::client::conn::http2::SendRequest<UpstreamBody>),
}

impl UpstreamSender {
    /// Start HTTP on an established upstream TLS stream (h2 when ALPN chose it) and spawn the
    /// connection driver.
    pub async fn handshake(io: BoxIo, alpn: Option<&[u8]>) -> Result<UpstreamSender, hyper::Error> {
        let io = TokioIo::new(io);
        if alpn == Some(b"h2") {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            Ok(UpstreamSender::H2(sender))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h1 connection ended");
                }
            });
            Ok(UpstreamSender::H1(tokio::sync::Mutex::new(sender)))
        }
    }

    pub(super) async fn send(
        &self,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, hyper::Error> {
        match self {
            UpstreamSender::H1(s) => {
                let fut = {
                    let mut s = s.lock().await;
                    s.ready().await?;
                    s.send_request(req)
                };
                fut.await
            }
            UpstreamSender::H2(s) => {
                let mut s = s.clone();
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }

    /// Whether the upstream closed the connection.
    pub(super) fn is_closed(&self) -> bool {
        match self {
            UpstreamSender::H1(s) => s.try_lock().is_ok_and(|s| s.is_closed()),
            UpstreamSender::H2(s) => s.is_closed(),
        }
    }

    pub(super) fn is_h2(&self) -> bool {
        matches!(self, UpstreamSender::H2(_))
    }
}

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
    /// The upstream leg's facts (present even when it failed).
    pub upstream: LegRecorder,
    /// The upstream HTTP connection; None when the upstream leg failed.
    pub sender: Option<UpstreamSender>,
    /// Faults that acted on this pair.
    pub faults: Mutex<Vec<FaultEffect>>,
    /// Exchanges so far.
    pub exchanges: AtomicU32,
    /// Where finished flows go.
    pub sink: Sink,
    /// Redact credential headers in records.
    pub redact: bool,
    /// The listener's `--fault`s that act per exchange (allow-list, response delay).
    pub fault_config: Arc<crate::faults::Faults>,
    /// `--upstream-engine auto`: how a request refused for a late certificate request is
    /// replayed over OpenSSL.
    pub replay: Option<AutoReplay>,
}

impl Pair {
    /// The pair's facts as they stand, as a record of `kind`.
    pub fn flow(&self, kind: RecordKind) -> Flow {
        let mut flow = Flow::new(self.mode, self.id, self.clock.started_at());
        flow.kind = kind;
        flow.client_addr = Some(self.client_addr.clone());
        flow.upstream = Some(self.target.authority());
        flow.client_leg = Some(self.client.snapshot());
        flow.upstream_leg = Some(self.upstream.snapshot());
        flow.faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        flow
    }

    /// Relay one request; never fails (failures become diagnosed responses).
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<RelayBody>, std::convert::Infallible> {
        let index = self.exchanges.fetch_add(1, Ordering::Relaxed);
        // Per-exchange times live in the exchange, not in the legs' events: a leg's events are
        // copied into every record of its connection and must not grow with each request.
        let request = request_facts(&req, self.redact, self.clock);
        let wants_json = wants_json(&req);

        if let Some(refusal) = self.allow_list_refusal() {
            self.add_fault(refusal.0, refusal.1);
            let flow = self.exchange_flow(index, request, Response::default());
            let mut flow = flow;
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
        let (mut request, req) =
            match super::late_replay::on_switched_leg(&self, index, request, req, wants_json).await
            {
                Ok(resp) => return Ok(resp),
                Err(back) => back,
            };
        let Some(sender) = &self.sender else {
            return Ok(self
                .produce(index, request, StatusCode::BAD_GATEWAY, wants_json)
                .await);
        };
        let (req, kept) = super::late_replay::prepare(req, self.replay.as_ref()).await;
        let upstream_req = match self.upstream_request(req, sender.is_h2()) {
            Ok(r) => r,
            Err(e) => {
                self.upstream.fail(&Classified::new(
                    "http",
                    "bad_request",
                    format!("cannot form the upstream request: {e}"),
                ));
                return Ok(self
                    .produce(index, request, StatusCode::BAD_GATEWAY, wants_json)
                    .await);
            }
        };
        request.forwarded_at_ms = Some(self.clock.ms());
        self.upstream.note_request();
        let resp = match sender.send(upstream_req).await {
            Ok(resp) => Some(resp),
            Err(e) => {
                self.upstream.fail(&http_error(&e));
                None
            }
        };
        let first = resp
            .as_ref()
            .map_or(FirstAttempt::Failed, FirstAttempt::Answered);
        if let Some(replayed) =
            super::late_replay::after_first_attempt(&self, kept, index, &request, first).await
        {
            return Ok(replayed);
        }
        match resp {
            Some(resp) => Ok(self.relay_response(index, request, resp).await),
            None => Ok(self
                .produce(index, request, StatusCode::BAD_GATEWAY, wants_json)
                .await),
        }
    }

    /// The request as it goes upstream: origin-form (h1) or absolute (h2), `Host` set to the
    /// upstream, hop-by-hop headers removed.
    pub(super) fn upstream_request(
        &self,
        req: http::Request<UpstreamBody>,
        h2: bool,
    ) -> Result<http::Request<UpstreamBody>, http::Error> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        strip_hop_by_hop(&mut parts.headers);
        let authority = self.target.authority();
        if h2 {
            parts.uri = Uri::builder()
                .scheme("https")
                .authority(authority.as_str())
                .path_and_query(path)
                .build()?;
            parts.version = Version::HTTP_2;
            parts.headers.remove(HOST);
        } else {
            parts.uri = Uri::builder().path_and_query(path).build()?;
            parts.version = Version::HTTP_11;
            parts
                .headers
                .insert(HOST, HeaderValue::from_str(&authority)?);
        }
        Ok(http::Request::from_parts(parts, body))
    }

    async fn relay_response(
        self: &Arc<Self>,
        index: u32,
        request: Request,
        resp: http::Response<Incoming>,
    ) -> http::Response<RelayBody> {
        if let Some(d) = self.fault_config.delay(crate::faults::DelayStep::Response) {
            self.add_fault(
                "delay=response".into(),
                format!("held the response back {} ms", d.as_millis()),
            );
            tokio::time::sleep(d).await;
        }
        let flow = self.exchange_flow(index, request, Response::default());
        respond_relayed(
            flow,
            resp,
            &self.sink,
            self.redact,
            self.clock,
            Some(self.upstream.clone()),
        )
        .await
    }

    async fn produce(
        self: &Arc<Self>,
        index: u32,
        request: Request,
        status: StatusCode,
        json: bool,
    ) -> http::Response<RelayBody> {
        let flow = self.exchange_flow(index, request, Response::default());
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

    pub(super) fn exchange_flow(&self, index: u32, request: Request, response: Response) -> Flow {
        let mut flow = self.flow(RecordKind::Exchange);
        flow.exchange_index = Some(index);
        flow.request = Some(request);
        flow.response = Some(response);
        flow
    }

    /// Record that the client side ended the connection without any exchange.
    pub async fn finish(&self, error: Option<String>) {
        if self.exchanges.load(Ordering::Relaxed) == 0 {
            let mut flow = self.flow(RecordKind::Connection);
            flow.error = error.or_else(|| {
                Some("the client closed the connection without sending a request".into())
            });
            self.sink.emit(flow).await;
        }
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
        at_ms: clock.ms(),
    });
    strip_hop_by_hop(&mut parts.headers);
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
    Request {
        method: req.method().to_string(),
        uri,
        version: format!("{:?}", req.version()),
        headers: kept_request(req.headers(), redact),
        at_ms: clock.ms(),
        forwarded_at_ms: None,
    }
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
        Some(io) => classify_io("after_handshake", io),
        None if e.is_incomplete_message() => Classified::new(
            "after_handshake",
            "eof",
            "the server closed the connection before sending a response",
        ),
        None => Classified::new(
            "after_handshake",
            "http",
            format!("the upstream HTTP exchange failed: {e}"),
        ),
    }
}

/// Serve HTTP/1.1 or HTTP/2 to the client over its TLS stream; the error that ended it, if any.
pub async fn serve_client<IO>(io: IO, pair: Arc<Pair>) -> Option<String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    // The same head limit on both protocols (h2's default is 16 KiB).
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let service = hyper::service::service_fn(move |req| pair.clone().handle(req));
    builder
        .serve_connection(TokioIo::new(io), service)
        .await
        .err()
        .map(|e| format!("client HTTP connection ended: {e}"))
}
