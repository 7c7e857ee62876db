//! A session's input and credential as a create and an adoption both settle them: the actor of
//! input sent through `/v3`, an input (a string or an envelope) turned into a `user.message` body,
//! the credential an agent resolves to in the documented order, and the agent snapshot and
//! effective limits a session keeps. The routes and the adoption of kubectl-applied Sessions both
//! use it; it depends on neither.

use kube::ResourceExt;
use sealpod_resources::Agent;
use sealpod_resources::agent::{MANAGED_CREDENTIAL, model_provider, prompt_hash, runtime_provider};
use sealpod_resources::common::Limits;
use sealpod_resources::runtime_api::Actor;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::wire::{WireLimits, WireSnapshot};

/// The actor of input sent through `/v3`.
pub(crate) fn human_actor(caller: &Caller) -> Actor {
    Actor {
        id: match caller {
            Caller::Org { .. } => "user".to_owned(),
            Caller::Client(_) => "client".to_owned(),
        },
        type_: "human".to_owned(),
        display: None,
    }
}

/// Turns an input (a string or an envelope) into a `user.message` body and refs.
pub(crate) fn input_to_body(
    input: &Value,
    param: &str,
) -> ApiResult<(Value, Value, Option<String>)> {
    match input {
        Value::String(text) => Ok((json!({"text": text}), json!({}), None)),
        Value::Object(env) => {
            let text = env
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid(param, format!("{param}.text is required")))?;
            let mut body = json!({"text": text});
            if let Some(raw) = env.get("raw") {
                body["raw"] = raw.clone();
            }
            let mut refs = serde_json::Map::new();
            if let Some(Value::Object(r)) = env.get("refs") {
                refs.extend(r.clone());
            }
            for k in ["source", "conversation"] {
                if let Some(v) = env.get(k) {
                    refs.insert(k.to_owned(), v.clone());
                }
            }
            let id = env.get("id").and_then(Value::as_str).map(str::to_owned);
            Ok((body, Value::Object(refs), id))
        }
        _ => Err(ApiError::invalid(
            param,
            format!("{param} must be a string or an object with `text`"),
        )),
    }
}

/// Resolves the credential a new session pins (API.md §9): `managed` or a Credential name. The
/// provider is the agent runtime's (else the model's); `managed` resolves only when the managed
/// Credential is of that provider.
pub(crate) async fn resolve_credential(
    state: &AppState,
    ns: &str,
    agent: &Agent,
    model: &str,
) -> ApiResult<String> {
    let provider = runtime_provider(&agent.spec.runtime)
        .or_else(|| model_provider(model))
        .unwrap_or("anthropic");
    let managed = || async {
        let Some(name) = &state.settings().managed_credential else {
            return Err(ApiError::unprocessable(
                "managed_unavailable",
                "the managed credential is not available on this cluster; attach a credential to the agent or set a default",
            ));
        };
        let system_ns = state.cluster().system_namespace();
        match state.cluster().get_credential(system_ns, name).await? {
            Some(c) if c.spec.provider != provider => Err(ApiError::unprocessable(
                "no_credential",
                format!(
                    "no `{provider}` credential: attach one to the agent or set a default (the managed credential is for `{}`)",
                    c.spec.provider
                ),
            )),
            // A managed Credential not (yet) present is the operator's to report on the session.
            _ => Ok(MANAGED_CREDENTIAL.to_owned()),
        }
    };
    match agent.spec.credential.as_deref() {
        Some(MANAGED_CREDENTIAL) => return managed().await,
        Some(name) => match state.cluster().get_credential(ns, name).await? {
            Some(c) if c.spec.provider == provider => return Ok(c.name_any()),
            Some(_) => {}
            None => {
                return Err(ApiError::unprocessable(
                    "no_credential",
                    "the agent's credential was deleted; attach another credential",
                ));
            }
        },
        None => {}
    }
    let default = state
        .cluster()
        .list_credentials(ns)
        .await?
        .into_iter()
        .find(|c| c.spec.default && c.spec.provider == provider);
    match default {
        Some(c) => Ok(c.name_any()),
        None if state.settings().managed_credential.is_none() => Err(ApiError::unprocessable(
            "no_credential",
            format!(
                "no `{provider}` credential: attach one to the agent or set a default (managed is not available)"
            ),
        )),
        None => managed().await,
    }
}

/// What a session keeps of its agent at start.
pub(crate) fn snapshot_of(prompt: &str, model: &str, runtime: &str, revision: i64) -> WireSnapshot {
    WireSnapshot {
        prompt_hash: prompt_hash(prompt),
        model: model.to_owned(),
        runtime: runtime.to_owned(),
        revision,
    }
}

/// A session's limits: its own where set, its agent's otherwise.
pub(crate) fn effective_limits(session: Option<&Limits>, agent: Option<&Limits>) -> WireLimits {
    let session = session.cloned().unwrap_or_default();
    WireLimits::from(&session.or(&agent.cloned().unwrap_or_default()))
}
