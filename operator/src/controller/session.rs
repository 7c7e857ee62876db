//! Session controller, a pipeline: fetch (pin the agent when the snapshot is missing) →
//! validate → bind the credential → build the children (pure, `build`) → apply them with
//! server-side apply → drive the pod's lifecycle → write status and Events.
//!
//! Children are owned by the Session and garbage-collected with it; the finalizer exists only
//! to revoke the session's runtime tokens with the API server. It must never log, put into
//! status or an Event any credential value or token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Full;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};
use sealpod_resources::agent::{MANAGED_CREDENTIAL, prompt_hash};
use sealpod_resources::conditions::{
    CREDENTIALS_BOUND, ConditionStatus, DEGRADED, EGRESS_LOCKED, HIBERNATED, READY, reasons,
};
use sealpod_resources::labels::{self, OPERATOR_FIELD_MANAGER, SESSION_FINALIZER};
use sealpod_resources::runtime_token::{
    PROXY_SECRET_EVENTS_TOKEN_ENTRY, RUNTIME_SECRET_TOKEN_ENTRY, Scope,
};
use sealpod_resources::secret::{SealedToken, Secret as SecretString};
use sealpod_resources::session::{AgentSnapshot, DesiredState};
use sealpod_resources::{Agent, Credential, Session};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::agent::{Resolved, resolve_credential};
use super::lifecycle::{LockState, PodHealth, Restart, lock_state, pod_health};
use super::{
    Conditions, Context, CredentialProblem, SAFETY_REQUEUE, apply_status, drain, main_stream,
    measured, open_credential, publish_transitions, retry,
};
use crate::build::{self, BoundCredential, SessionPlan, proxy_config::stored_sealed_token};
use crate::error::{Error, is_status};
use crate::validate;

/// Controller name (metrics).
pub const CONTROLLER: &str = "session";

fn entry(secret: Option<&Secret>, key: &str) -> Option<String> {
    secret
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// Server-side apply of one child under the operator's field manager.
async fn apply_child<K>(ctx: &Context, ns: &str, obj: &K, op: &'static str) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(OPERATOR_FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(Error::kube(op))
}

/// Whether `existing` already holds everything `desired` sets.
fn up_to_date(existing: Option<&Secret>, desired: &Secret) -> bool {
    let Some(e) = existing else {
        return false;
    };
    let subset = |want: Option<&std::collections::BTreeMap<String, String>>,
                  have: &std::collections::BTreeMap<String, String>| {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.get(k) == Some(v))
    };
    e.data == desired.data
        && e.type_ == desired.type_
        && subset(desired.metadata.labels.as_ref(), e.labels())
        && subset(desired.metadata.annotations.as_ref(), e.annotations())
        && e.owner_references()
            == desired
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default()
}

/// What status says, built up as the pipeline runs.
struct Draft {
    conds: Conditions,
    pod_name: Option<String>,
}

impl Draft {
    fn set(&mut self, t: &str, s: ConditionStatus, reason: &str, message: impl Into<String>) {
        self.conds.set(t, s, reason, message);
    }

    /// A spec problem: nothing runs until it changes.
    fn blocked(&mut self, reason: &str, message: &str) {
        self.set(READY, ConditionStatus::False, reason, message);
        self.set(DEGRADED, ConditionStatus::True, reason, message);
    }
}

async fn write_status(ctx: &Context, session: &Session, draft: Draft) -> Result<(), Error> {
    let old = session.status.clone().unwrap_or_default();
    let generation = session.metadata.generation;
    if draft.conds.list == old.conditions
        && draft.pod_name == old.pod_name
        && generation == old.observed_generation
    {
        return Ok(());
    }
    let mut status = json!({
        "observedGeneration": generation,
        "conditions": draft.conds.list,
    });
    if let Some(p) = &draft.pod_name {
        status["podName"] = json!(p);
    }
    apply_status(ctx, session, status).await?;
    publish_transitions(ctx, session, &old.conditions, &draft.conds.list).await;
    Ok(())
}

