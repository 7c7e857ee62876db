//! The one place where failures become responses to the sandbox (the rescue function), plus the
//! body type every handler returns.
//!
//! A response never carries internal detail beyond a short reason, and never a token or key.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::metrics::DenyReason;
use crate::resolve::DialError;

/// Error type of response bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy writes.
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// Header naming why the proxy refused a request.
pub(crate) const DENY_REASON_HEADER: &str = "x-sealpod-deny-reason";

/// Why a request did not go through.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// Refused by policy (403, or 421 for a host mismatch, 400 for a bad request, 502 for a
    /// response that cannot be redacted).
    #[error("refused: {}", .0.as_str())]
    Deny(DenyReason),
    /// The destination could not be dialled.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The credential's value file could not be read.
    #[error("credential value unavailable")]
    CredentialUnavailable,
    /// The upstream failed after the connection was set up.
    #[error("upstream failed: {0}")]
    Upstream(String),
}

/// An empty body.
pub(crate) fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A small text body.
pub(crate) fn text(message: &'static str) -> ProxyBody {
    Full::new(Bytes::from_static(message.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

/// Turns a failure into the response the sandbox sees.
pub(crate) fn rescue(failure: &Failure) -> Response<ProxyBody> {
    let (status, reason, message) = match failure {
        Failure::Deny(DenyReason::HostMismatch) => (
            StatusCode::MISDIRECTED_REQUEST,
            Some(DenyReason::HostMismatch),
            "exactly one Host header, naming the same host as the request URI, SNI and CONNECT target\n",
        ),
        Failure::Deny(DenyReason::BadRequest) => (
            StatusCode::BAD_REQUEST,
            Some(DenyReason::BadRequest),
            "not a proxy request (use CONNECT or an absolute http:// URI)\n",
        ),
        Failure::Deny(DenyReason::NotAllowlisted) => (
            StatusCode::FORBIDDEN,
            Some(DenyReason::NotAllowlisted),
            "destination is not on the egress allowlist\n",
        ),
        Failure::Deny(DenyReason::TokenMisuse) => (
            StatusCode::FORBIDDEN,
            Some(DenyReason::TokenMisuse),
            "a sealed token may only be sent to its own hosts\n",
        ),
        Failure::Deny(DenyReason::EncodedResponse) => (
            StatusCode::BAD_GATEWAY,
            Some(DenyReason::EncodedResponse),
            "the credential host answered with a content coding the proxy cannot check for keys\n",
        ),
        Failure::Deny(DenyReason::NoTurn) => (
            StatusCode::FORBIDDEN,
            Some(DenyReason::NoTurn),
            "no turn of this session is running; the credential is usable only during a turn\n",
        ),
        Failure::Deny(DenyReason::DeadlineExceeded) => (
            StatusCode::FORBIDDEN,
            Some(DenyReason::DeadlineExceeded),
            "the running turn is past the session's limits.turn_seconds\n",
        ),
        Failure::Deny(DenyReason::BudgetExceeded) => (
            StatusCode::TOO_MANY_REQUESTS,
            Some(DenyReason::BudgetExceeded),
            "the session's limits.tokens are spent\n",
        ),
        Failure::Deny(DenyReason::GateUnavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(DenyReason::GateUnavailable),
            "the session's limits cannot be checked right now; try again\n",
        ),
        Failure::Deny(DenyReason::NonPublicAddress) | Failure::Dial(DialError::NonPublic(_)) => (
            StatusCode::FORBIDDEN,
            Some(DenyReason::NonPublicAddress),
            "destination resolves to a non-public address\n",
        ),
        Failure::Dial(DialError::Resolve(_)) => (
            StatusCode::BAD_GATEWAY,
            None,
            "destination name does not resolve\n",
        ),
        Failure::Dial(DialError::Connect(_)) => {
            (StatusCode::BAD_GATEWAY, None, "destination unreachable\n")
        }
        Failure::CredentialUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "credential value unavailable\n",
        ),
        Failure::Upstream(_) => (StatusCode::BAD_GATEWAY, None, "upstream failed\n"),
    };
    let mut response = Response::new(text(message));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    if let Some(reason) = reason {
        headers.insert(
            DENY_REASON_HEADER,
            HeaderValue::from_static(reason.as_str()),
        );
    }
    response
}

/// Headers that describe one hop and must not be forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers (and those named in `Connection`), and `transfer-encoding`, which
/// hyper re-derives for the next hop.
pub(crate) fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<http::HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| http::HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(http::header::TRANSFER_ENCODING);
}
