//! Lingering close of a stream whose peer may still be sending (the relay switches it on for a
//! client connection it refused mid-request: a head too large, a head that does not parse, a
//! head that came too slowly): the refusal is sent, the write side is shut, and what the peer
//! still sends is read and discarded for a while before the socket closes, as nginx does
//! (`lingering_close`).
//!
//! Closing at once would leave the client's unread bytes in the socket, and the kernel then
//! answers with a reset that can reach the client before it has read the refusal: curl reports
//! "(55) Send failure: Broken pipe" instead of the 431.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// How long a refused client may go on sending before the socket closes (nginx's
/// `lingering_timeout` is 5 s).
pub const LINGER_WAIT: Duration = Duration::from_secs(5);
/// The most read and discarded while lingering.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// Whether a stream lingers when it is dropped; set by whoever learns that it should.
#[derive(Clone, Debug, Default)]
pub struct LingerSwitch(Arc<AtomicBool>);

impl LingerSwitch {
    /// Linger when the stream is dropped.
    pub fn on(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A client stream that lingers when dropped, if its [`LingerSwitch`] is on.
pub struct Lingering<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    /// The stream; taken by the lingering task.
    inner: Option<S>,
    /// Set when the connection ended with a refusal.
    switch: LingerSwitch,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Lingering<S> {
    /// Wrap `inner`, lingering when `switch` is on at drop.
    pub fn new(inner: S, switch: LingerSwitch) -> Lingering<S> {
        Lingering {
            inner: Some(inner),
            switch,
        }
    }

    fn stream(&mut self) -> std::io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Lingering<S> {
    fn drop(&mut self) {
        if !self.switch.is_on() {
            return;
        }
        let (Some(stream), Ok(rt)) = (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        rt.spawn(linger(stream));
    }
}

/// Shut the write side (a TLS stream sends its close_notify first), then read and discard
/// until the client closes, within [`LINGER_WAIT`] and [`LINGER_BYTES`].
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let deadline = tokio::time::Instant::now() + LINGER_WAIT;
    if tokio::time::timeout_at(deadline, stream.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 || n >= left {
            return;
        }
        left -= n;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_client_reads_the_answer_and_its_rest_is_read_and_discarded() {
        let (ours, mut client) = tokio::io::duplex(1024);
        let switch = LingerSwitch::default();
        let mut stream = Lingering::new(ours, switch.clone());
        stream.write_all(b"HTTP/1.1 431 \r\n\r\n").await.unwrap();
        switch.on();
        drop(stream);
        // The client is still sending: more than the pipe holds, so it would stall unless
        // the lingering side reads.
        client.write_all(&[b'a'; 8 * 1024]).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 431 \r\n\r\n");
    }

    #[tokio::test]
    async fn a_stream_not_switched_on_closes_at_once() {
        let (ours, mut client) = tokio::io::duplex(1024);
        drop(Lingering::new(ours, LingerSwitch::default()));
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(
            client.write_all(b"x").await.is_err(),
            "the other end is gone"
        );
    }
}
