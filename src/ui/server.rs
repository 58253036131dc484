//! The web view's HTTP server: the embedded page, the JSON API, the live stream (Server-Sent
//! Events), and the downloads. Read-only: every route is a GET.
//!
//! The page shows certificates, headers and bodies, so the server guards it: a Basic credential
//! when one is configured, and on a loopback listener only requests whose `Host` names loopback
//! (a web page elsewhere cannot reach it through DNS rebinding). Every response forbids inline
//! scripts (CSP) and sniffing, as a second line behind the page's text-only rendering.

use super::api;
use super::respond::{asset, download, json, not_found, text, with_headers, UiBody};
use super::store::{Entry, Store};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

/// The page's files, embedded in the binary.
const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// How often a live stream gets the counters (and proves the connection is alive).
const STATS_EVERY: Duration = Duration::from_secs(2);
/// Events buffered per live stream between its pump and the socket.
const STREAM_DEPTH: usize = 4;
/// The most bytes of rows in one event (so a stream buffers at most a few of these).
const EVENT_BYTES: usize = 256 * 1024;
/// A page that takes no event for this long is dropped, not buffered for: it reloads and
/// catches up from the store.
const STALLED_AFTER: Duration = Duration::from_secs(10);
/// How long new flows gather before they go to a page, as one event.
const BATCH_EVERY: Duration = Duration::from_millis(250);
/// Rows per event at most.
const BATCH_ROWS: usize = 500;

/// What every request handler shares.
pub struct State {
    /// The flows.
    pub store: Arc<Store>,
    /// The expected `Authorization` header value (`Basic …`), when a credential is required.
    pub auth: Option<String>,
    /// `Host` values accepted on a loopback listener; `None` accepts any (remote, with auth).
    pub hosts: Option<Vec<String>>,
    /// The `--keylog` file, for the key-log download.
    pub keylog: Option<PathBuf>,
    /// `mtlscope ui FILE…`: the recordings' index; flows are read from the files.
    pub file: Option<Arc<super::index::FileIndex>>,
}

/// Serve connections from `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "web view: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Constant-time equality, for the credential.
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

fn handle(state: &State, req: Request<Incoming>) -> Response<UiBody> {
    if let Some(hosts) = &state.hosts {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return text(StatusCode::MISDIRECTED_REQUEST, "unexpected Host header\n");
        }
    }
    if let Some(expected) = &state.auth {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if !same(given, expected.as_bytes()) {
            let mut r = text(StatusCode::UNAUTHORIZED, "credentials required\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"mtlscope\""),
            );
            return r;
        }
    }
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the web view is read-only\n",
        );
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    route(state, &path, &query)
}

fn route(state: &State, path: &str, query: &str) -> Response<UiBody> {
    if let Some(ix) = &state.file {
        if let Some(r) = super::files::route(ix, path, query) {
            return r;
        }
        if let Some(rest) = path.strip_prefix("/api/flows/") {
            return super::files::flow_route(ix, rest, state.keylog.as_deref());
        }
        if path == "/api/stats" {
            let mut s = state.store.stats();
            s["source"] = serde_json::json!("file");
            s["records"] = serde_json::json!(ix.len());
            return json(&s);
        }
    }
    match path {
        "/" | "/index.html" => asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
        "/app.css" => asset(APP_CSS, "text/css; charset=utf-8"),
        "/api/events" => events(state.store.clone()),
        "/api/stats" => json(&state.store.stats()),
        "/api/diff" => {
            let param = |k: &str| {
                query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(n, _)| *n == k)
                    .and_then(|(_, v)| v.parse::<u64>().ok())
            };
            match (param("a"), param("b")) {
                (Some(a), Some(b)) => match (state.store.get(a), state.store.get(b)) {
                    (Some(a), Some(b)) => json(&api::compare(&a.record, &b.record)),
                    _ => not_found("a flow is neither in memory nor read back from the recording"),
                },
                _ => text(StatusCode::BAD_REQUEST, "expected ?a=ID&b=ID\n"),
            }
        }
        _ => match path.strip_prefix("/api/flows/") {
            Some(rest) => flow_route(state, rest),
            None => not_found("no such page"),
        },
    }
}

