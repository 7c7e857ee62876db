//! `GET /v3/sessions/{id}/result`, `GET …/turns` (newest first) and `GET …/turns/{turnId}`:
//! org key only.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::PageQuery;
use crate::error::{ApiError, ApiResult};
use crate::input::{Path, Query, cursor, page_limit};
use crate::routes::sessions::org_session;
use crate::translate::turn_to_wire;
use crate::wire::{Page, Turn, TurnResult};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/sessions/{id}/result", get(result))
        .route("/v3/sessions/{id}/turns", get(list))
        .route("/v3/sessions/{id}/turns/{turn_id}", get(one))
}

async fn result(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TurnResult>> {
    let (_, row) = org_session(&state, &caller, &id).await?;
    let last = state
        .store()
        .list_turns(&row.id, None, 1)
        .await?
        .into_iter()
        .next();
    let result = match last.as_ref().and_then(|t| t.result_event_id.as_deref()) {
        Some(evt) => match state.store().get_event(&row.id, evt).await? {
            Some(e) => Some(e.to_raw()?),
            None => None,
        },
        None => None,
    };
    Ok(Json(TurnResult {
        last_turn: last.as_ref().map(turn_to_wire),
        result,
    }))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Turn>>> {
    let (_, row) = org_session(&state, &caller, &id).await?;
    let limit = page_limit(q.limit.as_deref(), 50, 200)?;
    let below = cursor(q.cursor.as_deref())?;
    let turns = state.store().list_turns(&row.id, below, limit).await?;
    let next = (turns.len() as i64 == limit)
        .then(|| turns.last().map(|t| t.number.to_string()))
        .flatten();
    Ok(Json(Page {
        data: turns.iter().map(turn_to_wire).collect(),
        next_cursor: next,
    }))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, turn_id)): Path<(String, String)>,
) -> ApiResult<Json<Turn>> {
    let (_, row) = org_session(&state, &caller, &id).await?;
    let turn = state
        .store()
        .get_turn(&row.id, &turn_id)
        .await?
        .ok_or(ApiError::NotFound("turn"))?;
    Ok(Json(turn_to_wire(&turn)))
}
