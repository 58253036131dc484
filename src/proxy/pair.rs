//! One connection pair — a client connection and its own upstream legs — as the relay and the
//! late-request replay share it: its state, the records it makes of its facts, and the request
//! as it goes upstream. What is done with a request is the relay's (`relay.rs`), what is done
//! with a refused one under `--upstream-engine auto` is `late_replay.rs`'s.

use super::headers::{asks_for_trailers, strip_hop_by_hop};
use super::upstream_legs::{LegInUse, UpstreamBody, UpstreamLegs};
use crate::capture::tls_error::{classify_io, find_io_error, Classified};
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FailureKind, FaultEffect, Flow, Mode, RecordKind, Request, Response, Stage};
use crate::lifecycle::Lifecycle;
use crate::record::Sink;
use crate::upstream::{OpensslEngine, Target};
use http::header::{HeaderValue, HOST, TE};
use http::{Uri, Version};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

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
    /// `target`'s `host:port`, formed once: every record and every upstream request names it.
    pub authority: String,
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
    /// `--upstream-engine auto`: the engine a request refused for a late certificate request
    /// is replayed over (see `late_replay`).
    pub replay: Option<OpensslEngine>,
}

impl Pair {
    /// The pair's facts as they stand, with upstream leg `leg`, as a record of `kind`.
    pub fn flow(&self, kind: RecordKind, leg: &LegInUse) -> Flow {
        let mut flow = Flow::new(self.mode, self.id, self.clock.started_at());
        flow.kind = kind;
        flow.client_addr = Some(self.client_addr.clone());
        flow.upstream = Some(self.authority.clone());
        flow.client_leg = Some(self.client.snapshot());
        flow.upstream_leg = Some(leg.rec.snapshot());
        flow.upstream_leg_index = Some(leg.index);
        flow.upstream_connection = leg.pooled;
        flow.faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        flow
    }

    /// Where a relayed response of this pair is recorded, its upstream leg `upstream`, the
    /// record waiting for the end of the client's body behind `request_body`.
    pub(super) fn relay_to(
        &self,
        upstream: Option<LegRecorder>,
        request_body: Option<super::request_excerpt::Excerpt>,
    ) -> super::respond::RelayTo<'_> {
        super::respond::RelayTo {
            sink: &self.sink,
            redact: self.redact,
            clock: self.clock,
            upstream,
            client_h1: self.client_h1,
            request_body,
        }
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
        let authority = self.authority.as_str();
        if h2 {
            match Uri::builder()
                .scheme("https")
                .authority(authority)
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
            if let Ok(host) = HeaderValue::from_str(authority) {
                parts.headers.insert(HOST, host);
            }
        }
        http::Request::from_parts(parts, body)
    }

    /// The `allow-fingerprint` fault: (fault name, effect, why) when the client's certificate
    /// is not on the allow-list.
    pub(super) fn allow_list_refusal(&self) -> Option<(String, String, String)> {
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

    pub(super) fn add_fault(&self, name: String, effect: String) {
        if let Ok(mut faults) = self.faults.lock() {
            if !faults.iter().any(|f| f.name == name) {
                faults.push(crate::facts::FaultEffect { name, effect });
            }
        }
    }

    /// `flow` with `leg`'s facts taken again (after recording a failure on it).
    pub(super) fn exchange_flow_again(&self, mut flow: Flow, leg: &LegInUse) -> Flow {
        flow.upstream_leg = Some(leg.rec.snapshot());
        flow
    }

    /// A record of exchange `index` on this pair: `request`, and a response still to come.
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

/// Classify a hyper client error, using the I/O (and TLS) error inside it when there is one.
pub(super) fn http_error(e: &hyper::Error) -> Classified {
    match find_io_error(e) {
        Some(io) => classify_io(Stage::AfterHandshake, io),
        None if super::upstream_legs::asks_for_http11(e) => Classified::new(
            Stage::AfterHandshake,
            FailureKind::Http11Required,
            "the server reset the request with HTTP_1_1_REQUIRED: it answers it only over HTTP/1.1",
        ),
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
