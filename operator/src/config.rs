//! The operator's configuration: every flag, parsed once by clap (each with an `SEALPOD_…`
//! environment variable) and checked before anything binds a port or talks to the cluster.
//!
//! It must never hold a secret: keys are read from the cluster, never from flags.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use sealpod_resources::labels::DEFAULT_SYSTEM_NAMESPACE;

use crate::build::Settings;

/// sealpod operator: reconciles Agents, Credentials and Sessions into locked-down sandbox pods.
#[derive(Debug, Clone, Parser)]
#[command(name = "sealpod-operator", version)]
pub struct Config {
    /// Namespace of sealpod's own objects: the sealing keys, the runtime-token key, the leader
    /// Lease and the managed credential.
    #[arg(long, env = "SEALPOD_SYSTEM_NAMESPACE", default_value = DEFAULT_SYSTEM_NAMESPACE)]
    pub system_namespace: String,

    /// Namespaces to watch (comma-separated), for RBAC granted per namespace; each gets its own
    /// controllers. Empty: every namespace (cluster-wide RBAC).
    #[arg(long, env = "SEALPOD_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Image of the sidecar (`sealpod-sidecar`), used by the lock init container and the proxy.
    #[arg(long, env = "SEALPOD_SIDECAR_IMAGE")]
    pub sidecar_image: String,

    /// Default image of the runtime container (an Agent's `spec.sandbox.image` overrides it).
    #[arg(long, env = "SEALPOD_RUNTIME_IMAGE")]
    pub runtime_image: String,

    /// Base URL of the API server's runtime API as seen from sandbox pods and from the operator
    /// (e.g. `http://sealpod-api.sealpod-system.svc:8081`).
    #[arg(long, env = "SEALPOD_RUNTIME_API_URL")]
    pub runtime_api_url: String,

