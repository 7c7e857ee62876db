//! Agent controller: validates each Agent (model/runtime pairing, allowlist syntax, credential
//! resolvable), keeps its revisions ([`super::revision`]: a spec changed with kubectl becomes a
//! new active revision), names the active one in `status.revision` and `status.activeRevision`,
//! computes `promptHash`, keeps its warm pool ([`super::pool`]) and sets the
//! `Ready`/`Degraded`/`WarmPoolReady` conditions. An invalid Agent waits for a change.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use sealpod_resources::agent::{MANAGED_CREDENTIAL, model_provider, prompt_hash};
use sealpod_resources::conditions::{ConditionStatus, DEGRADED, READY, reasons};
use sealpod_resources::revision::{SkillBundle, active_number};
use sealpod_resources::session::AgentSnapshot;
use sealpod_resources::{Agent, Credential, labels};
use serde_json::json;

use super::{
    Conditions, Context, CredentialError, apply_status, find_credential, main_stream, measured,
    publish_transitions,
};
use super::{pool, revision};
use crate::error::Error;
use crate::validate;

/// Controller name (metrics).
pub(crate) const CONTROLLER: &str = "agent";

/// Where a credential reference resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// A Credential of the namespace.
    Named(String),
    /// The cluster's managed credential.
    Managed,
}

/// Resolves an agent's credential reference: the named one, else the namespace's default
/// Credential of the model's provider, else `managed`.
pub(crate) async fn resolve_credential(
    ctx: &Context,
    namespace: &str,
    reference: Option<&str>,
    model: &str,
) -> Result<Resolved, Error> {
    match reference {
        Some(MANAGED_CREDENTIAL) => Ok(Resolved::Managed),
        Some(name) => Ok(Resolved::Named(name.to_owned())),
        None => {
            let provider = model_provider(model).unwrap_or_default();
            let creds: Api<Credential> = Api::namespaced(ctx.client.clone(), namespace);
            let list = creds
                .list(&Default::default())
                .await
                .map_err(Error::kube("list credentials"))?;
            // The first by name, so two defaults resolve the same way every time.
            let mut defaults: Vec<String> = list
                .items
                .iter()
                .filter(|c| c.spec.default && c.spec.provider == provider)
                .map(ResourceExt::name_any)
                .collect();
            defaults.sort();
            Ok(defaults
                .into_iter()
                .next()
                .map_or(Resolved::Managed, Resolved::Named))
        }
    }
}

impl Resolved {
    /// The reference a session pins (`managed` or the Credential's name).
    pub(crate) fn reference(&self) -> String {
        match self {
            Resolved::Managed => MANAGED_CREDENTIAL.to_owned(),
            Resolved::Named(n) => n.clone(),
        }
    }
}

/// The configuration a session of `agent` pins, its credential reference resolved.
pub(crate) fn snapshot_of(
    agent: &Agent,
    resolved: &Resolved,
    skills: Option<SkillBundle>,
) -> AgentSnapshot {
    AgentSnapshot {
        model: agent.spec.model.clone(),
        runtime: agent.spec.runtime.clone(),
        prompt: agent.spec.prompt.clone(),
        prompt_hash: prompt_hash(&agent.spec.prompt),
        revision: Some(active_number(agent)),
        skills,
        limits: agent.spec.limits.clone(),
        egress: agent.spec.egress.clone(),
        credential: resolved.reference(),
    }
}

async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Boxed: the pool's steps make the future large.
    Box::pin(measured(
        CONTROLLER,
        agent.as_ref(),
        &ctx,
        Box::pin(apply(&agent, &ctx)),
    ))
    .await
}