/// Pins the agent's configuration into a session applied without one. `Ok(Err(_))`: the Agent
/// does not exist.
async fn pin(ctx: &Context, session: &Session, ns: &str) -> Result<Result<(), String>, Error> {
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), ns);
    let Some(agent) = agents
        .get_opt(&session.spec.agent_ref)
        .await
        .map_err(Error::kube("get agent"))?
    else {
        return Ok(Err(format!("agent `{}` not found", session.spec.agent_ref)));
    };
    let resolved =
        resolve_credential(ctx, ns, agent.spec.credential.as_deref(), &agent.spec.model).await?;
    let snapshot = AgentSnapshot {
        model: agent.spec.model.clone(),
        runtime: agent.spec.runtime.clone(),
        prompt: agent.spec.prompt.clone(),
        prompt_hash: prompt_hash(&agent.spec.prompt),
        revision: Some(validate::revision(agent.metadata.annotations.as_ref())),
        limits: agent.spec.limits.clone(),
        egress: agent.spec.egress.clone(),
        credential: match resolved {
            Resolved::Managed => MANAGED_CREDENTIAL.to_owned(),
            Resolved::Named(n) => n,
        },
    };
    let sessions: Api<Session> = Api::namespaced(ctx.client.clone(), ns);
    sessions
        .patch(
            &session.name_any(),
            &PatchParams {
                field_manager: Some(OPERATOR_FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({ "spec": { "agentSnapshot": snapshot } })),
        )
        .await
        .map_err(Error::kube("pin agent snapshot"))?;
    Ok(Ok(()))
}

/// The Credential a session's pinned reference names.
async fn bind(
    ctx: &Context,
    ns: &str,
    snapshot: &AgentSnapshot,
) -> Result<Result<(Credential, SecretString), CredentialProblem>, Error> {
    let (cred_ns, name) = if snapshot.credential == MANAGED_CREDENTIAL {
        match &ctx.config.managed_credential {
            Some(n) => (ctx.config.system_namespace.clone(), n.clone()),
            None => {
                return Ok(Err(CredentialProblem::NotFound(
                    "no managed credential is configured".into(),
                )));
            }
        }
    } else {
        (ns.to_owned(), snapshot.credential.clone())
    };
    let creds: Api<Credential> = Api::namespaced(ctx.client.clone(), &cred_ns);
    let Some(cred) = creds
        .get_opt(&name)
        .await
        .map_err(Error::kube("get credential"))?
    else {
        return Ok(Err(CredentialProblem::NotFound(format!(
            "credential `{name}` not found"
        ))));
    };
    Ok(open_credential(ctx, &cred)
        .await?
        .map(|opened| (cred, opened.value)))
}

