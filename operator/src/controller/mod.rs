//! The three controllers (credential, agent, session), their shared context and the pieces they
//! share: opening a credential, writing conditions with server-side apply on `/status`, and
//! publishing an Event for each condition transition.
//!
//! Nothing here may log, put into status or into an Event an opened credential value.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sealpod_resources::Credential;
use sealpod_resources::agent::MANAGED_CREDENTIAL;
use sealpod_resources::conditions::{self, Condition, ConditionStatus};
use sealpod_resources::credential::CredentialSpec;
use sealpod_resources::labels::{OPERATOR_FIELD_MANAGER, SEALED_SECRET_KEY};
use sealpod_resources::runtime_token::TokenKey;
use sealpod_resources::sealing::{KeyId, KeySet, SealedValue, SealingError};
use sealpod_resources::secret::Secret as SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::Settings;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use events::{Events, Note};
use opened::OpenedValues;
use own_writes::OwnWrites;

pub(crate) mod agent;
pub(crate) mod credential;
mod events;
pub(crate) mod lifecycle;
mod opened;
mod own_writes;
pub(crate) mod pool;
mod revision;
pub mod session;

/// What every reconcile shares.
pub struct Context {
    /// The cluster.
    pub(crate) client: Client,
    /// Builder settings.
    pub(crate) settings: Settings,
    /// The flags.
    pub(crate) config: Config,
    /// The sealing key set (reloaded when a value names an unknown key).
    pub(crate) keys: RwLock<KeySet>,
    /// Credential values opened before, so a reconcile does not open them again.
    opened: OpenedValues,
    /// Children written by this operator whose watch events are still to come.
    pub(crate) own_writes: OwnWrites,
    /// The runtime-token key.
    pub(crate) token_key: TokenKey,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Events of condition transitions.
    events: Events,
    /// Restart bookkeeping of sandbox pods, by Session UID.
    pub(crate) restarts: Mutex<HashMap<String, lifecycle::Restart>>,
    /// First failed revoke of a deleted Session, by UID.
    pub(crate) revokes: Mutex<HashMap<String, Instant>>,
    /// Failed reconciles in a row, by controller and UID (error backoff).
    pub(crate) attempts: Mutex<HashMap<(&'static str, String), u32>>,
    /// HTTP client of the runtime API (revoke).
    pub(crate) http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The watcher settings every controller's watches share: page size and server timeout.
    pub(crate) fn watcher_config(&self) -> watcher::Config {
        watcher::Config::default()
            .page_size(self.config.page_size)
            .timeout(self.config.watch_timeout_seconds)
    }

    /// A context over `client`.
    pub fn new(
        client: Client,
        config: Config,
        settings: Settings,
        keys: KeySet,
        token_key: TokenKey,
        metrics: Arc<Metrics>,
    ) -> Context {
        let events = Events::new(client.clone(), OPERATOR_FIELD_MANAGER);
        Context {
            client,
            settings,
            config,
            keys: RwLock::new(keys),
            opened: OpenedValues::default(),
            own_writes: OwnWrites::default(),
            token_key,
            metrics,
            events,
            restarts: Mutex::default(),
            revokes: Mutex::default(),
            attempts: Mutex::default(),
            http: HttpClient::builder(hyper_util::rt::TokioExecutor::new())
                .build(HttpConnector::new()),
        }
    }

    fn attempt(&self, controller: &'static str, uid: String) -> u32 {
        let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = a.entry((controller, uid)).or_default();
        *n += 1;
        *n
    }

    fn succeeded(&self, controller: &'static str, uid: String) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(controller, uid));
    }
}

/// Runs one reconcile, records its metrics and resets or counts its error attempts.
pub(crate) async fn measured<K: Resource>(
    controller: &'static str,
    obj: &K,
    ctx: &Context,
    fut: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let result = fut.await;
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    ctx.metrics.reconciled(controller, label, start.elapsed());
    let uid = obj.meta().uid.clone().unwrap_or_default();
    if result.is_ok() {
        ctx.succeeded(controller, uid);
    }
    result
}

/// The error policy of every controller: transient errors are retried with a per-object
/// exponential backoff (a bad spec never reaches here: it is reported in status and waits).
pub(crate) fn retry<K: Resource>(
    controller: &'static str,
    obj: &K,
    error: &Error,
    ctx: &Context,
) -> Action {
    let n = ctx.attempt(controller, obj.meta().uid.clone().unwrap_or_default());
    tracing::warn!(
        controller,
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        name = obj.meta().name.as_deref().unwrap_or(""),
        error = %error,
        attempt = n,
        "reconcile failed"
    );
    Action::requeue(error.retry_after(n))
}

/// Now, as a condition timestamp (RFC 3339, seconds).
pub(crate) fn now() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// A set of conditions being computed from the ones already in status.
#[derive(Debug, Clone)]
pub(crate) struct Conditions {
    /// The conditions, old transition times kept where the status did not change.
    pub(crate) list: Vec<Condition>,
    generation: Option<i64>,
    now: String,
}

impl Conditions {
    /// Starts from `existing`.
    pub(crate) fn from(existing: &[Condition], generation: Option<i64>) -> Conditions {
        Conditions {
            list: existing.to_vec(),
            generation,
            now: now(),
        }
    }

