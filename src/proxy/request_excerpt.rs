//! The request body's excerpt: the first [`EXCERPT_BYTES`] of what the client sent, copied as
//! the body streams upstream (never held back), with credential-looking fields redacted, for
//! the record of a failed POST (what mitmproxy users expect to see).
//!
//! The exchange's record waits for the client's body to end ([`Excerpt::emit_when_ended`]):
//! an upstream may answer before it has read the body, and the record still shows what the
//! client sent (see [`super::request_body`]).

use crate::record::{Emitted, Sink};
use std::sync::{Arc, Mutex};

/// The most of a request body kept in the record.
pub const EXCERPT_BYTES: usize = 4096;

/// What stands for a redacted value.
const REDACTED: &str = "<redacted>";

/// The prefix of a request body, filled while the body streams.
#[derive(Clone, Debug, Default)]
pub struct Excerpt {
    /// The copied bytes and the body's progress, shared by the body and the relay.
    shared: Arc<Mutex<Shared>>,
    /// The request's `Content-Type`, to know how to redact.
    content_type: Option<String>,
    /// Redact credential fields (unless `--no-redact`).
    redact: bool,
}

/// The state behind an [`Excerpt`]'s lock.
#[derive(Default)]
struct Shared {
    /// Bytes copied so far (at most [`EXCERPT_BYTES`]).
    bytes: Vec<u8>,
    /// Whether more bytes followed than were kept.
    more: bool,
    /// Whether the client's body has ended: whole, failed, or given up on.
    ended: bool,
    /// The exchange's record, waiting for the body's end to carry its excerpt.
    waiting: Option<(Emitted, Sink)>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("bytes", &self.bytes.len())
            .field("more", &self.more)
            .field("ended", &self.ended)
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
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
        let (bytes, more) = match self.shared.lock() {
            Ok(g) => (g.bytes.clone(), g.more),
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

    /// Copy `data`, as far as the excerpt has room; whether it is full now.
    pub fn copy(&self, data: &[u8]) -> bool {
        let Ok(mut g) = self.shared.lock() else {
            return true;
        };
        let room = EXCERPT_BYTES.saturating_sub(g.bytes.len());
        let n = data.len().min(room);
        g.bytes.extend_from_slice(&data[..n]);
        if n < data.len() {
            g.more = true;
        }
        g.more
    }

    /// Whether the client's body has ended (see [`Excerpt::end`]).
    pub fn has_ended(&self) -> bool {
        self.shared.lock().map_or(true, |g| g.ended)
    }

    /// The client's body has ended (or will not be read further): a record waiting for it is
    /// emitted now, with the excerpt. Idempotent.
    pub fn end(&self) {
        let waiting = match self.shared.lock() {
            Ok(mut g) => {
                g.ended = true;
                g.waiting.take()
            }
            Err(_) => None,
        };
        if let Some((record, sink)) = waiting {
            self.emit(record, &sink);
        }
    }

    /// Emit the exchange's `record` once the client's body has ended (at once if it has),
    /// carrying the excerpt of the whole body.
    pub fn emit_when_ended(&self, record: Emitted, sink: Sink) {
        let ready = match self.shared.lock() {
            Ok(mut g) if !g.ended => {
                g.waiting = Some((record, sink));
                return;
            }
            _ => (record, sink),
        };
        self.emit(ready.0, &ready.1);
    }

    fn emit(&self, mut record: Emitted, sink: &Sink) {
        record.set_request_body_excerpt(self.take());
        sink.emit_detached(record);
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

    fn exchange() -> crate::facts::Flow {
        crate::diagnose::test_support::FlowBuilder::reverse()
            .get("/")
            .build()
    }

    #[test]
    fn a_record_waits_for_the_body_to_end_and_carries_all_of_it() {
        let (sink, mut flows) = Sink::observed();
        let excerpt = Excerpt::new(Some("application/x-www-form-urlencoded"), true);
        excerpt.copy(b"user=ann&");
        excerpt.emit_when_ended(exchange().into(), sink);
        assert!(flows.try_recv().is_err(), "emitted before the body ended");
        excerpt.copy(b"password=hunter2");
        excerpt.end();
        let flow = flows.try_recv().expect("emitted at the body's end");
        let body = flow.request.and_then(|r| r.body_excerpt);
        assert_eq!(body.as_deref(), Some("user=ann&password=<redacted>"));
        excerpt.end();
        assert!(flows.try_recv().is_err(), "emitted twice");
    }

    #[test]
    fn a_record_after_the_body_ended_is_emitted_at_once() {
        let (sink, mut flows) = Sink::observed();
        let excerpt = Excerpt::new(None, false);
        excerpt.end();
        excerpt.emit_when_ended(exchange().into(), sink);
        let flow = flows.try_recv().expect("emitted at once");
        assert_eq!(flow.request.and_then(|r| r.body_excerpt), None);
    }

    #[test]
    fn other_bodies_are_kept() {
        assert_eq!(redact("password=x", Some("text/plain")), "password=x");
    }
}
