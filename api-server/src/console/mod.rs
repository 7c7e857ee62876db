//! The web console, served under `/console/` by the public listener (same origin as `/v3`): its
//! embedded files ([`assets`]), the cookie sign-in ([`session`]), and `/console/api/v3/…`, which is
//! the `/v3` API itself for the signed-in operator (each call is handed to the `/v3` router with
//! the sign-in's tenant attached, as if made with its org key; see `auth::ConsoleGrant`).
//!
//! Every console answer carries a strict Content-Security-Policy (scripts, styles and calls from
//! this origin only; no inline script or style, no framing), `X-Frame-Options: DENY`, `nosniff`
//! and `no-referrer`; the `/v3` CORS headers are not added (the console is never called from
//! another origin). The end-user view (`/console/s/{session}`) is the same page: it calls `/v3`
//! with the client token from its address's fragment and never touches the cookie.

pub mod assets;
pub mod session;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use tower::ServiceExt as _;

use crate::AppState;
use crate::auth::ConsoleGrant;
use crate::error::ApiError;

/// The console's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Where the console's `/v3` mirror starts.
const API_V3: &str = "/console/api/v3/";

/// The console's routes. `v3` is the `/v3` router its API calls are handed to.
pub(crate) fn router(v3: Router) -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/api/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route(
            "/console/api/v3/{*rest}",
            any(move |state: State<AppState>, request: Request| {
                forward(state, v3.clone(), request)
            }),
        )
        .route(
            "/console/api/{*rest}",
            any(|| async { ApiError::NotFound("route") }),
        )
        .route("/console/", get(page))
        .route("/console/{*path}", get(file))
        .layer(axum::middleware::map_response(secure))
}

/// The console page (every path of the page's own routing gets it).
async fn page(headers: HeaderMap) -> Response {
    assets::serve(assets::INDEX, &headers)
        .unwrap_or_else(|| ApiError::NotFound("route").into_response())
}

/// `/console/assets/…` is a file; any other path is the page.
async fn file(uri: Uri, headers: HeaderMap) -> Response {
    match uri.path().strip_prefix("/console/") {
        Some(path) if path.starts_with("assets/") => assets::serve(path, &headers)
            .unwrap_or_else(|| ApiError::NotFound("file").into_response()),
        _ => page(headers).await,
    }
}

/// Hands a console API call to the `/v3` router: the sign-in authenticates it (and its CSRF token
/// any state-changing one); the cookie and any other credential leave the request, and the
/// sign-in's tenant is attached instead.
async fn forward(State(state): State<AppState>, v3: Router, mut request: Request) -> Response {
    let operator = match session::authorize(&state, request.method(), request.headers()).await {
        Ok(operator) => operator,
        Err(e) => return e.into_response(),
    };
    let Some(uri) = v3_uri(request.uri()) else {
        return ApiError::NotFound("route").into_response();
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    for name in [header::COOKIE, header::AUTHORIZATION] {
        headers.remove(name);
    }
    headers.remove("x-api-key");
    // Nothing of the console route's own matching goes along (its path parameters would be read
    // as the `/v3` route's): the grant is the one extension.
    let extensions = request.extensions_mut();
    extensions.clear();
    extensions.insert(ConsoleGrant {
        namespace: operator.namespace().to_owned(),
    });
    match v3.oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    }
}

/// `/console/api/v3/X?Q` → `/v3/X?Q`.
fn v3_uri(uri: &Uri) -> Option<Uri> {
    let rest = uri.path_and_query()?.as_str().strip_prefix(API_V3)?;
    format!("/v3/{rest}").parse().ok()
}

/// Adds the console's security headers to every answer.
async fn secure(mut response: Response) -> Response {
    const HEADERS: [(HeaderName, &str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Answers of the API and the page are never cached (the files are revalidated by ETag).
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_map_onto_v3() {
        let map = |s: &str| v3_uri(&s.parse().expect("a URI")).map(|u| u.to_string());
        assert_eq!(
            map("/console/api/v3/sessions?limit=5").as_deref(),
            Some("/v3/sessions?limit=5")
        );
        assert_eq!(
            map("/console/api/v3/sessions/ses_1/events").as_deref(),
            Some("/v3/sessions/ses_1/events")
        );
        assert_eq!(map("/console/api/session"), None);
    }
}
