//! Which pod a session runs in: its own (a cold start) or a ready pod of its agent's warm pool,
//! claimed once, before anything of the session is written.
//!
//! The decision is recorded on the Session ([`labels::SANDBOX_POD_ANNOTATION`]) so that it holds
//! for the session's whole life (the pod is re-created under the same name after hibernation or a
//! loss, with the same Secrets and workspace claim). The claim itself is one patch of the pool pod
//! with its resourceVersion as precondition: of two sessions racing for a pod, one wins and the
//! other takes the next pod (or starts cold). The patch gives the pod the session's label and
//! makes the Session its owner, and removes the pool's label: from then on it is the session's
//! pod and never returns to the pool. Only after that does the pipeline write the session's
//! credential and identity into the pod's Secrets, then [`announce`] tells the kubelet.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use sealpod_resources::session::DesiredState;
use sealpod_resources::{Agent, Session, labels};
use serde_json::json;

use super::super::Context;
use super::super::lifecycle::{PodHealth, pod_health};
use crate::build;
use crate::error::{Error, is_status};

/// How many pool pods one reconcile tries before it starts the session cold (each try lost a
/// race to another session).
const CLAIM_TRIES: usize = 3;

/// The pod a session runs in, and whether this reconcile just claimed it from the pool.
pub(super) struct SandboxPod {
    /// The pod's name (its Secrets and workspace claim are named after it).
    pub(super) name: String,
    /// Claimed by this reconcile: the pod must be told once its Secrets hold the session.
    pub(super) just_claimed: bool,
}

/// The name of a session's sandbox pod as recorded on it (its own name when nothing is).
pub(super) fn recorded(session: &Session) -> String {
    session
        .annotations()
        .get(labels::SANDBOX_POD_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| build::pod_name(&session.name_any()))
}

/// Decides a session's pod. A session already decided keeps its pod; so does one of an agent
/// without a pool, and one that started before its agent had a pool (its Secrets exist). Else a
/// pod this session claimed before the operator stopped is found again, or a ready pool pod of
/// `template` (the fingerprint of the session's own pod) is claimed; with none, the session starts
/// cold. The decision is recorded on the Session.
pub(super) async fn sandbox_pod(
    ctx: &Context,
    session: &Session,
    agent: Option<&Agent>,
    template: impl FnOnce() -> String,
) -> Result<SandboxPod, Error> {
    let own = SandboxPod {
        name: recorded(session),
        just_claimed: false,
    };
    // A session asked to start hibernated or archived has no pod to claim yet.
    let pooled = session.spec.desired_state == DesiredState::Running
        && agent
            .and_then(|a| a.spec.warm_pool.as_ref())
            .is_some_and(|p| p.size > 0);
    if session
        .annotations()
        .contains_key(labels::SANDBOX_POD_ANNOTATION)
        || !pooled
    {
        return Ok(own);
    }
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let started_cold = secrets
        .get_opt(&build::runtime_secret_name(&own.name))
        .await
        .map_err(Error::kube("get runtime secret"))?
        .is_some();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let decided = if started_cold {
        own
    } else if let Some(pod) = claimed_before(&pods, &name).await? {
        SandboxPod {
            name: pod,
            just_claimed: true,
        }
    } else {
        let agent_name = session.spec.agent_ref.as_str();
        match claim(&pods, session, agent_name, &template()).await? {
            Some(pod) => {
                ctx.metrics.pool_claim(true);
                SandboxPod {
                    name: pod,
                    just_claimed: true,
                }
            }
            None => {
                ctx.metrics.pool_claim(false);
                own
            }
        }
    };
    record(ctx, session, &decided.name).await?;
    Ok(decided)
}

/// A pool pod that already carries this session's label: a claim made before the operator
/// stopped, not yet recorded on the Session.
async fn claimed_before(pods: &Api<Pod>, session: &str) -> Result<Option<String>, Error> {
    let selector = format!(
        "{}={session},{}",
        labels::SESSION_LABEL,
        labels::POOL_TEMPLATE_LABEL
    );
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list claimed pods"))?;
    Ok(list.items.first().map(ResourceExt::name_any))
}

/// Claims a ready pool pod of `agent` and `template`, oldest first; None when there is none (or
/// every try lost its race).
async fn claim(
    pods: &Api<Pod>,
    session: &Session,
    agent: &str,
    template: &str,
) -> Result<Option<String>, Error> {
    let selector = format!(
        "{}={agent},{}={template}",
        labels::POOL_LABEL,
        labels::POOL_TEMPLATE_LABEL
    );
    let mut ready: Vec<Pod> = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list pool pods"))?
        .items
        .into_iter()
        .filter(|p| matches!(pod_health(Some(p)), PodHealth::Running { .. }))
        .collect();
    ready.sort_by_key(|p| (p.creation_timestamp(), p.name_any()));
    let name = session.name_any();
    for pod in ready.iter().take(CLAIM_TRIES) {
        let patch = json!({"metadata": {
            "resourceVersion": pod.resource_version(),
            "labels": {
                labels::POOL_LABEL: null,
                labels::SESSION_LABEL: name,
            },
            "ownerReferences": [{
                "apiVersion": format!("{}/{}", labels::GROUP, labels::VERSION),
                "kind": "Session",
                "name": name,
                "uid": session.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        }});
        match pods
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(Some(pod.name_any())),
            // Claimed by another session, or deleted by the pool, since the list.
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => continue,
            Err(e) => return Err(Error::kube("claim pool pod")(e)),
        }
    }
    Ok(None)
}

/// Records the session's pod on the Session.
async fn record(ctx: &Context, session: &Session, pod: &str) -> Result<(), Error> {
    let api: Api<Session> =
        Api::namespaced(ctx.client.clone(), &session.namespace().unwrap_or_default());
    api.patch(
        &session.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            labels::SANDBOX_POD_ANNOTATION: pod,
        }}})),
    )
    .await
    .map_err(Error::kube("record sandbox pod"))?;
    Ok(())
}

/// Stamps a claimed pod once its Secrets hold the session ([`labels::POOL_CLAIMED_AT_ANNOTATION`]):
/// a change of the pod's metadata makes the kubelet refresh its Secret volumes at once, where it
/// would otherwise wait for its next periodic sync.
pub(super) async fn announce(ctx: &Context, ns: &str, pod: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match pods
        .patch(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                labels::POOL_CLAIMED_AT_ANNOTATION: now,
            }}})),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone: the lifecycle creates it again, with the Secrets as they are now.
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::kube("announce claim")(e)),
    }
}
