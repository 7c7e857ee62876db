//! Console sign-in: an operator enters the org API key once and gets a cookie instead. The
//! cookie (`sealpod_console`) holds a random id (`scs_` + 48 hex digits); the store keeps only its
//! SHA-256 with the tenant, the SHA-256 of the key and the expiry (`--console-session-seconds`),
//! so signing out, expiry or deleting the key ends it on every replica. The cookie is `HttpOnly`
//! (no script reads it), `SameSite=Strict`, scoped to `/console`, and `Secure` unless the console
//! is reached on a loopback host (plain-HTTP local mode).
//!
//! Every state-changing call also carries `X-Sealpod-CSRF`: a token derived from the id, handed to
//! the page by the sign-in answers and kept in its memory. A page of another origin can neither
//! read it nor send the header without a preflight this server does not grant, and fetch metadata
//! (`Sec-Fetch-Site`) and `Origin` from another site are refused outright.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::{ORG_KEY_PREFIX, sha256_hex};
use crate::error::{ApiError, ApiResult};
use crate::input::Body;
use crate::store::ConsoleSessionRow;
use crate::store::outbox::now_ms;
use sealpod_resources::secret::{Secret, random_hex};

/// The cookie's name.
pub const COOKIE: &str = "sealpod_console";
/// Prefix of the cookie's value.
pub const COOKIE_PREFIX: &str = "scs_";
/// The header a state-changing console call carries.
pub const CSRF_HEADER: &str = "x-sealpod-csrf";

/// `POST /console/api/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    api_key: Option<String>,
}

/// The answer of the sign-in routes.
#[derive(Debug, Serialize)]
pub(crate) struct SignInState {
    signed_in: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

impl SignInState {
    fn of(operator: &Operator) -> SignInState {
        SignInState {
            signed_in: true,
            namespace: Some(operator.sign_in.namespace.clone()),
            expires_at: chrono::DateTime::from_timestamp_millis(operator.sign_in.expires_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            csrf_token: Some(csrf_token(operator.id.expose())),
        }
    }

    fn signed_out() -> SignInState {
        SignInState {
            signed_in: false,
            namespace: None,
            expires_at: None,
            csrf_token: None,
        }
    }
}

/// A signed-in operator: the cookie's id and its sign-in.
#[derive(Debug)]
pub(crate) struct Operator {
    id: Secret,
    sign_in: ConsoleSessionRow,
}

impl Operator {
    /// The tenant.
    pub(crate) fn namespace(&self) -> &str {
        &self.sign_in.namespace
    }
}

/// The CSRF token of a sign-in: SHA-256 of the id under a label of its own (it reveals nothing
/// of the id, nor of the stored hash, which is the id's plain SHA-256).
fn csrf_token(id: &str) -> String {
    hex::encode(Sha256::digest(
        format!("sealpod console csrf\0{id}").as_bytes(),
    ))
}

/// The cookie's id in the request (the first `sealpod_console` value of the `Cookie` headers).
fn cookie_id(headers: &HeaderMap) -> Option<Secret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| value.starts_with(COOKIE_PREFIX))
        .map(|value| Secret::new(value.to_owned()))
}

/// Refuses a request another site made: by fetch metadata (`Sec-Fetch-Site`, which every current
/// browser sends), or without it by an `Origin` whose host is not the one the request was sent to
/// (a proxy that rewrites `Host` then needs a browser that sends fetch metadata).
fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    const CROSS_SITE: &str = "console calls must come from the console's own pages";
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(ApiError::Forbidden(CROSS_SITE)),
        };
    }
    if let Some(origin) = text("origin") {
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if host.is_none() || host != text("host") {
            return Err(ApiError::Forbidden(CROSS_SITE));
        }
    }
    Ok(())
}

