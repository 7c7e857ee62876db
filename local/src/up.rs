//! `sealpod up`: brings every part up in dependency order, prints where the API is and the key
//! to use it, and runs until Ctrl-C (or SIGTERM), then stops everything in reverse order: the
//! operators first (so nothing reacts to pods going away), the pod runner (which stops the pods
//! with their grace period), the API servers, the fake model and last the control plane
//! (devcluster keeps its objects on disk).
//!
//! A child that exits on its own once it was ready is started again ([`crate::supervise`]); one
//! that fails before it is ready, or the control plane exiting, stops `up` with an error naming
//! the log. Several API-server replicas sit behind loopback balancers ([`crate::balancer`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sealpod_node::isolation::Bridge;
use sealpod_resources::labels::DEFAULT_SYSTEM_NAMESPACE;

use crate::balancer::Balancer;
use crate::bootstrap::{self, FAKE_MODEL_CREDENTIAL};
use crate::cluster::Cluster;
use crate::config::{ControlPlaneKind, UpArgs};
use crate::state::{DataDir, Ports, RUNTIME_API_IP, free_port, write_private};
use crate::supervise::{Recipe, Supervised};
use sealpod_controlplane::children;

/// The images the operator is told to use; the pod runner maps them to local binaries.
pub const SIDECAR_IMAGE: &str = "sealpod/sidecar:local";
/// See [`SIDECAR_IMAGE`].
pub const RUNTIME_IMAGE: &str = "sealpod/runtime:local";
/// The pod runner's node on a real control plane (on devcluster it keeps the name its pods of
/// earlier runs are bound to, `devcluster-node`).
pub const KUBERNETES_NODE_NAME: &str = "sealpod-node";

const READY_SECS: u64 = 120;
/// How to get a missing platform binary.
const BUILD_HINT: &str = "build it with `cargo build --workspace --bins`, or pass --bin-dir";
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The pod runner stops every pod with its grace period (at most 30 s) first.
const RUNNER_STOP_GRACE: Duration = Duration::from_secs(45);

fn ip(octets: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(octets).to_string()
}

/// Where sandboxes reach the model: proxy resolver overrides, bridges out of the pods'
/// namespaces, and the upstream CA (the fake model's); and whether pods are isolated (root),
/// so that the operator asks for a bridge per allowlisted destination.
#[derive(Debug, Default)]
struct Egress {
    resolve: Vec<String>,
    bridges: Vec<Bridge>,
    upstream_ca: Option<PathBuf>,
    isolated: bool,
}

fn egress(args: &UpArgs, data: &DataDir, ports: &Ports, isolated: bool) -> anyhow::Result<Egress> {
    let runtime_api = SocketAddr::from((RUNTIME_API_IP, ports.runtime_api)).to_string();
    let mut e = Egress {
        bridges: vec![
            Bridge::parse(&format!("{runtime_api}={runtime_api}")).map_err(anyhow::Error::msg)?,
        ],
        isolated,
        ..Egress::default()
    };
    if args.fake_model {
        e.bridges.push(Bridge::loopback(ports.fake_model));
        // The fake model stands in for every provider's API hosts.
        e.resolve.extend(
            sealpod_resources::provider::hosts()
                .map(|host| format!("{host}=127.0.0.1:{}", ports.fake_model)),
        );
        e.upstream_ca = Some(data.path("fake-model/cert.pem"));
        return Ok(e);
    }
    // Each real model host gets its own loopback address in the pods, bridged to the real host.
    for (i, host) in args.model_hosts.iter().enumerate() {
        let (name, port) = host
            .rsplit_once(':')
            .with_context(|| format!("--model-host `{host}` is not HOST:PORT"))?;
        let last = u8::try_from(10 + i).context("too many --model-host entries")?;
        let inside = ip([127, 0, 1, last]);
        e.bridges
            .push(Bridge::parse(&format!("{inside}:{port}={host}")).map_err(anyhow::Error::msg)?);
        e.resolve.push(format!("{name}={inside}"));
    }
    Ok(e)
}

/// The privilege `up` runs with, which decides how sandbox pods are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Privilege {
    /// Root on the host.
    Root,
    /// Root in a user namespace over `user`'s subordinate IDs, room for `pods` pods at once
    /// ([`crate::rootless`]).
    Rootless { user: String, pods: u32 },
    /// Neither, and why rootless mode is not possible.
    None { why: String },
}

