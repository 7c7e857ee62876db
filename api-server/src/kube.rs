//! Access to the Kubernetes API (kube 5): the `Agent`, `AgentRevision`, `Session`, `Credential`
//! and `Schedule` objects of a tenant namespace (a Credential carries its own sealed value), its
//! skill bundles' ConfigMaps, org API key records, and the system namespace's sealing public
//! keys and token keys. Writes use the API server's field manager; session status goes through
//! server-side apply of only the fields this server owns (`phase`, `head`, `lastTurn`),
//! credential status of only `last4` and `version`.
//!
//! This module never reads a private sealing key and never writes a plaintext credential.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use sealpod_resources::labels::{
    AGENT_LABEL, API_KEY_HASH_ENTRY, API_SERVER_FIELD_MANAGER, COMPONENT_API_KEY, COMPONENT_LABEL,
    MANAGED_BY, PART_OF, PART_OF_VALUE, SEALING_KEYS_ENTRY, SEALING_PUBLIC_CONFIGMAP,
};
use sealpod_resources::schedule::ScheduleStatus;
use sealpod_resources::sealing::{PublicKeySet, SealedValue};
use sealpod_resources::session::{DesiredState, SessionStatus};
use sealpod_resources::{Agent, AgentRevision, AgentRevisionStatus, Credential, Schedule, Session};
use serde_json::{Value, json};

/// How long [`Cluster::system_key`] waits for the operator to create a key Secret.
pub const KEY_WAIT: Duration = Duration::from_secs(120);

/// A Kubernetes call failed.
#[derive(Debug, thiserror::Error)]
#[error("kubernetes {op}: {source}")]
pub struct KubeError {
    /// The operation.
    pub op: &'static str,
    /// The cause.
    #[source]
    pub source: kube::Error,
}

