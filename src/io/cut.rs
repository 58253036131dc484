//! The `block-renegotiation` fault on a tunnel: a firewall that cuts the connection as soon as a
//! TLS 1.2 renegotiation starts, before the renegotiation message reaches the other side.

use crate::wire::{Tap, TapHandle};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A tapped stream that fails once the tap has seen a handshake record after the handshake.
pub struct CutOnRenegotiation<S> {
    /// The tapped upstream stream.
    inner: Tap<S>,
    /// The tap's facts.
    handle: TapHandle,
    /// Whether the cut happened (for the record).
    pub cut: bool,
}

impl<S> CutOnRenegotiation<S> {
    /// Watch `inner`, whose tap is `handle`.
    pub fn new(inner: Tap<S>, handle: TapHandle) -> Self {
        CutOnRenegotiation {
            inner,
            handle,
            cut: false,
        }
    }

    /// The tapped stream, unwatched.
    pub fn inner_mut(&mut self) -> &mut Tap<S> {
        &mut self.inner
    }

    fn blocked(&mut self) -> bool {
        if !self.cut && self.handle.last_post_handshake_ms().is_some() {
            self.cut = true;
        }
        self.cut
    }
}

fn blocked_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "renegotiation blocked (fault block-renegotiation)",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for CutOnRenegotiation<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.blocked() {
            return Poll::Ready(Err(blocked_error()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && self.blocked() {
            // The renegotiation request must not reach the client: drop what was just read.
            buf.set_filled(before);
            return Poll::Ready(Err(blocked_error()));
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for CutOnRenegotiation<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.blocked() {
            return Poll::Ready(Err(blocked_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
