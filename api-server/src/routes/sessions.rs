//! `/v3/sessions`: create (the agent pinned into `spec.agentSnapshot`, the credential resolved
//! in the documented order, `key` and `Idempotency-Key` get-or-create, the first input as seq 1),
//! list (newest first), get, cancel and archive (both answer the Session). The store row is the
//! read model; the `Session` object is the desired state for the operator.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::ResourceExt;
use sealpod_resources::agent::{
    DEFAULT_IDLE_TIMEOUT_SECONDS, MANAGED_CREDENTIAL, model_provider, prompt_hash,
};
use sealpod_resources::ids::{Id, IdKind, object_name_to_id};
use sealpod_resources::session::{AgentSnapshot, DesiredState, SessionInput};
use sealpod_resources::{Session, SessionSpec};
use serde_json::Value;

use crate::AppState;
use crate::auth::{Caller, DEFAULT_TTL, Scopes, sha256_hex};
use crate::dto::{CreateSession, SessionsQuery, check_model};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query, cursor, idempotency_key, json_value, page_limit, rfc3339};
use crate::routes::agents::find_agent;
use crate::routes::client_tokens::mint_token;
use crate::routes::session_id;
use crate::session_input::{
    effective_limits, human_actor, input_to_body, resolve_credential, snapshot_of,
};
use crate::store::{CreateOutcome, ListSessions, NewSession, SessionRow};
use crate::translate::{agent_revision, name_of, session_to_wire};
use crate::wire::{self, Page, SessionCreated};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list).post(create))
        .route("/sessions/{id}", get(get_one))
        .route("/sessions/{id}/cancel", post(cancel))
        .route("/sessions/{id}/archive", post(archive))
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
    let (body, refs, _) = input_to_body(&parsed.input, "input")?;
    let destinations = crate::routes::destinations::parse_inline(
        &state,
        parsed.webhook.as_ref(),
        parsed.destinations.as_ref(),
    )
    .await?;
    let agent = find_agent(&state, &ns, &parsed.agent).await?;
    let revision = agent_revision(&agent);
    if let Some(r) = &parsed.revision
        && r.as_i64() != Some(revision)
    {
        return Err(ApiError::invalid(
            "revision",
            format!("only the active revision ({revision}) can be pinned"),
        ));
    }
    let model = match &parsed.model {
        Some(m) => {
            check_model(m)?;
            if model_provider(m) != model_provider(&agent.spec.model) {
                return Err(ApiError::invalid(
                    "model",
                    "a model override must keep the agent's provider",
                ));
            }
            m.clone()
        }
        None => agent.spec.model.clone(),
    };
    let credential = resolve_credential(&state, &ns, &agent, &model).await?;
    let credential_id = if credential == MANAGED_CREDENTIAL {
        credential.clone()
    } else {
        object_name_to_id(&credential).map_err(ApiError::internal)?
    };
    let hash = prompt_hash(&agent.spec.prompt);
    let id = Id::generate(IdKind::Session);
    let mut claims = Vec::new();
    if let Some(k) = &parsed.key {
        claims.push((format!("key:{ns}"), k.clone(), fingerprint.clone()));
    }
    if let Some(k) = idempotency {
        claims.push((format!("idem:{ns}"), k, fingerprint.clone()));
    }
    let new = NewSession {
        id: id.to_string(),
        namespace: ns.clone(),
        agent_id: parsed.agent.clone(),
        credential_id: Some(credential_id),
        snapshot: snapshot_of(&agent.spec.prompt, &model, &agent.spec.runtime, revision),
        limits: effective_limits(parsed.limits.as_ref(), agent.spec.limits.as_ref()),
        metadata: parsed.metadata.clone().unwrap_or(Value::Null),
        key: parsed.key.clone(),
        idle_timeout: i64::from(
            agent
                .spec
                .sandbox
                .as_ref()
                .and_then(|s| s.idle_timeout_seconds)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECONDS),
        ),
    };
    let draft = crate::store::Draft {
        type_: "user.message".to_owned(),
        level: sealpod_resources::runtime_api::Level::User,
        actor: human_actor(&caller),
        body,
        refs,
        turn_id: None,
        client_id: None,
    };
    let (status, row) = match state
        .store()
        .create_session_with(new, draft, claims, destinations)
        .await?
    {
        CreateOutcome::Conflict(_) => {
            return Err(ApiError::conflict(
                "idempotency_conflict",
                "create key already used with a different request",
            ));
        }
        CreateOutcome::Replay(row) => (StatusCode::OK, row),
        CreateOutcome::Created(row) => {
            let session = Session::new(
                &id.object_name(),
                SessionSpec {
                    agent_ref: agent.name_any(),
                    agent_snapshot: Some(AgentSnapshot {
                        model: model.clone(),
                        runtime: agent.spec.runtime.clone(),
                        prompt: agent.spec.prompt.clone(),
                        prompt_hash: hash.clone(),
                        revision: Some(revision),
                        limits: agent.spec.limits.clone(),
                        egress: agent.spec.egress.clone(),
                        credential: credential.clone(),
                    }),
                    input: Some(SessionInput {
                        text: match &parsed.input {
                            Value::String(s) => Some(s.clone()),
                            _ => None,
                        },
                        envelope: parsed.input.is_object().then(|| parsed.input.clone()),
                    }),
                    limits: parsed.limits.clone(),
                    metadata: parsed.metadata.clone(),
                    key: parsed.key.clone(),
                    desired_state: DesiredState::Running,
                },
            );
            if let Err(e) = state.cluster().create_session(&ns, &session).await {
                let _ = state.store().forget_session(&row.id).await;
                return Err(e.into());
            }
            state.sync().mark(&ns, &row.id);
            (StatusCode::CREATED, row)
        }
    };
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
            session: session_to_wire(&row),
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
        data: rows.iter().map(session_to_wire).collect(),
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
    Ok(Json(session_to_wire(&row)))
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
    Ok(Json(session_to_wire(&row)))
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
    Ok(Json(session_to_wire(&row)))
}
