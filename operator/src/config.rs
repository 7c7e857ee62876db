//! The operator's configuration: every flag, parsed once by clap (each with an `SEALPOD_…`
//! environment variable) and checked before anything binds a port or talks to the cluster.
//!
//! It must never hold a secret: keys are read from the cluster, never from flags. The one file
//! it reads, `--upstream-ca-file`, is read once here at start and must hold public certificates
//! only (a private key in it is refused, so it is never copied into session Secrets).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, SectionKind};
use sealpod_resources::labels::DEFAULT_SYSTEM_NAMESPACE;

use crate::build::{ProxyResolve, Settings};

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

    /// Resolver overrides written into every session's proxy configuration (comma-separated,
    /// repeatable): `HOST[:PORT]=ADDR[:PORT]`, e.g. `api.anthropic.com=10.20.0.5` or
    /// `gateway.internal:443=[fd00::5]:8443`. `HOST` is a DNS name (without `:PORT`: every
    /// port); `ADDR` an IP address (without `:PORT`: the requested port). Entries for the same
    /// `HOST[:PORT]` are tried in the order given. Each address is also exempted, as a host route,
    /// from the proxy's non-public address guard, so it may be private or loopback: it is the
    /// operator's own choice, trusted for every allowlisted name that resolves to it.
    #[arg(long, env = "SEALPOD_PROXY_RESOLVE", value_delimiter = ',')]
    pub proxy_resolve: Vec<String>,

    /// PEM file of extra root certificates the proxy trusts for upstream TLS, besides the web PKI
    /// (e.g. a private model gateway's CA). Read once at start; copied into every session's proxy
    /// Secret as `upstream-ca.pem`. Must hold certificates only.
    #[arg(long, env = "SEALPOD_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// The nodes give pods no network of their own but the bridges they are asked for (sealpod's
    /// own pod runner, `sealpod up`): give every allowlisted `host:port` of a session (its
    /// agent's `egress.allow` and its credential's hosts; not `*.suffix` patterns, IP literals or
    /// hosts with a `--proxy-resolve` override) a loopback address inside its pod, resolve the
    /// host to it in the proxy, and name it in the pod's `sealpod.dev/egress-bridges` annotation
    /// for the node to carry to `host:port`. Never set it on a real cluster.
    #[arg(long, env = "SEALPOD_BRIDGE_EGRESS")]
    pub bridge_egress: bool,

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
    /// A `--proxy-resolve` entry the proxy would refuse.
    #[error("--proxy-resolve entry `{entry}`: {message}")]
    ProxyResolve {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        message: String,
    },
    /// An `--upstream-ca-file` that is missing, empty or not a bundle of PEM certificates.
    #[error("--upstream-ca-file {path}: {message}")]
    UpstreamCa {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Checks the values clap cannot check, and derives the builders' settings. It reads the
    /// `--upstream-ca-file` bundle: call it once, at start.
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
        let proxy_resolve = parse_proxy_resolve(&self.proxy_resolve)?;
        let upstream_ca = self
            .upstream_ca_file
            .as_deref()
            .map(read_upstream_ca)
            .transpose()?;
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
            proxy_resolve,
            upstream_ca,
            bridge_egress: self.bridge_egress,
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

/// `base * 2^(n-1)`, capped at `max` (the workspace's one backoff).
pub use sealpod_util::backoff::exponential as backoff;

/// Parses every `--proxy-resolve` entry ([`ProxyResolve::parse`]: the proxy's own parser, so
/// the operator cannot accept what the proxy would refuse). Entries are returned in canonical form, in the order given; empty ones
/// (an empty `SEALPOD_PROXY_RESOLVE`, a trailing comma) are skipped.
pub fn parse_proxy_resolve(entries: &[String]) -> Result<Vec<ProxyResolve>, ConfigError> {
    entries
        .iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            ProxyResolve::parse(entry).map_err(|message| ConfigError::ProxyResolve {
                entry: entry.clone(),
                message,
            })
        })
        .collect()
}

