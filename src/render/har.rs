//! `mtlscope export --har`: a recording as HAR 1.2, for browsers' and proxies' HAR viewers.
//!
//! One entry per exchange record. HAR has no place for TLS facts, so each entry carries
//! mtlscope's facts and findings under `_mtlscope` (HAR allows custom fields starting with `_`),
//! and connection records (no exchange) go to `_mtlscope_connections` at the log level. Header
//! values are copied as recorded: what the recording redacted stays redacted. Timings come from
//! the recorded `at_ms` values; what was not recorded is -1, or 0 for `send`, `wait` and
//! `receive`, which HAR 1.2 wants non-negative (said so in `timings.comment`).

use crate::facts::{Flow, Leg, RecordKind};
use crate::recording::Record;
use serde_json::{json, Value};
use std::sync::Arc;

/// The HAR document for these records.
pub fn har(records: &[Record]) -> Value {
    let entries: Vec<Value> = records
        .iter()
        .filter(|r| r.flow.kind == RecordKind::Exchange)
        .map(|r| entry(&r.flow, &LegsOut::Full { der: true }))
        .collect();
    let connections: Vec<Value> = records
        .iter()
        .filter(|r| r.flow.kind == RecordKind::Connection)
        .map(|r| serde_json::to_value(&r.flow).unwrap_or(Value::Null))
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "mtlscope", "version": env!("CARGO_PKG_VERSION") },
            "entries": entries,
            "_mtlscope_connections": connections,
        }
    })
}

/// Milliseconds between two recorded instants, or -1 when either is unknown.
fn span(from: Option<f64>, to: Option<f64>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => round3(b - a),
        _ => -1.0,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The absolute URL of the request: as sent when absolute-form, else built from the `host`
/// header, the client's SNI, or the upstream.
fn url(flow: &Flow) -> String {
    let Some(req) = &flow.request else {
        return String::new();
    };
    if req.uri.starts_with("http://") || req.uri.starts_with("https://") {
        return req.uri.clone();
    }
    let host = req
        .headers
        .iter()
        .find(|h| h.name == "host" || h.name == ":authority")
        .map(|h| h.value.clone())
        .or_else(|| flow.client_leg.as_ref().and_then(|l| l.sni.clone()))
        .or_else(|| flow.upstream.clone())
        .unwrap_or_else(|| "unknown".into());
    let scheme = if flow.client_leg.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}{}", req.uri)
}

/// `name=value` pairs of the query string, undecoded (as sent).
fn query(uri: &str) -> Vec<Value> {
    let Some((_, q)) = uri.split_once('?') else {
        return vec![];
    };
    let q = q.split('#').next().unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            json!({ "name": n, "value": v })
        })
        .collect()
}

fn headers(hs: &[crate::facts::Header]) -> Vec<Value> {
    hs.iter()
        .map(|h| json!({ "name": h.name, "value": h.value }))
        .collect()
}

/// How an entry carries its connection's TLS legs.
pub(crate) enum LegsOut {
    /// In full; certificate and CA-name DER (hex) only when `der`.
    Full {
        /// Keep the `*_der` fields.
        der: bool,
    },
    /// As a reference to the entry (position in `log.entries`) that carries the same legs.
    SameAs {
        /// That entry's position.
        entry: u64,
        /// That entry's `exchange_index`.
        exchange_index: Option<u32>,
    },
}

/// One HAR entry for an exchange.
pub(crate) fn entry(flow: &Flow, legs: &LegsOut) -> Value {
    let req = flow.request.clone().unwrap_or_default();
    let resp = flow.response.as_ref();
    let req_at = flow.request.as_ref().map(|r| r.at_ms);
    let resp_at = resp.map(|r| r.at_ms);
    let client_done = flow.client_leg.as_ref().and_then(|l| l.handshake_done_ms);
    // The client's TLS handshake belongs to the first exchange of a connection only.
    let first = flow.exchange_index.unwrap_or(0) == 0;
    let ssl = if first {
        span(Some(0.0), client_done)
    } else {
        -1.0
    };
    // HAR 1.2 requires send, wait and receive to be non-negative: what was not recorded is 0.
    let wait = span(req_at, resp_at).max(0.0);
    let timings = json!({
        "blocked": -1,
        "dns": -1,
        // mtlscope counts from the TCP accept, so the client's connect time is the TLS time.
        "connect": ssl,
        "ssl": ssl,
        "send": 0,
        "wait": wait,
        "receive": 0,
        "comment": "from mtlscope's at_ms (ms since it accepted the connection): ssl = client \
                    handshake; wait = request head received to response head; send and receive \
                    are not recorded (0, as HAR 1.2 wants them non-negative); -1 = not recorded",
    });
    let time = round3([ssl, wait].iter().filter(|v| **v >= 0.0).sum::<f64>());
    let started = flow.started_at + time::Duration::seconds_f64(req_at.unwrap_or(0.0) / 1000.0);
    let started = started
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mime = resp
        .and_then(|r| r.headers.iter().find(|h| h.name == "content-type"))
        .map(|h| h.value.clone())
        .unwrap_or_default();
    let mut content = json!({ "size": -1, "mimeType": mime });
    if let Some(body) = resp.and_then(|r| r.body_excerpt.as_ref()) {
        content["size"] = json!(body.len());
        content["text"] = json!(body);
        content["comment"] = json!(
            "body excerpt: the first bytes of an error response as mtlscope recorded them \
             (lossily decoded), not necessarily the whole body"
        );
        content["_mtlscope_excerpt"] = json!(true);
    }
    let status = resp.map(|r| r.status).unwrap_or(0);
    let status_text = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let server_ip = flow
        .upstream_leg
        .as_ref()
        .and_then(|l| l.peer.as_deref())
        .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_string());
    let mut e = json!({
        "startedDateTime": started,
        "time": time,
        "request": {
            "method": req.method,
            "url": url(flow),
            "httpVersion": req.version,
            "cookies": [],
            "headers": headers(&req.headers),
            "queryString": query(&req.uri),
            "headersSize": -1,
            "bodySize": -1,
        },
        "response": {
            "status": status,
            "statusText": status_text,
            "httpVersion": req.version,
            "cookies": [],
            "headers": resp.map(|r| headers(&r.headers)).unwrap_or_default(),
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": timings,
        "connection": flow.connection_id.to_string(),
        "_mtlscope": mtlscope_fields(flow, legs),
    });
    if let Some(ip) = server_ip {
        e["serverIPAddress"] = json!(ip);
    }
    e
}

