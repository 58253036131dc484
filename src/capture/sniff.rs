//! Keeps the first bytes a client sent, so a failed ClientHello can be named: plain HTTP on the
//! TLS port, garbage, or a truncated record.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many leading bytes are kept.
const KEPT: usize = 16;

/// The first bytes read, shared with whoever needs to explain a failure.
#[derive(Clone, Debug, Default)]
pub struct FirstBytes(Arc<Mutex<Vec<u8>>>);

impl FirstBytes {
    /// The bytes kept so far.
    pub fn get(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// What the first bytes look like, in words, when they are not TLS.
    pub fn describe_non_tls(&self) -> Option<String> {
        describe_non_tls(&self.get())
    }
}

/// Words for leading bytes that are not a TLS handshake record; None when they look like TLS
/// (or nothing arrived).
pub fn describe_non_tls(bytes: &[u8]) -> Option<String> {
    const METHODS: &[&str] = &[
        "GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
        "PRI ",
    ];
    if bytes.is_empty() || bytes[0] == 0x16 {
        return None;
    }
    let text = String::from_utf8_lossy(bytes);
    if METHODS
        .iter()
        .any(|m| text.starts_with(m) || m.starts_with(text.as_ref()))
    {
        let line = text.split("\r\n").next().unwrap_or_default().to_string();
        return Some(format!(
            "plain HTTP was sent to the TLS listener ({line:?}…); use https://"
        ));
    }
    let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "the first bytes are not a TLS record (0x{})",
        hex.join(" 0x")
    ))
}

/// A stream that copies its first bytes into a [`FirstBytes`].
#[derive(Debug)]
pub struct Sniff<S> {
    /// The stream.
    inner: S,
    /// Where the first bytes go.
    first: FirstBytes,
}

impl<S> Sniff<S> {
    /// Wrap `inner`; returns the stream and the handle to its first bytes.
    pub fn new(inner: S) -> (Sniff<S>, FirstBytes) {
        let first = FirstBytes::default();
        (
            Sniff {
                inner,
                first: first.clone(),
            },
            first,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Ok(mut kept) = self.first.0.lock() {
            if kept.len() < KEPT {
                let new = &buf.filled()[before..];
                let room = KEPT - kept.len();
                kept.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
    use super::describe_non_tls;

    #[test]
    fn names_what_was_sent() {
        assert!(describe_non_tls(b"GET / HTTP/1.1\r\n")
            .unwrap()
            .contains("plain HTTP"));
        assert!(describe_non_tls(b"\x00\xff").unwrap().contains("0x00 0xff"));
        assert_eq!(describe_non_tls(&[0x16, 0x03, 0x01]), None);
        assert_eq!(describe_non_tls(b""), None);
    }
}
