//! An Agent's revisions, as the agent controller keeps them: the active revision (the Agent's
//! revision annotation) always exists, and a spec whose prompt or model differ from it (a
//! `kubectl apply` or `edit`; the API server changes the two together with the annotation)
//! becomes a new revision, made active and recorded in its activation log, as
//! `PATCH /v3/agents/{id}` would have done. A move of the pointer that its writer noted on the
//! Agent but did not log on the revision (it stopped in between) is logged here.

use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sealpod_resources::revision::{
    Activation, AgentRevisionSpec, LastActivation, SkillBundle, active_number,
    derived_activation_id, next_number, revision_object_name, with_activation,
};
use sealpod_resources::{Agent, AgentRevision, labels};
use serde_json::json;

use super::{Context, now};
use crate::error::Error;

/// Who a revision made here is attributed to.
const ACTOR: &str = "kubectl";

/// The agent's active revision after this pass. `None` when the annotation moved under us (the
/// Agent comes back with the new one).
pub(crate) async fn keep(ctx: &Context, agent: &Agent) -> Result<Option<AgentRevision>, Error> {
    let ns = agent.namespace().unwrap_or_default();
    let api: Api<AgentRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let number = active_number(agent);
    let name = revision_object_name(&agent.name_any(), number);
    let active = api
        .get_opt(&name)
        .await
        .map_err(Error::kube("get agent revision"))?;
    let (spec, from, reason) = match active {
        Some(active) if active.matches(&agent.spec) => {
            // A move whose writer stopped before logging it: logged now, from the agent's note.
            return Ok(Some(match LastActivation::of(agent) {
                Some(last) if last.missing_from(&active) => {
                    record(&api, active, last.activation).await?
                }
                _ => active,
            }));
        }
        // A spec changed outside the API: a new revision with the active one's skills.
        Some(active) => {
            let listed = api
                .list(&ListParams::default().labels(&format!(
                    "{}={}",
                    labels::AGENT_LABEL,
                    agent.name_any()
                )))
                .await
                .map_err(Error::kube("list agent revisions"))?;
            let next = next_number(listed.items.iter().map(|r| r.spec.number).chain([number]));
            let spec = AgentRevisionSpec::of_spec(agent, next, active.spec.skills, ACTOR);
            (spec, Some(number), "spec")
        }
        // An agent made without its revision (applied with kubectl, or older than revisions).
        None => {
            let spec = AgentRevisionSpec::of_spec(agent, number, None, ACTOR);
            (spec, None, "create")
        }
    };
    let new_number = spec.number;
    let created = match api
        .create(
            &PostParams::default(),
            &AgentRevision::for_agent(agent, spec),
        )
        .await
    {
        Ok(created) => created,
        // Made by an earlier pass (then it is ours to finish) or by the API server meanwhile
        // (then the Agent changes too, and comes back).
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api
                .get(&revision_object_name(&agent.name_any(), new_number))
                .await
                .map_err(Error::kube("get agent revision"))?;
            if !existing.matches(&agent.spec) {
                return Ok(None);
            }
            existing
        }
        Err(e) => return Err(Error::kube("create agent revision")(e)),
    };
    let activation = Activation {
        id: derived_activation_id(&agent.uid().unwrap_or_default(), new_number),
        from,
        actor: Some(ACTOR.to_owned()),
        reason: reason.to_owned(),
        at: now(),
    };
    if new_number != number {
        let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), &ns);
        let last = LastActivation {
            to: new_number,
            activation: activation.clone(),
        };
        let pointer = json!({"metadata": {
            "resourceVersion": agent.resource_version(),
            "annotations": {
                labels::REVISION_ANNOTATION: new_number.to_string(),
                labels::REVISION_DIGEST_ANNOTATION: created.spec.digest,
                labels::LAST_ACTIVATION_ANNOTATION: last.to_annotation(),
            },
        }});
        match agents
            .patch(
                &agent.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&pointer),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(None),
            Err(e) => return Err(Error::kube("patch agent revision")(e)),
        }
    }
    let created = record(&api, created, activation).await?;
    Ok(Some(created))
}

/// The skills of the agent's active revision, when that revision is the agent's spec (what a
/// session pinned now runs).
pub(crate) async fn active_skills(
    ctx: &Context,
    agent: &Agent,
) -> Result<Option<SkillBundle>, Error> {
    let api: Api<AgentRevision> =
        Api::namespaced(ctx.client.clone(), &agent.namespace().unwrap_or_default());
    let number = active_number(agent);
    let active = api
        .get_opt(&revision_object_name(&agent.name_any(), number))
        .await
        .map_err(Error::kube("get agent revision"))?;
    Ok(active
        .filter(|r| r.matches(&agent.spec))
        .and_then(|r| r.spec.skills))
}

/// Appends `activation` to `revision`'s log (read, change, write with its resourceVersion; a
/// few tries when another writer gets there first); answers the revision as written.
async fn record(
    api: &Api<AgentRevision>,
    mut revision: AgentRevision,
    activation: Activation,
) -> Result<AgentRevision, Error> {
    for _ in 0..3 {
        if revision.has_logged(&activation.id) {
            return Ok(revision);
        }
        let body = json!({
            "metadata": {"resourceVersion": revision.resource_version()},
            "status": with_activation(revision.status.as_ref(), activation.clone()),
        });
        match api
            .patch_status(
                &revision.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(written) => return Ok(written),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                revision = api
                    .get(&revision.name_any())
                    .await
                    .map_err(Error::kube("get agent revision"))?;
            }
            Err(e) => return Err(Error::kube("record activation")(e)),
        }
    }
    Err(Error::Conflict("agent revision activation log"))
}
