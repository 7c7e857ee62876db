//! Credential controller: opens each Credential's sealed value with the operator's keys (to
//! prove it opens; the value is dropped at once) and reports `keyId` and the `Ready`/`Degraded`
//! conditions. `last4` and `version` are the API server's. Rotation reaches sessions through the
//! session controller, which watches Credentials and their sealed Secrets.
//!
//! It must never log, or put into status or an Event, the opened value.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use sealpod_resources::Credential;
use sealpod_resources::conditions::{ConditionStatus, DEGRADED, READY, reasons};
use sealpod_resources::labels;
use serde_json::json;

use super::{
    Conditions, Context, CredentialError, SAFETY_REQUEUE, apply_status, main_stream, measured,
    open_credential, publish_transitions,
};
use crate::error::Error;

/// Controller name (metrics).
pub(crate) const CONTROLLER: &str = "credential";

/// The Credential a sealed Secret belongs to: its `sealpod.dev/credential` label, or an owner
/// reference of kind Credential.
pub(crate) fn credential_of(secret: &PartialObjectMeta<Secret>) -> Option<ObjectRef<Credential>> {
    let ns = secret.namespace()?;
    let name = secret
        .labels()
        .get(labels::CREDENTIAL_LABEL)
        .cloned()
        .or_else(|| {
            secret
                .owner_references()
                .iter()
                .find(|o| o.kind == "Credential")
                .map(|o| o.name.clone())
        })?;
    Some(ObjectRef::new(&name).within(&ns))
}

/// Watch configuration of sealed-credential Secrets.
pub(crate) fn sealed_secrets(wc: &watcher::Config) -> watcher::Config {
    wc.clone().labels(&format!(
        "{}={}",
        labels::COMPONENT_LABEL,
        labels::COMPONENT_SEALED_CREDENTIAL
    ))
}

/// Writers whose sealed Secrets are moved into the Credential: the API server and `sealpod up`
/// kept a credential's sealed value in a Secret of their own before it moved into the spec.
const MOVED_WRITERS: [&str; 2] = [labels::API_SERVER_FIELD_MANAGER, "sealpod-up"];

/// Moves a sealed value that sealpod itself once kept in a Secret into `spec.sealedValue` and
/// deletes that Secret, so that the API server needs no access to Secrets. A Secret written by
/// anyone else (a Credential applied with its value in a Secret) stays as it is. True when the
/// Credential was patched.
async fn move_sealed_value(ctx: &Context, cred: &Credential) -> Result<bool, Error> {
    let Some(reference) = &cred.spec.sealed_secret_ref else {
        return Ok(false);
    };
    let ns = cred.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(Error::kube("get sealed secret"))?;
    let ours = |s: &Secret| {
        s.labels()
            .get(labels::MANAGED_BY)
            .is_some_and(|w| MOVED_WRITERS.contains(&w.as_str()))
    };
    let value = match &secret {
        Some(s) if ours(s) => cred
            .spec
            .sealed_value
            .clone()
            .or_else(|| super::sealed_entry(s)),
        // Only a Secret of our own is moved; a missing one when the value is already in the
        // spec (a rotation through the API) just drops the reference.
        None if cred.spec.sealed_value.is_some() => cred.spec.sealed_value.clone(),
        _ => None,
    };
    let Some(value) = value else {
        return Ok(false);
    };
    let patch = json!({"spec": {"sealedValue": value, "sealedSecretRef": null}});
    Api::<Credential>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &cred.name_any(),
            &PatchParams {
                field_manager: Some(labels::OPERATOR_FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::kube("move the sealed value into the credential"))?;
    if secret.is_some() {
        match secrets
            .delete(&reference.name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("delete the moved sealed secret")(e)),
        }
    }
    tracing::info!(credential = %cred.name_any(), namespace = %ns, "moved the sealed value into the credential");
    Ok(true)
}

async fn reconcile(cred: Arc<Credential>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(CONTROLLER, cred.as_ref(), &ctx, apply(&cred, &ctx)).await
}

async fn apply(cred: &Credential, ctx: &Context) -> Result<Action, Error> {
    if cred.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if move_sealed_value(ctx, cred).await? {
        // The patch brings the Credential back, its value in its spec.
        return Ok(Action::await_change());
    }
    let old = cred.status.clone().unwrap_or_default();
    let generation = cred.metadata.generation;
    let mut conds = Conditions::from(&old.conditions, generation);
    let mut key_id = old.key_id.clone();
    match open_credential(ctx, cred).await {
        Err(CredentialError::Failed(e)) => return Err(e),
        Ok(opened) => {
            key_id = Some(opened.key_id.to_string());
            drop(opened.value);
            conds.set(
                READY,
                ConditionStatus::True,
                reasons::AS_EXPECTED,
                "the sealed value opens",
            );
            conds.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
        }
        Err(CredentialError::Problem(problem)) => {
            let (reason, message) = problem.reason_and_message();
            conds.set(READY, ConditionStatus::False, reason, message.clone());
            conds.set(DEGRADED, ConditionStatus::True, reason, message);
        }
    }
    if conds.list != old.conditions || key_id != old.key_id || generation != old.observed_generation
    {
        let mut status = json!({
            "observedGeneration": generation,
            "conditions": conds.list,
        });
        if let Some(k) = &key_id {
            status["keyId"] = json!(k);
        }
        apply_status(ctx, cred, status).await?;
        publish_transitions(ctx, cred, &old.conditions, &conds.list).await;
    }
    // The sealed Secret's watch retriggers on change; the requeue is a safety net for Secrets
    // that carry neither the credential label nor an owner reference.
    Ok(Action::requeue(SAFETY_REQUEUE))
}

/// Runs the credential controller until `shutdown`.
pub(crate) async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let wc = ctx.watcher_config();
    let client = ctx.client.clone();
    let (reader, stream) = main_stream(
        super::scoped::<Credential>(client.clone(), namespace.as_deref()),
        wc.clone(),
    );
    let secrets =
        super::metadata_watch::<Secret>(client, namespace.as_deref(), sealed_secrets(&wc));
    let controller =
        Controller::for_stream(stream, reader).watches_stream(secrets, |s| credential_of(&s));
    super::run_controller(CONTROLLER, controller, reconcile, ctx, shutdown).await;
}
