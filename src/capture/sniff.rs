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

/// What a client sent first, read before any TLS library sees the stream.
#[derive(Debug)]
pub enum FirstLook {
    /// The client closed (or reset) the connection without sending a byte: a port check.
    Nothing,
    /// The first bytes are a plain HTTP request line: answer it in plain HTTP.
    PlainHttp(Vec<u8>),
    /// Anything else (a ClientHello, or garbage the TLS library names): these bytes, to be
    /// put back in front of the stream.
    Other(bytes::Bytes),
}

/// The plain-HTTP answer to a request sent to the TLS listener: a readable 400, as nginx
/// gives ("The plain HTTP request was sent to HTTPS port"), instead of a TLS alert that HTTP
/// clients misreport (curl: "Received HTTP/0.9 when not allowed").
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 117\r\n\
Connection: close\r\n\
\r\n\
400 Bad Request: a plain HTTP request was sent to mtlscope's TLS port. Use https:// for this port (TLS is required).\n";

/// Read the client's first bytes (one read, bounded by the caller's timeout) and say what
/// they are; a read error that comes before any byte counts as [`FirstLook::Nothing`] when it
/// is a close or a reset.
pub async fn first_look<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<FirstLook> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let n = match io.read(&mut buf).await {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) =>
        {
            0
        }
        Err(e) => return Err(e),
    };
    buf.truncate(n);
    if n == 0 {
        return Ok(FirstLook::Nothing);
    }
    let plain = describe_non_tls(&buf).is_some_and(|w| w.starts_with("plain HTTP"));
    Ok(if plain {
        FirstLook::PlainHttp(buf)
    } else {
        FirstLook::Other(bytes::Bytes::from(buf))
    })
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

    #[test]
    fn the_plain_http_answer_has_its_length_right() {
        let text = std::str::from_utf8(super::PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{}",
            body.len()
        );
        assert!(body.contains("https://"));
    }

    #[tokio::test]
    async fn first_look_tells_nothing_plain_http_and_tls_apart() {
        use super::{first_look, FirstLook};
        let mut empty: &[u8] = b"";
        assert!(matches!(
            first_look(&mut empty).await.unwrap(),
            FirstLook::Nothing
        ));
        let mut http: &[u8] = b"GET / HTTP/1.1\r\n";
        assert!(matches!(
            first_look(&mut http).await.unwrap(),
            FirstLook::PlainHttp(_)
        ));
        let mut tls: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0x05];
        assert!(matches!(first_look(&mut tls).await.unwrap(), FirstLook::Other(b) if b.len() == 5));
    }
}
