//! `/v3/agents/{id}/deployments`: deploy an agent's behaviour inline (prompt, model, skill
//! files), activating the new revision (default) or staging it; `GET` the deployments, newest
//! first, or one. And `/v3/agents/{id}/skills`: the active revision's skills (`GET`), replaced
//! from a `.zip` (`PUT`) or removed (`DELETE`), each a deployment of a new active revision.
//!
//! A deployment is stored `pending` before its work (its `Idempotency-Key` claimed), then
//! `ready` or `failed`. A request whose behaviour is refused (a bad model, an unsafe skill file)
//! is recorded `failed` with the error, and activates nothing: a deployment answers `201` with
//! it, a skills upload `400 invalid` naming the problem. A malformed request is refused
//! without a record. GitHub deploys are a hosted integration (`422 integration_not_supported`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use kube::ResourceExt;
use sealpod_resources::Agent;
use sealpod_resources::agent::check_model_runtime;
use sealpod_resources::ids::{Id, IdKind};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{PageQuery, check_model, check_prompt};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query, cursor, idempotency_key, json_value, page_limit};
use crate::revisions::{self, Behaviour, Skills};
use crate::routes::agents::find_agent;
use crate::routes::integrations::not_supported;
use crate::skills::{Bundle, InlineFile};
use crate::store::{Begun, DeploymentOutcome, NewDeployment};
use crate::translate::{deployment_to_wire, skills_to_wire};
use crate::wire::{self, DeploymentEnvelope, Page};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/agents/{id}/deployments", get(list).post(create))
        .route("/v3/agents/{id}/deployments/{deployment}", get(get_one))
        .route(
            "/v3/agents/{id}/skills",
            get(get_skills).put(put_skills).delete(delete_skills),
        )
}

/// Body of `POST /v3/agents/{id}/deployments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDeployment {
    input: Value,
    #[serde(default)]
    activate: Option<bool>,
    #[serde(default)]
    client_context: Option<Value>,
}

/// `input` of type `inline` (the SDK's `InlineDeployInput`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InlineInput {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    skills: Option<Vec<InlineFile>>,
    #[serde(default)]
    runtime: Option<RuntimeInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeInput {
    #[serde(default, rename = "type")]
    type_: Option<String>,
}

/// What a deployment asks for, once its request parsed.
enum Work {
    /// An inline behaviour (checked when the deployment runs).
    Inline(InlineInput),
    /// A `.zip` of skills (checked when the deployment runs).
    Zip(axum::body::Bytes),
    /// No skills any more.
    RemoveSkills,
}

impl Work {
    fn input_type(&self) -> &'static str {
        match self {
            Work::Inline(_) => "inline",
            Work::Zip(_) => "zip",
            Work::RemoveSkills => "remove",
        }
    }
}

/// The behaviour a deployment makes a revision of, or why it is refused (`400 invalid`).
async fn behaviour(state: &AppState, agent: &Agent, work: Work) -> ApiResult<Behaviour> {
    let active = revisions::active(state, agent).await?;
    let keep = |prompt: Option<String>, model: Option<String>| {
        (
            prompt.unwrap_or_else(|| active.spec.prompt.clone()),
            model.unwrap_or_else(|| active.spec.model.clone()),
        )
    };
    let (prompt, model, skills) = match work {
        Work::Inline(input) => {
            if let Some(kind) = input.runtime.and_then(|r| r.type_)
                && kind != "default"
            {
                return Err(ApiError::invalid(
                    "input.runtime.type",
                    "only the agent's own runtime (`default`) can be deployed",
                ));
            }
            let skills = match input.skills {
                None => Skills::Remove,
                Some(files) => Skills::Set(
                    Bundle::from_inline(files).map_err(|m| ApiError::invalid("input.skills", m))?,
                ),
            };
            let (prompt, model) = keep(input.prompt, input.model);
            (prompt, model, skills)
        }
        Work::Zip(bytes) => {
            let bundle = Bundle::from_zip(&bytes).map_err(|m| ApiError::invalid("skills", m))?;
            let (prompt, model) = keep(None, None);
            (prompt, model, Skills::Set(bundle))
        }
        Work::RemoveSkills => {
            let (prompt, model) = keep(None, None);
            (prompt, model, Skills::Remove)
        }
    };
    check_prompt(&prompt)?;
    check_model(&model)?;
    check_model_runtime(&model, &agent.spec.runtime).map_err(|m| ApiError::invalid("model", m))?;
    Ok(Behaviour {
        prompt,
        model,
        skills,
    })
}

