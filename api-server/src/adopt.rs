//! Adoption of `Session` objects the store does not know: sessions applied with `kubectl`
//! (`examples/session.yaml`) rather than created through `POST /v3/sessions`. The store row is
//! written from the object exactly as a create would write it (agent from `spec.agentRef`, the
//! input as the `user.message` of seq 1, metadata, key, limits, the snapshot the operator pinned
//! or the agent's current spec, the agent's idle timeout), after which the session is like any
//! other: listed, readable, steerable, claimable by the runtime, hibernated and archived.
//!
//! Adoption runs from a watch over Session objects of the served namespaces (which also adopts,
//! at start, whatever was applied while the server was down) and on demand when a read, a steer
//! or a runtime claim misses the store, so nothing waits on the watch.
//!
//! Each row records the uid of its object (the API's create once the object exists; adoption
//! with the row; the watch for rows written before). An object whose uid is not the one its row
//! recorded was deleted and applied again under the same name: a new session. The old row is
//! retired ([`crate::store::Store::retire_session`]: archived, with its history, under an id of
//! its own) and the new object adopted as above.
//!
//! Race-freedom: the API's own create writes its row before it creates the object, so an object
//! the API created is always known by the time anyone can see it; and the row is inserted with
//! `ON CONFLICT DO NOTHING`, the input appended only by the insert that took, so two adopters
//! (the watch and a request, or two replicas) never write a second first input.
//!
//! This module never adopts outside the served namespaces (never the system namespace), never
//! writes to the object (its status conditions belong to the operator, which already reports an
//! unknown agent as `Degraded`), and never logs input, metadata or anything secret.

use futures::StreamExt as _;
use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};
use sealpod_resources::agent::{DEFAULT_IDLE_TIMEOUT_SECONDS, MANAGED_CREDENTIAL};
use sealpod_resources::ids::{Id, IdKind, id_to_object_name, object_name_to_id};
use sealpod_resources::revision::active_number;
use sealpod_resources::runtime_api::{Actor, Level};
use sealpod_resources::session::{DesiredState, Phase};
use sealpod_resources::{Agent, Session};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::session_input::{effective_limits, input_to_body, resolve_credential, snapshot_of};
use crate::store::{AdoptedSession, Draft, NewSession, SessionRow};

/// Why an object is not adopted. The watch logs it as a warning naming the session; the
/// object stays as it is and is looked at again on its next change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The namespace is not one this server serves.
    #[error("namespace `{0}` is not served by this API server")]
    NotServed(String),
    /// The object's name is not a session id's (`ses-…`).
    #[error("object name `{0}` is not a session id (`ses-…`)")]
    NotAnId(String),
    /// The object is being deleted.
    #[error("the session is being deleted")]
    Deleting,
    /// `spec.agentRef` does not name an agent by id (`agt-…`).
    #[error("spec.agentRef `{0}` is not an agent id (`agt-…`)")]
    AgentRef(String),
    /// The agent does not exist and no snapshot is pinned.
    #[error("agent `{0}` not found")]
    UnknownAgent(String),
    /// `spec.input` cannot become a `user.message`.
    #[error("spec.input: {0}")]
    Input(String),
    /// Session ids are unique across namespaces: another namespace holds this one.
    #[error("session id `{0}` is already used in another namespace")]
    IdTaken(String),
}

/// What adoption of one object did.
#[derive(Debug)]
pub enum Adoption {
    /// The store knew the session already (created through the API, or adopted before).
    Known(SessionRow),
    /// The row was written now.
    Adopted(SessionRow),
    /// Not adopted; says why.
    Refused(Refusal),
}

/// True when `ns` is a namespace this server serves: one of `--watch-namespaces` (every one
/// when that list is empty), never the system namespace.
pub fn serves(state: &AppState, ns: &str) -> bool {
    served(
        &state.settings().watch_namespaces,
        state.cluster().system_namespace(),
        ns,
    )
}

fn served(listed: &[String], system: &str, ns: &str) -> bool {
    ns != system && !ns.is_empty() && (listed.is_empty() || listed.iter().any(|n| n == ns))
}

/// The session `id` of `ns`, adopting its object on a store miss. `None`: no such session (no
/// object either, or the object cannot be adopted; the reason is logged).
pub async fn session(state: &AppState, ns: &str, id: &str) -> ApiResult<Option<SessionRow>> {
    if let Some(row) = state.store().get_session(ns, id).await? {
        return Ok(Some(row));
    }
    if !serves(state, ns) {
        return Ok(None);
    }
    current(state, ns, id).await
}

/// The session `id` of `ns` as of its current object: adopted (retiring the row of an earlier
/// object of the same name) when the object is not the row's. `None`: no such session.
pub async fn current(state: &AppState, ns: &str, id: &str) -> ApiResult<Option<SessionRow>> {
    let Ok(name) = id_to_object_name(id) else {
        return Ok(None);
    };
    let Some(object) = state.cluster().get_session_object(ns, &name).await? else {
        return Ok(None);
    };
    Ok(match adopt(state, &object).await? {
        Adoption::Known(row) | Adoption::Adopted(row) => Some(row),
        Adoption::Refused(_) => None,
    })
}

