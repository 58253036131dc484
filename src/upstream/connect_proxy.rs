//! The client side of an HTTP CONNECT proxy: open TCP to the proxy, ask it for a tunnel to the
//! origin (`CONNECT host:port HTTP/1.1`, with `Proxy-Authorization: Basic` when credentials are
//! given), read its status line and headers (bounded), and hand the bare stream back so the TLS
//! engine speaks to the origin through it. Only the tunnel is owned here: TLS, recording and
//! diagnosis stay with the engine, so a path through a proxy is recorded like a direct one.

use base64::Engine as _;
use std::fmt;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of a proxy's response head read before giving up on it.
const MAX_HEAD: usize = 16 * 1024;

/// An `http://[user:pass@]host:port` CONNECT proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectProxy {
    /// Proxy host name or IP literal (without brackets).
    pub host: String,
    /// Proxy port (default 80, as curl's for `http://`).
    pub port: u16,
    /// `user:pass` for `Proxy-Authorization: Basic`, already percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ConnectProxy {
    // The password never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectProxy({})", self.url())
    }
}

/// A proxy URL that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyUrlError {
    /// Not `http://`: TLS to the proxy itself (`https://`) and SOCKS are not spoken.
    #[error("{url:?}: only http:// CONNECT proxies are supported (scheme {scheme:?})")]
    Scheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// No host, or a port that is not a number.
    #[error("{url:?}: expected http://[USER:PASS@]HOST[:PORT]")]
    Malformed {
        /// The URL as given.
        url: String,
    },
}

/// Why the proxy did not open the tunnel. Carried inside the `io::Error` of the connect, so the
/// leg records the proxy's own answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// 407: the proxy wants (other) credentials.
    #[error("the proxy {proxy} wants credentials (407 Proxy Authentication Required{})", challenge.as_ref().map(|c| format!(", Proxy-Authenticate: {c}")).unwrap_or_default())]
    AuthRequired {
        /// The proxy's URL (without credentials).
        proxy: String,
        /// Its `Proxy-Authenticate` header.
        challenge: Option<String>,
    },
    /// Any other non-2xx answer to CONNECT.
    #[error("the proxy {proxy} refused CONNECT {origin}: {status} {reason}")]
    Refused {
        /// The proxy's URL.
        proxy: String,
        /// The origin asked for.
        origin: String,
        /// Its status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The answer was not HTTP, or its head was longer than [`MAX_HEAD`].
    #[error("the proxy {proxy} answered CONNECT with something other than an HTTP response head: {first_line:?}")]
    Malformed {
        /// The proxy's URL.
        proxy: String,
        /// The first line received (cut short).
        first_line: String,
    },
    /// The proxy closed the connection before finishing its answer.
    #[error("the proxy {proxy} closed the connection before answering CONNECT")]
    Closed {
        /// The proxy's URL.
        proxy: String,
    },
}

impl ConnectProxy {
    /// Parse `http://[user:pass@]host[:port][/]` (a scheme-less `host:port` is taken as
    /// `http://`, as curl does for proxy variables).
    pub fn parse(url: &str) -> Result<ConnectProxy, ProxyUrlError> {
        let malformed = || ProxyUrlError::Malformed { url: url.into() };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(ProxyUrlError::Scheme {
                    url: url.into(),
                    scheme: scheme.into(),
                })
            }
            None => url,
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(malformed());
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            (percent_decode(user), percent_decode(pass))
        });
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(malformed)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| malformed())?,
                None if after.is_empty() => 80,
                None => return Err(malformed()),
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| malformed())?),
                None => (hostport.to_string(), 80),
            }
        };
        if host.is_empty() {
            return Err(malformed());
        }
        Ok(ConnectProxy {
            host,
            port,
            credentials,
        })
    }

    /// `http://host:port`, with `user@` (never the password) when credentials are set.
    pub fn url(&self) -> String {
        let user = self
            .credentials
            .as_ref()
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{user}{host}:{}", self.port)
    }

    /// Open a tunnel to `origin` (`host:port`): the stream returned carries the origin's bytes.
    /// A proxy's refusal is a [`ProxyError`] inside the `io::Error`.
    pub async fn tunnel(&self, origin: &str) -> io::Result<TcpStream> {
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let mut head = format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n");
        if let Some((user, pass)) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            head.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).await?;
        let proxy = self.url();
        let answer = read_head(&mut tcp, &proxy).await?;
        let Some(answer) = answer else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                ProxyError::Closed { proxy },
            ));
        };
        let text = String::from_utf8_lossy(&answer);
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut parts = first.splitn(3, ' ');
        let status = match (parts.next(), parts.next().map(str::parse::<u16>)) {
            (Some(v), Some(Ok(s))) if v.starts_with("HTTP/1.") => s,
            _ => {
                let first_line = first.chars().take(80).collect();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    ProxyError::Malformed { proxy, first_line },
                ));
            }
        };
        if (200..300).contains(&status) {
            return Ok(tcp);
        }
        let header = |name: &str| {
            text.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let err = if status == 407 {
            ProxyError::AuthRequired {
                proxy,
                challenge: header("proxy-authenticate"),
            }
        } else {
            ProxyError::Refused {
                proxy,
                origin: origin.to_string(),
                status,
                reason: parts.next().unwrap_or_default().to_string(),
            }
        };
        // Not `ConnectionRefused`: TCP to the proxy worked, its answer is the reason.
        Err(io::Error::other(err))
    }
}

