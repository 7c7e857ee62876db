//! Session controller, a pipeline: fetch (pin the agent when the snapshot is missing) →
//! validate → bind the credential → build the children (pure, `build`) → apply them with
//! server-side apply → drive the pod's lifecycle → write status and Events.
//!
//! Children are owned by the Session and garbage-collected with it; the finalizer exists only
//! to revoke the session's runtime tokens with the API server. It must never log, put into
//! status or an Event any credential value or token.
//!
//! Modules: [`pipeline`] (reconcile steps up to the applied children), [`plan`] (the pod's
//! lifecycle as a pure, table-tested decision), [`pod`] (observing the pod and carrying the plan
//! out), [`finalize`] (revocation on deletion), [`watches`] (what triggers a reconcile). They
//! are parts of this module: each takes the imports below with `use super::*`.

mod finalize;
mod pipeline;
mod plan;
mod pod;
mod watches;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Full;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams};
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

use finalize::cleanup;
use pipeline::apply;
pub use watches::run;

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