    /// Sets one condition.
    pub(crate) fn set(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) {
        conditions::set_condition(
            &mut self.list,
            Condition::new(type_, status, reason, message, &self.now, self.generation),
        );
    }
}

/// Publishes one Event per condition whose status or reason changed. Events are best effort: a
/// failure is logged, never fails the reconcile.
pub(crate) async fn publish_transitions<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    let reference = obj.object_ref(&());
    for c in new {
        let before = conditions::find(old, &c.type_);
        if before.is_some_and(|b| b.status == c.status && b.reason == c.reason) {
            continue;
        }
        // A condition appearing in its quiet state (not yet true, or not degraded) is no
        // transition worth an Event; this keeps a new object to the events that say something.
        let quiet = if c.type_ == conditions::DEGRADED {
            c.status == ConditionStatus::False
        } else {
            c.status != ConditionStatus::True
        };
        if before.is_none() && quiet {
            continue;
        }
        let warning = (c.type_ == conditions::DEGRADED && c.status == ConditionStatus::True)
            || (c.type_ == conditions::EGRESS_LOCKED
                && c.reason == conditions::reasons::LOCK_FAILED);
        let note = Note {
            warning,
            reason: c.reason.clone(),
            action: c.type_.clone(),
            text: format!("{} is {:?}: {}", c.type_, c.status, c.message),
        };
        if let Err(error) = ctx.events.publish(&note, &reference).await {
            tracing::debug!(%error, "event not published");
        }
    }
}

/// Writes `status` (a JSON object of the operator's fields) with server-side apply on the
/// `/status` subresource under the operator's field manager.
pub(crate) async fn apply_status<K>(
    ctx: &Context,
    obj: &K,
    status: serde_json::Value,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(OPERATOR_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("apply status"))?;
    Ok(())
}

/// Server-side apply of one child under the operator's field manager.
pub(crate) async fn apply_child<K>(
    ctx: &Context,
    ns: &str,
    obj: &K,
    op: &'static str,
) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let applied = api
        .patch(
            &obj.name_any(),
            &PatchParams::apply(OPERATOR_FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(Error::kube(op))?;
    ctx.own_writes.wrote(&K::kind(&()), applied.meta());
    Ok(applied)
}

/// Why a credential cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialProblem {
    /// The Credential or its sealed Secret does not exist (reason `CredentialNotFound`).
    NotFound(String),
    /// The sealed value does not open (reason `CredentialUnreadable`).
    Unreadable(String),
}

impl CredentialProblem {
    /// The condition reason and message that report it.
    pub(crate) fn reason_and_message(self) -> (&'static str, String) {
        match self {
            CredentialProblem::NotFound(m) => (conditions::reasons::CREDENTIAL_NOT_FOUND, m),
            CredentialProblem::Unreadable(m) => (conditions::reasons::CREDENTIAL_UNREADABLE, m),
        }
    }
}

/// Why a credential cannot be used: a problem its resource's conditions report, or a failure the
/// reconcile returns (and is retried for).
#[derive(Debug)]
pub(crate) enum CredentialError {
    /// Reported on the resource; waits for the Credential or its Secret to change.
    Problem(CredentialProblem),
    /// The API or the key set failed.
    Failed(Error),
}