/// Read up to and including the blank line that ends a response head, one byte at a time so
/// nothing of the tunnelled stream is consumed. `None` when the peer closed first.
async fn read_head(tcp: &mut TcpStream, proxy: &str) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            let first_line = String::from_utf8_lossy(&head[..80.min(head.len())]).into_owned();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ProxyError::Malformed {
                    proxy: proxy.to_string(),
                    first_line,
                },
            ));
        }
        if tcp.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    Ok(Some(head))
}

/// `%XX` decoding of URL userinfo (curl decodes proxy credentials the same way).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn proxy_urls_parse_like_curls() {
        let p = ConnectProxy::parse("http://al%40ice:s%3Acret@proxy.corp:3128/").unwrap();
        assert_eq!(p.host, "proxy.corp");
        assert_eq!(p.port, 3128);
        assert_eq!(
            p.credentials,
            Some(("al@ice".to_string(), "s:cret".to_string()))
        );
        assert_eq!(p.url(), "http://al@ice@proxy.corp:3128");
        assert!(!format!("{p:?}").contains("cret"));
        let bare = ConnectProxy::parse("127.0.0.1:8080").unwrap();
        assert_eq!((bare.host.as_str(), bare.port), ("127.0.0.1", 8080));
        let v6 = ConnectProxy::parse("http://[::1]").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 80));
        assert!(matches!(
            ConnectProxy::parse("https://p:1"),
            Err(ProxyUrlError::Scheme { .. })
        ));
        assert!(ConnectProxy::parse("http://p:x").is_err());
        assert!(ConnectProxy::parse("http://p:1/path").is_err());
        assert!(ConnectProxy::parse("http://").is_err());
    }

    /// A one-shot proxy that answers CONNECT with `answer` and then echoes.
    async fn proxy(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).await.unwrap();
            // Echo one read: proves nothing after the head was swallowed.
            if let Ok(n) = s.read(&mut buf).await {
                let _ = s.write_all(&buf[..n]).await;
            }
            String::from_utf8_lossy(&got).into_owned()
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_tunnel_sends_credentials_and_leaves_the_stream_untouched() {
        let (port, task) = proxy("HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n").await;
        let p = ConnectProxy::parse(&format!("http://u:p@127.0.0.1:{port}")).unwrap();
        let mut s = p.tunnel("origin.test:443").await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
        let sent = task.await.unwrap();
        assert!(sent.starts_with("CONNECT origin.test:443 HTTP/1.1\r\n"));
        assert!(
            sent.contains("Proxy-Authorization: Basic dTpw\r\n"),
            "{sent}"
        );
    }

    #[tokio::test]
    async fn refusals_carry_the_proxys_answer() {
        let (port, _t) =
            proxy("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n").await;
        let p = ConnectProxy::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = p.tunnel("o:443").await.unwrap_err();
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<ProxyError>());
        assert!(
            matches!(inner, Some(ProxyError::AuthRequired { challenge: Some(c), .. }) if c == "Basic realm=\"corp\""),
            "{e}"
        );
        let (port, _t) = proxy("HTTP/1.1 403 Forbidden\r\n\r\n").await;
        let p = ConnectProxy::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = p.tunnel("o:443").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the proxy http://127.0.0.1:{port} refused CONNECT o:443: 403 Forbidden")
        );
        let (port, _t) = proxy("SSH-2.0-nope\r\n\r\n").await;
        let p = ConnectProxy::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = p.tunnel("o:443").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
