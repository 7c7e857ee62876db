//! Starting a session: the one path of `POST /v3/sessions` and of a schedule's fire. The agent is
//! pinned into `spec.agentSnapshot`, the credential resolved in the documented order, `key` and
//! `Idempotency-Key` make it get-or-create, and the input is seq 1. The store row is written
//! before the `Session` object, which is forgotten again when the object cannot be created.

use axum::http::StatusCode;
use kube::ResourceExt;
use sealpod_resources::agent::{
    DEFAULT_IDLE_TIMEOUT_SECONDS, MANAGED_CREDENTIAL, model_provider, prompt_hash,
};
use sealpod_resources::ids::{Id, IdKind, object_name_to_id};
use sealpod_resources::runtime_api::Actor;
use sealpod_resources::session::{AgentSnapshot, DesiredState, SessionInput};
use sealpod_resources::{Session, SessionSpec};
use serde_json::Value;

use crate::AppState;
use crate::dto::{ValidSession, check_model};
use crate::error::{ApiError, ApiResult};
use crate::revisions;
use crate::routes::agents::find_agent;
use crate::session_input::{effective_limits, resolve_credential, snapshot_of};
use crate::store::outbox::NewDestination;
use crate::store::{CreateOutcome, NewSession, SessionRow};

/// A session to start.
pub(crate) struct Start {
    /// The tenant namespace.
    pub namespace: String,
    /// The request, checked as far as it can be without lookups.
    pub session: ValidSession,
    /// The input as the `user.message` body, and its refs (`session_input::input_to_body`).
    pub input: (Value, Value),
    /// SHA-256 of the request: a `key` or `Idempotency-Key` replay must carry the same.
    pub fingerprint: String,
    /// The `Idempotency-Key` header.
    pub idempotency: Option<String>,
    /// Who sent the input.
    pub actor: Actor,
    /// Webhook destinations registered before the first input.
    pub destinations: Vec<NewDestination>,
}

/// Starts the session, or finds the one its `key` or idempotency key started: `201` and the new
/// row, or `200` and the row of the earlier start.
pub(crate) async fn start_session(
    state: &AppState,
    start: Start,
) -> ApiResult<(StatusCode, SessionRow)> {
    let Start {
        namespace: ns,
        session: parsed,
        input: (body, refs),
        fingerprint,
        idempotency,
        actor,
        destinations,
    } = start;
    let agent = find_agent(state, &ns, &parsed.agent).await?;
    let pinned = match &parsed.revision {
        None => revisions::active(state, &agent).await?,
        Some(r) => {
            let rev = match r {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match revisions::find(state, &agent, &rev).await {
                Err(ApiError::NotFound(_)) => {
                    return Err(ApiError::invalid(
                        "revision",
                        "the agent has no such revision (a number or `rev_…` id)",
                    ));
                }
                other => other?,
            }
        }
    };
    let revision = pinned.spec.number;
    let model = match &parsed.model {
        Some(m) => {
            check_model(m)?;
            if model_provider(m) != model_provider(&pinned.spec.model) {
                return Err(ApiError::invalid(
                    "model",
                    "a model override must keep the agent's provider",
                ));
            }
            m.clone()
        }
        None => pinned.spec.model.clone(),
    };
    let credential = resolve_credential(state, &ns, &agent, &model).await?;
    let credential_id = if credential == MANAGED_CREDENTIAL {
        credential.clone()
    } else {
        object_name_to_id(&credential).map_err(ApiError::internal)?
    };
    let hash = prompt_hash(&pinned.spec.prompt);
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
        snapshot: snapshot_of(&pinned.spec.prompt, &model, &agent.spec.runtime, revision),
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
        actor,
        body,
        refs,
        turn_id: None,
        client_id: None,
    };
    let started = match state
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
                        prompt: pinned.spec.prompt.clone(),
                        prompt_hash: hash.clone(),
                        revision: Some(revision),
                        skills: pinned.spec.skills.clone(),
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
            let created = match state.cluster().create_session(&ns, &session).await {
                Ok(created) => created,
                Err(e) => {
                    let _ = state.store().forget_session(&row.id).await;
                    return Err(e.into());
                }
            };
            if let Some(uid) = created.uid() {
                state.store().record_object_uid(&row.id, &uid).await?;
            }
            state.sync().mark(&ns, &row.id);
            (StatusCode::CREATED, row)
        }
    };
    Ok(started)
}
