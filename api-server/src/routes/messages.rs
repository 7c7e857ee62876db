//! `GET /v3/sessions/{id}/messages` (alias of `level=user` + `type=*.message`; read scope) and
//! `POST …/messages` (steer; steer scope): appends a `user.message`, idempotent per session by
//! `idempotency_key` or `envelope.id` (202 new, 200 replay), wakes a hibernated session, and
//! refuses an archived one with `409 session_archived`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sealpod_resources::ids::IdKind;
use sealpod_resources::runtime_api::Level;
use sealpod_resources::session::DesiredState;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::AppState;
use crate::auth::{Caller, Need, sha256_hex};
use crate::dto::{EventsQuery, Steer};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query, check_idempotency_key, json_value, page_limit};
use crate::routes::events::{after_of, events_page};
use crate::routes::session_id;
use crate::session_input::{human_actor, input_to_body};
use crate::store::{Draft, EventFilter, SteerOutcome};
use crate::translate::name_of;
use crate::wire::{EventRef, Page, SessionHead, Steered};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v3/sessions/{id}/messages", get(list).post(steer))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Page<Box<RawValue>>>> {
    let id = session_id(&id)?;
    let ns = caller.session(&state, &id, Need::Read).await?;
    if crate::adopt::session(&state, &ns, &id).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    let after = after_of(&q)?;
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let filter = EventFilter {
        level: Some(Level::User),
        type_: None,
        turn_id: None,
        messages_only: true,
    };
    Ok(Json(events_page(&state, &id, after, &filter, limit).await?))
}

async fn steer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Value>,
) -> ApiResult<(StatusCode, Json<Steered>)> {
    let id = session_id(&id)?;
    let ns = caller.session(&state, &id, Need::Steer).await?;
    let fingerprint = sha256_hex(&req.to_string());
    let parsed: Steer = json_value(req)?;
    let (body, refs, envelope_id) = match (&parsed.envelope, &parsed.text) {
        (Some(env), _) => input_to_body(env, "envelope")?,
        (None, Some(text)) => input_to_body(&Value::String(text.clone()), "text")?,
        (None, None) => return Err(ApiError::invalid("text", "text or envelope is required")),
    };
    let key = parsed.idempotency_key.clone().or(envelope_id);
    if let Some(k) = &key {
        check_idempotency_key("idempotency_key", k)?;
    }
    let draft = Draft {
        type_: "user.message".to_owned(),
        level: Level::User,
        actor: human_actor(&caller),
        body,
        refs,
        turn_id: None,
        client_id: None,
    };
    // A session applied with kubectl and not yet adopted becomes known before its first steer.
    if crate::adopt::session(&state, &ns, &id).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    let outcome = state
        .store()
        .steer(&ns, &id, draft, key.map(|k| (k, fingerprint)))
        .await?;
    let (status, event, row) = match outcome {
        SteerOutcome::NotFound => return Err(ApiError::NotFound("session")),
        SteerOutcome::Archived => {
            return Err(ApiError::conflict(
                "session_archived",
                "the session is archived; it is read-only",
            ));
        }
        SteerOutcome::Replay(event, row) => (StatusCode::OK, event, row),
        SteerOutcome::Appended(event, row, wake) => {
            if wake && let Some(name) = name_of(&id, IdKind::Session) {
                state
                    .cluster()
                    .set_desired_state(&ns, &name, DesiredState::Running)
                    .await?;
            }
            state.metrics().appended(1);
            state.sync().mark(&ns, &id);
            (StatusCode::ACCEPTED, event, row)
        }
    };
    Ok((
        status,
        Json(Steered {
            event: EventRef {
                id: event.id,
                seq: event.seq,
            },
            session: SessionHead {
                id: row.id,
                status: row.status,
                head: row.head,
            },
        }),
    ))
}
