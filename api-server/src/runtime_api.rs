//! The runtime API (its own listener, default port 8081; contract in `docs/runtime-api.md`, wire
//! types in `sealpod_resources::runtime_api`): claim the next turn's input (long-poll), append
//! event batches (idempotent by `client_id`), complete turns, long-poll cancel signals, the
//! sidecar's egress-event sink and egress gate (see [`crate::limits`]), and token revocation. A
//! runtime token reaches only its own session and scope; unknown, forged or revoked tokens get
//! 401, the wrong scope 403.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sealpod_resources::ids::object_name_to_id;
use sealpod_resources::runtime_api::{
    Actor, AppendRequest, AppendResponse, AppendedEvent, ClaimRequest, CompleteTurnRequest,
    EGRESS_EVENT_TYPES, EgressEventBatch, EgressGate, EgressGateRequest, Level, MAX_APPEND_BATCH,
    MAX_WAIT_SECONDS, NewEvent, SessionInfo, Signal,
};
use sealpod_resources::runtime_token::Scope;
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query};
use crate::store::{AppendError, SessionRow};
use crate::translate::turn_to_wire;
use crate::wire::{Accepted, Revoked, Turn};

/// The routes (under `/runtime/v1`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/session", get(session))
        .route("/claim", post(claim))
        .route("/events", post(append))
        .route("/turns/{turn_id}/complete", post(complete))
        .route("/turns/{turn_id}/signal", get(signal))
        .route("/egress-events", post(egress))
        .route("/egress-gate", post(egress_gate))
        .route("/revoke", post(revoke))
}

/// A verified runtime caller.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeCaller {
    scope: Scope,
    namespace: String,
    session: String,
    /// The Session object the token was minted for (`None`: an older token, any object).
    object_uid: Option<String>,
}

impl FromRequestParts<AppState> for RuntimeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized("missing runtime token"))?;
        let claims = state
            .runtime_key()
            .verify(token.trim())
            .map_err(|_| ApiError::Unauthorized("invalid runtime token"))?;
        let session = object_name_to_id(&claims.session)
            .map_err(|_| ApiError::Unauthorized("invalid runtime token"))?;
        let standing = state
            .store()
            .runtime_token_standing(&claims.namespace, &session, claims.object_uid.as_deref())
            .await?;
        if standing.revoked {
            return Err(ApiError::Unauthorized("runtime token revoked"));
        }
        // A token of another Session object than the row's reaches the session only when its
        // object is the current one (applied again under the same name, not yet seen by the
        // watch: adopted now, retiring the old row); the token of a deleted object reaches
        // nothing, on every route.
        if let (Some(mine), Some(recorded)) = (&claims.object_uid, &standing.recorded_uid)
            && mine != recorded
        {
            let current = crate::adopt::current(state, &claims.namespace, &session).await?;
            if current.is_none_or(|row| row.object_uid.as_ref() != Some(mine)) {
                return Err(ApiError::Unauthorized(
                    "runtime token of a deleted Session object",
                ));
            }
        }
        Ok(RuntimeCaller {
            scope: claims.scope,
            namespace: claims.namespace,
            session,
            object_uid: claims.object_uid,
        })
    }
}

impl RuntimeCaller {
    fn runtime(&self) -> ApiResult<()> {
        if self.scope == Scope::Runtime {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this route needs the runtime token"))
        }
    }

    fn proxy(&self) -> ApiResult<()> {
        if self.scope == Scope::Proxy {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this route needs the sidecar's token"))
        }
    }

    /// The caller's session; a Session applied with kubectl is adopted here on first contact.
    async fn row(&self, state: &AppState) -> ApiResult<SessionRow> {
        crate::adopt::session(state, &self.namespace, &self.session)
            .await?
            .ok_or(ApiError::NotFound("session"))
    }
}

