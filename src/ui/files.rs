//! The web view's routes over indexed recordings (`mtlscope ui FILE…`): list pages with
//! filters and counts over the whole file, and flow pages, comparisons and downloads read back
//! from the file on demand. Flow numbers are record numbers in the index (1-based).

use super::api;
use super::index::{FileIndex, Query};
use super::respond::{download, json, not_found, text, UiBody};
use http::{Response, StatusCode};

/// Rows per list page, at most.
const MAX_PAGE: usize = 500;

/// `?a=1&b=x` → the value of `key`, percent-decoded.
pub fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(n, _)| *n == key)
        .map(|(_, v)| decode(v))
}

/// Percent-decoding (and `+` as space), lossy on bad escapes.
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The response for `path`, when it is one of the file routes.
pub fn route(ix: &FileIndex, path: &str, query: &str) -> Option<Response<UiBody>> {
    match path {
        "/api/list" => Some(list(ix, query)),
        "/api/diff" => {
            let id = |k: &str| param(query, k).and_then(|v| v.parse::<usize>().ok());
            Some(match (id("a"), id("b")) {
                (Some(a), Some(b)) => match (record(ix, a), record(ix, b)) {
                    (Some(a), Some(b)) => json(&api::compare(&a, &b)),
                    _ => not_found("no such flow in the recording"),
                },
                _ => text(StatusCode::BAD_REQUEST, "expected ?a=ID&b=ID\n"),
            })
        }
        _ => None,
    }
}

/// Flow `id` (1-based) read back from the file.
pub fn record(ix: &FileIndex, id: usize) -> Option<crate::recording::Record> {
    ix.record(id.checked_sub(1)?)
}

/// `/api/list?from=&limit=&finding=&host=&status=&run=`: one page of rows, how many match,
/// and the counts over the whole recording.
fn list(ix: &FileIndex, query: &str) -> Response<UiBody> {
    let nonempty = |k: &str| param(query, k).filter(|v| !v.is_empty());
    let q = Query {
        finding: nonempty("finding"),
        host: nonempty("host"),
        status: nonempty("status"),
        run: nonempty("run"),
        from: param(query, "from")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        limit: param(query, "limit")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100)
            .clamp(1, MAX_PAGE),
    };
    let (ids, matched) = ix.page(&q);
    let rows: Vec<serde_json::Value> = ids
        .into_iter()
        .filter_map(|n| {
            let r = ix.record(n)?;
            serde_json::to_value(api::row(n as u64 + 1, &r)).ok()
        })
        .collect();
    json(&serde_json::json!({
        "total": ix.len(),
        "matched": matched,
        "from": q.from,
        "rows": rows,
        "counts": ix.counts(),
    }))
}

/// `/api/flows/ID[/flow.jsonl|/flow.har|/keylog.txt]` from the file.
pub fn flow_route(
    ix: &FileIndex,
    rest: &str,
    keylog: Option<&std::path::Path>,
) -> Response<UiBody> {
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(r) = id.parse::<usize>().ok().and_then(|id| record(ix, id)) else {
        return not_found("no such flow in the recording");
    };
    let id: u64 = id.parse().unwrap_or(0);
    match what {
        "" => {
            let mut v = api::detail(id, &r);
            v["keylog"] = serde_json::Value::Bool(keylog.is_some());
            json(&v)
        }
        "flow.jsonl" => download(api::jsonl(&r), &format!("flow-{id}.jsonl")),
        "flow.har" => download(api::har_doc(&r), &format!("flow-{id}.har")),
        "keylog.txt" => {
            let Some(path) = keylog else {
                return not_found("mtlscope was started without --keylog");
            };
            match std::fs::read_to_string(path) {
                Ok(all) => download(
                    api::keylog_lines(&all, &api::client_randoms(&r.flow)),
                    &format!("flow-{id}.keylog.txt"),
                ),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot read the key log {}: {e}\n", path.display()),
                ),
            }
        }
        _ => not_found("no such download"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_decoded() {
        assert_eq!(
            param("a=1&host=api%2Eexample.test", "host").as_deref(),
            Some("api.example.test")
        );
        assert_eq!(param("x=a+b%zz", "x").as_deref(), Some("a b%zz"));
        assert_eq!(param("x=%4", "x").as_deref(), Some("%4"));
        assert_eq!(param("x=1", "y"), None);
    }
}
