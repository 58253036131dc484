//! A plain-HTTP backend that echoes the request head it received, as a JSON object
//! `{"method", "uri", "headers": [[name, value], …]}` (headers in arrival order, values as
//! received): the backend behind a TLS offloader, for seeing exactly which identity headers
//! arrived. With `require` set it answers 401 to requests without that header, as a backend
//! that trusts its offloader's identity header does.
//!
//! It reads the request body before answering (and says how many bytes came, `body_bytes`), as
//! most backends do; [`LabEcho::answering_before_the_body`] answers at the head instead and
//! never reads the body, like a server refusing an upload before it starts.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running echo backend; stopped when dropped.
pub struct LabEcho {
    /// Where it listens (127.0.0.1, port chosen by the OS).
    pub addr: SocketAddr,
    /// The accept loop.
    task: JoinHandle<()>,
    /// Requests answered so far.
    answered: Arc<AtomicUsize>,
}

impl Drop for LabEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LabEcho {
    /// Start on 127.0.0.1:0; `require`: answer 401 without this header.
    pub async fn start(require: Option<http::HeaderName>) -> std::io::Result<LabEcho> {
        LabEcho::serve(require, true).await
    }

    /// Start on 127.0.0.1:0, answering every request at its head without reading its body.
    pub async fn answering_before_the_body() -> std::io::Result<LabEcho> {
        LabEcho::serve(None, false).await
    }

    async fn serve(
        require: Option<http::HeaderName>,
        reads_body: bool,
    ) -> std::io::Result<LabEcho> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let require = require.clone();
                let count = count.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: http::Request<Incoming>| {
                            let require = require.clone();
                            let count = count.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let read = if reads_body {
                                    body.collect().await.map(|b| b.to_bytes().len()).ok()
                                } else {
                                    None
                                };
                                let reply = respond(require.as_ref(), &parts, read);
                                count.fetch_add(1, Ordering::Relaxed);
                                Ok::<_, std::convert::Infallible>(reply)
                            }
                        });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        Ok(LabEcho {
            addr,
            task,
            answered,
        })
    }

    /// How many requests it has answered (the answer is made; it may still be on its way).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The echo of a request head; `body_bytes`: how much body was read, if it was.
fn respond(
    require: Option<&http::HeaderName>,
    req: &http::request::Parts,
    body_bytes: Option<usize>,
) -> http::Response<Full<Bytes>> {
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "method": req.method.as_str(),
        "uri": req.uri.to_string(),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let missing = require.filter(|n| !req.headers.contains_key(*n));
    let mut resp = http::Response::new(Full::new(Bytes::from(body.to_string())));
    if missing.is_some() {
        *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
    }
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
