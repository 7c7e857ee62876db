//! `/v3/agents`: create (idempotent by name: 201 new, 200 same config, 409 different; an inline
//! `key` creates and attaches a credential; its first revision is made with it), get, list
//! (newest first), and update (a changed prompt or model makes a new active revision, see
//! `crate::revisions`; `key` rotates the attached credential; runtime is immutable). Agents are
//! `Agent` objects named by the id bijection; the wire `name` is `spec.displayName`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use kube::{Resource, ResourceExt};
use sealpod_resources::agent::{MANAGED_CREDENTIAL, check_model_runtime, model_provider};
use sealpod_resources::ids::IdKind;
use sealpod_resources::labels::REVISION_ANNOTATION;
use sealpod_resources::secret::Secret;
use sealpod_resources::{Agent, AgentSpec};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{
    CreateAgent, PageQuery, UpdateAgent, ValidAgent, check_key, check_model, check_prompt,
};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query};
use crate::revisions::{self, Behaviour, Skills};
use crate::routes::credentials::{create_credential, rotate_credential};
use crate::routes::page;
use crate::store::now_rfc3339;
use crate::translate::{UPDATED_AT_ANNOTATION, agent_id_for_name, agent_to_wire, name_of};
use crate::wire::{self, Page};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/agents", get(list).post(create))
        .route("/v3/agents/{id}", get(get_one).patch(update))
}

/// Resolves a `credential` parameter (`managed` or `cred_…`) to a reference (object name).
async fn credential_ref(state: &AppState, ns: &str, value: &str) -> ApiResult<String> {
    if value == MANAGED_CREDENTIAL {
        return Ok(MANAGED_CREDENTIAL.to_owned());
    }
    let name = name_of(value, IdKind::Credential).ok_or_else(|| {
        ApiError::invalid(
            "credential",
            "credential must be `managed` or a `cred_…` id",
        )
    })?;
    if state.cluster().get_credential(ns, &name).await?.is_none() {
        return Err(ApiError::invalid(
            "credential",
            format!("credential {value} does not exist"),
        ));
    }
    Ok(name)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateAgent>,
) -> ApiResult<(StatusCode, Json<wire::Agent>)> {
    let ns = caller.org()?.to_owned();
    let ValidAgent {
        name,
        prompt,
        model,
        runtime,
        key,
        credential,
        limits,
    } = req.validate()?;
    let credential = match &credential {
        Some(c) => Some(credential_ref(&state, &ns, c).await?),
        None => None,
    };
    let object = name_of(&agent_id_for_name(&name), IdKind::Agent)
        .ok_or_else(|| ApiError::internal("agent id"))?;
    let wanted_credential = credential.clone();
    let same = |existing: &Agent| -> bool {
        let s = &existing.spec;
        s.prompt == prompt
            && s.model == model
            && s.runtime == runtime
            && s.limits == limits
            && match (&key, &wanted_credential) {
                (None, _) => s.credential == wanted_credential,
                (Some(_), _) => s
                    .credential
                    .as_deref()
                    .is_some_and(|c| c != MANAGED_CREDENTIAL),
            }
    };
    if let Some(existing) = state.cluster().get_agent(&ns, &object).await? {
        return if same(&existing) {
            Ok((StatusCode::OK, Json(agent_to_wire(&existing))))
        } else {
            Err(ApiError::conflict(
                "conflict",
                format!("an agent named `{name}` exists with a different configuration"),
            ))
        };
    }
    let credential = match &key {
        Some(key) => {
            let provider = model_provider(&model).unwrap_or("anthropic").to_owned();
            let created = create_credential(
                &state,
                &ns,
                &provider,
                &Secret::new(key.clone()),
                Some(name.clone()),
                false,
            )
            .await?;
            Some(created.name_any())
        }
        None => credential,
    };
    let mut agent = Agent::new(
        &object,
        AgentSpec {
            display_name: Some(name.clone()),
            model: model.clone(),
            runtime: runtime.clone(),
            prompt: prompt.clone(),
            credential,
            limits: limits.clone(),
            egress: None,
            sandbox: None,
            warm_pool: None,
        },
    );
    agent.metadata.annotations = Some(BTreeMap::from([
        (REVISION_ANNOTATION.to_owned(), "1".to_owned()),
        (UPDATED_AT_ANNOTATION.to_owned(), now_rfc3339()),
    ]));
    match state.cluster().create_agent(&ns, &agent).await? {
        Some(created) => {
            // Its first revision (the operator would make it too, from the same spec).
            revisions::active(&state, &created).await?;
            Ok((StatusCode::CREATED, Json(agent_to_wire(&created))))
        }
        None => {
            // Created concurrently under the same name: answer as a replay would.
            let existing = state
                .cluster()
                .get_agent(&ns, &object)
                .await?
                .ok_or_else(|| ApiError::internal("agent vanished after a create conflict"))?;
            if same(&existing) {
                Ok((StatusCode::OK, Json(agent_to_wire(&existing))))
            } else {
                Err(ApiError::conflict(
                    "conflict",
                    format!("an agent named `{name}` exists with a different configuration"),
                ))
            }
        }
    }
}