/// mtlscope's facts and findings for one exchange.
fn mtlscope_fields(flow: &Flow, legs: &LegsOut) -> Value {
    let mut v = json!({
        "schema": flow.schema,
        "mode": flow.mode,
        "connection_id": flow.connection_id,
        "exchange_index": flow.exchange_index,
        "client_addr": flow.client_addr,
        "upstream": flow.upstream,
        "response_source": flow.response.as_ref().map(|r| r.source),
        "timings_ms": {
            "request_at": flow.request.as_ref().map(|r| r.at_ms),
            "forwarded_at": flow.request.as_ref().and_then(|r| r.forwarded_at_ms),
            "response_at": flow.response.as_ref().map(|r| r.at_ms),
            "client_handshake_done": flow.client_leg.as_ref().and_then(|l| l.handshake_done_ms),
            "upstream_handshake_done": flow.upstream_leg.as_ref().and_then(|l| l.handshake_done_ms),
        },
        "wire": flow.wire,
        "faults": flow.faults,
        "error": flow.error,
        "findings": flow.findings,
    });
    match legs {
        LegsOut::Full { der } => {
            v["client_leg"] = leg_value(flow.client_leg.as_ref(), *der);
            v["upstream_leg"] = leg_value(flow.upstream_leg.as_ref(), *der);
            if !der {
                strip_der(&mut v["wire"]);
            }
        }
        LegsOut::SameAs {
            entry,
            exchange_index,
        } => {
            v["legs_same_as"] = json!({ "entry": entry, "exchange_index": exchange_index });
            if let Some(ip) = flow.upstream_leg.as_ref().and_then(|l| l.peer.clone()) {
                v["upstream_peer"] = json!(ip);
            }
        }
    }
    v
}

/// A leg as JSON, without its DER unless asked.
fn leg_value(leg: Option<&Arc<Leg>>, der: bool) -> Value {
    let mut v = serde_json::to_value(leg).unwrap_or(Value::Null);
    if !der {
        strip_der(&mut v);
    }
    v
}

/// Remove every `*_der` field (certificate names and CA names as DER hex): they repeat, in
/// bulk, what the readable fields beside them say.
pub(crate) fn strip_der(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.ends_with("_der"));
            map.values_mut().for_each(strip_der);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_der),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::test_support::*;
    use crate::facts::Header;
    use std::path::PathBuf;

    fn rec(flow: Flow) -> Record {
        Record {
            file: PathBuf::from("r"),
            line: 1,
            index: 1,
            flow: flow.into(),
            diagnosed_on_read: false,
        }
    }

    #[test]
    fn entries_connections_and_redaction() {
        let mut ok = success();
        if let Some(r) = ok.request.as_mut() {
            r.uri = "/secure?a=1&b".into();
            r.headers = vec![
                Header {
                    name: "host".into(),
                    value: "server.test".into(),
                },
                Header {
                    name: "authorization".into(),
                    value: "<redacted>".into(),
                },
            ];
        }
        let bad = success_builder()
            .response(403, "denied <b>", &[("content-type", "text/plain")])
            .build();
        let conn = FlowBuilder::reverse().connection().build();
        let v = har(&[rec(ok), rec(bad), rec(conn)]);
        let entries = v["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(v["log"]["version"], "1.2");
        assert_eq!(v["log"]["creator"]["name"], "mtlscope");
        assert_eq!(
            v["log"]["_mtlscope_connections"].as_array().unwrap().len(),
            1
        );
        let e0 = &entries[0];
        assert_eq!(e0["request"]["url"], "https://server.test/secure?a=1&b");
        assert_eq!(e0["request"]["queryString"][1]["name"], "b");
        assert_eq!(e0["request"]["headers"][1]["value"], "<redacted>");
        assert_eq!(e0["response"]["status"], 200);
        assert_eq!(e0["_mtlscope"]["upstream_leg"]["tls_version"], "TLSv1.3");
        let e1 = &entries[1];
        assert_eq!(e1["response"]["statusText"], "Forbidden");
        assert_eq!(e1["response"]["content"]["text"], "denied <b>");
        assert_eq!(e1["response"]["content"]["_mtlscope_excerpt"], true);
        assert_eq!(e1["timings"]["send"], 0);
        assert_eq!(e1["timings"]["receive"], 0);
        assert!(e1["_mtlscope"]["findings"].is_array());
    }
}
