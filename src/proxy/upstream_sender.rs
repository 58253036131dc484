//! The HTTP connection of one upstream leg ([`UpstreamSender`]): HTTP/1.1 or HTTP/2 over the
//! leg's TLS stream, the body of a request sent on it, and the signal its driver gives when the
//! upstream ends it.

use super::request_body::TeeBody;
use crate::upstream::BoxIo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

/// Where a leg's connection driver says that the upstream ended leg N.
#[derive(Clone, Debug)]
pub struct EndedTx {
    /// To the pair.
    pub(super) tx: mpsc::UnboundedSender<u32>,
    /// The leg this driver serves.
    pub(super) index: u32,
}

impl EndedTx {
    fn notify(&self) {
        let _ = self.tx.send(self.index);
    }
}

/// The body of a request sent upstream.
pub enum UpstreamBody {
    /// The client's, streamed as it arrives (copying its excerpt).
    Streaming(TeeBody),
    /// Read whole (a request kept for a replay, or a body-less one sent again); taken on first
    /// poll.
    Buffered(Option<Bytes>),
    /// The client's body failed while it was being read whole.
    Broken(Option<hyper::Error>),
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        use std::task::Poll;
        match self.get_mut() {
            UpstreamBody::Streaming(b) => std::pin::Pin::new(b).poll_frame(cx),
            UpstreamBody::Buffered(b) => {
                Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b))))
            }
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

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            UpstreamBody::Streaming(b) => b.size_hint(),
            UpstreamBody::Buffered(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpstreamBody::Broken(_) => http_body::SizeHint::default(),
        }
    }
}

/// The HTTP connection of one upstream leg.
pub enum UpstreamSender {
    /// HTTP/1.1: one request at a time.
    H1(tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<UpstreamBody>>),
    /// HTTP/2: multiplexed.
    H2(hyper::client::conn::http2::SendRequest<UpstreamBody>),
}

/// Why a send got no response.
#[allow(clippy::large_enum_variant)] // built once per failed send; boxing buys nothing
pub(super) enum SendFailed {
    /// No byte of the request reached the upstream (the connection had ended); here it is.
    NotSent(http::Request<UpstreamBody>, hyper::Error),
    /// The request went out (at least in part) and no response came.
    Failed(hyper::Error),
}

impl From<hyper::client::conn::TrySendError<http::Request<UpstreamBody>>> for SendFailed {
    fn from(mut e: hyper::client::conn::TrySendError<http::Request<UpstreamBody>>) -> SendFailed {
        match e.take_message() {
            Some(req) => SendFailed::NotSent(req, e.into_error()),
            None => SendFailed::Failed(e.into_error()),
        }
    }
}

impl UpstreamSender {
    /// Start HTTP on an established upstream TLS stream (h2 when ALPN chose it) and spawn the
    /// connection driver, which signals `ended` (with the leg's index) when the connection ends.
    pub async fn handshake(
        io: BoxIo,
        alpn: Option<&[u8]>,
        ended: EndedTx,
    ) -> Result<UpstreamSender, hyper::Error> {
        let io = TokioIo::new(io);
        if alpn == Some(b"h2") {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
                ended.notify();
            });
            Ok(UpstreamSender::H2(sender))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                // A 101 hands the connection to the upgrade (see `proxy::upgrade`).
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream h1 connection ended");
                }
                ended.notify();
            });
            Ok(UpstreamSender::H1(tokio::sync::Mutex::new(sender)))
        }
    }

    /// Send `req`; on failure the request comes back when no byte of it was sent.
    pub(super) async fn try_send(
        &self,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, SendFailed> {
        match self {
            UpstreamSender::H1(s) => {
                let fut = {
                    let mut s = s.lock().await;
                    // Waits for the previous response's body; fails when the connection ended.
                    if let Err(e) = s.ready().await {
                        return Err(SendFailed::NotSent(req, e));
                    }
                    s.try_send_request(req)
                };
                Ok(fut.await?)
            }
            UpstreamSender::H2(s) => {
                let mut s = s.clone();
                if let Err(e) = s.ready().await {
                    return Err(SendFailed::NotSent(req, e));
                }
                Ok(s.try_send_request(req).await?)
            }
        }
    }

    /// Whether it can take a new request within `bound` (an HTTP/1.1 connection whose last
    /// response has not finished cannot); false when the upstream has ended it.
    pub async fn idle_ready(&self, bound: std::time::Duration) -> bool {
        match self {
            UpstreamSender::H1(s) => {
                let mut s = s.lock().await;
                matches!(tokio::time::timeout(bound, s.ready()).await, Ok(Ok(())))
            }
            UpstreamSender::H2(s) => !s.is_closed() && s.is_ready(),
        }
    }

    /// Whether the upstream has ended this connection.
    pub fn is_closed(&self) -> bool {
        match self {
            UpstreamSender::H1(s) => s.try_lock().map(|s| s.is_closed()).unwrap_or(false),
            UpstreamSender::H2(s) => s.is_closed(),
        }
    }

    /// Whether this leg speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(self, UpstreamSender::H2(_))
    }
}
