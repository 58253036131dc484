//! Idle detection for relays that copy bytes blindly (observe, passthrough tunnels): a stream
//! wrapper that notes when bytes last moved, and a future that resolves once none have for a
//! while.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When bytes last moved, as milliseconds since `start`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Activity {
    /// The reference instant.
    start: Instant,
    /// Milliseconds from `start` to the last read or write that moved bytes.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    /// Activity as of now.
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Resolves once no bytes have moved for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A stream whose reads and writes count as activity.
pub struct Watched<S> {
    /// The stream.
    inner: S,
    /// Where activity is noted.
    activity: Activity,
}

impl<S> Watched<S> {
    /// Watch `inner`.
    pub fn new(inner: S, activity: Activity) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn idle_resolves_only_after_quiet() {
        let (a, mut b) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut watched = Watched::new(a, activity.clone());
        b.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        watched.read_exact(&mut one).await.unwrap();
        let idle = tokio::time::timeout(
            Duration::from_millis(20),
            activity.idle_for(Duration::from_secs(5)),
        )
        .await;
        assert!(idle.is_err(), "bytes just moved: not idle yet");
        tokio::time::timeout(
            Duration::from_secs(5),
            activity.idle_for(Duration::from_millis(30)),
        )
        .await
        .expect("idle after 30 ms of quiet");
    }
}