/// Whether sandbox pods get a network namespace of their own (and their egress lock), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Isolation {
    on: bool,
    why: String,
}

impl Isolation {
    fn of(privilege: &Privilege) -> Isolation {
        match privilege {
            Privilege::Root => Isolation {
                on: true,
                why: "a network namespace per pod, locked by nftables (running as root)".into(),
            },
            Privilege::Rootless { user, pods } => Isolation {
                on: true,
                why: format!(
                    "a network namespace per pod, locked by nftables (rootless: in a user \
                     namespace over the subordinate IDs of {user}, room for {pods} pod(s) at once)"
                ),
            },
            Privilege::None { why } => Isolation {
                on: false,
                why: format!(
                    "none: not root, and rootless mode is not possible: {why}; so pods get no \
                     network namespace and no egress lock, and sessions do not start"
                ),
            },
        }
    }
}

/// How `up` goes on: here, with a privilege, or not at all, because its rootless copy
/// ([`crate::rootless`]) ran and ended with an exit code.
enum Start {
    Here(Privilege),
    Ended(i32),
}

async fn start() -> Start {
    if nix::unistd::geteuid().is_root() {
        let ids = sealpod_node::identity::IdRange::of_this_namespace();
        return Start::Here(match crate::rootless::inside_as() {
            Some(user) if !ids.every_id => Privilege::Rootless {
                user,
                pods: ids.slots,
            },
            _ => Privilege::Root,
        });
    }
    match crate::rootless::run_inside_user_namespace().await {
        Ok(code) => Start::Ended(code),
        Err(why) => Start::Here(Privilege::None { why }),
    }
}

/// The host programs isolated pods need: namespaces and bridges (`ip`, `socat`, `unshare`,
/// `nsenter`), the lock (`nft`), UID switches (`setpriv`), probes (`curl`, `bash`).
const POD_PROGRAMS: &[&str] = &[
    "ip", "nft", "socat", "setpriv", "unshare", "nsenter", "curl", "bash",
];

