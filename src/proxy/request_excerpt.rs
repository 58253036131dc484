//! The request body's excerpt: the first [`EXCERPT_BYTES`] of what the client sent, copied as
//! the body streams upstream (never held back), with credential-looking fields redacted, for
//! the record of a failed POST (what mitmproxy users expect to see).
//!
//! [`TeeBody`] wraps the client's body on its way upstream and copies the prefix into a shared
//! [`Excerpt`]; the relay takes the excerpt when the response head arrives.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The most of a request body kept in the record.
pub const EXCERPT_BYTES: usize = 4096;

/// What stands for a redacted value.
const REDACTED: &str = "<redacted>";

/// The prefix of a request body, filled while the body streams.
#[derive(Clone, Debug, Default)]
pub struct Excerpt {
    /// Bytes copied so far (at most [`EXCERPT_BYTES`]), and whether more followed.
    inner: Arc<Mutex<(Vec<u8>, bool)>>,
    /// The request's `Content-Type`, to know how to redact.
    content_type: Option<String>,
    /// Redact credential fields (unless `--no-redact`).
    redact: bool,
}

impl Excerpt {
    /// An empty excerpt of a body of `content_type`.
    pub fn new(content_type: Option<&str>, redact: bool) -> Excerpt {
        Excerpt {
            content_type: content_type.map(str::to_string),
            redact,
            ..Excerpt::default()
        }
    }

    /// The excerpt so far, lossily decoded and redacted; `None` when no body byte was sent.
    pub fn take(&self) -> Option<String> {
        let (bytes, more) = match self.inner.lock() {
            Ok(g) => (g.0.clone(), g.1),
            Err(_) => return None,
        };
        if bytes.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut text = if self.redact {
            redact(&text, self.content_type.as_deref())
        } else {
            text
        };
        if more {
            text.push('…');
        }
        Some(text)
    }

    /// Copy `data`, as far as the excerpt has room.
    pub fn copy(&self, data: &[u8]) {
        if let Ok(mut g) = self.inner.lock() {
            let room = EXCERPT_BYTES.saturating_sub(g.0.len());
            let n = data.len().min(room);
            g.0.extend_from_slice(&data[..n]);
            if n < data.len() {
                g.1 = true;
            }
        }
    }
}

/// The client's request body on its way upstream, copying its prefix into an [`Excerpt`].
pub struct TeeBody {
    /// The client's body.
    inner: Incoming,
    /// Where the prefix goes; `None` once it is full.
    excerpt: Option<Excerpt>,
}

impl TeeBody {
    /// Wrap `inner`; the returned excerpt fills as the body is sent.
    pub fn new(inner: Incoming, content_type: Option<&str>, redact: bool) -> (TeeBody, Excerpt) {
        let excerpt = Excerpt::new(content_type, redact);
        (
            TeeBody {
                inner,
                excerpt: Some(excerpt.clone()),
            },
            excerpt,
        )
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some(ex)) = (frame.data_ref(), &self.excerpt) {
                ex.copy(data);
                let full = ex.inner.lock().map(|g| g.1).unwrap_or(true);
                if full {
                    // Copy nothing more: the relay path stays one pass over the bytes.
                    self.excerpt = None;
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a field name looks like it carries a credential (the recording's list, matched
/// after percent-decoding).
fn secret(name: &str) -> bool {
    crate::record::redact::secret_name(name)
}

/// Redact credential fields of a form or JSON body; other bodies are kept as they are.
pub fn redact(text: &str, content_type: Option<&str>) -> String {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.contains("x-www-form-urlencoded") {
        return redact_form(text);
    }
    if ct.contains("multipart/form-data") {
        return crate::record::redact::multipart(text, content_type.unwrap_or(""));
    }
    if ct.contains("json") || text.trim_start().starts_with('{') {
        return redact_json(text);
    }
    text.to_string()
}

/// `a=1&password=x` → `a=1&password=<redacted>`.
fn redact_form(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret(k) => format!("{k}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Redact the string (or scalar) value after every `"name":` whose name looks secret. A token
/// scan rather than a parse, so a cut-off excerpt is redacted too.
fn redact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let (string, after) = split_string(&rest[start..]);
        out.push_str(string);
        rest = after;
        let trimmed = rest.trim_start();
        let is_key = trimmed.starts_with(':');
        if !(is_key && secret(string.trim_matches('"'))) {
            continue;
        }
        // Keep `:` and spaces, replace the value.
        let colon = rest.len() - trimmed.len();
        out.push_str(&rest[..=colon]);
        let value = &rest[colon + 1..];
        let value_start = value.len() - value.trim_start().len();
        out.push_str(&value[..value_start]);
        let value = &value[value_start..];
        let end = if value.starts_with('"') {
            split_string(value).0.len()
        } else {
            value.find([',', '}', ']', '\n']).unwrap_or(value.len())
        };
        out.push('"');
        out.push_str(REDACTED);
        out.push('"');
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// Split a JSON string literal (starting at `"`) off the front: (literal with quotes, rest).
fn split_string(s: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return s.split_at(i + 1),
            _ => escaped = false,
        }
    }
    (s, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_with_credentials_are_redacted() {
        assert_eq!(
            redact(
                "user=ann&password=hunter2&x=1",
                Some("application/x-www-form-urlencoded")
            ),
            "user=ann&password=<redacted>&x=1"
        );
    }

    #[test]
    fn json_values_of_secret_keys_are_redacted_even_when_cut_off() {
        let body =
            r#"{"user": "ann", "client_secret": "s3\"cr", "n": 1, "apiKey": 42, "token": "abc"#;
        let out = redact(body, Some("application/json"));
        assert_eq!(
            out,
            r#"{"user": "ann", "client_secret": "<redacted>", "n": 1, "apiKey": "<redacted>", "token": "<redacted>""#
        );
    }

    #[test]
    fn other_bodies_are_kept() {
        assert_eq!(redact("password=x", Some("text/plain")), "password=x");
    }
}
