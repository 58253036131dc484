//! One bounded HTTP exchange for revocation data: `GET` a CRL, `POST` an OCSP request. Plain
//! `http://` only (CRL distribution points and OCSP responders are plain HTTP by design: the
//! data is signed), over hyper's HTTP/1.1 client connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// The most a CRL or OCSP response may weigh.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a fetch gave no data.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an `http://` URL.
    #[error("{url}: only http:// URLs are fetched")]
    Scheme {
        /// The URL.
        url: String,
    },
    /// The URL does not parse.
    #[error("{url}: not a URL: {detail}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// No answer within the bound.
    #[error("{url}: no answer within {ms} ms")]
    TimedOut {
        /// The URL.
        url: String,
        /// The bound.
        ms: u128,
    },
    /// Connecting or the HTTP exchange failed.
    #[error("{url}: {detail}")]
    Io {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The server answered with a non-2xx status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
}

/// `GET url` (or `POST` with `body` as `content_type`), bounded by `timeout` as a whole.
pub async fn fetch(
    url: &str,
    post: Option<(&'static str, Vec<u8>)>,
    timeout: Duration,
) -> Result<Bytes, FetchError> {
    match tokio::time::timeout(timeout, exchange(url, post)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::TimedOut {
            url: url.to_string(),
            ms: timeout.as_millis(),
        }),
    }
}

async fn exchange(url: &str, post: Option<(&'static str, Vec<u8>)>) -> Result<Bytes, FetchError> {
    let io_err = |detail: String| FetchError::Io {
        url: url.to_string(),
        detail,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| FetchError::BadUrl {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    if uri.scheme_str() != Some("http") {
        return Err(FetchError::Scheme {
            url: url.to_string(),
        });
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| io_err(format!("cannot connect: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| io_err(e.to_string()))?;
    // The connection task ends with this exchange (the request asks to close).
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let builder = http::Request::builder()
        .uri(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONNECTION, "close")
        .header(
            http::header::USER_AGENT,
            concat!("mtlscope/", env!("CARGO_PKG_VERSION")),
        );
    let req = match post {
        Some((content_type, body)) => builder
            .method(http::Method::POST)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body))),
        None => builder
            .method(http::Method::GET)
            .body(Full::new(Bytes::new())),
    }
    .map_err(|e| io_err(e.to_string()))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| io_err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| io_err(format!("reading the body: {e}")))?;
        Ok(body.to_bytes())
    }
    .await;
    driver.abort();
    result
}