fn bin(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Runs the platform until a signal.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let privilege = match start().await {
        Start::Here(privilege) => privilege,
        Start::Ended(code) => std::process::exit(code),
    };
    let data = DataDir::open(&args.data_dir)
        .with_context(|| format!("data directory {}", args.data_dir.display()))?;
    let ports = data.ports().context("choosing ports")?;
    let store = store_url(&args, &data)?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .to_path_buf(),
    };
    let isolation = Isolation::of(&privilege);
    if args.no_isolation {
        tracing::warn!(
            "--no-isolation has no effect: a pod in the host's network could not program its \
             egress lock, so its session would never start; pods are isolated whenever `up` \
             runs as root or rootless"
        );
    }
    if !isolation.on {
        tracing::warn!("sandbox pods are not isolated: {}", isolation.why);
    }
    if isolation.on {
        let missing = crate::programs::missing(POD_PROGRAMS);
        if !missing.is_empty() {
            bail!(
                "the pod runner needs {} on PATH (Debian packages iproute2, nftables, socat, curl, \
                 util-linux; `scripts/setup-local` installs them)",
                missing.join(", ")
            );
        }
    }
    let system_ns = DEFAULT_SYSTEM_NAMESPACE;
    let egress = egress(&args, &data, &ports, isolation.on)?;

    // 1. The cluster.
    let mut cluster = Cluster::start(&args, &data, &ports).await?;
    let kubeconfig = data.path("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig)?;
    let crds: Vec<_> = sealpod_resources::crds::all()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let client = cluster.client().await?;
    let prepared = async {
        cluster.install_crds(&client, &crds).await?;
        bootstrap::ensure_namespace(&client, system_ns).await?;
        bootstrap::ensure_namespace(&client, &args.namespace).await?;
        anyhow::Ok(())
    };
    if let Err(e) = prepared.await {
        cluster.shutdown().await;
        return Err(e);
    }
    tracing::info!(url = %cluster.url(), control_plane = cluster.name(), "the control plane is up");

    let mut platform = Platform::default();
    let access = ClusterAccess {
        kubeconfig: kubeconfig.clone(),
        client: client.clone(),
        listeners: cluster.listeners(),
    };
    let started = async {
        let key = start_children(
            &args,
            &data,
            &ports,
            &bin_dir,
            &egress,
            &access,
            &store,
            &mut platform,
        )
        .await?;
        // The pod runner, last: everything pods talk to is up.
        let runner = pod_runner(&args, &data, &bin_dir, &egress, &kubeconfig)?;
        platform.children.push(Supervised::spawn(runner)?);
        anyhow::Ok(key)
    };
    let key = match started.await {
        Ok(key) => key,
        Err(e) => {
            platform.stop(cluster).await;
            return Err(e);
        }
    };

    // Ready.
    // The `/v3` base, as the SDK takes it (`baseUrl`).
    let url = format!("http://{}/v3", args.listen);
    let mut lines = format!(
        "SEALPOD_URL={url}\nSEALPOD_API_KEY={}\nKUBECONFIG={}\n",
        key,
        kubeconfig.display()
    );
    if args.fake_model {
        let _ = writeln!(
            lines,
            "SEALPOD_FAKE_MODEL_URL=https://127.0.0.1:{}",
            ports.fake_model
        );
        let _ = writeln!(
            lines,
            "SEALPOD_FAKE_MODEL_CA={}",
            data.path("fake-model/cert.pem").display()
        );
    }
    if let Some(file) = &args.env_file {
        write_private(file, &lines).with_context(|| format!("writing {}", file.display()))?;
    }
    println!("sealpod is up.");
    println!("  API:        {url}");
    println!("  console:    http://{}/console/", args.listen);
    println!("  API key:    {key}   (namespace {})", args.namespace);
    println!("  kubectl:    export KUBECONFIG={}", kubeconfig.display());
    if args.fake_model {
        println!("  model:      the fake model API (no model key needed)");
    }
    if args.api_server_replicas > 1 || args.operator_replicas > 1 {
        println!(
            "  replicas:   {} API server(s) behind one address, {} operator(s) (one leads)",
            args.api_server_replicas, args.operator_replicas
        );
    }
    println!("  isolation:  {}", isolation.why);
    println!("  logs:       {}", data.path("logs").display());
    println!("Ctrl-C stops everything; `sealpod up` again resumes.");

    let outcome = wait_for_stop(&mut platform.children, &mut cluster).await;
    platform.stop(cluster).await;
    println!("sealpod stopped.");
    outcome
}

/// The API server's store URL; more than one replica needs PostgreSQL.
fn store_url(args: &UpArgs, data: &DataDir) -> anyhow::Result<String> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", data.private_file("api.db")?.display()),
    };
    if args.api_server_replicas > 1 && !url.starts_with("postgres") {
        bail!(
            "--api-server-replicas {} needs --database-url postgres://…: replicas share one event \
             log and wake each other's SSE streams through PostgreSQL",
            args.api_server_replicas
        );
    }
    Ok(url)
}

/// What `up` runs besides the control plane: its children and the load balancers in front of
/// the API-server replicas.
#[derive(Debug, Default)]
struct Platform {
    children: Vec<Supervised>,
    balancers: Vec<Balancer>,
}

impl Platform {
    /// Stops everything in order, then the control plane.
    async fn stop(self, cluster: Cluster) {
        let Platform {
            children,
            balancers,
        } = self;
        // The operators first, so they do not replace the pods that are about to stop; then
        // the pod runner (each pod with its grace period); then the rest, newest first.
        let (operators, rest): (Vec<_>, Vec<_>) = children
            .into_iter()
            .partition(|c| c.name().starts_with("operator"));
        for operator in operators {
            operator.stop(STOP_GRACE).await;
        }
        let (runner, rest): (Vec<_>, Vec<_>) =
            rest.into_iter().partition(|c| c.name() == "pod-runner");
        for child in runner {
            child.stop(RUNNER_STOP_GRACE).await;
        }
        drop(balancers);
        for child in rest.into_iter().rev() {
            child.stop(STOP_GRACE).await;
        }
        cluster.shutdown().await;
    }
}

/// Replica `i`'s name: `name` for the first (as with one replica), `name-i` for the others.
fn replica(name: &str, i: usize) -> String {
    if i == 0 {
        name.to_owned()
    } else {
        format!("{name}-{i}")
    }
}