impl From<Error> for CredentialError {
    fn from(e: Error) -> CredentialError {
        CredentialError::Failed(e)
    }
}

impl From<CredentialProblem> for CredentialError {
    fn from(p: CredentialProblem) -> CredentialError {
        CredentialError::Problem(p)
    }
}

/// An opened credential value and the key that sealed it.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The value (redacting).
    pub(crate) value: SecretString,
    /// The key id of the sealed value.
    pub(crate) key_id: KeyId,
}

/// A Credential's sealed value: `spec.sealedValue`, else the entry `sealed` of the Secret that
/// `spec.sealedSecretRef` names.
async fn sealed_text(ctx: &Context, credential: &Credential) -> Result<String, CredentialError> {
    if let Some(text) = &credential.spec.sealed_value {
        return Ok(text.clone());
    }
    let Some(reference) = &credential.spec.sealed_secret_ref else {
        return Err(CredentialProblem::NotFound(
            "the Credential has neither `sealedValue` nor `sealedSecretRef`".into(),
        )
        .into());
    };
    let ns = credential.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = &reference.name;
    let Some(secret) = secrets
        .get_opt(secret_name)
        .await
        .map_err(Error::kube("get sealed secret"))?
    else {
        return Err(CredentialProblem::NotFound(format!(
            "sealed Secret `{secret_name}` not found"
        ))
        .into());
    };
    sealed_entry(&secret).ok_or_else(|| {
        CredentialProblem::Unreadable(format!(
            "sealed Secret `{secret_name}` has no text entry `{SEALED_SECRET_KEY}`"
        ))
        .into()
    })
}

/// The text of a sealed Secret's `sealed` entry.
pub(crate) fn sealed_entry(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(SEALED_SECRET_KEY)
        .and_then(|b| std::str::from_utf8(&b.0).ok())
        .map(str::to_owned)
}

/// The Credential a reference (`managed`, or a name in `ns`) names.
pub(crate) async fn find_credential(
    ctx: &Context,
    ns: &str,
    reference: &str,
) -> Result<Credential, CredentialError> {
    let (cred_ns, name) = if reference == MANAGED_CREDENTIAL {
        match &ctx.config.managed_credential {
            Some(n) => (ctx.config.system_namespace.clone(), n.clone()),
            None => {
                return Err(CredentialProblem::NotFound(
                    "no managed credential is configured".into(),
                )
                .into());
            }
        }
    } else {
        (ns.to_owned(), reference.to_owned())
    };
    let creds: Api<Credential> = Api::namespaced(ctx.client.clone(), &cred_ns);
    let Some(cred) = creds
        .get_opt(&name)
        .await
        .map_err(Error::kube("get credential"))?
    else {
        return Err(CredentialProblem::NotFound(format!("credential `{name}` not found")).into());
    };
    Ok(cred)
}

/// Opens a Credential's sealed value with the operator's keys.
pub(crate) async fn open_credential(
    ctx: &Context,
    credential: &Credential,
) -> Result<Opened, CredentialError> {
    let ns = credential.namespace().unwrap_or_default();
    let name = credential.name_any();
    let text = sealed_text(ctx, credential).await?;
    let sealed = SealedValue::from_text(text.trim());
    let key_id = || sealed.key_id().map_err(|e| Error::Keys(e.into()));
    let context = CredentialSpec::sealing_context(&ns, &name);
    if let Some(value) = ctx.opened.get(&context, sealed.as_str()) {
        return Ok(Opened {
            value,
            key_id: key_id()?,
        });
    }
    let open = |keys: &RwLock<KeySet>| {
        keys.read()
            .unwrap_or_else(|e| e.into_inner())
            .open_text(&sealed, &context)
    };
    let mut result = open(&ctx.keys);
    if matches!(result, Err(SealingError::UnknownKeyId(_))) {
        // The key set may have been renewed by another process since we loaded it.
        if let Some(fresh) =
            crate::keys::load_sealing_keys(&ctx.client, &ctx.config.system_namespace).await?
        {
            *ctx.keys.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            result = open(&ctx.keys);
        }
    }
    match result {
        Ok(value) if value.is_empty() => Err(CredentialProblem::Unreadable(
            "the sealed value opens to an empty key".into(),
        )
        .into()),
        Ok(value) => {
            ctx.opened.insert(&context, sealed.as_str(), &value);
            Ok(Opened {
                value,
                key_id: key_id()?,
            })
        }
        // Sealing errors name key ids and causes, never the value.
        Err(e) => Err(CredentialProblem::Unreadable(e.to_string()).into()),
    }
}

