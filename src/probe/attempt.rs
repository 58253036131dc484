//! One attempt of the probe: a connection through the ordinary engine with one identity (or
//! none), one version offered alone, then `GET path` over HTTP/1.1; every failure is recorded
//! on the leg.

use super::{ProbePlan, EXCERPT_BYTES};
use crate::capture::upstream_auth::IdentityPolicy;
use crate::capture::{ConnClock, LegRecorder};
use crate::facts::{FailureKind, Stage};
use crate::facts::{Flow, Mode, RecordKind, Request, Response, ResponseSource};
use crate::pki::load::Identity;
use crate::record::headers::{kept_request, kept_response};
use crate::upstream::{Connected, Engine};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// One connection: handshake with `identity` on offer, then `GET path`.
pub(crate) async fn attempt(
    plan: &ProbePlan,
    engine: &Engine,
    identity: Option<&Arc<Identity>>,
    path: &str,
    id: u64,
) -> Flow {
    let clock = ConnClock::start();
    let rec = LegRecorder::new(clock);
    let policy = identity.map_or(IdentityPolicy::None, |i| IdentityPolicy::Fixed(i.clone()));
    let mut flow = Flow::new(Mode::Probe, id, clock.started_at());
    flow.upstream = Some(plan.target.authority());
    match engine.connect(&plan.target, &policy, &rec).await {
        Err(failed) => {
            flow.kind = RecordKind::Connection;
            flow.error = Some(failed.0);
        }
        Ok(conn) => {
            flow.kind = RecordKind::Exchange;
            flow.exchange_index = Some(0);
            let (request, response) = exchange(conn, plan, path, &rec, clock).await;
            flow.request = Some(request);
            if response.is_none() {
                flow.error = rec.with(|l| l.error.clone());
            }
            flow.response = response;
        }
    }
    flow.upstream_leg = Some(rec.snapshot());
    flow
}

/// `GET path` over HTTP/1.1 on the established leg, bounded by the plan's timeout; a failure is
/// recorded on the leg (the TLS stream records its own errors first).
async fn exchange(
    conn: Connected,
    plan: &ProbePlan,
    path: &str,
    rec: &LegRecorder,
    clock: ConnClock,
) -> (Request, Option<Response>) {
    let authority = plan.target.authority();
    let built = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(
            http::header::USER_AGENT,
            concat!("mtlscope-probe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new());
    let mut request = Request {
        method: "GET".into(),
        uri: path.to_string(),
        version: crate::facts::HttpVersion::Http11,
        headers: Vec::new(),
        at_ms: clock.ms(),
        forwarded_at_ms: None,
        body_excerpt: None,
        forwarded_identity: None,
    };
    let req = match built {
        Ok(r) => r,
        Err(e) => {
            fail(
                rec,
                format!("cannot form the request: {e}"),
                FailureKind::BadRequest,
            );
            return (request, None);
        }
    };
    request.headers = kept_request(req.headers(), true);
    let work = async {
        let (mut sender, driver) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(conn.io)).await?;
        // Driven here and dropped with this future, so a timeout leaves nothing running.
        let driver = Driver(tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "probe connection ended");
            }
        }));
        request.forwarded_at_ms = Some(clock.ms());
        rec.note_request();
        let resp = sender.send_request(req).await?;
        let (parts, mut body) = resp.into_parts();
        let mut excerpt = None;
        if parts.status.is_client_error() || parts.status.is_server_error() {
            let mut text = Vec::new();
            while text.len() < EXCERPT_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            text.extend_from_slice(&d[..d.len().min(EXCERPT_BYTES - text.len())]);
                        }
                    }
                    _ => break,
                }
            }
            excerpt = Some(String::from_utf8_lossy(&text).into_owned());
        }
        drop(driver);
        Ok::<_, hyper::Error>(Response {
            status: parts.status.as_u16(),
            source: ResponseSource::Upstream,
            headers: kept_response(&parts.headers, true),
            body_excerpt: excerpt,
            removed_headers: Vec::new(),
            at_ms: clock.ms(),
        })
    };
    let response = match tokio::time::timeout(plan.timeout, work).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            match crate::capture::tls_error::find_io_error(&e) {
                Some(io) => rec.fail(&crate::capture::tls_error::classify_io(
                    Stage::AfterHandshake,
                    io,
                )),
                None if e.is_incomplete_message() => fail(
                    rec,
                    "the server closed the connection before sending a response".into(),
                    FailureKind::Eof,
                ),
                None => fail(
                    rec,
                    format!("the HTTP exchange failed: {e}"),
                    FailureKind::Http,
                ),
            }
            None
        }
        Err(_) => {
            fail(
                rec,
                format!(
                    "no response within {} ms of the request",
                    plan.timeout.as_millis()
                ),
                FailureKind::TimedOut,
            );
            None
        }
    };
    (request, response)
}

/// Aborts the HTTP connection task when dropped.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn fail(rec: &LegRecorder, words: String, kind: FailureKind) {
    rec.fail(&crate::capture::tls_error::Classified::new(
        Stage::AfterHandshake,
        kind,
        words,
    ));
}