/// How the children reach the control plane, and where it listens.
struct ClusterAccess {
    kubeconfig: PathBuf,
    client: kube::Client,
    /// Platform listeners webhooks must never reach.
    listeners: Vec<SocketAddr>,
}

/// Where one API-server replica listens.
#[derive(Debug, Clone, Copy)]
struct ApiListeners {
    api: SocketAddr,
    runtime: SocketAddr,
    admin: SocketAddr,
}

/// Each API-server replica's listeners: one replica binds the platform's addresses itself;
/// several get ports of their own, balanced behind those addresses.
fn api_listeners(args: &UpArgs, ports: &Ports) -> std::io::Result<Vec<ApiListeners>> {
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let runtime_api = SocketAddr::from((RUNTIME_API_IP, ports.runtime_api));
    if args.api_server_replicas == 1 {
        return Ok(vec![ApiListeners {
            api: args.listen,
            runtime: runtime_api,
            admin: loopback(ports.api_admin),
        }]);
    }
    (0..usize::from(args.api_server_replicas))
        .map(|i| {
            Ok(ApiListeners {
                api: loopback(free_port([127, 0, 0, 1])?),
                runtime: SocketAddr::from((RUNTIME_API_IP, free_port(RUNTIME_API_IP)?)),
                admin: loopback(if i == 0 {
                    ports.api_admin
                } else {
                    free_port([127, 0, 0, 1])?
                }),
            })
        })
        .collect()
}

