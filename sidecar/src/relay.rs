//! The response path both the plain forwarder ([`crate::server`]) and the interceptor
//! ([`crate::intercept`]) share: a response is streamed back to the client, and one from a
//! credential host has its real keys redacted (headers and body) or is refused when it cannot be.
//! It must never relay a real key, an upstream reason phrase, or a body it cannot read.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::metrics::DenyReason;
use crate::proxy::Proxy;
use crate::redact::{self, Redacting};
use crate::respond::{self, Failure, ProxyBody};
use crate::target::Target;
use crate::tripwire;

/// Largest request head buffered from a client (bounded, unlike hyper's ~400 KiB default).
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// The redaction needles (real value → sealed token) of the given credentials.
pub(crate) fn needles(proxy: &Proxy, credentials: &[usize]) -> Vec<redact::Needle> {
    credentials
        .iter()
        .filter_map(|&i| proxy.credentials.get(i))
        .filter_map(|c| {
            c.value()
                .ok()
                .map(|v| redact::Needle::new(v.expose(), c.sealed()))
        })
        .collect()
}

/// A response from a credential host: where it came from and the keys to redact from it.
#[derive(Debug)]
pub(crate) struct Bound<'a> {
    /// The credential host.
    pub target: &'a Target,
    /// The request's method (for the event of a refusal).
    pub method: &'a str,
    /// Real value → sealed token, for every credential of the host.
    pub needles: Vec<redact::Needle>,
}

/// Streams an upstream response back to the client. A response from a credential host (`bound`)
/// has its real keys redacted, or is refused (`502 encoded_response`) when its body is not plain
/// bytes the redactor can read.
pub(crate) fn relay_response(
    proxy: &Proxy,
    response: Response<Incoming>,
    bound: Option<Bound<'_>>,
) -> Result<Response<ProxyBody>, Failure> {
    let (mut parts, body) = response.into_parts();
    // hyper's client keeps a non-standard reason phrase (`200 <anything upstream wrote>`) in the
    // extensions, and hyper's server writes it back out. Dropping them makes the status line the
    // code and its standard phrase (`<none>` for an unregistered code), so nothing but the code
    // reaches the sandbox from upstream's status line. Nothing else in them is meant for the
    // client either.
    parts.extensions = http::Extensions::new();
    let Some(Bound {
        target,
        method,
        needles,
    }) = bound
    else {
        respond::strip_hop_by_hop(&mut parts.headers);
        return Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed(),
        ));
    };
    // Checked before the hop-by-hop headers go: `Transfer-Encoding` is one of them. The request
    // asked for `identity`; a host that compresses anyway gets its body dropped unread (a key in
    // it would pass the redactor), never relayed.
    if !redact::is_plain(&parts.headers) {
        tracing::warn!(
            host = %tripwire::scrub(target.host()),
            port = target.port(),
            status = parts.status.as_u16(),
            "credential host answered with a content coding that cannot be redacted; refused"
        );
        proxy.refuse(
            DenyReason::EncodedResponse,
            target.host(),
            target.port(),
            method,
        );
        return Err(Failure::Deny(DenyReason::EncodedResponse));
    }
    respond::strip_hop_by_hop(&mut parts.headers);
    let n = redact::redact_headers(&mut parts.headers, &needles);
    if n > 0 {
        proxy
            .metrics
            .redactions
            .fetch_add(n as u64, Ordering::Relaxed);
    }
    // Redaction can change the length; hyper re-frames the body (chunked) for the client.
    let bodiless =
        parts.status == StatusCode::NO_CONTENT || parts.status == StatusCode::NOT_MODIFIED;
    if !bodiless {
        parts.headers.remove(http::header::CONTENT_LENGTH);
    }
    let body = Redacting::new(body, needles, Arc::clone(&proxy.metrics));
    Ok(Response::from_parts(
        parts,
        body.map_err(Into::into).boxed(),
    ))
}
