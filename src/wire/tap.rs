//! [`Tap`]: a transparent `AsyncRead + AsyncWrite` wrapper around a raw (TCP) stream that feeds
//! every byte read and written, timestamped, into a shared [`TapHandle`].
//!
//! Bytes are forwarded exactly; the tap only looks. The lock is held for one parse step of the
//! bytes just moved (record headers and, during the handshake, a few small messages), never
//! across an await.

use super::{TapFacts, TapRole, WireParser};
use crate::facts::ms_between;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The shared, per-connection view of what a tap saw. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TapHandle {
    /// The parser and its facts.
    inner: Arc<Mutex<WireParser>>,
    /// The connection start every `at_ms` counts from.
    start: Instant,
    /// Our role on the tapped stream.
    role: TapRole,
}

impl TapHandle {
    /// A handle for a connection that started at `start`, where we play `role`.
    pub fn new(start: Instant, role: TapRole) -> TapHandle {
        TapHandle {
            inner: Arc::new(Mutex::new(WireParser::new())),
            start,
            role,
        }
    }

    /// Our role on the tapped stream.
    pub fn role(&self) -> TapRole {
        self.role
    }

    /// The connection start.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The parser; a poisoned lock still holds consistent facts (the parser never panics
    /// mid-update by design), so it is used as is.
    fn lock(&self) -> MutexGuard<'_, WireParser> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Report bytes we read from the peer, timestamped now (for streams not wrapped in a
    /// [`Tap`]).
    pub fn saw_read(&self, bytes: &[u8]) {
        self.feed(self.role.read_dir(), bytes);
    }

    /// Report bytes we wrote to the peer, timestamped now.
    pub fn saw_write(&self, bytes: &[u8]) {
        self.feed(self.role.write_dir(), bytes);
    }

    fn feed(&self, dir: super::Dir, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let at = ms_between(self.start, Instant::now());
        self.lock().feed(dir, at, bytes);
    }

    /// Everything seen so far.
    pub fn snapshot(&self) -> TapFacts {
        self.lock().facts(self.role)
    }

    /// The time of the latest handshake record after the handshake completed (a TLS 1.2
    /// renegotiation step), ms from the connection start: compare with the HTTP request's time.
    pub fn last_post_handshake_ms(&self) -> Option<f64> {
        self.lock().last_post_handshake_ms()
    }

    /// See [`WireParser::generation`](super::state::WireParser::generation).
    pub fn generation(&self) -> u64 {
        self.lock().generation()
    }

    /// The ClientHello random once seen, the key for NSS key-log lines.
    pub fn client_random(&self) -> Option<[u8; 32]> {
        self.lock().client_random()
    }
}

/// A stream wrapper that reports every read and write to a [`TapHandle`].
#[derive(Debug)]
pub struct Tap<S> {
    /// The raw stream.
    inner: S,
    /// Where the bytes are reported.
    handle: TapHandle,
}

impl<S> Tap<S> {
    /// Wrap `inner`, reporting to `handle`.
    pub fn new(inner: S, handle: TapHandle) -> Tap<S> {
        Tap { inner, handle }
    }

    /// The handle this tap reports to.
    pub fn handle(&self) -> &TapHandle {
        &self.handle
    }

    /// The raw stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The raw stream, mutably (bytes moved through it directly are not seen).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the raw stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if let Some(new) = buf.filled().get(before..) {
                this.handle.saw_read(new);
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.handle.saw_write(buf.get(..n).unwrap_or(buf));
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            let mut left = n;
            for b in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(b.len());
                this.handle.saw_write(b.get(..take).unwrap_or(b));
                left -= take;
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