impl KubeError {
    /// The HTTP status the API server answered, if any.
    pub fn code(&self) -> Option<u16> {
        match &self.source {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

/// Result of a Kubernetes call.
pub type KubeResult<T> = Result<T, KubeError>;

fn op(op: &'static str) -> impl FnOnce(kube::Error) -> KubeError {
    move |source| KubeError { op, source }
}

fn post() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(API_SERVER_FIELD_MANAGER.to_owned()),
    }
}

fn merge() -> PatchParams {
    PatchParams {
        field_manager: Some(API_SERVER_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// Labels every object this server creates carries.
pub fn base_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), API_SERVER_FIELD_MANAGER.to_owned()),
        (PART_OF.to_owned(), PART_OF_VALUE.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

/// The cluster as this server sees it.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    system_namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("system_namespace", &self.system_namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Wraps a client.
    pub fn new(client: Client, system_namespace: impl Into<String>) -> Cluster {
        Cluster {
            client,
            system_namespace: system_namespace.into(),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The system namespace.
    pub fn system_namespace(&self) -> &str {
        &self.system_namespace
    }

    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// One Agent.
    pub async fn get_agent(&self, ns: &str, name: &str) -> KubeResult<Option<Agent>> {
        self.api::<Agent>(ns)
            .get_opt(name)
            .await
            .map_err(op("get agent"))
    }

    /// Every Agent of a namespace.
    pub async fn list_agents(&self, ns: &str) -> KubeResult<Vec<Agent>> {
        Ok(self
            .api::<Agent>(ns)
            .list(&ListParams::default())
            .await
            .map_err(op("list agents"))?
            .items)
    }

    /// Creates an Agent; `Ok(None)` when one of that name exists.
    pub async fn create_agent(&self, ns: &str, agent: &Agent) -> KubeResult<Option<Agent>> {
        match self.api::<Agent>(ns).create(&post(), agent).await {
            Ok(a) => Ok(Some(a)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(op("create agent")(e)),
        }
    }

    /// Merge-patches an Agent.
    pub async fn patch_agent(&self, ns: &str, name: &str, patch: &Value) -> KubeResult<Agent> {
        self.merge_patch(ns, name, patch, "patch agent").await
    }

    /// One Credential.
    pub async fn get_credential(&self, ns: &str, name: &str) -> KubeResult<Option<Credential>> {
        self.api::<Credential>(ns)
            .get_opt(name)
            .await
            .map_err(op("get credential"))
    }

    /// Every Credential of a namespace.
    pub async fn list_credentials(&self, ns: &str) -> KubeResult<Vec<Credential>> {
        Ok(self
            .api::<Credential>(ns)
            .list(&ListParams::default())
            .await
            .map_err(op("list credentials"))?
            .items)
    }

    /// Creates a Credential (its sealed value in its spec), then records `last4` and `version` 1
    /// in its status. On a failure after the Credential exists, deletes it again.
    pub async fn create_credential(
        &self,
        ns: &str,
        credential: &Credential,
        last4: &str,
    ) -> KubeResult<Credential> {
        let created = self
            .api::<Credential>(ns)
            .create(&post(), credential)
            .await
            .map_err(op("create credential"))?;
        let name = created.name_any();
        let result = self.set_credential_status(ns, &name, last4, 1).await;
        if result.is_err() {
            let _ = self.delete_credential(ns, &name).await;
        }
        result
    }

    /// Rotates a credential's value: replaces `spec.sealedValue` and bumps `status.version`.
    pub async fn rotate_credential(
        &self,
        ns: &str,
        credential: &Credential,
        sealed: &SealedValue,
        last4: &str,
    ) -> KubeResult<Credential> {
        let name = credential.name_any();
        self.patch_credential(
            ns,
            &name,
            &json!({"spec": {"sealedValue": sealed.as_str()}}),
        )
        .await?;
        let version = credential
            .status
            .as_ref()
            .and_then(|s| s.version)
            .unwrap_or(1)
            + 1;
        self.set_credential_status(ns, &name, last4, version).await
    }

    async fn set_credential_status(
        &self,
        ns: &str,
        name: &str,
        last4: &str,
        version: i64,
    ) -> KubeResult<Credential> {
        let patch = json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Credential",
            "status": {"last4": last4, "version": version},
        });
        self.api::<Credential>(ns)
            .patch_status(
                name,
                &PatchParams::apply(API_SERVER_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(op("credential status"))
    }

    /// Merge-patches a Credential's spec.
    pub async fn patch_credential(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> KubeResult<Credential> {
        self.merge_patch(ns, name, patch, "patch credential").await
    }

    /// Deletes a Credential. Absent is success.
    pub async fn delete_credential(&self, ns: &str, name: &str) -> KubeResult<()> {
        self.delete::<Credential>(ns, name, "delete credential")
            .await
    }

    /// Merge-patches an object of a tenant namespace.
    async fn merge_patch<K>(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
        what: &'static str,
    ) -> KubeResult<K>
    where
        K: TenantObject,
    {
        self.api::<K>(ns)
            .patch(name, &merge(), &Patch::Merge(patch))
            .await
            .map_err(op(what))
    }

    /// Deletes an object of a tenant namespace. Absent is success.
    async fn delete<K>(&self, ns: &str, name: &str, what: &'static str) -> KubeResult<()>
    where
        K: TenantObject,
    {
        match self
            .api::<K>(ns)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(op(what)(e)),
        }
    }

    /// Creates a Session object.
    pub async fn create_session(&self, ns: &str, session: &Session) -> KubeResult<Session> {
        match self.api::<Session>(ns).create(&post(), session).await {
            Ok(s) => Ok(s),
            Err(kube::Error::Api(s)) if s.code == 409 => self
                .api::<Session>(ns)
                .get(&session.name_any())
                .await
                .map_err(op("get session")),
            Err(e) => Err(op("create session")(e)),
        }
    }

    /// Sets a Session's `spec.desiredState`.
    pub async fn set_desired_state(
        &self,
        ns: &str,
        name: &str,
        state: DesiredState,
    ) -> KubeResult<()> {
        let patch = json!({"spec": {"desiredState": state}});
        self.merge_patch::<Session>(ns, name, &patch, "session desired state")
            .await
            .map(|_| ())
    }

    /// Applies the API server's part of a Session's status.
    pub async fn apply_session_status(
        &self,
        ns: &str,
        name: &str,
        status: &SessionStatus,
    ) -> KubeResult<()> {
        self.apply_status::<Session>(ns, name, status, "session status")
            .await
    }

    /// Server-side applies `status` (this server's field manager) to an object of a tenant
    /// namespace.
    async fn apply_status<K>(
        &self,
        ns: &str,
        name: &str,
        status: &impl serde::Serialize,
        what: &'static str,
    ) -> KubeResult<()>
    where
        K: TenantObject,
    {
        let patch = json!({
            "apiVersion": K::api_version(&Default::default()),
            "kind": K::kind(&Default::default()),
            "status": status,
        });
        self.api::<K>(ns)
            .patch_status(
                name,
                &PatchParams::apply(API_SERVER_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map(|_| ())
            .map_err(op(what))
    }

    /// One Schedule.
    pub async fn get_schedule(&self, ns: &str, name: &str) -> KubeResult<Option<Schedule>> {
        self.api::<Schedule>(ns)
            .get_opt(name)
            .await
            .map_err(op("get schedule"))
    }

    /// The Schedules of an Agent (by object name), oldest first.
    pub async fn list_schedules(&self, ns: &str, agent: &str) -> KubeResult<Vec<Schedule>> {
        let mut items: Vec<Schedule> = self
            .api::<Schedule>(ns)
            .list(&ListParams::default())
            .await
            .map_err(op("list schedules"))?
            .items
            .into_iter()
            .filter(|s| s.spec.agent_ref == agent)
            .collect();
        items.sort_by_key(|s| (s.creation_timestamp(), s.name_any()));
        Ok(items)
    }

    /// Creates a Schedule; `Ok(None)` when one of that name exists.
    pub async fn create_schedule(
        &self,
        ns: &str,
        schedule: &Schedule,
    ) -> KubeResult<Option<Schedule>> {
        match self.api::<Schedule>(ns).create(&post(), schedule).await {
            Ok(s) => Ok(Some(s)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(op("create schedule")(e)),
        }
    }

    /// Merge-patches a Schedule's spec.
    pub async fn patch_schedule(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> KubeResult<Schedule> {
        self.merge_patch(ns, name, patch, "patch schedule").await
    }

    /// Deletes a Schedule. Absent is success.
    pub async fn delete_schedule(&self, ns: &str, name: &str) -> KubeResult<()> {
        self.delete::<Schedule>(ns, name, "delete schedule").await
    }

    /// Applies a Schedule's status (this server owns all of it).
    pub async fn apply_schedule_status(
        &self,
        ns: &str,
        name: &str,
        status: &ScheduleStatus,
    ) -> KubeResult<()> {
        self.apply_status::<Schedule>(ns, name, status, "schedule status")
            .await
    }

    /// The sealing public keys, when the operator has published them.
    pub async fn sealing_public_keys(&self) -> KubeResult<Option<PublicKeySet>> {
        let cm = self
            .api::<ConfigMap>(&self.system_namespace)
            .get_opt(SEALING_PUBLIC_CONFIGMAP)
            .await
            .map_err(op("get sealing public keys"))?;
        Ok(cm
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(SEALING_KEYS_ENTRY).cloned())
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// The bytes of entry `entry` of Secret `name` in the system namespace, creating the Secret
    /// with `generate()` if it does not exist (whoever creates it first wins; on 409 we read).
    /// Without the right to create it (the chart's role), waits up to [`KEY_WAIT`] for the
    /// operator to.
    pub async fn system_key(
        &self,
        name: &str,
        entry: &str,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> KubeResult<Vec<u8>> {
        let api = self.api::<Secret>(&self.system_namespace);
        let read = |s: Secret| {
            s.data
                .and_then(|d| d.get(entry).map(|b| b.0.clone()))
                .unwrap_or_default()
        };
        if let Some(secret) = api.get_opt(name).await.map_err(op("get key secret"))? {
            return Ok(read(secret));
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.system_namespace.clone()),
                labels: Some(base_labels("token-key")),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(entry.to_owned(), ByteString(generate()))])),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        match api.create(&post(), &secret).await {
            Ok(s) => Ok(read(s)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok(read(api.get(name).await.map_err(op("get key secret"))?))
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                tracing::info!(
                    secret = name,
                    namespace = %self.system_namespace,
                    "may not create the key Secret: waiting for the operator to"
                );
                let deadline = tokio::time::Instant::now() + KEY_WAIT;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Some(secret) = api.get_opt(name).await.map_err(op("get key secret"))? {
                        return Ok(read(secret));
                    }
                    if tokio::time::Instant::now() > deadline {
                        return Err(op("wait for the operator's key secret")(kube::Error::Api(
                            s,
                        )));
                    }
                }
            }
            Err(e) => Err(op("create key secret")(e)),
        }
    }

    /// Stores a new org API key's hash in a labelled ConfigMap of `ns`.
    pub async fn store_api_key_hash(&self, ns: &str, hash_hex: &str) -> KubeResult<String> {
        let name = format!("sealpod-api-key-{}", &hash_hex[..12]);
        let record = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_owned()),
                labels: Some(base_labels(COMPONENT_API_KEY)),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                API_KEY_HASH_ENTRY.to_owned(),
                hash_hex.to_owned(),
            )])),
            ..ConfigMap::default()
        };
        self.api::<ConfigMap>(ns)
            .create(&post(), &record)
            .await
            .map_err(op("create api key record"))?;
        Ok(name)
    }
}

impl Cluster {
    /// One AgentRevision.
    pub async fn get_revision(&self, ns: &str, name: &str) -> KubeResult<Option<AgentRevision>> {
        self.api::<AgentRevision>(ns)
            .get_opt(name)
            .await
            .map_err(op("get agent revision"))
    }

    /// The revisions of an agent (an Agent object name), by number.
    pub async fn list_revisions(&self, ns: &str, agent: &str) -> KubeResult<Vec<AgentRevision>> {
        let mut items = self
            .api::<AgentRevision>(ns)
            .list(&ListParams::default().labels(&format!("{AGENT_LABEL}={agent}")))
            .await
            .map_err(op("list agent revisions"))?
            .items;
        items.retain(|r| r.spec.agent_ref == agent);
        items.sort_by_key(|r| r.spec.number);
        Ok(items)
    }

    /// Creates an AgentRevision; `Ok(None)` when one of that name exists.
    pub async fn create_revision(
        &self,
        ns: &str,
        revision: &AgentRevision,
    ) -> KubeResult<Option<AgentRevision>> {
        match self
            .api::<AgentRevision>(ns)
            .create(&post(), revision)
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(op("create agent revision")(e)),
        }
    }

    /// Writes a revision's status (its activation log) if the revision is still at the
    /// resourceVersion it was read at; `Ok(false)` when it changed meanwhile.
    pub async fn write_revision_status(
        &self,
        revision: &AgentRevision,
        status: &AgentRevisionStatus,
    ) -> KubeResult<bool> {
        let body = json!({
            "metadata": {"resourceVersion": revision.resource_version()},
            "status": status,
        });
        match self
            .api::<AgentRevision>(&revision.namespace().unwrap_or_default())
            .patch_status(&revision.name_any(), &merge(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(op("write agent revision status")(e)),
        }
    }

    /// Merge-patches an Agent if it is still at the resourceVersion it was read at;
    /// `Ok(None)` when it changed meanwhile.
    pub async fn patch_agent_at(&self, agent: &Agent, patch: &Value) -> KubeResult<Option<Agent>> {
        let mut patch = patch.clone();
        patch["metadata"]["resourceVersion"] = json!(agent.resource_version());
        match self
            .api::<Agent>(&agent.namespace().unwrap_or_default())
            .patch(&agent.name_any(), &merge(), &Patch::Merge(&patch))
            .await
        {
            Ok(a) => Ok(Some(a)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(op("patch agent")(e)),
        }
    }

    /// Creates a skill bundle's ConfigMap unless it exists (its name is its content's digest).
    pub async fn ensure_config_map(&self, ns: &str, config_map: &ConfigMap) -> KubeResult<()> {
        match self.api::<ConfigMap>(ns).create(&post(), config_map).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(op("create skills config map")(e)),
        }
    }

    /// One Session object.
    pub async fn get_session_object(&self, ns: &str, name: &str) -> KubeResult<Option<Session>> {
        self.api::<Session>(ns)
            .get_opt(name)
            .await
            .map_err(op("get session"))
    }
}

/// A kind of object in a tenant namespace that this client patches, writes status of or
/// deletes.
trait TenantObject:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> TenantObject for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}