async fn apply(session: Arc<Session>, ctx: &Context) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let status = session.status.clone().unwrap_or_default();
    let mut draft = Draft {
        conds: Conditions::from(&status.conditions, session.metadata.generation),
        pod_name: status.pod_name.clone(),
    };

    // fetch
    let Some(snapshot) = session.spec.agent_snapshot.clone() else {
        return match pin(ctx, &session, &ns).await? {
            // The spec change retriggers this reconcile with the snapshot in place.
            Ok(()) => Ok(Action::await_change()),
            Err(message) => {
                draft.blocked(reasons::INVALID, &message);
                write_status(ctx, &session, draft).await?;
                // The Agent may be created later; look again now and then.
                Ok(Action::requeue(Duration::from_secs(60)))
            }
        };
    };

    // validate
    if let Err(message) =
        validate::agent_config(&snapshot.model, &snapshot.runtime, snapshot.egress.as_ref())
    {
        draft.blocked(reasons::INVALID, &message);
        draft.set(
            CREDENTIALS_BOUND,
            ConditionStatus::Unknown,
            reasons::INVALID,
            "",
        );
        write_status(ctx, &session, draft).await?;
        return Ok(Action::await_change());
    }

    // bind the credential
    let (cred, value) = match bind(ctx, &ns, &snapshot).await? {
        Ok(bound) => bound,
        Err(problem) => {
            let (reason, message) = match problem {
                CredentialProblem::NotFound(m) => (reasons::CREDENTIAL_NOT_FOUND, m),
                CredentialProblem::Unreadable(m) => (reasons::CREDENTIAL_UNREADABLE, m),
            };
            draft.set(
                CREDENTIALS_BOUND,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
            draft.blocked(reason, &message);
            write_status(ctx, &session, draft).await?;
            // The Credential and sealed-Secret watches retrigger when it appears or changes.
            return Ok(Action::requeue(SAFETY_REQUEUE));
        }
    };

    // Tokens are random per session: re-use the ones already written so they stay stable.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let proxy_existing = secrets
        .get_opt(&build::proxy_secret_name(&name))
        .await
        .map_err(Error::kube("get proxy secret"))?;
    let runtime_existing = secrets
        .get_opt(&build::runtime_secret_name(&name))
        .await
        .map_err(Error::kube("get runtime secret"))?;
    let sealed = entry(proxy_existing.as_ref(), build::PROXY_CONFIG_ENTRY)
        .and_then(|yaml| stored_sealed_token(&yaml))
        .and_then(|s| SealedToken::parse(&s).ok())
        .unwrap_or_else(SealedToken::generate);
    let events_token = entry(proxy_existing.as_ref(), PROXY_SECRET_EVENTS_TOKEN_ENTRY)
        .map(SecretString::new)
        .unwrap_or_else(|| ctx.token_key.mint(Scope::Proxy, &ns, &name));
    let runtime_token = entry(runtime_existing.as_ref(), RUNTIME_SECRET_TOKEN_ENTRY)
        .map(SecretString::new)
        .unwrap_or_else(|| ctx.token_key.mint(Scope::Runtime, &ns, &name));
    let sandbox = Api::<Agent>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&session.spec.agent_ref)
        .await
        .map_err(Error::kube("get agent"))?
        .and_then(|a| a.spec.sandbox)
        .unwrap_or_default();
    let plan = SessionPlan {
        namespace: ns.clone(),
        name: name.clone(),
        uid: session.uid().unwrap_or_default(),
        agent: session.spec.agent_ref.clone(),
        credential: BoundCredential {
            name: cred.name_any(),
            provider: cred.spec.provider.clone(),
            hosts: cred.spec.allowed_hosts.clone(),
            headers: cred.spec.effective_headers(),
            sealed,
            value,
            version: cred.status.as_ref().and_then(|s| s.version).unwrap_or(1),
        },
        snapshot,
        sandbox,
        runtime_token,
        events_token,
    };

    // build and apply
    let settings = &ctx.settings;
    if settings.workspace_claim {
        apply_child(
            ctx,
            &ns,
            &build::workspace_claim(&plan, settings),
            "apply workspace claim",
        )
        .await?;
    }
    // The two Secrets were just read: re-apply only what differs (most reconciles change
    // nothing, and these are the largest writes).
    let runtime_secret = build::runtime_secret(&plan);
    if !up_to_date(runtime_existing.as_ref(), &runtime_secret) {
        apply_child(ctx, &ns, &runtime_secret, "apply runtime secret").await?;
    }
    let proxy_secret = build::proxy_secret(&plan, settings);
    if !up_to_date(proxy_existing.as_ref(), &proxy_secret) {
        apply_child(ctx, &ns, &proxy_secret, "apply proxy secret").await?;
    }
    apply_child(
        ctx,
        &ns,
        &build::network_policy(&plan, settings),
        "apply network policy",
    )
    .await?;
    draft.set(
        CREDENTIALS_BOUND,
        ConditionStatus::True,
        reasons::CREDENTIAL_BOUND,
        format!(
            "credential `{}` version {}",
            plan.credential.name, plan.credential.version
        ),
    );

    // lifecycle
    let action = lifecycle(ctx, &session, &plan, &mut draft).await?;
    write_status(ctx, &session, draft).await?;
    Ok(action)
}