/// `/api/flows/ID[/flow.jsonl|/flow.har|/keylog.txt]`.
fn flow_route(state: &State, rest: &str) -> Response<UiBody> {
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(entry) = id.parse::<u64>().ok().and_then(|id| state.store.get(id)) else {
        return not_found(
            "no such flow in memory or read back from the recording (it may be only in the \
             recording now: mtlscope ui FILE shows all of it)",
        );
    };
    let r = &entry.record;
    match what {
        "" => {
            let mut v = api::detail(entry.id, r);
            v["keylog"] = serde_json::Value::Bool(state.keylog.is_some());
            json(&v)
        }
        "flow.jsonl" => download(api::jsonl(r), &format!("flow-{}.jsonl", entry.id)),
        "flow.har" => download(api::har_doc(r), &format!("flow-{}.har", entry.id)),
        "keylog.txt" => {
            let Some(path) = &state.keylog else {
                return not_found("mtlscope was started without --keylog");
            };
            match std::fs::read_to_string(path) {
                Ok(all) => download(
                    api::keylog_lines(&all, &api::client_randoms(&r.flow)),
                    &format!("flow-{}.keylog.txt", entry.id),
                ),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot read the key log {}: {e}\n", path.display()),
                ),
            }
        }
        _ => not_found("no such download"),
    }
}

/// `text/event-stream`: every listed flow (those in memory, and older ones the recording gives
/// back), then each new one, and the counters every few seconds. A page that falls behind
/// catches up from the store, never blocking the feed.
fn events(store: Arc<Store>) -> Response<UiBody> {
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    tokio::spawn(pump(store, tx));
    let mut r = Response::new(EventStream { rx }.boxed());
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    with_headers(r, "text/event-stream")
}

/// One `flows` event: a JSON array of list rows.
fn flows_event(rows: &[Arc<Entry>]) -> Bytes {
    let mut s =
        String::with_capacity(64 + rows.iter().map(|e| e.row_json().len() + 1).sum::<usize>());
    s.push_str("event: flows\ndata: [");
    for (i, e) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(e.row_json());
    }
    s.push_str("]\n\n");
    Bytes::from(s)
}

fn stats_event(store: &Store) -> Bytes {
    Bytes::from(format!("event: stats\ndata: {}\n\n", store.stats()))
}

/// Send `rows` in events of at most [`BATCH_ROWS`] rows and about [`EVENT_BYTES`]; false when
/// the page has gone or stalled.
async fn send_rows(tx: &mpsc::Sender<Bytes>, rows: &[Arc<Entry>]) -> bool {
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len() && end - start < BATCH_ROWS && (end == start || bytes < EVENT_BYTES)
        {
            bytes += rows[end].row_json().len();
            end += 1;
        }
        if !send(tx, flows_event(&rows[start..end])).await {
            return false;
        }
        start = end;
    }
    true
}

/// Send one event; false when the page has gone, or took none for [`STALLED_AFTER`].
async fn send(tx: &mpsc::Sender<Bytes>, event: Bytes) -> bool {
    matches!(
        tokio::time::timeout(STALLED_AFTER, tx.send(event)).await,
        Ok(Ok(()))
    )
}

/// Feed one live stream until the page goes away (its receiver is dropped). New flows are
/// sent in batches at most every [`BATCH_EVERY`], so a busy proxy costs the page a few
/// events a second, not one per flow.
async fn pump(store: Arc<Store>, tx: mpsc::Sender<Bytes>) {
    // Subscribe before the snapshot so nothing falls between; numbers drop the overlap.
    let mut live = store.subscribe();
    // The listed flows no longer in memory, read back from the recording off the runtime's
    // threads; only when the page opens (a page that lags behind the relay resyncs from memory).
    let cold = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.listed_before_memory(0))
            .await
            .unwrap_or_default()
    };
    if !send_rows(&tx, &cold).await {
        return;
    }
    let mut last = cold.last().map_or(0, |e| e.id);
    drop(cold);
    let mut tick = tokio::time::interval(STATS_EVERY);
    'resync: loop {
        let rows = store.since(last);
        if !send_rows(&tx, &rows).await {
            return;
        }
        last = rows.last().map_or(last, |e| e.id);
        loop {
            let first = tokio::select! {
                r = live.recv() => r,
                _ = tick.tick() => {
                    if !send(&tx, stats_event(&store)).await {
                        return;
                    }
                    continue;
                }
            };
            let mut batch = Vec::new();
            match first {
                Ok(e) => batch.push(e),
                Err(broadcast::error::RecvError::Lagged(_)) => continue 'resync,
                Err(broadcast::error::RecvError::Closed) => return,
            }
            tokio::time::sleep(BATCH_EVERY).await;
            loop {
                match live.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue 'resync,
                    Err(_) => break,
                }
            }
            batch.retain(|e| e.id > last);
            if !send_rows(&tx, &batch).await {
                return;
            }
            last = batch.last().map_or(last, |e| e.id);
        }
    }
}

/// The response body of a live stream: whatever its pump sends, as it comes.
struct EventStream {
    /// From the pump.
    rx: mpsc::Receiver<Bytes>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// The `Host` values a loopback listener on `addr` answers to.
pub fn loopback_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ]
}