/// Adopts one object: writes its store row unless the store knows it already.
pub async fn adopt(state: &AppState, object: &Session) -> ApiResult<Adoption> {
    let ns = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let outcome = adopt_inner(state, &ns, &name, object).await?;
    match &outcome {
        Adoption::Adopted(row) => {
            state.sync().mark(&ns, &row.id);
            state.metrics().adopted();
            tracing::info!(namespace = %ns, session = %row.id, agent = %row.agent_id, "adopted session");
        }
        Adoption::Refused(reason @ Refusal::NotServed(_)) => {
            tracing::debug!(namespace = %ns, object = %name, %reason, "session not adopted");
        }
        Adoption::Refused(reason) => {
            state.metrics().adoption_refused();
            tracing::warn!(namespace = %ns, object = %name, %reason, "session not adopted");
        }
        Adoption::Known(_) => {}
    }
    Ok(outcome)
}

async fn adopt_inner(
    state: &AppState,
    ns: &str,
    name: &str,
    object: &Session,
) -> ApiResult<Adoption> {
    if !serves(state, ns) {
        return Ok(Adoption::Refused(Refusal::NotServed(ns.to_owned())));
    }
    let Ok(id) = Id::from_object_name_kind(name, IdKind::Session) else {
        return Ok(Adoption::Refused(Refusal::NotAnId(name.to_owned())));
    };
    let id = id.to_string();
    let deleting = object.metadata.deletion_timestamp.is_some();
    if let Some(row) = state.store().get_session(ns, &id).await? {
        let uid = object.uid();
        match (&row.object_uid, uid) {
            (Some(recorded), Some(uid)) if *recorded != uid && !deleting => {
                // A late event of a deleted object (the watch may still deliver one after the
                // object that replaced it was adopted) must not retire its successor: only the
                // object that holds the name now replaces the row.
                let holder = state.cluster().get_session_object(ns, name).await?;
                if holder.and_then(|h| h.uid()).as_deref() != Some(uid.as_str()) {
                    return Ok(Adoption::Known(row));
                }
                let retired = state.store().retire_session(ns, &id, recorded).await?;
                if let Some(retired) = retired {
                    state.metrics().retired();
                    tracing::info!(
                        namespace = %ns, session = %id, %retired,
                        "session object replaced: the earlier session's history is archived under its own id"
                    );
                }
            }
            (None, Some(uid)) if !deleting => {
                state.store().record_object_uid(&id, &uid).await?;
                return Ok(Adoption::Known(row));
            }
            _ => return Ok(Adoption::Known(row)),
        }
    }
    if deleting {
        return Ok(Adoption::Refused(Refusal::Deleting));
    }
    let spec = &object.spec;
    let agent_ref = &spec.agent_ref;
    let agent_id = match Id::from_object_name_kind(agent_ref, IdKind::Agent) {
        Ok(a) => a.to_string(),
        Err(_) => return Ok(Adoption::Refused(Refusal::AgentRef(agent_ref.clone()))),
    };
    let agent = state.cluster().get_agent(ns, agent_ref).await?;
    let pinned = spec.agent_snapshot.as_ref();
    // What the session runs: the snapshot the operator (or the API) pinned, else the agent now.
    let (model, runtime, prompt, revision, agent_limits, credential) = match (pinned, &agent) {
        (Some(s), _) => (
            s.model.clone(),
            s.runtime.clone(),
            s.prompt.clone(),
            s.revision.unwrap_or(1),
            s.limits.clone(),
            Some(s.credential.clone()),
        ),
        (None, Some(a)) => {
            let credential = match resolve_credential(state, ns, a, &a.spec.model).await {
                Ok(c) => Some(c),
                // The operator reports an unresolvable credential on the object; the session
                // is still readable and steerable here.
                Err(ApiError::Unprocessable { .. }) => None,
                Err(e) => return Err(e),
            };
            (
                a.spec.model.clone(),
                a.spec.runtime.clone(),
                a.spec.prompt.clone(),
                active_number(a),
                a.spec.limits.clone(),
                credential,
            )
        }
        (None, None) => return Ok(Adoption::Refused(Refusal::UnknownAgent(agent_ref.clone()))),
    };
    let credential_id = match credential.as_deref() {
        None => None,
        Some(MANAGED_CREDENTIAL) => Some(MANAGED_CREDENTIAL.to_owned()),
        Some(c) => object_name_to_id(c).ok(),
    };
    let input = match first_input(object) {
        Ok(i) => i,
        Err(reason) => return Ok(Adoption::Refused(reason)),
    };
    let new = NewSession {
        id: id.clone(),
        namespace: ns.to_owned(),
        agent_id,
        credential_id,
        snapshot: snapshot_of(&prompt, &model, &runtime, revision),
        limits: effective_limits(spec.limits.as_ref(), agent_limits.as_ref()),
        metadata: spec.metadata.clone().unwrap_or(Value::Null),
        key: spec.key.clone(),
        idle_timeout: idle_timeout(agent.as_ref()),
    };
    let status = match (spec.desired_state, &input) {
        (DesiredState::Archived, _) => Phase::Archived,
        (_, Some(_)) => Phase::Queued,
        (_, None) => Phase::Idle,
    };
    let adopted = AdoptedSession {
        new,
        status,
        hibernated: spec.desired_state == DesiredState::Hibernated,
        created_unix: created_unix(object),
        object_uid: object.uid(),
    };
    match state.store().adopt_session(adopted, input).await? {
        Some(row) => Ok(Adoption::Adopted(row)),
        // Someone else wrote the row between our read and our insert (then it is ours to
        // read), or the id belongs to another namespace's session.
        None => Ok(match state.store().get_session(ns, &id).await? {
            Some(row) => Adoption::Known(row),
            None => Adoption::Refused(Refusal::IdTaken(id)),
        }),
    }
}