/// How a deployment was asked for.
struct Asked<'a> {
    /// What identifies the request: a replay of its idempotency key must send the same.
    body: &'a Value,
    /// The `Idempotency-Key` header.
    idempotency: Option<String>,
    /// Whether to activate the new revision.
    activate: bool,
    /// Whether a refused behaviour is answered as `400 invalid` (a skills upload) rather than
    /// as the failed deployment (`POST …/deployments`).
    refusal_is_error: bool,
}

impl<'a> Asked<'a> {
    /// A skills upload or removal: activated, a refusal answered `400`, no idempotency key.
    fn upload(body: &'a Value) -> Asked<'a> {
        Asked {
            body,
            idempotency: None,
            activate: true,
            refusal_is_error: true,
        }
    }
}

/// Runs a deployment of `agent`: records it, makes (and activates) its revision, records the
/// outcome, and answers it as the agent is after (whether its revision is active): `true` for a
/// new deployment, `false` for the earlier one its key named.
async fn deploy(
    state: &AppState,
    agent: Agent,
    work: Work,
    asked: Asked<'_>,
) -> ApiResult<(wire::Deployment, bool)> {
    let ns = agent.namespace().unwrap_or_default();
    let Asked {
        body,
        idempotency,
        activate,
        refusal_is_error,
    } = asked;
    let retriable = idempotency.is_some();
    let hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&(work.input_type(), body)).map_err(ApiError::internal)?,
    ));
    let begun = state
        .store()
        .begin_deployment(NewDeployment {
            id: Id::generate(IdKind::Deployment).to_string(),
            namespace: ns.clone(),
            agent: agent.name_any(),
            idempotency_key: idempotency,
            request_hash: hash.clone(),
            input_type: work.input_type().to_owned(),
            activate,
            client_context: body.get("client_context").cloned().unwrap_or(Value::Null),
        })
        .await?;
    let row = match begun {
        Begun::Existing(row) if row.request_hash != hash => {
            return Err(ApiError::conflict(
                "idempotency_conflict",
                "the idempotency key was used with a different request",
            ));
        }
        Begun::Existing(row) => return Ok((deployment_to_wire(&agent, row), false)),
        Begun::Started(row) => row,
    };
    let reason = match work {
        Work::Inline(_) => "deploy",
        Work::Zip(_) | Work::RemoveSkills => "skills",
    };
    let made = match behaviour(state, &agent, work).await {
        Ok(behaviour) => {
            let activation = activate.then_some(reason);
            revisions::deploy(state, agent.clone(), behaviour, Some(&row.id), activation).await
        }
        Err(refused) => Err(refused),
    };
    let failed = |kind: &str, message: String, class| DeploymentOutcome::Failed {
        error: json!({"type": kind, "message": message}),
        class,
    };
    let (agent, outcome, answer) = match made {
        Ok((after, revision)) => {
            let ready = DeploymentOutcome::Ready {
                revision: revision.spec.number,
                activated: activate,
            };
            (after, ready, Ok(()))
        }
        Err(refused @ ApiError::Invalid { .. }) => {
            let outcome = failed(refused.kind(), refused.to_string(), "validation");
            let answer = if refusal_is_error {
                Err(refused)
            } else {
                Ok(())
            };
            (agent, outcome, answer)
        }
        // With a key, a retry takes the deployment over.
        Err(other) if retriable => return Err(other),
        // Without one none can: it failed (a revision it made, if any, stays as it was left).
        Err(other) => (
            agent,
            failed("internal", "internal error".to_owned(), "internal"),
            Err(other),
        ),
    };
    state.store().finish_deployment(&row.id, &outcome).await?;
    answer?;
    let row = state
        .store()
        .get_deployment(&ns, &agent.name_any(), &row.id)
        .await?
        .ok_or_else(|| ApiError::internal("deployment vanished"))?;
    Ok((deployment_to_wire(&agent, row), true))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<DeploymentEnvelope>)> {
    let ns = caller.org()?.to_owned();
    let agent = find_agent(&state, &ns, &id).await?;
    let request: CreateDeployment = json_value(body.clone())?;
    let work = match request.input.get("type").and_then(Value::as_str) {
        Some("inline") => Work::Inline(json_value(request.input)?),
        Some("github") => return Err(not_supported("GitHub deploys")),
        _ => {
            return Err(ApiError::invalid(
                "input.type",
                "input.type must be `inline` (or `github`, a hosted integration)",
            ));
        }
    };
    if request
        .client_context
        .as_ref()
        .is_some_and(|c| !c.is_object() && !c.is_null())
    {
        return Err(ApiError::invalid(
            "client_context",
            "client_context must be an object",
        ));
    }
    let activate = request.activate.unwrap_or(true);
    let asked = Asked {
        body: &body,
        idempotency: idempotency_key(&headers)?,
        activate,
        refusal_is_error: false,
    };
    let (deployment, new) = deploy(&state, agent, work, asked).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(DeploymentEnvelope { deployment })))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<wire::Deployment>>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    let limit = page_limit(q.limit.as_deref(), 50, 200)?;
    let offset = cursor(q.cursor.as_deref())?.unwrap_or(0);
    let mut rows = state
        .store()
        .list_deployments(ns, &agent.name_any(), offset, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|r| deployment_to_wire(&agent, r))
            .collect(),
        next_cursor: more.then(|| (offset + limit).to_string()),
    }))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, deployment)): Path<(String, String)>,
) -> ApiResult<Json<wire::Deployment>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    let row = state
        .store()
        .get_deployment(ns, &agent.name_any(), &deployment)
        .await?
        .ok_or(ApiError::NotFound("deployment"))?;
    Ok(Json(deployment_to_wire(&agent, row)))
}