/// Finds an agent of a tenant by id.
pub(crate) async fn find_agent(state: &AppState, ns: &str, id: &str) -> ApiResult<Agent> {
    let name = name_of(id, IdKind::Agent).ok_or(ApiError::NotFound("agent"))?;
    state
        .cluster()
        .get_agent(ns, &name)
        .await?
        .ok_or(ApiError::NotFound("agent"))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Agent>> {
    let ns = caller.org()?;
    Ok(Json(agent_to_wire(&find_agent(&state, ns, &id).await?)))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<wire::Agent>>> {
    let ns = caller.org()?;
    let mut items = state.cluster().list_agents(ns).await?;
    items.sort_by(|a, b| {
        b.meta()
            .creation_timestamp
            .cmp(&a.meta().creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok(Json(page(items.iter().map(agent_to_wire).collect(), &q)?))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<UpdateAgent>,
) -> ApiResult<Json<wire::Agent>> {
    let ns = caller.org()?.to_owned();
    let agent = find_agent(&state, &ns, &id).await?;
    if req.runtime.is_some() {
        return Err(ApiError::invalid("runtime", "runtime is immutable"));
    }
    if let Some(name) = &req.name
        && Some(name) != agent.spec.display_name.as_ref()
    {
        return Err(ApiError::invalid("name", "an agent cannot be renamed"));
    }
    if req.key.is_some() && matches!(req.credential, Some(Some(_))) {
        return Err(ApiError::invalid(
            "credential",
            "key and credential are mutually exclusive",
        ));
    }
    let mut spec = json!({});
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| agent.spec.model.clone());
    if let Some(m) = &req.model {
        check_model(m)?;
        check_model_runtime(m, &agent.spec.runtime).map_err(|e| ApiError::invalid("model", e))?;
    }
    let prompt = req
        .prompt
        .clone()
        .unwrap_or_else(|| agent.spec.prompt.clone());
    check_prompt(&prompt)?;
    let new_revision = prompt != agent.spec.prompt || model != agent.spec.model;
    if let Some(l) = &req.limits {
        spec["limits"] = json!(l.validate()?);
    }
    match &req.credential {
        Some(None) => spec["credential"] = Value::Null,
        Some(Some(c)) => spec["credential"] = json!(credential_ref(&state, &ns, c).await?),
        None => {}
    }
    if let Some(key) = &req.key {
        check_key("key", key)?;
        let key = Secret::new(key.clone());
        let attached = match agent.spec.credential.as_deref() {
            Some(c) if c != MANAGED_CREDENTIAL => state.cluster().get_credential(&ns, c).await?,
            _ => None,
        };
        match attached {
            Some(c) => {
                rotate_credential(&state, &ns, &c, &key).await?;
            }
            None => {
                let provider = model_provider(&model).unwrap_or("anthropic").to_owned();
                let created = create_credential(
                    &state,
                    &ns,
                    &provider,
                    &key,
                    agent.spec.display_name.clone(),
                    false,
                )
                .await?;
                spec["credential"] = json!(created.name_any());
            }
        }
    }
    let patch = json!({
        "metadata": {"annotations": {UPDATED_AT_ANNOTATION: now_rfc3339()}},
        "spec": spec,
    });
    let mut updated = state
        .cluster()
        .patch_agent(&ns, &agent.name_any(), &patch)
        .await?;
    if new_revision {
        // A new revision with the active one's skills, made active (its prompt and model
        // reach the spec with the revision pointer).
        let behaviour = Behaviour {
            prompt,
            model,
            skills: Skills::Keep,
        };
        (updated, _) = revisions::deploy(&state, updated, behaviour, None, Some("update")).await?;
    }
    Ok(Json(agent_to_wire(&updated)))
}
