//! devcluster: a Kubernetes-API-compatible server on loopback, backed by an in-memory store
//! (optionally persisted to a file), for local mode and for every integration test. Real
//! clients (kubectl, kube-rs) work against it unmodified. It never replaces Kubernetes beyond
//! one machine: see the README for what it does not emulate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), devcluster::Error> {
//! let cluster = devcluster::DevCluster::start(devcluster::Config::default()).await?;
//! let client = cluster.client();
//! # let _ = client; cluster.shutdown().await; Ok(()) }
//! ```

mod auth;
mod convert;
mod discovery;
mod error;
mod http;
mod jsonpath;
mod meta;
mod patch;
mod proto;
mod registry;
mod render;
mod selector;
mod state;
mod store;
pub mod testing;
mod tls;
mod validation;
mod watch;

pub use auth::read_token_file;
pub use error::Error;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Store, WriteCtx};
use tokio::task::JoinHandle;

/// How to run a cluster.
#[derive(Clone)]
pub struct Config {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Serve HTTPS with a freshly generated CA (written into kubeconfigs and clients).
    pub tls: bool,
    /// Persist every object to this file (mode 0600) and load it at start.
    pub state_file: Option<PathBuf>,
    /// Encrypt Secrets in the state file with the AES-256-GCM key in this file (created, mode
    /// 0600, when missing), as a kube-apiserver encrypts them at rest.
    pub state_key_file: Option<PathBuf>,
    /// Bearer tokens and their users. A token for `admin_user` is generated when none is given.
    pub tokens: Vec<(String, String)>,
    /// The user of `DevCluster::client` and of the kubeconfig's current context.
    pub admin_user: String,
    /// How many change events of each resource kind watches can resume from; older
    /// resourceVersions get 410 Gone.
    pub watch_log_capacity: usize,
    /// How long a change event stays resumable at most (as etcd's history lasts until the
    /// API server's next compaction, every 5 minutes by default).
    pub watch_log_max_age: Duration,
    /// How often watches with `allowWatchBookmarks` get a bookmark.
    pub bookmark_interval: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&String> = self.tokens.iter().map(|(_, u)| u).collect();
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("state_file", &self.state_file)
            .field("state_key_file", &self.state_key_file)
            .field("token_users", &users)
            .field("admin_user", &self.admin_user)
            .field("watch_log_capacity", &self.watch_log_capacity)
            .field("watch_log_max_age", &self.watch_log_max_age)
            .field("bookmark_interval", &self.bookmark_interval)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            state_file: None,
            state_key_file: None,
            tokens: vec![],
            admin_user: "admin".into(),
            watch_log_capacity: 10_000,
            watch_log_max_age: Duration::from_secs(300),
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// A running cluster; serves until `shutdown` (or until dropped, when its tasks are aborted).
#[derive(Debug)]
pub struct DevCluster {
    addr: SocketAddr,
    tls: Option<tls::TlsMaterial>,
    tokens: auth::Tokens,
    admin_user: String,
    store: Arc<Mutex<Store>>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    persister: Option<JoinHandle<()>>,
}

impl DevCluster {
    /// Binds the listener and serves in background tasks.
    pub async fn start(config: Config) -> Result<DevCluster, Error> {
        let mut tokens = config.tokens.clone();
        if !tokens.iter().any(|(_, u)| *u == config.admin_user) {
            tokens.push((meta::random_token(), config.admin_user.clone()));
        }
        let mut st = Store::new(config.watch_log_capacity, config.watch_log_max_age);
        let state_file = config
            .state_file
            .clone()
            .map(|path| state::StateFile::open(path, config.state_key_file.as_deref()))
            .transpose()?;
        if let Some(state_file) = &state_file {
            state::load(state_file, &mut st)?;
        }
        let store = Arc::new(Mutex::new(st));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
        let tls = if config.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let app_state = Arc::new(http::AppState {
            store: store.clone(),
            tokens: auth::Tokens::new(&tokens),
            server_address: addr.to_string(),
            bookmark_interval: config.bookmark_interval,
            shutdown: shutdown_rx.clone(),
        });
        let router = http::app(app_state);
        let server = tokio::spawn(http::serve(
            listener,
            router,
            tls.as_ref().map(|t| t.server.clone()),
            shutdown_rx.clone(),
        ));
        let persister =
            state_file.map(|p| tokio::spawn(state::persist(p, store.clone(), shutdown_rx.clone())));
        Ok(DevCluster {
            addr,
            tls,
            tokens: auth::Tokens::new(&tokens),
            admin_user: config.admin_user,
            store,
            shutdown_tx,
            server: Some(server),
            persister,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://...` with TLS).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) clients must trust, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The bearer token of a user (for clients other than kube-rs).
    pub fn token_for(&self, user: &str) -> Option<String> {
        self.tokens.token_of(user).map(str::to_string)
    }

    /// A kube client authenticated as the admin user, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.client_for(&self.admin_user.clone())
            .expect("start() always creates a token for the admin user")
    }

    /// A kube client using that user's token; `None` when the user has no token.
    pub fn client_for(&self, user: &str) -> Option<kube::Client> {
        let token = self.tokens.token_of(user)?;
        let mut cfg = kube::Config::new(self.base_url().parse().ok()?);
        cfg.default_namespace = "default".into();
        cfg.auth_info = serde_json::from_value(json!({"token": token})).ok()?;
        if let Some(t) = &self.tls {
            cfg.root_cert = Some(vec![t.ca_der.clone()]);
        }
        kube::Client::try_from(cfg).ok()
    }

    /// Writes a kubeconfig usable by the real kubectl: the admin user as the current context,
    /// one more context per other user (`USER@devcluster`), and the CA when serving TLS.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        use base64::Engine as _;
        let mut cluster = json!({"server": self.base_url()});
        if let Some(t) = &self.tls {
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&t.ca_pem));
        }
        let mut users = vec![];
        let mut contexts = vec![];
        let mut names: Vec<String> = vec![self.admin_user.clone()];
        let mut others = self.tokens.users();
        others.sort();
        for u in others {
            if !names.contains(&u) {
                names.push(u);
            }
        }
        for (i, user) in names.iter().enumerate() {
            let Some(token) = self.tokens.token_of(user) else {
                continue;
            };
            users.push(json!({"name": user, "user": {"token": token}}));
            let ctx = if i == 0 {
                "devcluster".to_string()
            } else {
                format!("{user}@devcluster")
            };
            contexts.push(json!({"name": ctx, "context": {"cluster": "devcluster", "user": user, "namespace": "default"}}));
        }
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "devcluster", "cluster": cluster}],
            "users": users,
            "contexts": contexts,
            "current-context": "devcluster",
            "preferences": {},
        });
        let yaml = serde_saphyr::to_string(&doc).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        write_private(path, yaml.as_bytes())
    }

    /// Registers CRDs (creating or replacing them) and waits until their kinds are served.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<(), Error> {
        for crd in crds {
            let mut obj = serde_json::to_value(crd).map_err(|e| Error::Api(e.to_string()))?;
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let mut st = store::lock(&self.store);
            let def = st
                .registry
                .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                .cloned()
                .ok_or_else(|| Error::Api("CRDs are not served".into()))?;
            let mut ctx = WriteCtx::new(def.clone(), "v1", "devcluster");
            match st.get(&def, "", &name) {
                Ok(_) => {
                    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        md.remove("resourceVersion");
                    }
                    st.update(&mut ctx, "", &name, obj, None)?;
                }
                Err(_) => {
                    st.create(&mut ctx, None, obj)?;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for crd in crds {
            let group = &crd.spec.group;
            let plural = &crd.spec.names.plural;
            loop {
                let served = {
                    let st = store::lock(&self.store);
                    crd.spec
                        .versions
                        .iter()
                        .filter(|v| v.served)
                        .all(|v| st.registry.find(group, &v.name, plural).is_some())
                };
                if served {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(Error::Timeout(format!("{plural}.{group} to be served")));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Drops the retained watch log: watches resuming from any earlier resourceVersion get 410.
    pub fn compact(&self) {
        store::lock(&self.store).compact();
    }

    /// The current resourceVersion of the cluster.
    pub fn resource_version(&self) -> u64 {
        store::lock(&self.store).resource_version()
    }

    /// Stops serving (open watches end), then writes the state file one last time.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        if let Some(p) = self.persister.take() {
            let _ = p.await;
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// Writes `bytes` to `path` atomically, readable by its owner only (a kubeconfig holds a token).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    sealpod_util::files::write_private(path, bytes).map_err(|source| Error::File {
        what: "writing",
        path: path.display().to_string(),
        source,
    })
}

/// The patch engines for the fuzz targets in `fuzz/` (built with `--cfg fuzzing` only), as the
/// store calls them for a built-in kind: a normal build has no such module. Not an API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use serde_json::Value;

    use crate::patch::apply::{self, Writer};
    use crate::patch::fields::Scope;
    use crate::patch::{json, merge, strategic};
    use crate::registry::{ListKind, ResourceDef};

    /// The built-in kinds (`Pod`, `Service`, …).
    pub fn kinds() -> Vec<&'static str> {
        defs().iter().map(|d| d.kind.as_str()).collect()
    }
    fn defs() -> &'static [ResourceDef] {
        static DEFS: std::sync::OnceLock<Vec<ResourceDef>> = std::sync::OnceLock::new();
        DEFS.get_or_init(crate::registry::builtins)
    }
    /// Calls `f` with a writer for the built-in `kind`, as `Store::patch` builds it.
    fn with_writer<T>(kind: &str, manager: &str, f: impl FnOnce(&Writer<'_>) -> T) -> T {
        let def = defs().iter().find(|d| d.kind == kind).unwrap_or(&defs()[0]);
        let version = def.preferred_version();
        let list_kind = |p: &[&str]| def.list_kind(version, p);
        let scope = Scope::Main {
            exclude_status: def.status_subresource,
        };
        let api_version = def.api_version(version);
        f(&Writer {
            manager,
            api_version: &api_version,
            scope,
            list_kind: &list_kind,
        })
    }

    /// The merge keys of the list at `path` of `kind` when it is a map list.
    pub fn map_list_keys(kind: &str, path: &[&str]) -> Option<Vec<String>> {
        with_writer(kind, "", |w| match (w.list_kind)(path) {
            ListKind::Map(keys) => Some(keys),
            ListKind::Atomic | ListKind::Set => None,
        })
    }
    pub fn merge_patch(target: &mut Value, patch: &Value) {
        merge::merge_patch(target, patch);
    }
    pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
        json::json_patch(doc, ops).map_err(|e| format!("{e:?}"))
    }
    pub fn strategic_merge(target: &mut Value, patch: &Value, kind: &str) -> Result<(), String> {
        with_writer(kind, "", |w| {
            strategic::strategic_merge(target, patch, w.list_kind)
        })
    }
    pub fn apply(
        live: &mut Value,
        config: &Value,
        force: bool,
        manager: &str,
        kind: &str,
    ) -> Result<(), String> {
        with_writer(kind, manager, |w| {
            apply::apply(live, config, force, w).map_err(|e| e.message)
        })
    }
    pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, kind: &str) {
        with_writer(kind, manager, |w| apply::record_update(old, new, w));
    }
}