async fn apply(agent: &Agent, ctx: &Context) -> Result<Action, Error> {
    if agent.meta().deletion_timestamp.is_some() {
        // Its pool's pods go with it (owned); the gauge forgets it now.
        ctx.metrics.set_pool(
            &agent.namespace().unwrap_or_default(),
            &agent.name_any(),
            0,
            0,
        );
        return Ok(Action::await_change());
    }
    let ns = agent.namespace().unwrap_or_default();
    let old = agent.status.clone().unwrap_or_default();
    let generation = agent.metadata.generation;
    let mut conds = Conditions::from(&old.conditions, generation);
    let spec = &agent.spec;
    let config = validate::agent_config(&spec.model, &spec.runtime, spec.egress.as_ref());
    // The active revision, its spec turned into a new one when kubectl changed it.
    let active = match &config {
        Ok(()) => match revision::keep(ctx, agent).await? {
            Some(active) => Some(active),
            // The revision pointer moved meanwhile: the Agent comes back with it.
            None => return Ok(Action::requeue(std::time::Duration::from_secs(1))),
        },
        Err(_) => None,
    };
    let verdict = match config {
        Err(m) => Err((reasons::INVALID, m)),
        Ok(()) => {
            let resolved =
                resolve_credential(ctx, &ns, spec.credential.as_deref(), &spec.model).await?;
            match find_credential(ctx, &ns, &resolved.reference()).await {
                Ok(credential) => Ok((resolved, credential)),
                Err(CredentialError::Failed(e)) => return Err(e),
                Err(CredentialError::Problem(problem)) => Err(problem.reason_and_message()),
            }
        }
    };
    let pool = match &verdict {
        Ok((resolved, credential)) => {
            conds.set(READY, ConditionStatus::True, reasons::AS_EXPECTED, "");
            conds.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
            let skills = active.as_ref().and_then(|r| r.spec.skills.clone());
            pool::keep(
                ctx,
                agent,
                &snapshot_of(agent, resolved, skills),
                credential,
            )
            .await?
        }
        Err((reason, message)) => {
            conds.set(READY, ConditionStatus::False, reason, message.clone());
            conds.set(DEGRADED, ConditionStatus::True, reason, message.clone());
            // An invalid agent keeps no pool: its pods would start nothing a session could use.
            pool::keep_none(ctx, agent).await?
        }
    };
    pool::report(&mut conds, pool.as_ref());
    let (number, active_name) = match &active {
        Some(revision) => (revision.spec.number, Some(revision.name_any())),
        None => (active_number(agent), None),
    };
    let hash = prompt_hash(&spec.prompt);
    if conds.list != old.conditions
        || old.revision != Some(number)
        || old.active_revision != active_name
        || old.prompt_hash.as_deref() != Some(hash.as_str())
        || old.observed_generation != generation
        || old.warm_pool != pool
    {
        let mut status = json!({
            "observedGeneration": generation,
            "conditions": conds.list,
            "revision": number,
            "promptHash": hash,
        });
        if let Some(name) = &active_name {
            status["activeRevision"] = json!(name);
        }
        // Left out when there is no pool: a field this manager stops applying is removed.
        if let Some(pool) = &pool {
            status["warmPool"] = json!(pool);
        }
        apply_status(ctx, agent, status).await?;
        publish_transitions(ctx, agent, &old.conditions, &conds.list).await;
    }
    // Invalid: nothing happens until the spec changes. A missing credential is retriggered by
    // the Credential watch; the pool's pods by the pod watch.
    Ok(Action::await_change())
}

fn agents_in(store: &Store<Agent>, namespace: &str) -> Vec<ObjectRef<Agent>> {
    store
        .state()
        .iter()
        .filter(|a| a.namespace().as_deref() == Some(namespace))
        .map(|a| ObjectRef::from(a.as_ref()))
        .collect()
}

/// Runs the agent controller until `shutdown`.
pub(crate) async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let wc = ctx.watcher_config();
    let client = ctx.client.clone();
    let (reader, stream) = main_stream(
        super::scoped::<Agent>(client.clone(), namespace.as_deref()),
        wc.clone(),
    );
    let store = reader.clone();
    let system_ns = ctx.config.system_namespace.clone();
    let creds =
        super::metadata_watch::<Credential>(client.clone(), namespace.as_deref(), wc.clone());
    // The pool's pods: an unclaimed one (it starts, or goes) and one just claimed (the pool
    // refills) bring their agent back.
    let pods = super::metadata_watch::<Pod>(
        client,
        namespace.as_deref(),
        wc.labels(&format!(
            "{}={},{}",
            labels::MANAGED_BY,
            labels::OPERATOR_FIELD_MANAGER,
            labels::POOL_TEMPLATE_LABEL
        )),
    );
    let controller = Controller::for_stream(stream, reader)
        .watches_stream(pods, |pod| {
            let agent = pod.labels().get(labels::AGENT_LABEL)?;
            let claimed = !pod.labels().contains_key(labels::POOL_LABEL);
            // A claimed pod matters to its pool once: when the claim took it.
            if claimed
                && pod
                    .annotations()
                    .contains_key(labels::POOL_CLAIMED_AT_ANNOTATION)
            {
                return None;
            }
            Some(ObjectRef::new(agent).within(&pod.namespace().unwrap_or_default()))
        })
        .watches_stream(creds, move |c| {
            let ns = c.namespace().unwrap_or_default();
            if ns == system_ns {
                // The managed credential can concern every agent.
                store
                    .state()
                    .iter()
                    .map(|a| ObjectRef::from(a.as_ref()))
                    .collect()
            } else {
                agents_in(&store, &ns)
            }
        });
    super::run_controller(CONTROLLER, controller, reconcile, ctx, shutdown).await;
}