/// The first input as the `user.message` a create would append, or `None` without input.
fn first_input(object: &Session) -> Result<Option<Draft>, Refusal> {
    let Some(input) = &object.spec.input else {
        return Ok(None);
    };
    let value = match (&input.envelope, &input.text) {
        (Some(envelope), _) => envelope.clone(),
        (None, Some(text)) => Value::String(text.clone()),
        (None, None) => return Ok(None),
    };
    let (body, refs, _) =
        input_to_body(&value, "input").map_err(|e| Refusal::Input(e.to_string()))?;
    Ok(Some(Draft {
        type_: "user.message".to_owned(),
        level: Level::User,
        // Whoever applied the object is a person of the tenant, as an org-key caller is.
        actor: Actor {
            id: "user".to_owned(),
            type_: "human".to_owned(),
            display: None,
        },
        body,
        refs,
        turn_id: None,
        client_id: None,
    }))
}

fn idle_timeout(agent: Option<&Agent>) -> i64 {
    i64::from(
        agent
            .and_then(|a| a.spec.sandbox.as_ref())
            .and_then(|s| s.idle_timeout_seconds)
            .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECONDS),
    )
}

fn created_unix(object: &Session) -> i64 {
    // The timestamp serializes as RFC 3339 whatever its Rust type.
    object
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map_or_else(|| chrono::Utc::now().timestamp(), |t| t.timestamp())
}

/// Watches Session objects of the served namespaces and adopts those the store does not know.
/// The initial list adopts what was applied while the server was down. Runs until shutdown.
pub async fn run(state: AppState) {
    let client = state.cluster().client().clone();
    let apis: Vec<Api<Session>> = if state.settings().watch_namespaces.is_empty() {
        vec![Api::all(client)]
    } else {
        // The system namespace is never served (and the chart grants no Session access there).
        state
            .settings()
            .watch_namespaces
            .iter()
            .filter(|ns| served(&[], state.cluster().system_namespace(), ns))
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let mut shutdown = state.shutdown();
    let streams = apis
        .into_iter()
        .map(|api| watcher(api, watcher::Config::default()).boxed());
    let mut events = futures::stream::select_all(streams);
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = shutdown.changed() => return,
        };
        match event {
            None => return,
            Some(Ok(watcher::Event::InitApply(s) | watcher::Event::Apply(s))) => {
                if let Err(e) = adopt(&state, &s).await {
                    // The next change or relist of the object tries again; a request that
                    // misses adopts on demand meanwhile.
                    tracing::warn!(error = %e, namespace = %s.namespace().unwrap_or_default(),
                        object = %s.name_any(), "cannot adopt session");
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "session watch failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_listed_namespaces_and_never_the_system_one_are_served() {
        let all: Vec<String> = Vec::new();
        assert!(served(&all, "sealpod-system", "team-a"));
        assert!(!served(&all, "sealpod-system", "sealpod-system"));
        assert!(!served(&all, "sealpod-system", ""));
        let listed = vec!["team-a".to_owned(), "sealpod-system".to_owned()];
        assert!(served(&listed, "sealpod-system", "team-a"));
        assert!(!served(&listed, "sealpod-system", "team-b"));
        assert!(!served(&listed, "sealpod-system", "sealpod-system"));
    }

    #[test]
    fn the_first_input_is_the_create_shape() {
        let mut object = Session::new(
            "ses-x",
            serde_json::from_value(json!({"agentRef": "agt-a"})).expect("spec"),
        );
        assert!(matches!(first_input(&object), Ok(None)));
        object.spec.input = serde_json::from_value(json!({"text": "hi"})).expect("input");
        let draft = first_input(&object).expect("input").expect("draft");
        assert_eq!(draft.type_, "user.message");
        assert_eq!(draft.body, json!({"text": "hi"}));
        assert_eq!(draft.actor.type_, "human");
        object.spec.input = serde_json::from_value(
            json!({"envelope": {"text": "env", "source": {"kind": "slack"}}}),
        )
        .expect("input");
        let draft = first_input(&object).expect("input").expect("draft");
        assert_eq!(draft.body, json!({"text": "env"}));
        assert_eq!(draft.refs, json!({"source": {"kind": "slack"}}));
        object.spec.input = serde_json::from_value(json!({"envelope": {"raw": 1}})).expect("input");
        assert!(matches!(first_input(&object), Err(Refusal::Input(_))));
    }
}