async fn delete_pod(pods: &Api<Pod>, name: &str) -> Result<(), Error> {
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        // Already gone is success.
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::kube("delete pod")(e)),
    }
}

async fn lifecycle(
    ctx: &Context,
    session: &Session,
    plan: &SessionPlan,
    draft: &mut Draft,
) -> Result<Action, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let pod_name = build::pod_name(&plan.name);
    let pod = pods
        .get_opt(&pod_name)
        .await
        .map_err(Error::kube("get pod"))?;
    let uid = plan.uid.clone();
    let asleep = |draft: &mut Draft, reason: &str, message: &str| {
        draft.set(READY, ConditionStatus::False, reason, message);
        draft.set(HIBERNATED, ConditionStatus::True, reason, message);
        draft.set(
            EGRESS_LOCKED,
            ConditionStatus::Unknown,
            reasons::LOCK_PENDING,
            "no sandbox pod",
        );
        draft.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
        draft.pod_name = None;
    };
    match session.spec.desired_state {
        DesiredState::Hibernated | DesiredState::Archived => {
            if pod.is_some() {
                delete_pod(&pods, &pod_name).await?;
            }
            ctx.restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
            if session.spec.desired_state == DesiredState::Hibernated {
                asleep(
                    draft,
                    reasons::IDLE_TIMEOUT,
                    "hibernated: pod deleted, workspace kept",
                );
            } else {
                asleep(
                    draft,
                    reasons::ARCHIVED,
                    "archived: pod deleted, workspace kept",
                );
            }
            return Ok(Action::await_change());
        }
        DesiredState::Running => {}
    }
    draft.set(HIBERNATED, ConditionStatus::False, reasons::AWAKE, "");
    let now = Instant::now();
    match pod_health(pod.as_ref()) {
        PodHealth::Absent => {
            let wait = {
                let mut restarts = ctx.restarts.lock().unwrap_or_else(|e| e.into_inner());
                match restarts.get_mut(&uid) {
                    Some(r) => {
                        r.lost(now);
                        Some(*r)
                    }
                    // A pod we created is gone without our seeing it fail: deleted.
                    None if draft.pod_name.is_some() => {
                        let r = Restart::first(now);
                        restarts.insert(uid.clone(), r);
                        Some(r)
                    }
                    None => None,
                }
            };
            if let Some(r) = wait {
                let backoff = ctx.config.restart_backoff(r.failures);
                let left = r.wait(backoff, now);
                if !left.is_zero() {
                    // The reconcile that saw the pod fail already said why (`Evicted`,
                    // `LockFailed`, …); the one its deletion triggers must not replace that
                    // with a vaguer message for the same loss.
                    let in_a_row = format!("({} in a row)", r.failures);
                    let explained = draft.conds.list.iter().any(|c| {
                        c.type_ == DEGRADED
                            && c.status == ConditionStatus::True
                            && c.message.contains(&in_a_row)
                    });
                    if !explained {
                        let message = format!(
                            "sandbox pod lost {in_a_row}; recreating after a {}ms backoff",
                            backoff.as_millis()
                        );
                        draft.set(READY, ConditionStatus::False, reasons::POD_FAILED, &message);
                        draft.set(
                            DEGRADED,
                            ConditionStatus::True,
                            reasons::POD_FAILED,
                            &message,
                        );
                    }
                    return Ok(Action::requeue(left));
                }
            }
            let created = build::sandbox_pod(plan, &ctx.settings);
            apply_child(ctx, &plan.namespace, &created, "create pod").await?;
            if let Some(r) = ctx
                .restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&uid)
            {
                r.recreated = true;
            }
            draft.pod_name = Some(pod_name);
            draft.set(
                READY,
                ConditionStatus::False,
                reasons::POD_PENDING,
                "sandbox pod created",
            );
            draft.set(
                EGRESS_LOCKED,
                ConditionStatus::Unknown,
                reasons::LOCK_PENDING,
                "",
            );
            if wait.is_none() {
                draft.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
            }
            Ok(Action::requeue(SAFETY_REQUEUE))
        }
        PodHealth::Terminating => {
            draft.set(
                READY,
                ConditionStatus::False,
                reasons::POD_PENDING,
                "sandbox pod terminating",
            );
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        PodHealth::Lost { reason, message } => {
            if reason == "LockFailed" {
                draft.set(
                    EGRESS_LOCKED,
                    ConditionStatus::False,
                    reasons::LOCK_FAILED,
                    &message,
                );
            }
            delete_pod(&pods, &pod_name).await?;
            let r = {
                let mut restarts = ctx.restarts.lock().unwrap_or_else(|e| e.into_inner());
                let r = restarts
                    .entry(uid.clone())
                    .and_modify(|r| r.lost(now))
                    .or_insert_with(|| Restart::first(now));
                *r
            };
            let backoff = ctx.config.restart_backoff(r.failures);
            let text = format!(
                "sandbox pod lost: {reason}{}{message} ({} in a row); recreating after a {}ms backoff",
                if message.is_empty() { "" } else { ": " },
                r.failures,
                backoff.as_millis()
            );
            let why = if reason == "LockFailed" {
                reasons::LOCK_FAILED
            } else {
                reasons::POD_FAILED
            };
            draft.set(READY, ConditionStatus::False, why, &text);
            draft.set(DEGRADED, ConditionStatus::True, why, &text);
            draft.pod_name = None;
            Ok(Action::requeue(r.wait(backoff, now)))
        }
        PodHealth::Pending | PodHealth::Running { .. } => {
            let health = pod_health(pod.as_ref());
            let lock = pod.as_ref().map_or(LockState::Pending, lock_state);
            draft.pod_name = Some(pod_name);
            match lock {
                LockState::Verified => draft.set(
                    EGRESS_LOCKED,
                    ConditionStatus::True,
                    reasons::LOCK_VERIFIED,
                    "lock --verify passed",
                ),
                _ => draft.set(
                    EGRESS_LOCKED,
                    ConditionStatus::Unknown,
                    reasons::LOCK_PENDING,
                    "",
                ),
            }
            if health == (PodHealth::Running { ready: true }) && lock == LockState::Verified {
                draft.set(READY, ConditionStatus::True, reasons::POD_RUNNING, "");
                draft.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
                ctx.restarts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&uid);
            } else {
                draft.set(
                    READY,
                    ConditionStatus::False,
                    reasons::POD_PENDING,
                    "sandbox pod starting",
                );
            }
            Ok(Action::requeue(SAFETY_REQUEUE))
        }
    }
}