/// Whether the request's `Host` is a loopback name or address (the cookie is then not `Secure`:
/// local mode serves plain HTTP on loopback).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `Set-Cookie` value carrying `value` for `max_age` seconds (0: deleted).
fn set_cookie(headers: &HeaderMap, value: &str, max_age: u64) -> HeaderValue {
    let secure = if loopback_host(headers) {
        ""
    } else {
        "; Secure"
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("the cookie is visible ASCII")
}

/// The signed-in operator of a request (`None`: no cookie, or one that is unknown, expired, or
/// whose org key was deleted).
async fn operator_of(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Operator>> {
    let Some(id) = cookie_id(headers) else {
        return Ok(None);
    };
    let Some(sign_in) = state
        .store()
        .console_session(&sha256_hex(id.expose()), now_ms())
        .await?
    else {
        return Ok(None);
    };
    let key_namespace = state.org_keys().namespace_of_hash(&sign_in.key_hash);
    if key_namespace.as_deref() != Some(&sign_in.namespace) {
        return Ok(None);
    }
    Ok(Some(Operator { id, sign_in }))
}

/// Authenticates a console API call: a live sign-in, from the console's own origin, and for any
/// method but `GET`/`HEAD` the sign-in's CSRF token.
pub(crate) async fn authorize(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Operator> {
    same_origin(headers)?;
    let Some(operator) = operator_of(state, headers).await? else {
        return Err(ApiError::Unauthorized(
            "not signed in to the console, or the sign-in expired or ended: sign in again",
        ));
    };
    if method != Method::GET && method != Method::HEAD {
        let want = Secret::new(csrf_token(operator.id.expose()));
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|sent| want.constant_time_eq(sent)) {
            return Err(ApiError::Forbidden(
                "missing or wrong X-Sealpod-CSRF header: reload the console",
            ));
        }
    }
    Ok(operator)
}

/// `GET /console/api/session`: whether the cookie is a live sign-in (always `200`, so the page
/// asks without an error in the browser's console).
pub(crate) async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<SignInState>> {
    same_origin(&headers)?;
    Ok(Json(match operator_of(&state, &headers).await? {
        Some(operator) => SignInState::of(&operator),
        None => SignInState::signed_out(),
    }))
}

/// `POST /console/api/session`: exchanges an org key for a sign-in cookie.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> ApiResult<Response> {
    same_origin(&headers)?;
    let key = body
        .api_key
        .map(|k| Secret::new(k.trim().to_owned()))
        .filter(|k| !k.expose().is_empty())
        .ok_or_else(|| ApiError::invalid("api_key", "api_key is required"))?;
    let namespace = key
        .expose()
        .starts_with(ORG_KEY_PREFIX)
        .then(|| state.org_keys().namespace_of(key.expose()))
        .flatten()
        .ok_or(ApiError::Unauthorized("unknown API key"))?;
    let lifetime = state.settings().console_session;
    let now = now_ms();
    let operator = Operator {
        id: Secret::new(format!("{COOKIE_PREFIX}{}", random_hex(24))),
        sign_in: ConsoleSessionRow {
            namespace,
            key_hash: sha256_hex(key.expose()),
            expires_ms: now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        },
    };
    state
        .store()
        .create_console_session(&sha256_hex(operator.id.expose()), &operator.sign_in, now)
        .await?;
    tracing::info!(namespace = operator.namespace(), "console sign-in");
    let mut response = (StatusCode::CREATED, Json(SignInState::of(&operator))).into_response();
    let cookie = set_cookie(&headers, operator.id.expose(), lifetime.as_secs());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `DELETE /console/api/session`: signs out (the cookie is refused from now on, wherever it was
/// copied) and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let operator = authorize(&state, &method, &headers).await?;
    state
        .store()
        .delete_console_session(&sha256_hex(operator.id.expose()))
        .await?;
    tracing::info!(namespace = operator.namespace(), "console sign-out");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&headers, "", 0));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; sealpod_console=scs_abc ; b=2")]);
        assert_eq!(
            cookie_id(&h).map(|s| s.expose().to_owned()),
            Some("scs_abc".into())
        );
        assert!(cookie_id(&headers(&[("cookie", "sealpod_console=osb_x")])).is_none());
        assert!(cookie_id(&headers(&[("cookie", "other=scs_abc")])).is_none());
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(
            same_origin(&headers(&[
                ("host", "c.example"),
                ("origin", "https://c.example")
            ]))
            .is_ok()
        );
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        // Fetch metadata decides when present: a proxy may have rewritten `Host`.
        assert!(
            same_origin(&headers(&[
                ("sec-fetch-site", "same-origin"),
                ("host", "api-server:8080"),
                ("origin", "https://c.example")
            ]))
            .is_ok()
        );
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(
            same_origin(&headers(&[
                ("host", "c.example"),
                ("origin", "https://evil.example")
            ]))
            .is_err()
        );
        assert!(
            same_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9")
            ]))
            .is_err()
        );
        assert!(same_origin(&headers(&[("host", "c.example"), ("origin", "null")])).is_err());
    }

    #[test]
    fn the_cookie_is_secure_off_loopback() {
        let on = |host: &'static str| set_cookie(&headers(&[("host", host)]), "scs_x", 60);
        for host in ["127.0.0.1:8080", "localhost", "[::1]:80", "LOCALHOST:1"] {
            assert!(
                !on(host).to_str().expect("ascii").contains("Secure"),
                "{host}"
            );
        }
        let remote = on("console.example.com");
        let text = remote.to_str().expect("ascii");
        assert!(text.contains("; Secure"), "{text}");
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Strict"),
            "{text}"
        );
        assert!(text.contains("Path=/console;"), "{text}");
    }

    #[test]
    fn csrf_tokens_differ_per_sign_in_and_from_the_stored_hash() {
        assert_ne!(csrf_token("scs_a"), csrf_token("scs_b"));
        assert_ne!(csrf_token("scs_a"), sha256_hex("scs_a"));
    }
}
