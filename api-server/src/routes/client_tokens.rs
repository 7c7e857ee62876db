//! `POST /v3/sessions/{id}/client-tokens` (org key only): mints a signed token bound to one
//! session, scopes `read`/`steer` (default both), TTL 60-86400 s (default 3600). The token is
//! returned once and never logged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::{Caller, ClientClaims, DEFAULT_TTL, MAX_TTL, MIN_TTL, Scopes};
use crate::dto::MintToken;
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path};
use crate::routes::session_id;
use crate::wire::ClientToken;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v3/sessions/{id}/client-tokens", post(mint))
}

/// Mints a client token: `{token, scopes, expires_at}`.
pub(crate) fn mint_token(
    state: &AppState,
    namespace: &str,
    session: &str,
    scopes: Scopes,
    ttl: i64,
) -> ClientToken {
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::seconds(ttl);
    let token = state.client_key().mint(&ClientClaims {
        namespace: namespace.to_owned(),
        session: session.to_owned(),
        scopes,
        issued_at: now.timestamp(),
        expires_at: expires.timestamp(),
    });
    ClientToken {
        token: token.expose().to_owned(),
        scopes: scopes.to_list(),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<MintToken>,
) -> ApiResult<(StatusCode, Json<ClientToken>)> {
    let ns = caller.org()?.to_owned();
    let id = session_id(&id)?;
    let row = crate::adopt::session(&state, &ns, &id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    if row.status == sealpod_resources::session::Phase::Archived {
        return Err(ApiError::conflict(
            "session_archived",
            "the session is archived",
        ));
    }
    let scopes = match &req.scopes {
        None => Scopes {
            read: true,
            steer: true,
        },
        Some(list) => {
            let mut s = Scopes {
                read: false,
                steer: false,
            };
            for scope in list {
                match scope.as_str() {
                    "read" => s.read = true,
                    "steer" => s.steer = true,
                    _ => {
                        return Err(ApiError::invalid(
                            "scopes",
                            "scopes must be `read` and/or `steer`",
                        ));
                    }
                }
            }
            if !s.read && !s.steer {
                return Err(ApiError::invalid("scopes", "scopes must not be empty"));
            }
            s
        }
    };
    let ttl = req.ttl.unwrap_or(DEFAULT_TTL);
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(ApiError::invalid("ttl", "ttl must be 60-86400 seconds"));
    }
    Ok((
        StatusCode::CREATED,
        Json(mint_token(&state, &ns, &id, scopes, ttl)),
    ))
}