/// Revokes the session's runtime tokens with the API server (`POST /runtime/v1/revoke` with a
/// token of the session). Unreachable: retried with backoff, then given up after the revoke
/// timeout (logged) so deletion is never blocked for good.
async fn cleanup(session: Arc<Session>, ctx: &Context) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let uid = session.uid().unwrap_or_default();
    ctx.restarts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&uid);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let runtime = secrets
        .get_opt(&build::runtime_secret_name(&name))
        .await
        .map_err(Error::kube("get runtime secret"))?;
    // Revocation covers every runtime token of the session, so any valid one will do: the
    // session's own, or (its Secret already gone, e.g. the namespace is being deleted and took
    // its Secrets first) a fresh one minted for the purpose.
    let token = entry(runtime.as_ref(), RUNTIME_SECRET_TOKEN_ENTRY)
        .map(SecretString::new)
        .unwrap_or_else(|| ctx.token_key.mint(Scope::Runtime, &ns, &name));
    match revoke(ctx, &token).await {
        Ok(()) => {
            ctx.revokes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
            tracing::info!(namespace = %ns, name = %name, "runtime tokens revoked");
            Ok(Action::await_change())
        }
        Err(message) => {
            let first = *ctx
                .revokes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(uid.clone())
                .or_insert_with(Instant::now);
            if first.elapsed() >= Duration::from_secs(ctx.config.revoke_timeout_seconds) {
                tracing::error!(
                    namespace = %ns, name = %name, error = %message,
                    "giving up revoking runtime tokens; the finalizer is removed anyway"
                );
                ctx.revokes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&uid);
                Ok(Action::await_change())
            } else {
                Err(Error::Revoke(message))
            }
        }
    }
}

