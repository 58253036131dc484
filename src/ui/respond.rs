//! The web view's responses: every one carries the same security headers (a CSP that forbids
//! inline scripts, no sniffing, no caching, no referrer). Shared by the server's routes and the
//! recordings' routes in `files`.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use std::convert::Infallible;

/// A response body of the web view.
pub(super) type UiBody = BoxBody<Bytes, Infallible>;

/// Every response's policy: scripts and styles only from this server, nothing inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) fn with_headers(mut r: Response<UiBody>, content_type: &str) -> Response<UiBody> {
    let h = r.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

pub(super) fn full(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &str,
) -> Response<UiBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    with_headers(r, content_type)
}

pub(super) fn asset(body: &'static str, content_type: &str) -> Response<UiBody> {
    full(StatusCode::OK, body, content_type)
}

pub(super) fn text(status: StatusCode, body: &str) -> Response<UiBody> {
    full(status, body.to_string(), "text/plain; charset=utf-8")
}

pub(super) fn not_found(why: &str) -> Response<UiBody> {
    text(StatusCode::NOT_FOUND, &format!("{why}\n"))
}

pub(super) fn json(v: &serde_json::Value) -> Response<UiBody> {
    full(
        StatusCode::OK,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

pub(super) fn download(body: String, name: &str) -> Response<UiBody> {
    let mut r = full(StatusCode::OK, body, "application/octet-stream");
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
