//! The established OpenSSL stream of the upstream leg, and OpenSSL's errors in the leg's terms.
//!
//! A renegotiation or post-handshake authentication happens inside a read, so the error that
//! ends it surfaces in the HTTP layer, which keeps only its text: it is classified and recorded
//! here, where it is still an `openssl::ssl::Error` and the alerts seen are known.

use super::capture::Capture;
use crate::capture::tls_error::{classify_io, Classified};
use crate::capture::LegRecorder;
use crate::facts::{FailureKind, Stage};
use openssl::ssl::ErrorCode;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Classify an OpenSSL error that ended `stage`, naming the alert that explains it.
pub fn classify_ssl(stage: Stage, e: &openssl::ssl::Error, capture: &Capture) -> Classified {
    if let Some(io) = e.io_error() {
        return classify_io(stage, io);
    }
    let (received, sent) = capture.fatal_alerts();
    if let Some(code) = received {
        return Classified::new(
            stage,
            FailureKind::AlertReceived,
            format!(
                "the peer sent a fatal {} alert",
                crate::wire::alert_name(code)
            ),
        );
    }
    if e.code() == ErrorCode::ZERO_RETURN || e.code() == ErrorCode::SYSCALL {
        return Classified::new(stage, FailureKind::Eof, "the peer closed the connection");
    }
    let reason = e
        .ssl_error()
        .and_then(|s| s.errors().first())
        .and_then(|x| x.reason())
        .unwrap_or("TLS error")
        .to_string();
    let kind = match sent {
        Some(42..=49) => FailureKind::PeerCertificateInvalid,
        Some(10) => FailureKind::UnexpectedMessage,
        Some(_) | None => FailureKind::Tls,
    };
    let words = match sent {
        Some(code) => format!(
            "OpenSSL failed ({reason}) and sent a fatal {} alert",
            crate::wire::alert_name(code)
        ),
        None => format!("OpenSSL failed: {reason}"),
    };
    Classified::new(stage, kind, words)
}

/// Classify an I/O error from the OpenSSL stream (which wraps OpenSSL's own errors).
pub fn classify_stream_io(stage: Stage, e: &io::Error, capture: &Capture) -> Classified {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<openssl::ssl::Error>())
    {
        Some(ssl) => classify_ssl(stage, ssl, capture),
        None => {
            let (received, _) = capture.fatal_alerts();
            match received {
                // The alert arrived; the socket error after it is the consequence.
                Some(code) => Classified::new(
                    stage,
                    FailureKind::AlertReceived,
                    format!(
                        "the peer sent a fatal {} alert",
                        crate::wire::alert_name(code)
                    ),
                ),
                None => classify_io(stage, e),
            }
        }
    }
}

/// An established OpenSSL stream that records the first error that ends it.
pub struct Recorded<T> {
    /// The TLS stream.
    inner: T,
    /// The leg whose facts an error goes into.
    rec: LegRecorder,
    /// The callbacks' facts, for naming errors.
    capture: Arc<Capture>,
}

impl<T> Recorded<T> {
    /// Wrap the stream of the leg recorded by `rec`.
    pub fn new(inner: T, rec: LegRecorder, capture: Arc<Capture>) -> Self {
        Recorded {
            inner,
            rec,
            capture,
        }
    }

    fn record<R>(&self, res: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(e)) = &res {
            self.rec
                .fail(&classify_stream_io(Stage::AfterHandshake, e, &self.capture));
        }
        res
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.record(res)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recorded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record(res)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.record(res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Parse an NSS key-log line as OpenSSL writes it (`LABEL CLIENT_RANDOM SECRET`, hex) into the
/// parts a `rustls::KeyLog` takes, so both engines write through the same `--keylog` file.
pub fn keylog_parts(line: &str) -> Option<(&str, Vec<u8>, Vec<u8>)> {
    let mut parts = line.split_ascii_whitespace();
    let label = parts.next()?;
    let random = unhex(parts.next()?)?;
    let secret = unhex(parts.next()?)?;
    parts.next().is_none().then_some((label, random, secret))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keylog_lines_split_into_label_random_and_secret() {
        let (label, random, secret) = keylog_parts("CLIENT_RANDOM 0a0B ff00").unwrap();
        assert_eq!(label, "CLIENT_RANDOM");
        assert_eq!(random, vec![0x0a, 0x0b]);
        assert_eq!(secret, vec![0xff, 0x00]);
        assert!(keylog_parts("CLIENT_RANDOM 0a0").is_none());
        assert!(keylog_parts("CLIENT_RANDOM zz 00").is_none());
        assert!(keylog_parts("A 00 00 extra").is_none());
    }
}