    /// Networks the runtime API's address lies in: exempted from the proxy's non-public address
    /// guard so sandboxes can reach it through the proxy (comma-separated CIDRs).
    #[arg(
        long = "runtime-api-cidr",
        env = "SEALPOD_RUNTIME_API_CIDRS",
        value_delimiter = ','
    )]
    pub runtime_api_cidrs: Vec<IpNet>,

    /// Labels (`k=v`, comma-separated) of the API server pods in the system namespace: the
    /// sandbox NetworkPolicy lets egress reach them on the runtime API port.
    #[arg(
        long,
        env = "SEALPOD_RUNTIME_API_POD_LABELS",
        value_delimiter = ',',
        default_value = "app.kubernetes.io/name=sealpod-api-server"
    )]
    pub runtime_api_pod_labels: Vec<String>,

    /// The cluster's pod networks (comma-separated CIDRs): refused by the proxy and by the
    /// NetworkPolicy backstop.
    #[arg(long = "pod-cidr", env = "SEALPOD_POD_CIDRS", value_delimiter = ',')]
    pub pod_cidrs: Vec<IpNet>,

    /// The cluster's Service networks (comma-separated CIDRs): refused like the pod networks.
    #[arg(
        long = "service-cidr",
        env = "SEALPOD_SERVICE_CIDRS",
        value_delimiter = ','
    )]
    pub service_cidrs: Vec<IpNet>,

    /// UID of the proxy: the only UID the lock lets leave the pod. Must differ from
    /// `--runtime-uid`.
    #[arg(long, env = "SEALPOD_PROXY_UID", default_value_t = 1337)]
    pub proxy_uid: i64,

    /// UID of the runtime container (non-root).
    #[arg(long, env = "SEALPOD_RUNTIME_UID", default_value_t = 1000)]
    pub runtime_uid: i64,

    /// Loopback port of the proxy's listener.
    #[arg(long, env = "SEALPOD_PROXY_PORT", default_value_t = 3128)]
    pub proxy_port: u16,

    /// Port of the proxy's admin listener (`/ready`, `/metrics`).
    #[arg(long, env = "SEALPOD_PROXY_ADMIN_PORT", default_value_t = 9901)]
    pub proxy_admin_port: u16,

    /// Size requested by each session's workspace volume claim.
    #[arg(long, env = "SEALPOD_WORKSPACE_SIZE", default_value = "10Gi")]
    pub workspace_size: String,

    /// What backs the workspace: `claim` (a PersistentVolumeClaim owned by the Session, kept
    /// across pod loss and hibernation) or `empty-dir` (scratch space that dies with the pod,
    /// for clusters without storage, such as a bare local devcluster).
    #[arg(long, env = "SEALPOD_WORKSPACE_VOLUME", value_enum, default_value_t = WorkspaceVolume::Claim)]
    pub workspace_volume: WorkspaceVolume,

    /// StorageClass of workspace volume claims (cluster default when unset).
    #[arg(long, env = "SEALPOD_WORKSPACE_STORAGE_CLASS")]
    pub workspace_storage_class: Option<String>,

    /// Name of the Credential, in the system namespace, that `managed` resolves to. Unset: no
    /// managed credential (sessions resolving to it are Degraded with `CredentialNotFound`).
    #[arg(long, env = "SEALPOD_MANAGED_CREDENTIAL")]
    pub managed_credential: Option<String>,

    /// Reconciles each controller runs at once (kube-rs's default is unbounded).
    #[arg(long, env = "SEALPOD_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Page size of the initial lists of the watchers (small pages bound the relist peak).
    #[arg(long, env = "SEALPOD_PAGE_SIZE", default_value_t = 50)]
    pub page_size: u32,

    /// Seconds a watch request stays open before the watcher re-watches (a compacted
    /// resourceVersion then forces a relist).
    #[arg(long, env = "SEALPOD_WATCH_TIMEOUT_SECONDS", default_value_t = 290)]
    pub watch_timeout_seconds: u32,

    /// First delay, in milliseconds, before a lost or failed sandbox pod is recreated; it
    /// doubles with each loss in a row.
    #[arg(long, env = "SEALPOD_RESTART_BACKOFF_MS", default_value_t = 5_000)]
    pub restart_backoff_ms: u64,

    /// Longest delay, in milliseconds, before a lost pod is recreated.
    #[arg(
        long,
        env = "SEALPOD_RESTART_BACKOFF_MAX_MS",
        default_value_t = 300_000
    )]
    pub restart_backoff_max_ms: u64,

    /// How long, in seconds, a deleted Session keeps trying to revoke its runtime tokens with an
    /// unreachable API server before its finalizer is removed anyway (and the failure logged).
    #[arg(long, env = "SEALPOD_REVOKE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub revoke_timeout_seconds: u64,

    /// Name of the leader-election Lease in the system namespace.
    #[arg(long, env = "SEALPOD_LEASE_NAME", default_value = "sealpod-operator")]
    pub lease_name: String,

    /// Seconds a leader's Lease is valid without renewal.
    #[arg(long, env = "SEALPOD_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u32,

    /// Identity of this replica in the Lease (default: `$POD_NAME`, else `$HOSTNAME`, else a
    /// random id).
    #[arg(long, env = "SEALPOD_IDENTITY")]
    pub identity: Option<String>,

    /// Address of the `/healthz`, `/readyz` and `/metrics` listener.
    #[arg(long, env = "SEALPOD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Renew the cluster sealing key (a new current key; old keys keep opening their values),
    /// then exit.
    #[arg(long, env = "SEALPOD_RENEW_SEALING_KEY")]
    pub renew_sealing_key: bool,
}

/// What backs a session's workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkspaceVolume {
    /// A PersistentVolumeClaim owned by the Session.
    Claim,
    /// An emptyDir of the pod.
    EmptyDir,
}

/// A flag value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The two UIDs must differ or the lock lets the runtime out.
    #[error("--runtime-uid must be non-root and differ from --proxy-uid ({0})")]
    Uids(i64),
    /// An URL that is not `http(s)://host[:port]`.
    #[error("--runtime-api-url `{0}` must be http:// or https:// with a host")]
    RuntimeApiUrl(String),
    /// A `k=v` list entry without `=`.
    #[error("--runtime-api-pod-labels entry `{0}` is not `key=value`")]
    Label(String),
    /// A port clash.
    #[error("--proxy-port and --proxy-admin-port must differ")]
    Ports,
}