/// The pod runner's command line.
fn pod_runner(
    args: &UpArgs,
    data: &DataDir,
    bin_dir: &Path,
    egress: &Egress,
    kubeconfig: &Path,
) -> anyhow::Result<Recipe> {
    let mut runner_args = vec![
        "pod-runner".to_owned(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--data-dir={}", data.path("runner").display()),
        format!(
            "--image={SIDECAR_IMAGE}={}",
            bin(bin_dir, "sealpod-sidecar").display()
        ),
        format!(
            "--image={RUNTIME_IMAGE}={}",
            bin(bin_dir, "sealpod-runtime").display()
        ),
        "--schedule".to_owned(),
        format!(
            "--path={}:{}:/usr/local/sbin:/usr/sbin:/sbin",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        ),
        "--backoff-max-seconds=10".to_owned(),
    ];
    if args.control_plane == ControlPlaneKind::Kubernetes {
        runner_args.push(format!("--node-name={KUBERNETES_NODE_NAME}"));
    }
    if egress.isolated {
        runner_args.push("--isolate".to_owned());
        for bridge in &egress.bridges {
            runner_args.push(format!("--bridge={}={}", bridge.inside, bridge.target));
        }
    }
    Ok(Recipe {
        name: "pod-runner".to_owned(),
        program: std::env::current_exe().context("this program's path")?,
        hint: BUILD_HINT,
        args: runner_args,
        env: vec![],
        log: data.path("logs/pod-runner.log"),
    })
}

#[allow(clippy::too_many_arguments)]
async fn start_children(
    args: &UpArgs,
    data: &DataDir,
    ports: &Ports,
    bin_dir: &Path,
    egress: &Egress,
    access: &ClusterAccess,
    store: &str,
    platform: &mut Platform,
) -> anyhow::Result<String> {
    let (kubeconfig, client) = (access.kubeconfig.as_path(), &access.client);
    let system_ns = DEFAULT_SYSTEM_NAMESPACE;
    // Each component's identity: the admin's, or the bearer token it was given.
    let identity = |name: &str, token_file: Option<&Path>| match token_file {
        Some(token_file) => {
            let out = data.path(&format!("{name}.kubeconfig"));
            crate::cluster::write_token_kubeconfig(kubeconfig, token_file, &out)?;
            anyhow::Ok(out)
        }
        None => Ok(kubeconfig.to_path_buf()),
    };
    let operator_kubeconfig = identity("operator", args.operator_token_file.as_deref())?;
    let api_server_kubeconfig = identity("api-server", args.api_server_token_file.as_deref())?;
    let log = |name: &str| data.path(&format!("logs/{name}.log"));
    let runtime_api = SocketAddr::from((RUNTIME_API_IP, ports.runtime_api));
    let recipe = |name: String, program: &str, args: Vec<String>, env| Recipe {
        log: log(&name),
        name,
        program: bin(bin_dir, program),
        hint: BUILD_HINT,
        args,
        env,
    };
    let children = &mut platform.children;

    // 2. The fake model, when asked for.
    if args.fake_model {
        if data.read_secret("fake-model/key").is_none() {
            let key = format!("sk-ant-local-{}", hex::encode(rand::random::<[u8; 16]>()));
            data.write_secret("fake-model/key", &key)?;
        }
        let addr = format!("127.0.0.1:{}", ports.fake_model);
        // Written anew by each start; its presence then says the server is up.
        let cert = data.path("fake-model/cert.pem");
        let _ = std::fs::remove_file(&cert);
        let mut child = Supervised::spawn(recipe(
            "fake-model".to_owned(),
            "sealpod-fake-model",
            vec![
                format!("--listen={addr}"),
                format!("--api-key-file={}", data.path("fake-model/key").display()),
                format!(
                    "--host-name={},127.0.0.1",
                    sealpod_resources::provider::hosts()
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                format!("--cert-out={}", cert.display()),
            ],
            vec![],
        ))?;
        let ready = child
            .wait_ready(READY_SECS, || {
                let addr = addr.clone();
                let cert = cert.clone();
                async move { cert.is_file() && tokio::net::TcpStream::connect(addr).await.is_ok() }
            })
            .await;
        children.push(child);
        ready?;
    }

    // 3. The operator replicas: each with a health port and a leader-election identity.
    let operator_ports = (0..usize::from(args.operator_replicas))
        .map(|i| {
            if i == 0 {
                Ok(ports.operator)
            } else {
                free_port([127, 0, 0, 1])
            }
        })
        .collect::<std::io::Result<Vec<u16>>>()?;
    let mut op_args = vec![
        format!("--system-namespace={system_ns}"),
        format!("--sidecar-image={SIDECAR_IMAGE}"),
        format!("--runtime-image={RUNTIME_IMAGE}"),
        format!("--runtime-api-url=http://{runtime_api}"),
        format!("--runtime-api-cidr={}/32", ip(RUNTIME_API_IP)),
        "--workspace-volume=claim".to_owned(),
        "--workspace-size=1Gi".to_owned(),
        format!("--restart-backoff-ms={}", args.restart_backoff_ms),
        "--restart-backoff-max-ms=30000".to_owned(),
        "--lease-duration-seconds=5".to_owned(),
    ];
    let watch_namespaces = (!args.watch_namespaces.is_empty())
        .then(|| format!("--watch-namespaces={}", args.watch_namespaces.join(",")));
    op_args.extend(watch_namespaces.clone());
    for r in &egress.resolve {
        op_args.push(format!("--proxy-resolve={r}"));
    }
    if let Some(ca) = &egress.upstream_ca {
        op_args.push(format!("--upstream-ca-file={}", ca.display()));
    }
    if egress.isolated {
        // Isolated pods have no network but their bridges: the runner carries each allowlisted
        // destination of a session's agent out of its pod, as a cluster's network would.
        op_args.push("--bridge-egress".to_owned());
    }
    if args.fake_model {
        op_args.push(format!("--managed-credential={FAKE_MODEL_CREDENTIAL}"));
    }
    for (i, port) in operator_ports.iter().enumerate() {
        let mut replica_args = op_args.clone();
        replica_args.push(format!("--listen=127.0.0.1:{port}"));
        replica_args.push(format!("--identity={}", replica("local", i)));
        let mut operator = Supervised::spawn(recipe(
            replica("operator", i),
            "sealpod-operator",
            replica_args,
            vec![("KUBECONFIG", operator_kubeconfig.display().to_string())],
        ))?;
        let op_addr = format!("127.0.0.1:{port}");
        let ready = operator
            .wait_ready(READY_SECS, || children::http_ok(&op_addr, "/readyz"))
            .await;
        children.push(operator);
        ready?;
    }

    // 4. The API-server replicas (behind load balancers when there are several).
    let replicas = api_listeners(args, ports)?;
    // Local apps receive webhooks on http://127.0.0.1; the platform's own ports on loopback
    // stay refused (each API server adds its own three listeners).
    let mut deny: Vec<SocketAddr> = vec![args.listen, runtime_api];
    deny.extend(replicas.iter().flat_map(|r| [r.api, r.runtime, r.admin]));
    deny.extend(
        operator_ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p))),
    );
    deny.extend(access.listeners.iter().copied());
    if args.fake_model {
        deny.push(SocketAddr::from(([127, 0, 0, 1], ports.fake_model)));
    }
    for (i, listeners) in replicas.iter().enumerate() {
        let mut api_args = vec![
            "serve".to_owned(),
            format!("--listen={}", listeners.api),
            format!("--runtime-listen={}", listeners.runtime),
            format!("--admin-listen={}", listeners.admin),
            format!("--system-namespace={system_ns}"),
            format!("--kubeconfig={}", api_server_kubeconfig.display()),
            format!("--idle-sweep-seconds={}", args.idle_sweep_seconds),
            "--webhooks-allow-insecure".to_owned(),
        ];
        api_args.extend(deny.iter().map(|a| format!("--webhooks-deny-addr={a}")));
        api_args.extend(watch_namespaces.clone());
        if args.fake_model {
            api_args.push(format!("--managed-credential={FAKE_MODEL_CREDENTIAL}"));
        }
        let mut api = Supervised::spawn(recipe(
            replica("api-server", i),
            "sealpod-api-server",
            api_args,
            // In the environment: a PostgreSQL URL may hold a password.
            vec![("SEALPOD_DATABASE_URL", store.to_owned())],
        ))?;
        let admin = listeners.admin.to_string();
        let ready = api
            .wait_ready(READY_SECS, || children::http_ok(&admin, "/readyz"))
            .await;
        children.push(api);
        ready?;
    }
    if replicas.len() > 1 {
        let front = |addr: SocketAddr, backends: Vec<SocketAddr>| async move {
            Balancer::start(addr, backends)
                .await
                .with_context(|| format!("listening on {addr}"))
        };
        platform
            .balancers
            .push(front(args.listen, replicas.iter().map(|r| r.api).collect()).await?);
        platform
            .balancers
            .push(front(runtime_api, replicas.iter().map(|r| r.runtime).collect()).await?);
    }

    // 5. The managed credential (fake model only), sealed with the operator's published key.
    if args.fake_model {
        let public = bootstrap::sealing_keys(client, system_ns, READY_SECS).await?;
        let key = data
            .read_secret("fake-model/key")
            .context("the fake model key file vanished")?;
        bootstrap::managed_credential(client, system_ns, FAKE_MODEL_CREDENTIAL, &key, &public)
            .await?;
    }

    // 6. The org API key of the tenant namespace: created once, kept in the data directory.
    if let Some(key) = data.read_secret("api-key") {
        return Ok(key);
    }
    let out = tokio::process::Command::new(bin(bin_dir, "sealpod-api-server"))
        .args(["api-key", "create", "--namespace", &args.namespace])
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running sealpod-api-server api-key create")?;
    if !out.status.success() {
        bail!(
            "creating the API key failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    data.write_secret("api-key", &key)?;
    Ok(key)
}

/// Waits for Ctrl-C or SIGTERM (Ok), starting again each child that exits on its own, or for the
/// control plane to exit (Err).
async fn wait_for_stop(running: &mut [Supervised], cluster: &mut Cluster) -> anyhow::Result<()> {
    let stop = sealpod_util::shutdown::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Some((name, status)) = cluster.exited() {
            bail!("{name} exited on its own ({status}); see its log under the data directory");
        }
        for child in running.iter_mut() {
            child.tend()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Isolation, Privilege};

    #[test]
    fn pods_are_isolated_as_root_or_rootless_and_up_says_why() {
        assert!(Isolation::of(&Privilege::Root).on);
        let rootless = Isolation::of(&Privilege::Rootless {
            user: "alice".into(),
            pods: 16,
        });
        assert!(rootless.on);
        assert!(rootless.why.contains("rootless") && rootless.why.contains("16 pod(s)"));
        let none = Isolation::of(&Privilege::None {
            why: "newuidmap and newgidmap are missing".into(),
        });
        assert!(!none.on);
        assert!(none.why.contains("newuidmap"), "{}", none.why);
    }

    #[test]
    fn the_runner_reads_the_bridges_annotation_the_operator_writes() {
        assert_eq!(
            sealpod_node::isolation::BRIDGES_ANNOTATION,
            sealpod_resources::labels::EGRESS_BRIDGES_ANNOTATION
        );
    }
}
