//! The established TLS stream of a leg: sends what TLS queued while reading, and records the
//! error that ends it.
//!
//! tokio-rustls does not write from `poll_read`, so an alert rustls queues in answer to
//! something it read (a refused TLS 1.2 renegotiation's `no_renegotiation`) would sit unsent and
//! the connection would hang until the peer gave up. This wrapper flushes after every read that
//! left TLS data to write.
//!
//! The error is recorded here, where it is still a `rustls::Error` inside an `io::Error`: the
//! HTTP layers above (h2 in particular) keep only its text.

use super::LegRecorder;
use crate::facts::Stage;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A TLS stream that can say whether it has records queued to write.
pub trait WantsWrite {
    /// Whether the TLS session has data queued for the peer.
    fn wants_write(&self) -> bool;
}

impl<IO> WantsWrite for tokio_rustls::client::TlsStream<IO> {
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

impl<IO> WantsWrite for tokio_rustls::server::TlsStream<IO> {
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// A TLS stream that flushes queued records after reads and records its first error.
#[derive(Debug)]
pub struct FlushAfterRead<T> {
    /// The TLS stream.
    inner: T,
    /// The leg whose facts an error goes into.
    rec: LegRecorder,
}

impl<T> FlushAfterRead<T> {
    /// Wrap a TLS stream of the leg recorded by `rec`.
    pub fn new(inner: T, rec: LegRecorder) -> Self {
        FlushAfterRead { inner, rec }
    }

    fn record<R>(&self, res: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(e)) = &res {
            self.rec
                .fail(&super::tls_error::classify_io(Stage::AfterHandshake, e));
        }
        res
    }

    /// The TLS stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + AsyncWrite + WantsWrite + Unpin> AsyncRead for FlushAfterRead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let res = self.record(res);
        if self.inner.wants_write() {
            // Pending here means the socket is full; the write side will finish the job.
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.inner).poll_flush(cx) {
                tracing::debug!(error = %e, "flush after read failed");
            }
        }
        res
    }
}

impl<T: AsyncRead + Unpin> FlushAfterRead<T> {
    /// After a write failed because the peer closed, read what it sent before closing: a peer
    /// that refuses us sends its alert (certificate_required, bad_certificate, …) and closes,
    /// and that alert, not the broken pipe, is the fact worth recording. The connection is
    /// dead, so the plaintext this drains is not needed by anyone.
    fn record_write<R>(&mut self, res: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(e)) = &res {
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                self.drain_after_close();
            }
        }
        self.record(res)
    }

    fn drain_after_close(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut scratch = [0u8; 4096];
        // Bounded: a closed connection has at most its receive buffer left to give.
        for _ in 0..64 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(Err(e)) => {
                    self.rec
                        .fail(&super::tls_error::classify_io(Stage::AfterHandshake, &e));
                    return;
                }
                _ => return,
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FlushAfterRead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record_write(res)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.record_write(res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.record_write(res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
