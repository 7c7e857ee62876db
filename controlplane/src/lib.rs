//! A real Kubernetes control plane on loopback: the upstream `etcd`, `kube-apiserver` and
//! `kube-controller-manager`, built from pinned Go modules by `scripts/setup` into `.tools/bin/`
//! (see `controlplane/go/`), started as child processes with their state in one directory, as
//! controller-runtime's envtest runs them. The API server serves real TLS from a generated CA,
//! authorizes with `Node,RBAC` and admits with `PodSecurity` among its defaults; the controller
//! manager runs the garbage collector, the namespace and the service-account controllers (its
//! default set). A second start on the same directory resumes the same cluster.
//!
//! Everything listens on 127.0.0.1 only. The service CIDR is virtual: nothing here (or anywhere
//! in sealpod) dials a Service ClusterIP. There is no kubelet and no scheduler: the pod runner
//! (`sealpod-node`) registers the node and binds and runs the pods.
//!
//! [`children`] is the supervised child process this crate and `sealpod up` share.

pub mod children;
pub mod pki;

/// The control planes sealpod runs on (`sealpod up --control-plane`, the tests'
/// `SEALPOD_TEST_CONTROL_PLANE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ControlPlaneKind {
    /// devcluster, in process.
    Devcluster,
    /// The upstream etcd, kube-apiserver and kube-controller-manager, as child processes.
    Kubernetes,
}

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use children::{Child, ChildError, Spawn};
use pki::{Pki, User};

/// The programs a control plane runs.
pub const PROGRAMS: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
/// How to get them.
pub const SETUP_HINT: &str = "run scripts/setup, which builds them into .tools/bin, or pass \
                              --control-plane-bin-dir";
/// The virtual service range (never dialled).
pub const SERVICE_CIDR: &str = "10.96.0.0/24";
const READY_SECS: u64 = 120;
/// The lowest port [`free_port`] picks (above the registered ports most services use).
const PRIVATE_PORTS_FROM: u16 = 20000;
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why the control plane could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started or did not become ready.
    #[error(transparent)]
    Child(#[from] ChildError),
    /// A key or certificate could not be made.
    #[error("control plane PKI: {0}")]
    Pki(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The API server could not be reached as a client.
    #[error("control plane client: {0}")]
    Client(String),
}

impl Error {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where the control plane's programs are: `dir` if given, else `.tools/bin` of this checkout,
/// else `PATH`. A missing one is an error naming `scripts/setup`.
pub fn find_programs(dir: Option<&Path>) -> Result<Programs, Error> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates: Vec<PathBuf> = match dir {
        Some(d) => vec![d.to_path_buf()],
        None => std::iter::once(checkout)
            .chain(std::env::split_paths(&path))
            .collect(),
    };
    let find = |name: &str| {
        candidates
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::Child(ChildError::Missing {
                    program: candidates
                        .first()
                        .map_or_else(|| PathBuf::from(name), |d| d.join(name)),
                    hint: SETUP_HINT,
                })
            })
    };
    Ok(Programs {
        etcd: find("etcd")?,
        apiserver: find("kube-apiserver")?,
        controller_manager: find("kube-controller-manager")?,
    })
}

/// The three programs.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
}

/// How to run a control plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// Its state: `pki/`, `etcd/`, `logs/`, kubeconfigs (created 0700).
    pub dir: PathBuf,
    /// The programs.
    pub programs: Programs,
    /// The API server's port on 127.0.0.1 (0: a free one).
    pub api_port: u16,
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    url: String,
    /// Every port the control plane listens on (127.0.0.1).
    ports: Vec<u16>,
    pki: Pki,
    dir: PathBuf,
    /// Started in order: etcd, the API server, the controller manager.
    children: Vec<Child>,
}

