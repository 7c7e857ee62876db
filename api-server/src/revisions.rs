//! Agent revisions as the API keeps them (`AgentRevision` objects, see
//! `sealpod_resources::revision`): the active revision of an agent (made from its spec when an
//! older agent has none), new revisions from updates, deployments and skills, activation (the
//! Agent's spec and revision annotations move in one write, then the activation is logged on the
//! revision), and the lookup of a revision by number or `rev_…` id.

use kube::ResourceExt;
use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::labels::{
    DEPLOYMENT_LABEL, LAST_ACTIVATION_ANNOTATION, REVISION_ANNOTATION, REVISION_DIGEST_ANNOTATION,
};
use sealpod_resources::revision::{
    Activation, AgentRevisionSpec, LastActivation, SkillBundle, active_number,
    derived_activation_id, next_number, revision_object_name, with_activation,
};
use sealpod_resources::{Agent, AgentRevision};
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::skills::Bundle;
use crate::store::now_rfc3339;
use crate::translate::{UPDATED_AT_ANNOTATION, revision_id_prefix};

/// Who the API's activations are attributed to.
const ACTOR: &str = "api";
/// Tries of a write that loses to a concurrent writer before the request fails with `409`.
const TRIES: usize = 5;

/// What a new revision's skills are.
#[derive(Debug)]
pub(crate) enum Skills {
    /// The active revision's.
    Keep,
    /// None.
    Remove,
    /// This bundle.
    Set(Bundle),
}

/// A new revision's behaviour.
#[derive(Debug)]
pub(crate) struct Behaviour {
    /// The prompt.
    pub prompt: String,
    /// `provider/model`.
    pub model: String,
    /// Its skills.
    pub skills: Skills,
}

/// The agent's active revision, made from its spec when it has none yet (an agent made before
/// revisions, or with kubectl before the operator saw it).
pub(crate) async fn active(state: &AppState, agent: &Agent) -> ApiResult<AgentRevision> {
    let ns = agent.namespace().unwrap_or_default();
    let number = active_number(agent);
    let name = revision_object_name(&agent.name_any(), number);
    if let Some(found) = state.cluster().get_revision(&ns, &name).await? {
        return Ok(found);
    }
    let spec = AgentRevisionSpec::of_spec(agent, number, None, ACTOR);
    let made = match state
        .cluster()
        .create_revision(&ns, &AgentRevision::for_agent(agent, spec))
        .await?
    {
        Some(made) => made,
        None => state
            .cluster()
            .get_revision(&ns, &name)
            .await?
            .ok_or_else(|| ApiError::internal("revision vanished after a create conflict"))?,
    };
    let activation = Activation {
        id: derived_activation_id(&agent.uid().unwrap_or_default(), number),
        from: None,
        actor: Some(ACTOR.to_owned()),
        reason: "create".to_owned(),
        at: now_rfc3339(),
    };
    record(state, made, activation).await
}

/// Makes a revision of `behaviour` (numbered after every revision of the agent), activating it
/// with `reason` when one is given. `deployment` labels it, and finds it again when a resumed
/// deployment made it already. Answers the agent as it is after, and the revision.
pub(crate) async fn deploy(
    state: &AppState,
    agent: Agent,
    behaviour: Behaviour,
    deployment: Option<&str>,
    activate: Option<&'static str>,
) -> ApiResult<(Agent, AgentRevision)> {
    let ns = agent.namespace().unwrap_or_default();
    let skills: Option<SkillBundle> = match behaviour.skills {
        Skills::Keep => active(state, &agent).await?.spec.skills,
        Skills::Remove => None,
        Skills::Set(bundle) if bundle.is_empty() => None,
        Skills::Set(bundle) => {
            let summary = bundle.summary(&agent.name_any());
            state
                .cluster()
                .ensure_config_map(&ns, &bundle.config_map(&agent, &summary))
                .await?;
            Some(summary)
        }
    };
    let mut made = None;
    for _ in 0..TRIES {
        let existing = state
            .cluster()
            .list_revisions(&ns, &agent.name_any())
            .await?;
        if let Some(dep) = deployment
            && let Some(found) = existing
                .iter()
                .find(|r| r.labels().get(DEPLOYMENT_LABEL).map(String::as_str) == Some(dep))
        {
            made = Some(found.clone());
            break;
        }
        let number = next_number(
            existing
                .iter()
                .map(|r| r.spec.number)
                .chain([active_number(&agent)]),
        );
        let spec = AgentRevisionSpec::new(
            &agent.name_any(),
            number,
            &behaviour.prompt,
            &behaviour.model,
            skills.clone(),
            ACTOR,
        );
        let mut object = AgentRevision::for_agent(&agent, spec);
        if let Some(dep) = deployment {
            object
                .labels_mut()
                .insert(DEPLOYMENT_LABEL.to_owned(), dep.to_owned());
        }
        if let Some(created) = state.cluster().create_revision(&ns, &object).await? {
            made = Some(created);
            break;
        }
    }
    let revision = made.ok_or_else(|| {
        ApiError::conflict(
            "conflict",
            "the agent's revisions changed concurrently; retry",
        )
    })?;
    let agent = match activate {
        Some(reason) => activate_revision(state, agent, &revision, reason).await?,
        None => agent,
    };
    Ok((agent, revision))
}