async fn get_skills(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::AgentSkills>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    let active = revisions::active(&state, &agent).await?;
    Ok(Json(skills_to_wire(&agent, &active)))
}

/// The content types a skills upload may carry.
const ZIP_TYPES: &[&str] = &[
    "application/zip",
    "application/x-zip-compressed",
    "application/octet-stream",
];

async fn put_skills(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<DeploymentEnvelope>> {
    let ns = caller.org()?.to_owned();
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !content_type.is_some_and(|t| ZIP_TYPES.contains(&t.as_str())) {
        return Err(ApiError::invalid(
            "Content-Type",
            "a skills upload is a .zip sent as `application/zip`",
        ));
    }
    let agent = find_agent(&state, &ns, &id).await?;
    // Read one byte past the limit, so a larger upload is refused in the envelope.
    let bytes = axum::body::to_bytes(body, crate::skills::zip::MAX_ZIP_BYTES + 1)
        .await
        .map_err(|_| {
            ApiError::invalid(
                "skills",
                format!(
                    "the zip is larger than {} bytes",
                    crate::skills::zip::MAX_ZIP_BYTES
                ),
            )
        })?;
    let digest = json!(hex::encode(Sha256::digest(&bytes)));
    let (deployment, _) = deploy(&state, agent, Work::Zip(bytes), Asked::upload(&digest)).await?;
    Ok(Json(DeploymentEnvelope { deployment }))
}

async fn delete_skills(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentEnvelope>> {
    let ns = caller.org()?.to_owned();
    let agent = find_agent(&state, &ns, &id).await?;
    let (deployment, _) = deploy(
        &state,
        agent,
        Work::RemoveSkills,
        Asked::upload(&Value::Null),
    )
    .await?;
    Ok(Json(DeploymentEnvelope { deployment }))
}