/// A port on 127.0.0.1 that is free now and that the kernel does not hand out by itself: it lies
/// below the local ephemeral range, so no outgoing connection (and no other program's `bind` to
/// port 0) takes it in the moment between this check and the program binding it. Falls back to
/// an ephemeral port when the range leaves no room below it.
fn free_port() -> Result<u16, Error> {
    let bindable = |port: u16| {
        TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
    };
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let below = PRIVATE_PORTS_FROM..ephemeral_low;
    if !below.is_empty() {
        for _ in 0..100 {
            if let Ok(port) = bindable(rand::random_range(below.clone())) {
                return Ok(port);
            }
        }
    }
    bindable(0).map_err(Error::io(Path::new("127.0.0.1:0")))
}

fn arg(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

impl ControlPlane {
    /// Starts etcd, the API server and the controller manager, and waits until the API server
    /// is ready and the controller manager has made the `default` namespace's service account.
    pub async fn start(config: Config) -> Result<ControlPlane, Error> {
        let dir = config.dir.clone();
        make_private_dir(&dir)?;
        make_private_dir(&dir.join("logs"))?;
        let pki = Pki::open(&dir.join("pki"))?;
        let api_port = match config.api_port {
            0 => free_port()?,
            port => port,
        };
        let url = format!("https://127.0.0.1:{api_port}");
        let mut plane = ControlPlane {
            url,
            ports: vec![api_port],
            pki,
            dir,
            children: Vec::new(),
        };
        if let Err(e) = plane.start_children(&config.programs, api_port).await {
            plane.stop_children().await;
            return Err(e);
        }
        Ok(plane)
    }

    async fn start_children(&mut self, programs: &Programs, api_port: u16) -> Result<(), Error> {
        let log = |name: &str| self.dir.join("logs").join(format!("{name}.log"));
        let (client_port, peer_port) = (free_port()?, free_port()?);
        self.ports.extend([client_port, peer_port]);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = vec![
            arg("name", "sealpod"),
            arg("data-dir", self.dir.join("etcd").display()),
            arg("listen-client-urls", &client_url),
            arg("advertise-client-urls", &client_url),
            arg("listen-peer-urls", &peer_url),
            arg("initial-advertise-peer-urls", &peer_url),
            arg("initial-cluster", format!("sealpod={peer_url}")),
            arg("log-level", "warn"),
        ];
        let mut etcd = children::spawn(Spawn {
            name: "etcd",
            program: &programs.etcd,
            hint: SETUP_HINT,
            args: &etcd_args,
            env: &[],
            log: &log("etcd"),
        })?;
        let health = format!("127.0.0.1:{client_port}");
        let ready = etcd
            .wait_ready(READY_SECS, || children::http_ok(&health, "/health"))
            .await;
        self.children.push(etcd);
        ready?;

        let pki = |name: &str| self.pki.path(name).display().to_string();
        let apiserver_args = vec![
            arg("etcd-servers", &client_url),
            arg("bind-address", "127.0.0.1"),
            arg("advertise-address", "127.0.0.1"),
            // The `kubernetes` Service's endpoints would be this loopback address, which the
            // reconciler refuses; nothing here dials a Service anyway.
            arg("endpoint-reconciler-type", "none"),
            arg("secure-port", api_port),
            arg("tls-cert-file", pki("apiserver.crt")),
            arg("tls-private-key-file", pki("apiserver.key")),
            arg("client-ca-file", pki("ca.crt")),
            arg(
                "service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
            ),
            arg("service-account-key-file", pki("sa.pub")),
            arg("service-account-signing-key-file", pki("sa.key")),
            arg("service-cluster-ip-range", SERVICE_CIDR),
            arg("authorization-mode", "Node,RBAC"),
            arg("encryption-provider-config", pki("encryption.yaml")),
            arg("enable-admission-plugins", "NodeRestriction"),
            arg("cert-dir", self.dir.join("apiserver-certs").display()),
            arg("profiling", "false"),
            arg("v", "1"),
        ];
        let mut apiserver = children::spawn(Spawn {
            name: "kube-apiserver",
            program: &programs.apiserver,
            hint: SETUP_HINT,
            args: &apiserver_args,
            env: &[],
            log: &log("kube-apiserver"),
        })?;
        let client = self.client().await?;
        let ready = apiserver.wait_ready(READY_SECS, || self.is_ready()).await;
        self.children.push(apiserver);
        ready?;

        let kubeconfig = self.dir.join("controller-manager.kubeconfig");
        self.pki
            .write_kubeconfig(&kubeconfig, &self.url, User::ControllerManager)?;
        let kcm_args = vec![
            arg("kubeconfig", kubeconfig.display()),
            arg("authentication-kubeconfig", kubeconfig.display()),
            arg("authorization-kubeconfig", kubeconfig.display()),
            // Nothing reads its health or metrics endpoint: it serves none (one port less).
            arg("secure-port", 0),
            arg("service-account-private-key-file", pki("sa.key")),
            arg("root-ca-file", pki("ca.crt")),
            arg("service-cluster-ip-range", SERVICE_CIDR),
            arg("use-service-account-credentials", "true"),
            arg("leader-elect", "false"),
            arg("profiling", "false"),
            arg("v", "1"),
        ];
        let mut controller_manager = children::spawn(Spawn {
            name: "kube-controller-manager",
            program: &programs.controller_manager,
            hint: SETUP_HINT,
            args: &kcm_args,
            env: &[],
            log: &log("kube-controller-manager"),
        })?;
        let ready = controller_manager
            .wait_ready(READY_SECS, || has_default_service_account(&client))
            .await;
        self.children.push(controller_manager);
        ready?;
        Ok(())
    }

    /// `/readyz` answers `ok` (asked with curl: a client library logs every refusal while the
    /// server starts).
    async fn is_ready(&self) -> bool {
        let pki = |name: &str| self.pki.path(name);
        tokio::process::Command::new("curl")
            .arg("-fsS")
            .arg("--max-time")
            .arg("2")
            .arg("--cacert")
            .arg(pki("ca.crt"))
            .arg("--cert")
            .arg(pki("admin.crt"))
            .arg("--key")
            .arg(pki("admin.key"))
            .arg(format!("{}/readyz", self.url))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .await
            .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"ok")
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every address the control plane listens on (the API server, etcd's client and peer
    /// ports), e.g. to keep webhooks away from them.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        self.ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    /// Writes an admin kubeconfig (`system:masters`, mode 0600).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        self.pki.write_kubeconfig(path, &self.url, User::Admin)
    }

    /// An admin client.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let yaml = self.pki.kubeconfig(&self.url, User::Admin)?;
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| Error::Client(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| Error::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
    }

    /// A child that exited by itself, if any (name and status).
    pub fn exited(&mut self) -> Option<(String, String)> {
        self.children
            .iter_mut()
            .find_map(|c| c.exited().map(|status| (c.name.clone(), status)))
    }

    async fn stop_children(&mut self) {
        while let Some(child) = self.children.pop() {
            child.stop(STOP_GRACE).await;
        }
    }

    /// Stops the controller manager, the API server and etcd, in that order.
    pub async fn shutdown(mut self) {
        self.stop_children().await;
    }
}

fn make_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(Error::io(dir))
}

async fn has_default_service_account(client: &kube::Client) -> bool {
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(client.clone(), "default");
    matches!(accounts.get_opt("default").await, Ok(Some(_)))
}

/// Applies `crds` (server-side apply, field manager `manager`) and waits until each is
/// `Established`, so their kinds are served when this returns.
pub async fn install_crds(
    client: &kube::Client,
    crds: &[k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition],
    manager: &str,
) -> Result<(), Error> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let params = kube::api::PatchParams::apply(manager).force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut crd = crd.clone();
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        api.patch(&name, &params, &kube::api::Patch::Apply(&crd))
            .await
            .map_err(|e| Error::Client(format!("applying CRD {name}: {e}")))?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = kube::runtime::wait::await_condition(
            api.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        match tokio::time::timeout(Duration::from_secs(READY_SECS), established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Client(format!("waiting for CRD {name}: {e}"))),
            Err(_) => return Err(Error::Client(format!("CRD {name} was not established"))),
        }
    }
    Ok(())
}
