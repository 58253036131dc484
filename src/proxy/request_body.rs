//! The client's request body on its way upstream ([`TeeBody`]): it copies its prefix into the
//! exchange's [`Excerpt`], and when the upstream stops reading it before its end (it answered
//! early, or its connection ended), mtlscope reads the rest itself and discards it.
//!
//! Reading on is what a client expects: an HTTP/2 client still sending gets its stream closed
//! normally instead of a `RST_STREAM` (curl reports one arriving mid-upload as a stream error,
//! although the answer arrived whole), and the record's excerpt shows what the client sent.
//! The reading is bounded by [`DRAIN_BYTES`] and [`DRAIN_WAIT`], as nginx bounds its discarding
//! of a body it will not use. The drain is one of the process's tracked tasks ([`Lifecycle`]): a
//! stopping mtlscope waits for it, so the exchange's record is written before the recording is
//! flushed, even when the client connection has closed first.

use super::request_excerpt::Excerpt;
use crate::lifecycle::Lifecycle;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// The most of a body mtlscope reads on after the upstream stopped reading it.
pub const DRAIN_BYTES: usize = 1024 * 1024;
/// How long mtlscope reads on, all told.
pub const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// The client's request body on its way upstream, copying its prefix into an [`Excerpt`].
pub struct TeeBody {
    /// The client's body; taken by the drain when dropped unfinished.
    inner: Option<Incoming>,
    /// Where the prefix goes and where the body's end is told.
    excerpt: Excerpt,
    /// Whether the excerpt still has room (once full, nothing more is copied).
    copying: bool,
    /// Where the drain runs as a task the stop waits for.
    tasks: TaskTracker,
}

impl TeeBody {
    /// Wrap `inner`; the returned excerpt fills as the body is sent.
    pub fn new(
        inner: Incoming,
        content_type: Option<&str>,
        redact: bool,
        life: &Lifecycle,
    ) -> (TeeBody, Excerpt) {
        let excerpt = Excerpt::new(content_type, redact);
        let ended = inner.is_end_stream();
        if ended {
            excerpt.end();
        }
        let body = TeeBody {
            inner: Some(inner),
            excerpt: excerpt.clone(),
            copying: !ended,
            tasks: life.tracker(),
        };
        (body, excerpt)
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), true) = (frame.data_ref(), self.copying) {
                    // Once full, copy nothing more: the relay path stays one pass over the bytes.
                    self.copying = !self.excerpt.copy(data);
                }
            }
            Poll::Ready(_) => self.excerpt.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if self.excerpt.has_ended() {
            return;
        }
        if inner.is_end_stream() {
            self.excerpt.end();
            return;
        }
        let ends = EndsBody(self.excerpt.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(_) => {
                self.tasks.spawn(drain(inner, ends, self.copying));
            }
            // No runtime to read on: `ends` tells the excerpt as it drops.
            Err(_) => drop(ends),
        }
    }
}

/// Tells its excerpt that the body ended when dropped, however the drain ends (even when its
/// task is dropped unpolled at shutdown), so a waiting record is never lost.
struct EndsBody(Excerpt);

impl Drop for EndsBody {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Read the rest of a body the upstream no longer reads, within [`DRAIN_BYTES`] and
/// [`DRAIN_WAIT`], copying into the excerpt while it has room.
async fn drain(mut body: Incoming, ends: EndsBody, mut copying: bool) {
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    let mut left = DRAIN_BYTES;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if copying {
            copying = !ends.0.copy(data);
        }
        left = left.saturating_sub(data.len());
        if left == 0 {
            break;
        }
    }
}