impl Config {
    /// Checks the values clap cannot check, and derives the builders' settings.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        if self.runtime_uid == self.proxy_uid || self.runtime_uid == 0 || self.proxy_uid == 0 {
            return Err(ConfigError::Uids(self.runtime_uid));
        }
        if self.proxy_port == self.proxy_admin_port {
            return Err(ConfigError::Ports);
        }
        let url = self.runtime_api_url.trim_end_matches('/').to_owned();
        let (host, port) =
            split_url(&url).ok_or_else(|| ConfigError::RuntimeApiUrl(url.clone()))?;
        let mut api_labels = std::collections::BTreeMap::new();
        for entry in &self.runtime_api_pod_labels {
            let (k, v) = entry
                .split_once('=')
                .ok_or_else(|| ConfigError::Label(entry.clone()))?;
            api_labels.insert(k.to_owned(), v.to_owned());
        }
        Ok(Settings {
            sidecar_image: self.sidecar_image.clone(),
            runtime_image: self.runtime_image.clone(),
            runtime_api_url: url,
            runtime_api_host: host,
            runtime_api_port: port,
            runtime_api_cidrs: self.runtime_api_cidrs.clone(),
            runtime_api_pod_labels: api_labels,
            system_namespace: self.system_namespace.clone(),
            pod_cidrs: self.pod_cidrs.clone(),
            service_cidrs: self.service_cidrs.clone(),
            proxy_uid: self.proxy_uid,
            runtime_uid: self.runtime_uid,
            proxy_port: self.proxy_port,
            proxy_admin_port: self.proxy_admin_port,
            workspace_claim: self.workspace_volume == WorkspaceVolume::Claim,
            workspace_size: self.workspace_size.clone(),
            workspace_storage_class: self.workspace_storage_class.clone(),
        })
    }

    /// The restart backoff after `failures` losses in a row (1 = first loss).
    pub fn restart_backoff(&self, failures: u32) -> Duration {
        backoff(
            Duration::from_millis(self.restart_backoff_ms),
            Duration::from_millis(self.restart_backoff_max_ms),
            failures,
        )
    }
}

/// `base * 2^(n-1)`, capped at `max`.
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32
        .checked_shl(n.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

/// Host and port of an `http(s)://host[:port][/path]` URL.
fn split_url(url: &str) -> Option<(String, u16)> {
    let (default_port, rest) = if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else {
        (443, url.strip_prefix("https://")?)
    };
    let authority = rest.split('/').next()?;
    if authority.is_empty() {
        return None;
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after {
            "" => default_port,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return Some((format!("[{host}]"), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_owned(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_owned(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Config {
        let defaults = [
            "--sidecar-image=sidecar:1",
            "--runtime-image=runtime:1",
            "--runtime-api-url=http://api.sealpod-system.svc:8081/",
        ];
        let mut args = vec!["sealpod-operator"];
        for d in defaults {
            let flag = d.split('=').next().unwrap_or(d);
            if !extra.iter().any(|e| e.starts_with(flag)) {
                args.push(d);
            }
        }
        args.extend_from_slice(extra);
        Config::try_parse_from(args).expect("flags parse")
    }

    #[test]
    fn settings_derive_from_flags() {
        let c = parse(&[
            "--pod-cidr=10.244.0.0/16,fd00:10:244::/56",
            "--service-cidr=10.96.0.0/12",
        ]);
        let s = c.settings().expect("valid");
        assert_eq!(s.runtime_api_url, "http://api.sealpod-system.svc:8081");
        assert_eq!(s.runtime_api_host, "api.sealpod-system.svc");
        assert_eq!(s.runtime_api_port, 8081);
        assert_eq!(s.pod_cidrs.len(), 2);
        assert_eq!(c.system_namespace, "sealpod-system");
        assert_eq!(c.concurrency, 16);
    }

    #[test]
    fn unworkable_flags_are_refused() {
        assert!(matches!(
            parse(&["--runtime-uid=1337"]).settings(),
            Err(ConfigError::Uids(_))
        ));
        assert!(matches!(
            parse(&["--runtime-uid=0"]).settings(),
            Err(ConfigError::Uids(_))
        ));
        assert!(matches!(
            parse(&["--proxy-admin-port=3128"]).settings(),
            Err(ConfigError::Ports)
        ));
        assert!(matches!(
            parse(&["--runtime-api-url=ftp://x"]).settings(),
            Err(ConfigError::RuntimeApiUrl(_))
        ));
        assert!(matches!(
            parse(&["--runtime-api-pod-labels=nolabel"]).settings(),
            Err(ConfigError::Label(_))
        ));
        assert!(Config::try_parse_from(["sealpod-operator", "--pod-cidr=10.0.0.1/33"]).is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(1);
        let m = Duration::from_secs(10);
        assert_eq!(backoff(b, m, 1), Duration::from_secs(1));
        assert_eq!(backoff(b, m, 2), Duration::from_secs(2));
        assert_eq!(backoff(b, m, 4), Duration::from_secs(8));
        assert_eq!(backoff(b, m, 5), m);
        assert_eq!(backoff(b, m, 1000), m);
    }
}