/// Reads and checks the upstream CA bundle: every PEM section must be a certificate rustls
/// accepts as a trust anchor (the check the proxy makes when it loads `extra_roots`), and there
/// must be at least one.
pub fn read_upstream_ca(path: &Path) -> Result<String, ConfigError> {
    let err = |message: String| ConfigError::UpstreamCa {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    check_ca_bundle(&text).map_err(err)?;
    Ok(text)
}

fn check_ca_bundle(text: &str) -> Result<(), String> {
    let mut rest = text.as_bytes();
    let mut roots = rustls::RootCertStore::empty();
    let mut certs = 0usize;
    while let Some((kind, der)) = pem::from_buf(&mut rest).map_err(pem_error)? {
        if kind != SectionKind::Certificate {
            return Err(format!(
                "holds a {kind:?} section; only CERTIFICATE sections are allowed"
            ));
        }
        certs += 1;
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| format!("certificate {certs} is not usable as a root: {e}"))?;
    }
    // Sections of a label the PEM reader does not know are skipped by it: count the markers so
    // they are refused too, rather than dropped without a word.
    let sections = text
        .lines()
        .filter(|l| l.starts_with("-----BEGIN "))
        .count();
    if sections != certs {
        return Err("holds a PEM section that is not a CERTIFICATE".into());
    }
    if certs == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "not PEM: a `{}` section has no end line",
            String::from_utf8_lossy(&end_marker)
        ),
        other => format!("not PEM: {other}"),
    }
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
    fn proxy_resolve_entries_are_parsed_by_the_sidecars_rules() {
        let s = parse(&[
            "--proxy-resolve=API.Anthropic.com=10.20.0.5",
            "--proxy-resolve=gateway.local:443=127.0.0.1:8443,gw6.local=[fd00::5]:8443",
            "--proxy-resolve= gw6.local = ::1 ",
        ])
        .settings()
        .expect("valid");
        let got: Vec<(String, String)> = s
            .proxy_resolve
            .iter()
            .map(|r| (r.key_text(), r.target_text()))
            .collect();
        assert_eq!(
            got,
            [
                ("api.anthropic.com", "10.20.0.5"),
                ("gateway.local:443", "127.0.0.1:8443"),
                ("gw6.local", "[fd00::5]:8443"),
                ("gw6.local", "::1"),
            ]
            .map(|(k, t)| (k.to_owned(), t.to_owned()))
        );
        assert_eq!(s.proxy_resolve[1].port(), Some(8443));
        assert_eq!(s.proxy_resolve[0].port(), None);
        assert!(
            parse(&[])
                .settings()
                .expect("valid")
                .proxy_resolve
                .is_empty()
        );
        let empty = parse(&["--proxy-resolve=", "--proxy-resolve=a.local=10.0.0.1,"]);
        assert_eq!(empty.settings().expect("valid").proxy_resolve.len(), 1);
    }

    #[test]
    fn a_bad_proxy_resolve_entry_is_refused_by_name() {
        for bad in [
            "no-equals-sign",
            "=10.0.0.1",
            "host.local=",
            "host.local=gateway.internal",
            "host.local=10.0.0.1:99999",
            "bad host.local=10.0.0.1",
            "host.local:0=10.0.0.1",
            "*.wild.local=10.0.0.1",
            "10.0.0.9=10.0.0.1",
            "[::1]:443=10.0.0.1",
        ] {
            let flag = format!("--proxy-resolve=ok.local=10.0.0.2,{bad}");
            let err = parse(&[flag.as_str()]).settings().expect_err(bad);
            match &err {
                ConfigError::ProxyResolve { entry, .. } => assert_eq!(entry, bad),
                other => panic!("{bad}: {other}"),
            }
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    fn pem_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
        f
    }

    fn cert_pem(name: &str) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn the_upstream_ca_file_is_read_at_start() {
        let (a, _) = cert_pem("a.local");
        let (b, _) = cert_pem("b.local");
        let bundle = format!("# gateway roots\n{a}{b}");
        let f = pem_file(&bundle);
        let flag = format!("--upstream-ca-file={}", f.path().display());
        let s = parse(&[flag.as_str()]).settings().expect("valid");
        assert_eq!(s.upstream_ca.as_deref(), Some(bundle.as_str()));
        assert_eq!(parse(&[]).settings().expect("valid").upstream_ca, None);
    }

    #[test]
    fn a_missing_empty_or_non_certificate_ca_file_is_refused() {
        let (cert, key) = cert_pem("a.local");
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let unknown = format!("{cert}-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n");
        let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let cases = [
            ("empty", String::new()),
            ("text", "not a certificate\n".to_owned()),
            ("key only", key.clone()),
            ("certificate and key", format!("{cert}{key}")),
            ("bad der", broken.to_owned()),
            ("unknown section", unknown),
            ("unterminated", unterminated.to_owned()),
        ];
        for (what, text) in cases {
            let f = pem_file(&text);
            let flag = format!("--upstream-ca-file={}", f.path().display());
            let err = parse(&[flag.as_str()]).settings().expect_err(what);
            assert!(
                matches!(err, ConfigError::UpstreamCa { .. }),
                "{what}: {err}"
            );
            let shown = err.to_string();
            assert!(shown.contains(&f.path().display().to_string()), "{shown}");
            assert!(!shown.contains("PRIVATE KEY-----"), "{what}: {shown}");
        }
        let missing = parse(&["--upstream-ca-file=/nonexistent/sealpod/ca.pem"]).settings();
        assert!(
            matches!(&missing, Err(ConfigError::UpstreamCa { path, .. }) if path == "/nonexistent/sealpod/ca.pem"),
            "{missing:?}"
        );
    }
}
