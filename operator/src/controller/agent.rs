//! Agent controller: validates each Agent (model/runtime pairing, allowlist syntax, credential
//! resolvable), mirrors its revision annotation into `status.revision`, computes `promptHash`
//! and sets the `Ready`/`Degraded` conditions. An invalid Agent waits for a change.

use std::sync::Arc;

use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use sealpod_resources::agent::{MANAGED_CREDENTIAL, model_provider, prompt_hash};
use sealpod_resources::conditions::{ConditionStatus, DEGRADED, READY, reasons};
use sealpod_resources::{Agent, Credential};
use serde_json::json;

use super::{
    Conditions, Context, CredentialError, CredentialProblem, apply_status, main_stream, measured,
    publish_transitions,
};
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

/// Checks that a resolved credential exists (a `NotFound` problem says what is missing).
pub(crate) async fn credential_exists(
    ctx: &Context,
    namespace: &str,
    resolved: &Resolved,
) -> Result<(), CredentialError> {
    let missing = |m: String| CredentialError::Problem(CredentialProblem::NotFound(m));
    let (ns, name) = match resolved {
        Resolved::Named(n) => (namespace.to_owned(), n.clone()),
        Resolved::Managed => match &ctx.config.managed_credential {
            Some(n) => (ctx.config.system_namespace.clone(), n.clone()),
            None => return Err(missing("no managed credential is configured".into())),
        },
    };
    let creds: Api<Credential> = Api::namespaced(ctx.client.clone(), &ns);
    match creds
        .get_opt(&name)
        .await
        .map_err(Error::kube("get credential"))?
    {
        Some(_) => Ok(()),
        None => Err(missing(format!("credential `{name}` not found"))),
    }
}

async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(CONTROLLER, agent.as_ref(), &ctx, apply(&agent, &ctx)).await
}

async fn apply(agent: &Agent, ctx: &Context) -> Result<Action, Error> {
    if agent.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = agent.namespace().unwrap_or_default();
    let old = agent.status.clone().unwrap_or_default();
    let generation = agent.metadata.generation;
    let mut conds = Conditions::from(&old.conditions, generation);
    let spec = &agent.spec;
    let verdict = match validate::agent_config(&spec.model, &spec.runtime, spec.egress.as_ref()) {
        Err(m) => Err((reasons::INVALID, m)),
        Ok(()) => {
            let resolved =
                resolve_credential(ctx, &ns, spec.credential.as_deref(), &spec.model).await?;
            match credential_exists(ctx, &ns, &resolved).await {
                Ok(()) => Ok(()),
                Err(CredentialError::Failed(e)) => return Err(e),
                Err(CredentialError::Problem(problem)) => Err(problem.reason_and_message()),
            }
        }
    };
    match &verdict {
        Ok(()) => {
            conds.set(READY, ConditionStatus::True, reasons::AS_EXPECTED, "");
            conds.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
        }
        Err((reason, message)) => {
            conds.set(READY, ConditionStatus::False, reason, message.clone());
            conds.set(DEGRADED, ConditionStatus::True, reason, message.clone());
        }
    }
    let revision = validate::revision(agent.metadata.annotations.as_ref());
    let hash = prompt_hash(&spec.prompt);
    if conds.list != old.conditions
        || old.revision != Some(revision)
        || old.prompt_hash.as_deref() != Some(hash.as_str())
        || old.observed_generation != generation
    {
        apply_status(
            ctx,
            agent,
            json!({
                "observedGeneration": generation,
                "conditions": conds.list,
                "revision": revision,
                "promptHash": hash,
            }),
        )
        .await?;
        publish_transitions(ctx, agent, &old.conditions, &conds.list).await;
    }
    // Invalid: nothing happens until the spec changes. A missing credential is retriggered by
    // the Credential watch.
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
    let creds = super::metadata_watch::<Credential>(client, namespace.as_deref(), wc);
    let controller = Controller::for_stream(stream, reader).watches_stream(creds, move |c| {
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