async fn revoke(ctx: &Context, token: &SecretString) -> Result<(), String> {
    let url = format!("{}/runtime/v1/revoke", ctx.settings.runtime_api_url);
    let request = http::Request::post(&url)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .map_err(|e| format!("bad request to {url}: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(5), ctx.http.request(request))
        .await
        .map_err(|_| format!("{url} timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        // The token is already unknown or revoked: nothing is left to revoke.
        401 => Ok(()),
        code => Err(format!("{url} answered {code}")),
    }
}

/// One reconcile of a Session: the finalizer (added first, or run on deletion), then the
/// pipeline. The controller calls it; so does the benchmark's plain client loop.
pub async fn reconcile(session: Arc<Session>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let api: Api<Session> = Api::namespaced(ctx.client.clone(), &ns);
    let target = session.clone();
    let fut = async {
        if session.metadata.deletion_timestamp.is_none()
            && !session.finalizers().iter().any(|f| f == SESSION_FINALIZER)
        {
            // Add the finalizer and run the pipeline on the answer at once, instead of waiting
            // for the watch to bring the change back (one round trip and one reconcile less per
            // new Session). The resourceVersion makes the patch fail on a concurrent change.
            let mut finalizers = session.finalizers().to_vec();
            finalizers.push(SESSION_FINALIZER.to_owned());
            let patched = api
                .patch(
                    &session.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {
                        "finalizers": finalizers,
                        "resourceVersion": session.resource_version(),
                    }})),
                )
                .await
                .map_err(Error::kube("add finalizer"))?;
            return apply(Arc::new(patched), &ctx).await;
        }
        finalizer::finalizer(&api, SESSION_FINALIZER, session, |event| async {
            match event {
                Finalizer::Apply(s) => apply(s, &ctx).await,
                Finalizer::Cleanup(s) => cleanup(s, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        })
    };
    Box::pin(measured(CONTROLLER, target.as_ref(), &ctx, Box::pin(fut))).await
}

/// Sessions (in `store`) whose pinned credential is `ns/name`.
fn sessions_using(
    store: &Store<Session>,
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Vec<ObjectRef<Session>> {
    let managed =
        ns == ctx.config.system_namespace && ctx.config.managed_credential.as_deref() == Some(name);
    store
        .state()
        .iter()
        .filter(|s| {
            let pinned = s
                .spec
                .agent_snapshot
                .as_ref()
                .map(|a| a.credential.as_str());
            (s.namespace().as_deref() == Some(ns) && pinned == Some(name))
                || (managed && pinned == Some(MANAGED_CREDENTIAL))
        })
        .map(|s| ObjectRef::from(s.as_ref()))
        .collect()
}

/// Counts sessions by phase for the gauge.
fn count_phases(store: &Store<Session>) -> std::collections::BTreeMap<String, u64> {
    let mut by_phase = std::collections::BTreeMap::new();
    for s in store.state() {
        let phase = s
            .status
            .as_ref()
            .and_then(|st| st.phase)
            .map_or("unknown", |p| p.as_str());
        *by_phase.entry(phase.to_owned()).or_insert(0) += 1;
    }
    by_phase
}

/// Runs the session controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let wc = watcher::Config::default()
        .page_size(ctx.config.page_size)
        .timeout(ctx.config.watch_timeout_seconds);
    let owned = wc.clone().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::OPERATOR_FIELD_MANAGER
    ));
    let client = ctx.client.clone();
    let (reader, stream) = main_stream(
        super::scoped::<Session>(client.clone(), namespace.as_deref()),
        wc.clone(),
    );
    // Status-only updates (the API server's phase, this controller's own conditions) need no
    // reconcile: only spec (generation), finalizer and deletion changes trigger one. The cache
    // still sees every update.
    let deleting = |s: &Session| Some(u64::from(s.metadata.deletion_timestamp.is_some()));
    let stream = stream.predicate_filter(
        predicates::generation
            .combine(predicates::finalizers)
            .combine(deleting),
        Default::default(),
    );
    let pods = watcher(
        super::scoped::<PartialObjectMeta<Pod>>(client.clone(), namespace.as_deref()),
        owned.clone(),
    )
    .default_backoff()
    .touched_objects();
    let secrets = watcher(
        super::scoped::<PartialObjectMeta<Secret>>(client.clone(), namespace.as_deref()),
        owned.clone(),
    )
    .default_backoff()
    .touched_objects();
    let claims = watcher(
        super::scoped::<PartialObjectMeta<PersistentVolumeClaim>>(
            client.clone(),
            namespace.as_deref(),
        ),
        owned.clone(),
    )
    .default_backoff()
    .touched_objects();
    let policies = watcher(
        super::scoped::<PartialObjectMeta<NetworkPolicy>>(client.clone(), namespace.as_deref()),
        owned,
    )
    .default_backoff()
    .touched_objects();
    let creds = watcher(
        super::scoped::<PartialObjectMeta<Credential>>(client.clone(), namespace.as_deref()),
        wc.clone(),
    )
    .default_backoff()
    .touched_objects();
    let sealed = watcher(
        super::scoped::<PartialObjectMeta<Secret>>(client, namespace.as_deref()),
        super::credential::sealed_secrets(&wc),
    )
    .default_backoff()
    .touched_objects();

    let (store_a, ctx_a) = (reader.clone(), ctx.clone());
    let (store_b, ctx_b) = (reader.clone(), ctx.clone());
    let (gauge_store, metrics) = (reader.clone(), ctx.metrics.clone());
    let gauge = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            metrics.set_sessions(count_phases(&gauge_store));
        }
    });
    let controller = Controller::for_stream(stream, reader)
        .owns_stream(pods)
        .owns_stream(secrets)
        .owns_stream(claims)
        .owns_stream(policies)
        .watches_stream(creds, move |c| {
            sessions_using(
                &store_a,
                &ctx_a,
                &c.namespace().unwrap_or_default(),
                &c.name_any(),
            )
        })
        .watches_stream(sealed, move |s| {
            super::credential::credential_of(&s)
                .map(|c| {
                    sessions_using(
                        &store_b,
                        &ctx_b,
                        c.namespace.as_deref().unwrap_or(""),
                        &c.name,
                    )
                })
                .unwrap_or_default()
        })
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |s: Arc<Session>, e: &Error, ctx: Arc<Context>| retry(CONTROLLER, s.as_ref(), e, &ctx),
            ctx,
        );
    drain(controller.boxed()).await;
    gauge.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;

    #[test]
    fn a_secret_is_up_to_date_only_when_it_holds_everything_built() {
        let plan = fixture::plan();
        let desired = build::proxy_secret(&plan, &fixture::settings());
        assert!(!up_to_date(None, &desired));
        let mut existing = desired.clone();
        existing
            .metadata
            .labels
            .get_or_insert_default()
            .insert("extra".into(), "kept".into());
        assert!(
            up_to_date(Some(&existing), &desired),
            "extra labels are someone else's"
        );
        let mut rotated = existing.clone();
        rotated.data.get_or_insert_default().insert(
            build::PROXY_VALUE_ENTRY.into(),
            k8s_openapi::ByteString(b"old".to_vec()),
        );
        assert!(!up_to_date(Some(&rotated), &desired));
        let mut reannotated = existing.clone();
        reannotated.metadata.annotations = None;
        assert!(!up_to_date(Some(&reannotated), &desired));
        let mut orphan = existing;
        orphan.metadata.owner_references = None;
        assert!(!up_to_date(Some(&orphan), &desired));
    }
}
