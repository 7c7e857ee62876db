//! CORS for the public API (API.md §1: any origin is reflected; callers authenticate with bearer
//! tokens, never cookies, so no credentials are allowed). Every header value is a constant: a
//! request costs a method check and, when it names an origin, one header copy.
//!
//! Any `OPTIONS` request is a preflight, answered here with `200` and an empty body before routing
//! or authentication; every other response gets the reflected origin (when the request has one),
//! the exposed headers and `Vary`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;

/// What the answer depends on besides the URL (appended to any `Vary` the response has).
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET,POST,PATCH,PUT,DELETE,OPTIONS");
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("authorization,content-type,idempotency-key,last-event-id,x-api-key");
/// Seconds a browser may keep a preflight's answer.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
/// The response headers a page's script may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("x-request-id");

/// The answer to a preflight (`None`: the request is not one).
pub(crate) fn preflight(method: &Method, headers: &HeaderMap) -> Option<Response> {
    if method != Method::OPTIONS {
        return None;
    }
    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    reflect(origin(headers), out);
    out.insert(header::VARY, VARY);
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
    out.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    Some(response)
}

/// The origin of a request (kept before the request is handed on), for [`decorate`].
pub(crate) fn origin(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(header::ORIGIN).cloned()
}

/// Adds the CORS headers to the response of an ordinary request from `origin`.
pub(crate) fn decorate(origin: Option<HeaderValue>, response: &mut Response) {
    let out = response.headers_mut();
    reflect(origin, out);
    out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    out.append(header::VARY, VARY);
}

/// Any origin is allowed: the request's own is the answer.
fn reflect(origin: Option<HeaderValue>, out: &mut HeaderMap) {
    if let Some(origin) = origin {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
}
