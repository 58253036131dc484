//! Idle detection, one clock for every relay: `--idle-timeout` closes a connection on which no
//! byte moved either way for that long, as nginx closes an idle keep-alive connection after
//! `keepalive_timeout`.
//!
//! [`Activity`] wraps a stream and tells its [`IdleClock`] whenever bytes move; the relay asks
//! the clock. The HTTP relay also checks that no request is in flight before closing (see
//! `proxy::relay`); relays that copy bytes blindly (observe, passthrough tunnels) wait for
//! [`IdleClock::idle`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When bytes last moved on a connection, shared by its stream and its relay loop.
#[derive(Clone, Debug)]
pub struct IdleClock {
    /// The connection's start: activity is kept as milliseconds since it.
    start: Instant,
    /// Milliseconds from `start` to the last byte moved.
    last_ms: Arc<AtomicU64>,
    /// How long the connection may idle.
    pub limit: Duration,
}

impl IdleClock {
    /// A clock for a connection starting now, which may idle `limit`.
    pub fn new(limit: Duration) -> IdleClock {
        IdleClock {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            limit,
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the connection will have idled its limit, if nothing moves before.
    pub fn deadline(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + self.limit
    }

    /// Whether the connection has idled its limit.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline()
    }

    /// Resolves once the connection has idled its limit.
    pub async fn idle(&self) {
        while !self.expired() {
            tokio::time::sleep_until(self.deadline()).await;
        }
    }
}

/// A stream that tells its [`IdleClock`] whenever bytes move.
pub struct Activity<S> {
    /// The stream.
    inner: S,
    /// Told of each read or write that moved bytes.
    clock: IdleClock,
}

impl<S> Activity<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, clock: IdleClock) -> Activity<S> {
        Activity { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_moving_push_the_deadline_back() {
        let limit = Duration::from_millis(300);
        let clock = IdleClock::new(limit);
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Activity::new(a, clock.clone());
        let first = clock.deadline();
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        b.read_exact(&mut one).await.unwrap();
        assert!(clock.deadline() >= first + Duration::from_millis(100));
        assert!(!clock.expired());
        tokio::time::sleep_until(clock.deadline()).await;
        assert!(clock.expired());
    }

    #[tokio::test]
    async fn idle_resolves_only_after_quiet() {
        let (a, mut b) = tokio::io::duplex(64);
        let clock = IdleClock::new(Duration::from_millis(200));
        let mut watched = Activity::new(a, clock.clone());
        let mut one = [0u8; 1];
        // Bytes keep moving every 20 ms: never idle meanwhile.
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b.write_all(b"x").await.unwrap();
            watched.read_exact(&mut one).await.unwrap();
            assert!(!clock.expired(), "bytes just moved: not idle");
        }
        tokio::time::timeout(Duration::from_secs(5), clock.idle())
            .await
            .expect("idle once quiet for its limit");
        assert!(clock.expired());
    }
}
