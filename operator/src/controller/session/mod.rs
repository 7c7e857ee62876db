//! Session controller, a pipeline: fetch (pin the agent when the snapshot is missing) →
//! validate → bind the credential → build the children (pure, `build`) → apply them with
//! server-side apply → drive the pod's lifecycle → write status and Events.
//!
//! Children are owned by the Session and garbage-collected with it; the finalizer exists only
//! to revoke the session's runtime tokens with the API server. It must never log, put into
//! status or an Event any credential value or token.
//!
//! Modules: [`pipeline`] (the reconcile steps, one function each), [`claim`] (which pod: the
//! session's own or one of the agent's warm pool), [`plan`] (the pod's lifecycle
//! as a pure, table-tested decision), [`pod`] (observing the pod and carrying the plan out),
//! [`status`] (what status says, and writing it), [`finalize`] (revocation on deletion),
//! [`watches`] (what triggers a reconcile). Their arrows point one way: `pipeline` → `claim`,
//! `pipeline` → `pod` → `plan`, and `pipeline`, `pod` → `status`; every one may use this module's
//! glue.

mod claim;
mod finalize;
mod pipeline;
mod plan;
mod pod;
mod status;
mod watches;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::{Api, Resource, ResourceExt};
use sealpod_resources::Session;
use sealpod_resources::labels::SESSION_FINALIZER;
use serde_json::json;

use super::{Context, apply_child, measured};
use crate::error::Error;

pub(crate) use watches::run;

/// Controller name (metrics).
pub(crate) const CONTROLLER: &str = "session";

/// The text of one entry of a Secret (None: no Secret, no such entry, or not UTF-8).
fn entry(secret: Option<&Secret>, key: &str) -> Option<String> {
    secret
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
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
            // new Session; the watch event of this patch is then recognised as the operator's
            // own and triggers nothing). The resourceVersion makes the patch fail on a
            // concurrent change.
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
            ctx.own_writes.wrote(&Session::kind(&()), patched.meta());
            return pipeline::apply(Arc::new(patched), &ctx).await;
        }
        finalizer::finalizer(&api, SESSION_FINALIZER, session, |event| async {
            match event {
                Finalizer::Apply(s) => pipeline::apply(s, &ctx).await,
                Finalizer::Cleanup(s) => finalize::cleanup(s, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(Box::new(other)),
        })
    };
    Box::pin(measured(CONTROLLER, target.as_ref(), &ctx, Box::pin(fut))).await
}
