//! Warm pools, kept by the agent controller: each Agent with `spec.warmPool.size` N keeps N
//! unclaimed sandbox pods of its current template started (`build::pool`), replaces those of
//! another template (the agent's model, runtime, egress, sandbox shape, revision or credential
//! binding changed), and refills as sessions claim pods (`session::claim`). A pod a session
//! claimed is the session's: the pool never sees it again.
//!
//! Unclaimed pods hold no credential value and no token of any session; nothing here may log one.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::{Api, ResourceExt};
use sealpod_resources::agent::WarmPoolStatus;
use sealpod_resources::conditions::{ConditionStatus, WARM_POOL_READY, reasons};
use sealpod_resources::secret::{SealedToken, Secret as SecretString, random_hex};
use sealpod_resources::session::AgentSnapshot;
use sealpod_resources::{Agent, Credential, labels};

use super::lifecycle::{PodHealth, pod_health};
use super::{Conditions, Context, apply_child};
use crate::build::pool::{PoolOwner, pool_network_policy, pool_plan, pool_pod, template_hash};
use crate::build::{self, BoundCredential, SessionPlan};
use crate::error::{Error, is_status};

/// The pool's pods as listed: the ones of the current template that may still serve, and the
/// rest (another template, or lost).
struct Listed {
    current: Vec<Pod>,
    stale: Vec<Pod>,
}

async fn list(pods: &Api<Pod>, agent: &str, template: Option<&str>) -> Result<Listed, Error> {
    let selector = format!("{}={agent}", labels::POOL_LABEL);
    let items = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list pool pods"))?
        .items;
    let (current, stale) = items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .partition(|p| {
            // A lost pod (its lock failed, or it ended) is never claimed: it is replaced.
            !matches!(pod_health(Some(p)), PodHealth::Lost { .. })
                && template.is_some()
                && p.labels()
                    .get(labels::POOL_TEMPLATE_LABEL)
                    .map(String::as_str)
                    == template
        });
    Ok(Listed { current, stale })
}

/// The session plan a new session of the agent would have, with no session in it: what every
/// pod of the pool is built from.
fn template_plan(agent: &Agent, snapshot: &AgentSnapshot, credential: &Credential) -> SessionPlan {
    SessionPlan {
        namespace: agent.namespace().unwrap_or_default(),
        name: String::new(),
        uid: String::new(),
        agent: agent.name_any(),
        snapshot: snapshot.clone(),
        sandbox: agent.spec.sandbox.clone().unwrap_or_default(),
        credential: BoundCredential::of(credential, SealedToken::zeroed(), SecretString::new("")),
        runtime_token: SecretString::new(""),
        events_token: SecretString::new(""),
        pod: String::new(),
    }
}

/// Keeps the pool of a valid `agent` (`snapshot` is what its sessions pin now, `credential` the
/// one they bind) and says what it holds; None when the agent has no pool and no pool pod.
pub(crate) async fn keep(
    ctx: &Context,
    agent: &Agent,
    snapshot: &AgentSnapshot,
    credential: &Credential,
) -> Result<Option<WarmPoolStatus>, Error> {
    let size = agent.spec.warm_pool.as_ref().map_or(0, |p| p.size);
    let ns = agent.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let template = template_plan(agent, snapshot, credential);
    let hash = template_hash(&template, &ctx.settings);
    let listed = list(&pods, &agent.name_any(), Some(&hash)).await?;
    if size == 0 && listed.current.is_empty() && listed.stale.is_empty() {
        return Ok(None);
    }
    let owner = PoolOwner {
        name: agent.name_any(),
        uid: agent.uid().unwrap_or_default(),
    };
    for pod in &listed.stale {
        remove(ctx, &ns, pod).await?;
    }
    // Too many (the size went down): the ones not ready first, then the newest.
    let mut current = listed.current;
    current.sort_by_key(|p| (!is_ready(p), p.creation_timestamp(), p.name_any()));
    while current.len() > size as usize {
        if let Some(pod) = current.pop() {
            remove(ctx, &ns, &pod).await?;
        }
    }
    let missing = size as usize - current.len();
    if missing > 0 {
        // Applied with the pods it selects (not on every reconcile: pods change often).
        apply_child(
            ctx,
            &ns,
            &pool_network_policy(&template, &owner, &hash, &ctx.settings),
            "apply pool network policy",
        )
        .await?;
    }
    for _ in 0..missing {
        create(ctx, &template, &owner, &hash).await?;
    }
    let ready = current.iter().filter(|p| is_ready(p)).count();
    let status = WarmPoolStatus {
        size: u32::try_from(current.len() + missing).unwrap_or(u32::MAX),
        ready: u32::try_from(ready).unwrap_or(u32::MAX),
        template: Some(hash),
    };
    ctx.metrics
        .set_pool(&ns, &owner.name, status.size, status.ready);
    Ok(Some(status))
}