async fn session(
    State(state): State<AppState>,
    caller: RuntimeCaller,
) -> ApiResult<Json<SessionInfo>> {
    caller.runtime()?;
    let row = caller.row(&state).await?;
    let name = sealpod_resources::ids::id_to_object_name(&row.id).map_err(ApiError::internal)?;
    let object = state
        .cluster()
        .get_session_object(&caller.namespace, &name)
        .await?;
    let snapshot = object.as_ref().and_then(|s| s.spec.agent_snapshot.clone());
    Ok(Json(SessionInfo {
        id: row.id.clone(),
        namespace: row.namespace.clone(),
        status: row.status.as_str().to_owned(),
        head: row.head,
        model: row.snapshot.model.clone(),
        runtime: row.snapshot.runtime.clone(),
        prompt: snapshot.map(|s| s.prompt).unwrap_or_default(),
        limits: row.limits.into(),
        // No usage yet is zero usage: no turn has completed.
        usage: row.usage.unwrap_or_default(),
        turns_started: u32::try_from(row.turns_started).unwrap_or(u32::MAX),
    }))
}

async fn claim(
    State(state): State<AppState>,
    caller: RuntimeCaller,
    Body(req): Body<ClaimRequest>,
) -> ApiResult<Response> {
    caller.runtime()?;
    // Adopts a Session applied with kubectl whose row the watch has not written yet.
    caller.row(&state).await?;
    if req.wait_seconds > MAX_WAIT_SECONDS {
        return Err(ApiError::invalid(
            "wait_seconds",
            "wait_seconds must be 0-60",
        ));
    }
    let tail = state.store().hub().tail(&caller.session);
    let mut seen = tail.watch_seq();
    let mut shutdown = state.shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(req.wait_seconds));
    loop {
        seen.borrow_and_update();
        if let Some(turn) = state
            .store()
            .claim(&caller.namespace, &caller.session)
            .await?
        {
            state.metrics().appended(1);
            state.sync().mark(&caller.namespace, &caller.session);
            if crate::limits::end_if_past_max_turns(
                &state,
                &caller.namespace,
                &caller.session,
                &turn,
            )
            .await?
            {
                continue;
            }
            return Ok(Json(turn).into_response());
        }
        let _waiting = state.metrics().long_poll();
        tokio::select! {
            _ = seen.changed() => {}
            // Another replica's append wakes us only through the hub; poll as a backstop.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            _ = shutdown.changed() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

fn check_events(events: &[NewEvent]) -> ApiResult<()> {
    if events.len() > MAX_APPEND_BATCH {
        return Err(ApiError::invalid("events", "at most 500 events per append"));
    }
    for e in events {
        if e.client_id.is_empty() || e.client_id.len() > 128 {
            return Err(ApiError::invalid(
                "client_id",
                "client_id must be 1-128 characters",
            ));
        }
        if e.type_.starts_with("turn.") {
            return Err(ApiError::invalid(
                "type",
                "turn.* events are appended by the server",
            ));
        }
        if e.type_.is_empty() || e.type_.len() > 128 {
            return Err(ApiError::invalid("type", "type must be 1-128 characters"));
        }
        if e.refs.as_ref().is_some_and(|r| !r.is_object()) {
            return Err(ApiError::invalid("refs", "refs must be an object"));
        }
    }
    Ok(())
}

fn append_error(e: AppendError) -> ApiError {
    match e {
        AppendError::TurnCanceled(t) => {
            ApiError::conflict("turn_canceled", format!("turn {t} was canceled"))
        }
        AppendError::Archived => ApiError::conflict("session_archived", "the session is archived"),
        AppendError::NotFound => ApiError::NotFound("session"),
        AppendError::Store(s) => s.into(),
    }
}

async fn append(
    State(state): State<AppState>,
    caller: RuntimeCaller,
    Body(req): Body<AppendRequest>,
) -> ApiResult<Json<AppendResponse>> {
    caller.runtime()?;
    check_events(&req.events)?;
    let events: Vec<(NewEvent, Actor)> = req
        .events
        .into_iter()
        .map(|e| (e, Actor::agent()))
        .collect();
    let stored = state
        .store()
        .append_runtime(&caller.namespace, &caller.session, events)
        .await
        .map_err(append_error)?;
    state.metrics().appended(stored.len());
    state.sync().mark(&caller.namespace, &caller.session);
    Ok(Json(AppendResponse {
        events: stored
            .into_iter()
            .map(|e| AppendedEvent {
                client_id: e.client_id.unwrap_or_default(),
                id: e.id,
                seq: e.seq,
            })
            .collect(),
    }))
}

async fn complete(
    State(state): State<AppState>,
    caller: RuntimeCaller,
    Path(turn_id): Path<String>,
    Body(req): Body<CompleteTurnRequest>,
) -> ApiResult<Json<Turn>> {
    caller.runtime()?;
    let turn = state
        .store()
        .complete_turn(&caller.namespace, &caller.session, &turn_id, &req)
        .await?
        .ok_or(ApiError::NotFound("turn"))?;
    state.sync().mark(&caller.namespace, &caller.session);
    Ok(Json(turn_to_wire(&turn)))
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait_seconds: Option<String>,
}

async fn signal(
    State(state): State<AppState>,
    caller: RuntimeCaller,
    Path(turn_id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<Signal>> {
    caller.runtime()?;
    let wait = match q.wait_seconds.as_deref() {
        None | Some("") => Some(0),
        Some(w) => w.parse::<u32>().ok(),
    };
    let Some(wait) = wait.filter(|w| *w <= MAX_WAIT_SECONDS) else {
        return Err(ApiError::invalid(
            "wait_seconds",
            "wait_seconds must be 0-60",
        ));
    };
    if state
        .store()
        .get_turn(&caller.session, &turn_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("turn"));
    }
    let tail = state.store().hub().tail(&caller.session);
    let mut ctl = tail.watch_ctl();
    let mut shutdown = state.shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    loop {
        ctl.borrow_and_update();
        if state
            .store()
            .turn_cancelled(&caller.session, &turn_id)
            .await?
        {
            return Ok(Json(Signal { cancel: true }));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Json(Signal { cancel: false }));
        }
        let _waiting = state.metrics().long_poll();
        tokio::select! {
            _ = ctl.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => return Ok(Json(Signal { cancel: false })),
        }
    }
}

async fn egress(
    State(state): State<AppState>,
    caller: RuntimeCaller,
    Body(req): Body<EgressEventBatch>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    caller.proxy()?;
    if req.events.len() > MAX_APPEND_BATCH {
        return Err(ApiError::invalid("events", "at most 500 events per batch"));
    }
    let mut events = Vec::with_capacity(req.events.len());
    for e in req.events {
        if !EGRESS_EVENT_TYPES.contains(&e.type_.as_str()) {
            return Err(ApiError::invalid(
                "type",
                "type must be egress.allowed, egress.denied, egress.token_misuse or egress.request",
            ));
        }
        let mut body = e.body;
        if let Value::Object(m) = &mut body {
            m.insert("decided_at".to_owned(), Value::from(e.ts));
        }
        events.push((
            NewEvent {
                client_id: format!("egress-{}", sealpod_resources::secret::random_hex(12)),
                type_: e.type_,
                level: Level::Internal,
                body,
                turn_id: None,
                refs: None,
            },
            Actor::system(),
        ));
    }
    let n = events.len();
    state
        .store()
        .append_runtime(&caller.namespace, &caller.session, events)
        .await
        .map_err(append_error)?;
    state.metrics().appended(n);
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: n })))
}

async fn egress_gate(
    State(state): State<AppState>,
    caller: RuntimeCaller,
    Body(req): Body<EgressGateRequest>,
) -> ApiResult<Json<EgressGate>> {
    caller.proxy()?;
    let gate = crate::limits::gate(
        &state,
        &caller.namespace,
        &caller.session,
        req.metered_tokens,
    )
    .await?;
    Ok(Json(gate))
}

async fn revoke(State(state): State<AppState>, caller: RuntimeCaller) -> ApiResult<Json<Revoked>> {
    state
        .store()
        .revoke_runtime_tokens(
            &caller.namespace,
            &caller.session,
            caller.object_uid.as_deref(),
        )
        .await?;
    Ok(Json(Revoked { revoked: true }))
}
