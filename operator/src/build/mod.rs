//! Pure builders of a Session's desired children: the sandbox Pod, the per-session proxy and
//! runtime Secrets, the workspace PersistentVolumeClaim and the backstop NetworkPolicy.
//!
//! Everything here is synchronous, client-free and deterministic: the same [`SessionPlan`] and
//! [`Settings`] always give the same objects (random tokens are minted by the caller and passed
//! in). A builder must never read the clock, the cluster or the environment, and must never put
//! the real credential value anywhere but the proxy Secret's value file entry.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use sealpod_resources::Credential;
use sealpod_resources::agent::SandboxSpec;
use sealpod_resources::labels;
use sealpod_resources::proxy_config::{ProxyConfig, ResolveKey, ResolveTarget};
use sealpod_resources::secret::{SealedToken, Secret};
use sealpod_resources::session::AgentSnapshot;

mod bridges;
mod network_policy;
mod pod;
pub mod pool;
pub mod proxy_config;
mod secrets;
#[cfg(test)]
mod sidecar_tests;
#[cfg(test)]
mod tests;
mod workspace;

pub use network_policy::{NON_PUBLIC_V4, NON_PUBLIC_V6, network_policy};
pub use pod::{
    CONTAINER_LOCK, CONTAINER_PROXY, CONTAINER_RUNTIME, MOUNT_CA, MOUNT_PROXY, MOUNT_RUNTIME,
    MOUNT_WORKSPACE, RUNTIME_DIR, WORKSPACE_DIR, sandbox_pod,
};
pub use secrets::{
    PROXY_CONFIG_ENTRY, PROXY_VALUE_ENTRY, RUNTIME_SEALED_TOKEN_ENTRY, UPSTREAM_CA_ENTRY,
    proxy_secret, runtime_secret,
};
pub use workspace::workspace_claim;

/// Cluster-wide settings of the builders, derived from the operator's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Image of `sealpod-sidecar` (lock and proxy).
    pub sidecar_image: String,
    /// Default runtime image.
    pub runtime_image: String,
    /// Runtime API base URL, without a trailing `/`.
    pub runtime_api_url: String,
    /// Host of [`Settings::runtime_api_url`].
    pub runtime_api_host: String,
    /// Port of [`Settings::runtime_api_url`].
    pub runtime_api_port: u16,
    /// Networks of the runtime API (exempted from the proxy's address guard).
    pub runtime_api_cidrs: Vec<IpNet>,
    /// Labels of the API server pods (NetworkPolicy egress peer).
    pub runtime_api_pod_labels: BTreeMap<String, String>,
    /// Namespace of the API server pods.
    pub system_namespace: String,
    /// Cluster pod networks.
    pub pod_cidrs: Vec<IpNet>,
    /// Cluster Service networks.
    pub service_cidrs: Vec<IpNet>,
    /// UID of the proxy.
    pub proxy_uid: i64,
    /// UID of the runtime.
    pub runtime_uid: i64,
    /// Proxy port on loopback.
    pub proxy_port: u16,
    /// Proxy admin port.
    pub proxy_admin_port: u16,
    /// Whether the workspace is a claim (else an emptyDir of the pod).
    pub workspace_claim: bool,
    /// Workspace claim size.
    pub workspace_size: String,
    /// Workspace StorageClass.
    pub workspace_storage_class: Option<String>,
    /// Resolver overrides of every proxy (`--proxy-resolve`), in the order given.
    pub proxy_resolve: Vec<ProxyResolve>,
    /// Extra upstream roots of every proxy (`--upstream-ca-file`): the PEM text, checked at start.
    pub upstream_ca: Option<String>,
    /// Whether pods get egress bridges (`--bridge-egress`, see [`bridges`]).
    pub bridge_egress: bool,
}

/// One resolver override of the proxy: `key` resolves to `target` (before DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyResolve {
    /// The host (a DNS name, lowercase) and the port it applies to (`None`: every port).
    pub key: ResolveKey,
    /// The address dialled instead.
    pub target: ResolveTarget,
}