/// Empties the pool of an agent that cannot have one (invalid, or its credential missing).
pub(crate) async fn keep_none(
    ctx: &Context,
    agent: &Agent,
) -> Result<Option<WarmPoolStatus>, Error> {
    let ns = agent.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = list(&pods, &agent.name_any(), None).await?;
    for pod in listed.current.iter().chain(&listed.stale) {
        remove(ctx, &ns, pod).await?;
    }
    ctx.metrics.set_pool(&ns, &agent.name_any(), 0, 0);
    Ok(None)
}

/// Sets `WarmPoolReady` from what the pool holds (and removes it when there is no pool).
pub(crate) fn report(conds: &mut Conditions, pool: Option<&WarmPoolStatus>) {
    let Some(pool) = pool else {
        conds.list.retain(|c| c.type_ != WARM_POOL_READY);
        return;
    };
    if pool.ready >= pool.size {
        conds.set(
            WARM_POOL_READY,
            ConditionStatus::True,
            reasons::AS_EXPECTED,
            "",
        );
    } else {
        conds.set(
            WARM_POOL_READY,
            ConditionStatus::False,
            reasons::POOL_FILLING,
            format!("{} of {} pool pods ready", pool.ready, pool.size),
        );
    }
}

/// A pool pod is ready to be claimed once its runtime runs (the lock verified, the proxy
/// serving).
fn is_ready(pod: &Pod) -> bool {
    matches!(pod_health(Some(pod)), PodHealth::Running { .. })
}

/// Creates one pool pod: its Secrets and workspace claim first, then the pod.
async fn create(
    ctx: &Context,
    template: &SessionPlan,
    owner: &PoolOwner,
    hash: &str,
) -> Result<(), Error> {
    let name = format!("{}-pool-{}", owner.name, &random_hex(4));
    let plan = pool_plan(template, &name, SealedToken::generate());
    let mut built = pool_pod(&plan, owner, hash, &ctx.settings).map_err(|source| Error::Build {
        what: "pool proxy secret",
        source,
    })?;
    let ns = &template.namespace;
    apply_child(ctx, ns, &built.proxy_secret, "apply pool proxy secret").await?;
    apply_child(ctx, ns, &built.runtime_secret, "apply pool runtime secret").await?;
    if let Some(claim) = &built.workspace_claim {
        apply_child(ctx, ns, claim, "apply pool workspace claim").await?;
    }
    built
        .pod
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(
            labels::POD_CREATED_AT_ANNOTATION.to_owned(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
    apply_child(ctx, ns, &built.pod, "create pool pod").await?;
    Ok(())
}

/// Deletes one unclaimed pool pod and its Secrets and workspace claim. The delete holds only
/// while the pod is unchanged since it was listed: a pod a session claimed meanwhile is the
/// session's, and stays.
async fn remove(ctx: &Context, ns: &str, pod: &Pod) -> Result<(), Error> {
    let name = pod.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: pod.resource_version(),
        }),
        ..DeleteParams::default()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .delete(&name, &params)
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) if is_status(&e, 409) => return Ok(()),
        Err(e) => return Err(Error::kube("delete pool pod")(e)),
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for secret in [
        build::proxy_secret_name(&name),
        build::runtime_secret_name(&name),
    ] {
        delete_quietly(&secrets, &secret).await?;
    }
    if ctx.settings.workspace_claim {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        delete_quietly(&claims, &build::workspace_claim_name(&name)).await?;
    }
    Ok(())
}

async fn delete_quietly<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::kube("delete pool object")(e)),
    }
}
