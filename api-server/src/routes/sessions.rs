//! `/v3/sessions`: create (`start::start_session`), list (newest first), get, cancel and archive
//! (both answer the Session). The store row is the read model; the `Session` object is the
//! desired state for the operator.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use sealpod_resources::ids::IdKind;
use sealpod_resources::session::DesiredState;
use serde_json::Value;

use crate::AppState;
use crate::auth::{Caller, DEFAULT_TTL, Scopes, sha256_hex};
use crate::dto::{CreateSession, SessionsQuery};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query, cursor, idempotency_key, json_value, page_limit, rfc3339};
use crate::routes::client_tokens::mint_token;
use crate::routes::session_id;
use crate::session_input::{human_actor, input_to_body};
use crate::start::{Start, start_session};
use crate::store::{ListSessions, SessionRow};
use crate::translate::{name_of, session_to_wire};
use crate::wire::{self, Page, SessionCreated};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/sessions", get(list).post(create))
        .route("/v3/sessions/{id}", get(get_one))
        .route("/v3/sessions/{id}/cancel", post(cancel))
        .route("/v3/sessions/{id}/archive", post(archive))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(req): Body<Value>,
) -> ApiResult<(StatusCode, Json<SessionCreated>)> {
    let ns = caller.org()?.to_owned();
    let fingerprint = sha256_hex(&req.to_string());
    let parsed = json_value::<CreateSession>(req)?.validate()?;
    let idempotency = idempotency_key(&headers)?;
    let input = input_to_body(&parsed.input, "input")?;
    let destinations = crate::routes::destinations::parse_inline(
        &state,
        parsed.webhook.as_ref(),
        parsed.destinations.as_ref(),
    )
    .await?;
    let (status, row) = start_session(
        &state,
        Start {
            namespace: ns.clone(),
            session: parsed,
            input: (input.0, input.1),
            fingerprint,
            idempotency,
            actor: human_actor(&caller),
            destinations,
        },
    )
    .await?;
    let token = mint_token(
        &state,
        &ns,
        &row.id,
        Scopes {
            read: true,
            steer: true,
        },
        DEFAULT_TTL,
    );
    Ok((
        status,
        Json(SessionCreated {
            session: session_to_wire(row),
            client_token: token.token,
            sources: Vec::new(),
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SessionsQuery>,
) -> ApiResult<Json<Page<wire::Session>>> {
    let ns = caller.org()?;
    let limit = page_limit(q.limit.as_deref(), 50, 200)?;
    let below_n = cursor(q.cursor.as_deref())?;
    let rows = state
        .store()
        .list_sessions(
            ns,
            &ListSessions {
                agent: q.agent.clone(),
                status: q.status.clone(),
                key: q.key.clone(),
                after: rfc3339("after", q.after.as_deref())?,
                before: rfc3339("before", q.before.as_deref())?,
                below_n,
                limit,
            },
        )
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.n.to_string()))
        .flatten();
    Ok(Json(Page {
        data: rows.into_iter().map(session_to_wire).collect(),
        next_cursor: next,
    }))
}

/// A session of the caller's tenant (org key only).
pub(crate) async fn org_session(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(String, SessionRow)> {
    let ns = caller.org()?.to_owned();
    let id = session_id(id)?;
    let row = crate::adopt::session(state, &ns, &id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    Ok((ns, row))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Session>> {
    let (_, row) = org_session(&state, &caller, &id).await?;
    Ok(Json(session_to_wire(row)))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Session>> {
    let (ns, _) = org_session(&state, &caller, &id).await?;
    let row = state
        .store()
        .cancel(&ns, &id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    Ok(Json(session_to_wire(row)))
}

async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Session>> {
    let (ns, _) = org_session(&state, &caller, &id).await?;
    let row = state
        .store()
        .archive(&ns, &id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    let name = name_of(&id, IdKind::Session).ok_or(ApiError::NotFound("session"))?;
    state
        .cluster()
        .set_desired_state(&ns, &name, DesiredState::Archived)
        .await?;
    state.sync().mark(&ns, &id);
    Ok(Json(session_to_wire(row)))
}