impl ProxyResolve {
    /// Parses one `HOST[:PORT]=ADDR[:PORT]` entry with the sidecar's own parser (a one-entry
    /// [`ProxyConfig`] through [`ProxyConfig::validate`]), so the operator cannot accept what the
    /// proxy would refuse; the result is in canonical form.
    pub fn parse(entry: &str) -> Result<ProxyResolve, String> {
        let (key, target) = entry
            .trim()
            .split_once('=')
            .ok_or("expected `HOST[:PORT]=ADDR[:PORT]`")?;
        let (key, target) = (key.trim(), target.trim());
        if key.is_empty() || target.is_empty() {
            return Err("expected `HOST[:PORT]=ADDR[:PORT]`".into());
        }
        let probe = ProxyConfig {
            listen: "127.0.0.1:1".into(),
            admin_listen: "127.0.0.1:2".into(),
            ca_cert_out: "/ca.pem".into(),
            mode: Default::default(),
            allow: Vec::new(),
            deny_cidrs: Vec::new(),
            allow_cidrs: Vec::new(),
            credentials: Vec::new(),
            events: None,
            resolve: BTreeMap::from([(key.to_owned(), vec![target.to_owned()])]),
            extra_roots: Vec::new(),
        };
        let valid = probe.validate().map_err(|e| e.message)?;
        let (key, targets) = valid
            .resolve
            .into_iter()
            .next()
            .ok_or("no override parsed")?;
        let target = targets.into_iter().next().ok_or("no address parsed")?;
        if key.host.parse::<IpAddr>().is_ok() {
            // The proxy dials IP literals as they are, without resolving: the override would be a
            // silent no-op.
            return Err("HOST must be a DNS name: an IP address is never resolved".into());
        }
        Ok(ProxyResolve { key, target })
    }

    /// The key as written in the proxy configuration (`host` or `host:port`).
    pub fn key_text(&self) -> String {
        match self.key.port {
            Some(port) => format!("{}:{port}", self.key.host),
            None => self.key.host.clone(),
        }
    }

    /// The target as written in the proxy configuration (`ip:port`, `[v6]:port` or `ip`).
    pub fn target_text(&self) -> String {
        match self.target {
            ResolveTarget::Addr(addr) => addr.to_string(),
            ResolveTarget::Ip(ip) => ip.to_string(),
        }
    }

    /// The address dialled.
    pub fn ip(&self) -> IpAddr {
        match self.target {
            ResolveTarget::Addr(addr) => addr.ip(),
            ResolveTarget::Ip(ip) => ip,
        }
    }

    /// The port dialled, when the override fixes it (the target's port, else the key's).
    pub fn port(&self) -> Option<u16> {
        match self.target {
            ResolveTarget::Addr(addr) => Some(addr.port()),
            ResolveTarget::Ip(_) => self.key.port,
        }
    }
}

/// Everything a Session's children are built from, after validation.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Namespace of the Session.
    pub namespace: String,
    /// Object name of the Session.
    pub name: String,
    /// UID of the Session (owner references).
    pub uid: String,
    /// The Agent's object name.
    pub agent: String,
    /// The pinned agent configuration.
    pub snapshot: AgentSnapshot,
    /// The sandbox shape (from the Agent; defaults when the Agent is gone).
    pub sandbox: SandboxSpec,
    /// The credential bound into the proxy.
    pub credential: BoundCredential,
    /// Runtime-scope token (runtime Secret).
    pub runtime_token: Secret,
    /// Proxy-scope token (proxy Secret, egress events).
    pub events_token: Secret,
    /// Name of the sandbox pod, which its Secrets and workspace claim are named after: the
    /// Session's own name ([`pod_name`]), or the warm pool pod it claimed.
    pub pod: String,
}

/// An opened credential, bound to one session.
#[derive(Debug, Clone)]
pub struct BoundCredential {
    /// The Credential's object name (`managed` resolves to the configured one).
    pub name: String,
    /// Its provider.
    pub provider: String,
    /// Hosts the value may be sent to.
    pub hosts: Vec<String>,
    /// Header slots.
    pub headers: Vec<String>,
    /// The session's sealed token for it.
    pub sealed: SealedToken,
    /// The real value, opened.
    pub value: Secret,
    /// `status.version` of the Credential (1 when unset).
    pub version: i64,
}

impl BoundCredential {
    /// `credential` bound with the sealed token `sealed` standing in for `value`.
    pub fn of(credential: &Credential, sealed: SealedToken, value: Secret) -> BoundCredential {
        BoundCredential {
            name: credential.name_any(),
            provider: credential.spec.provider.clone(),
            hosts: credential.spec.allowed_hosts.clone(),
            headers: credential.spec.effective_headers(),
            sealed,
            value,
            version: credential
                .status
                .as_ref()
                .and_then(|s| s.version)
                .unwrap_or(1),
        }
    }
}

/// Name of a session's sandbox pod when it starts cold (not from a warm pool).
pub fn pod_name(session: &str) -> String {
    session.to_owned()
}
/// Name of the proxy Secret of the sandbox pod `pod`.
pub fn proxy_secret_name(pod: &str) -> String {
    format!("{pod}-proxy")
}
/// Name of the runtime Secret of the sandbox pod `pod`.
pub fn runtime_secret_name(pod: &str) -> String {
    format!("{pod}-runtime")
}
/// Name of the workspace claim of the sandbox pod `pod`.
pub fn workspace_claim_name(pod: &str) -> String {
    format!("{pod}-workspace")
}
/// Name of the NetworkPolicy.
pub fn network_policy_name(session: &str) -> String {
    format!("{session}-egress")
}