/// Makes `revision` the agent's active one: its spec takes the revision's prompt and model (in
/// the write that moves the pointer, which also notes the activation on the agent), then the
/// activation is logged on the revision (should this server stop first, the operator logs it
/// from the agent's note). Activating the active revision changes nothing and logs nothing.
pub(crate) async fn activate_revision(
    state: &AppState,
    mut agent: Agent,
    revision: &AgentRevision,
    reason: &'static str,
) -> ApiResult<Agent> {
    let ns = agent.namespace().unwrap_or_default();
    let number = revision.spec.number;
    for _ in 0..TRIES {
        let from = active_number(&agent);
        if from == number && revision.matches(&agent.spec) {
            return Ok(agent);
        }
        let activation = Activation {
            id: Id::generate(IdKind::Activation).to_string(),
            from: Some(from),
            actor: Some(ACTOR.to_owned()),
            reason: reason.to_owned(),
            at: now_rfc3339(),
        };
        let last = LastActivation {
            to: number,
            activation: activation.clone(),
        };
        let patch = json!({
            "metadata": {"annotations": {
                REVISION_ANNOTATION: number.to_string(),
                REVISION_DIGEST_ANNOTATION: revision.spec.digest,
                LAST_ACTIVATION_ANNOTATION: last.to_annotation(),
                UPDATED_AT_ANNOTATION: now_rfc3339(),
            }},
            "spec": {"prompt": revision.spec.prompt, "model": revision.spec.model},
        });
        if let Some(updated) = state.cluster().patch_agent_at(&agent, &patch).await? {
            // The revision as read (its log re-read should it have changed since).
            record(state, revision.clone(), activation).await?;
            return Ok(updated);
        }
        agent = state
            .cluster()
            .get_agent(&ns, &agent.name_any())
            .await?
            .ok_or(ApiError::NotFound("agent"))?;
    }
    Err(ApiError::conflict(
        "conflict",
        "the agent changed concurrently; retry",
    ))
}

/// Appends `activation` to `revision`'s log (read, change, write at its resourceVersion).
async fn record(
    state: &AppState,
    mut revision: AgentRevision,
    activation: Activation,
) -> ApiResult<AgentRevision> {
    let ns = revision.namespace().unwrap_or_default();
    for _ in 0..TRIES {
        if revision.has_logged(&activation.id) {
            return Ok(revision);
        }
        let status = with_activation(revision.status.as_ref(), activation.clone());
        if state
            .cluster()
            .write_revision_status(&revision, &status)
            .await?
        {
            revision.status = Some(status);
            return Ok(revision);
        }
        revision = state
            .cluster()
            .get_revision(&ns, &revision.name_any())
            .await?
            .ok_or(ApiError::NotFound("revision"))?;
    }
    Err(ApiError::conflict(
        "conflict",
        "the revision's activation log changed concurrently; retry",
    ))
}

/// A revision of `agent` by number (`3`) or id (`rev_…`); `404` when it has none such.
pub(crate) async fn find(state: &AppState, agent: &Agent, rev: &str) -> ApiResult<AgentRevision> {
    let number = match rev.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => rev
            .strip_prefix(revision_id_prefix(agent).as_str())
            .and_then(|n| n.parse::<i64>().ok()),
    }
    .filter(|n| *n >= 1)
    .ok_or(ApiError::NotFound("revision"))?;
    if number == active_number(agent) {
        return active(state, agent).await;
    }
    state
        .cluster()
        .get_revision(
            &agent.namespace().unwrap_or_default(),
            &revision_object_name(&agent.name_any(), number),
        )
        .await?
        .ok_or(ApiError::NotFound("revision"))
}
