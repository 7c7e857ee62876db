//! The session controller's watches: Sessions, their children, and the Agents, Credentials and
//! sealed Secrets they depend on, each mapped back to the Sessions to reconcile.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates};
use kube::{Resource, ResourceExt};
use sealpod_resources::agent::MANAGED_CREDENTIAL;
use sealpod_resources::labels;
use sealpod_resources::{Credential, Session};

use super::super::credential::{credential_of, sealed_secrets};
use super::super::{Context, main_stream, metadata_watch, owned_watch, run_controller, scoped};
use super::{CONTROLLER, reconcile};

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
pub(crate) async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let wc = ctx.watcher_config();
    let owned = wc.clone().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::OPERATOR_FIELD_MANAGER
    ));
    let client = ctx.client.clone();
    let (reader, stream) = main_stream(
        scoped::<Session>(client.clone(), namespace.as_deref()),
        wc.clone(),
    );
    // Status-only updates (the API server's phase, this controller's own conditions) need no
    // reconcile: only spec (generation), finalizer and deletion changes trigger one, and not the
    // finalizer this controller added itself (after the predicates, which must see it to know
    // the finalizers of the next update). The cache still sees every update.
    let deleting = |s: &Session| Some(u64::from(s.metadata.deletion_timestamp.is_some()));
    let own = ctx.clone();
    let stream = stream
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(deleting),
            Default::default(),
        )
        .filter(move |s| {
            let mine =
                matches!(s, Ok(s) if own.own_writes.is_own(&Session::kind(&()), &s.metadata));
            futures::future::ready(!mine)
        });
    let ns = namespace.as_deref();
    let pods = owned_watch::<Pod>(&ctx, ns, owned.clone());
    let secrets = owned_watch::<Secret>(&ctx, ns, owned.clone());
    let claims = owned_watch::<PersistentVolumeClaim>(&ctx, ns, owned.clone());
    let policies = owned_watch::<NetworkPolicy>(&ctx, ns, owned);
    let creds = metadata_watch::<Credential>(client.clone(), ns, wc.clone());
    let sealed = metadata_watch::<Secret>(client, ns, sealed_secrets(&wc));

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
            credential_of(&s)
                .map(|c| {
                    sessions_using(
                        &store_b,
                        &ctx_b,
                        c.namespace.as_deref().unwrap_or(""),
                        &c.name,
                    )
                })
                .unwrap_or_default()
        });
    run_controller(CONTROLLER, controller, reconcile, ctx, shutdown).await;
    gauge.abort();
}