/// Labels of a child object of `plan` for `component`.
pub fn child_labels(plan: &SessionPlan, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::OPERATOR_FIELD_MANAGER.to_owned(),
        ),
        (labels::PART_OF.to_owned(), labels::PART_OF_VALUE.to_owned()),
        (labels::SESSION_LABEL.to_owned(), plan.name.clone()),
        (labels::AGENT_LABEL.to_owned(), plan.agent.clone()),
        (labels::COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

/// The owner reference that makes the Session own (and garbage-collect) a child.
pub fn owner_reference(plan: &SessionPlan) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", labels::GROUP, labels::VERSION),
        kind: "Session".to_owned(),
        name: plan.name.clone(),
        uid: plan.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a child object.
pub(crate) fn child_meta(plan: &SessionPlan, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace.clone()),
        labels: Some(child_labels(plan, component)),
        owner_references: Some(vec![owner_reference(plan)]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A fixed plan and settings shared by the builder tests.

    use sealpod_resources::agent::{SandboxResources, SandboxSpec};
    use sealpod_resources::common::{EgressMode, EgressPolicy, Limits};
    use sealpod_resources::secret::{SealedToken, Secret};
    use sealpod_resources::session::AgentSnapshot;

    use super::{BoundCredential, SessionPlan, Settings};

    /// The fake real key of the fixture; a scan must find it only in the value file entry.
    pub(crate) const REAL_KEY: &str = "sk-ant-api03-REALKEY-fixture-0123456789";
    pub(crate) const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";
    pub(crate) const RUNTIME_TOKEN: &str = "sprt_runtime.fixture";
    pub(crate) const EVENTS_TOKEN: &str = "sprt_proxy.fixture";

    pub(crate) fn settings() -> Settings {
        Settings {
            sidecar_image: "ghcr.io/sealpod/sidecar:1".into(),
            runtime_image: "ghcr.io/sealpod/runtime:1".into(),
            runtime_api_url: "http://sealpod-api.sealpod-system.svc:8081".into(),
            runtime_api_host: "sealpod-api.sealpod-system.svc".into(),
            runtime_api_port: 8081,
            runtime_api_cidrs: vec!["10.96.0.10/32".parse().expect("cidr")],
            runtime_api_pod_labels: [(
                "app.kubernetes.io/name".to_owned(),
                "sealpod-api-server".to_owned(),
            )]
            .into(),
            system_namespace: "sealpod-system".into(),
            pod_cidrs: vec![
                "10.244.0.0/16".parse().expect("cidr"),
                "fd00:10:244::/56".parse().expect("cidr"),
            ],
            service_cidrs: vec!["10.96.0.0/12".parse().expect("cidr")],
            proxy_uid: 1337,
            runtime_uid: 1000,
            proxy_port: 3128,
            proxy_admin_port: 9901,
            workspace_claim: true,
            workspace_size: "10Gi".into(),
            workspace_storage_class: None,
            proxy_resolve: Vec::new(),
            upstream_ca: None,
            bridge_egress: false,
        }
    }

    pub(crate) fn plan() -> SessionPlan {
        SessionPlan {
            namespace: "tenant-a".into(),
            name: "ses-abc123".into(),
            uid: "uid-ses-abc123".into(),
            agent: "agt-reviewer".into(),
            snapshot: AgentSnapshot {
                model: "anthropic/claude-sonnet-4-5".into(),
                runtime: "claude".into(),
                prompt: "Review.".into(),
                prompt_hash: sealpod_resources::agent::prompt_hash("Review."),
                revision: Some(1),
                skills: None,
                limits: Some(Limits::default()),
                egress: Some(EgressPolicy {
                    allow: vec!["github.com".into(), "*.githubusercontent.com".into()],
                    mode: EgressMode::Enforce,
                }),
                credential: "cred-example".into(),
            },
            sandbox: SandboxSpec {
                image: None,
                resources: Some(SandboxResources {
                    requests: [("cpu".to_owned(), "500m".to_owned())].into(),
                    limits: [("memory".to_owned(), "2Gi".to_owned())].into(),
                }),
                runtime_class_name: Some("gvisor".into()),
                idle_timeout_seconds: None,
            },
            credential: BoundCredential {
                name: "cred-example".into(),
                provider: "anthropic".into(),
                hosts: vec!["api.anthropic.com".into()],
                headers: vec!["x-api-key".into(), "authorization".into()],
                sealed: SealedToken::parse(SEALED).expect("sealed token"),
                value: Secret::new(REAL_KEY),
                version: 3,
            },
            runtime_token: Secret::new(RUNTIME_TOKEN),
            events_token: Secret::new(EVENTS_TOKEN),
            pod: "ses-abc123".into(),
        }
    }
}