/// kubectl's copy of the object it last applied (`kubectl apply`): a second copy of the spec.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no controller reads from an object about to be cached: `managedFields` (most of an
/// object's size) and kubectl's last-applied copy. The controllers patch, never replace, their
/// main objects, so what the cache lacks is never written back.
fn prune_cached(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The watch stream and store of a controller's main resource, pruned before caching
/// ([`prune_cached`]).
pub(crate) fn main_stream<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, wc)
        .default_backoff()
        .modify(|o: &mut K| prune_cached(o.meta_mut()))
        .reflect(writer)
        .applied_objects();
    (reader, stream)
}

/// An Api over every namespace (`None`) or one.
pub(crate) fn scoped<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// A namespaced kind whose metadata the controllers watch.
pub(crate) trait Watched:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// The events of a watch of the metadata of `K` objects (in `namespace`, or in all), retried
/// with backoff.
fn metadata_events<K: Watched>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<kube::core::PartialObjectMeta<K>>, watcher::Error>>
+ Send
+ 'static {
    watcher(
        scoped::<kube::core::PartialObjectMeta<K>>(client, namespace),
        config,
    )
    .default_backoff()
}

/// A watch of the metadata of `K` objects (in `namespace`, or in all), retried with backoff, as
/// the stream of the objects it touches: what `owns_stream` and `watches_stream` take.
pub(crate) fn metadata_watch<K: Watched>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
) -> impl Stream<Item = Result<kube::core::PartialObjectMeta<K>, watcher::Error>> + Send + 'static {
    metadata_events(client, namespace, config).touched_objects()
}

/// [`metadata_watch`] of a controller's children, without the updates this operator's own
/// writes made ([`OwnWrites`]): a child it just wrote does not bring its owner back.
pub(crate) fn owned_watch<K: Watched>(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    config: watcher::Config,
) -> impl Stream<Item = Result<kube::core::PartialObjectMeta<K>, watcher::Error>> + Send + 'static {
    let own = Arc::clone(ctx);
    let kind = K::kind(&()).into_owned();
    metadata_events(ctx.client.clone(), namespace, config)
        .filter(move |event| {
            let mine = matches!(event, Ok(watcher::Event::Apply(o)) if own.own_writes.is_own(&kind, &o.metadata));
            futures::future::ready(!mine)
        })
        .touched_objects()
}

/// Keeps a controller's stream running until it ends.
pub(crate) async fn drain<S: Stream + Send>(stream: S) {
    stream.for_each(|_| futures::future::ready(())).await;
}

/// Runs `controller` until `shutdown` with the settings every controller shares: the configured
/// concurrency, a graceful shutdown, and [`retry`] (logged, backed off) when `reconcile` fails.
pub(crate) async fn run_controller<K, R, F>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: R,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    R: FnMut(Arc<K>, Arc<Context>) -> F + Send + 'static,
    F: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let concurrency = ctx.config.concurrency;
    let controller = controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            move |obj: Arc<K>, e: &Error, ctx: Arc<Context>| retry(name, obj.as_ref(), e, &ctx),
            ctx,
        );
    drain(controller.boxed()).await;
}

/// Requeue of an object in a steady state: a safety net for a missed watch event, not a poll.
pub(crate) const SAFETY_REQUEUE: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;

    #[test]
    fn a_cached_object_keeps_neither_managed_fields_nor_kubectls_last_applied_copy() {
        let mut meta = ObjectMeta {
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            annotations: Some(
                [
                    (LAST_APPLIED.to_owned(), "{\"spec\":{}}".to_owned()),
                    ("team".to_owned(), "a".to_owned()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        };
        prune_cached(&mut meta);
        assert_eq!(meta.managed_fields, None);
        assert_eq!(
            meta.annotations,
            Some([("team".to_owned(), "a".to_owned())].into())
        );
    }
}
