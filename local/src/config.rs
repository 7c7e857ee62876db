//! The `sealpod` command line. Every flag has a `SEALPOD_UP_…` environment variable (not
//! `SEALPOD_…`, which the platform's own binaries read).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sealpod on one machine.
#[derive(Debug, Parser)]
#[command(name = "sealpod", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform on this machine until Ctrl-C: devcluster, the operator, the API
    /// server, the pod runner and (with `--fake-model`) the fake model API.
    Up(UpArgs),
    /// Run the pod runner (a kubelet for this machine) until SIGTERM: `up` starts it as a child
    /// process of its own, as a node runs its kubelet, and starts it again if it dies. Its flags
    /// have no environment variables: `up` passes each one.
    PodRunner(PodRunnerArgs),
}

/// Options of `sealpod pod-runner` (written by `up`; see [`sealpod_node::RunnerConfig`]).
#[derive(Debug, Clone, Args)]
pub struct PodRunnerArgs {
    /// Kubeconfig of the control plane.
    #[arg(long)]
    pub kubeconfig: PathBuf,

    /// Directory of the pods' directories, kept workspace claims and the ledger of the processes
    /// it starts (a runner starting after one that was killed first kills what that one left).
    #[arg(long)]
    pub data_dir: PathBuf,

    /// `IMAGE=PROGRAM`: the local program a container image runs (repeatable).
    #[arg(long = "image", required = true)]
    pub images: Vec<String>,

    /// The node whose pods it runs.
    #[arg(long, default_value = sealpod_node::DEFAULT_NODE_NAME)]
    pub node_name: String,

    /// Also bind every unscheduled pod to this node (a one-node cluster's scheduler).
    #[arg(long)]
    pub schedule: bool,

    /// `PATH` of the containers (default: the runner's own).
    #[arg(long)]
    pub path: Option<String>,

    /// Longest delay, in seconds, before a failed container is restarted.
    #[arg(long, default_value_t = 60)]
    pub backoff_max_seconds: u64,

    /// Give each pod a network namespace of its own, locked to its bridges (root only).
    #[arg(long)]
    pub isolate: bool,

    /// `INSIDE_ADDR:PORT=HOST:PORT` (or a bare `PORT`): a bridge out of every isolated pod's
    /// network namespace (repeatable; with `--isolate`).
    #[arg(long = "bridge", requires = "isolate")]
    pub bridges: Vec<String>,
}

/// Options of `sealpod up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Directory of all state: cluster objects, the API store, workspaces, logs and keys. A
    /// second `up` with the same directory resumes where the first stopped. Sandbox users must
    /// be able to traverse every directory above it.
    #[arg(long, env = "SEALPOD_UP_DATA_DIR", default_value = "/var/lib/sealpod")]
    pub data_dir: PathBuf,

    /// Address of the `/v3` API (and of the web console, under `/console/`).
    #[arg(long, env = "SEALPOD_UP_LISTEN", default_value = "127.0.0.1:8780")]
    pub listen: SocketAddr,

    /// Tenant namespace the printed org API key belongs to (created if missing).
    #[arg(long, env = "SEALPOD_UP_NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Once everything is ready, also write `SEALPOD_URL=…`, `SEALPOD_API_KEY=…` and
    /// `KUBECONFIG=…` lines (and, with `--fake-model`, `SEALPOD_FAKE_MODEL_URL=…`) to this file
    /// (mode 0600).
    #[arg(long, env = "SEALPOD_UP_ENV_FILE")]
    pub env_file: Option<PathBuf>,

    /// Also run the fake model API and send the model host's traffic to it, so the platform can
    /// be tried with no model key: the platform's managed credential then holds the fake
    /// model's key, and agents without a credential of their own use it.
    #[arg(long, env = "SEALPOD_UP_FAKE_MODEL")]
    pub fake_model: bool,

    /// Model API hosts (`HOST:PORT`) sandboxes may reach when the fake model is off: each gets a
    /// bridge out of the pods' network namespaces. Default: every known provider's API host
    /// (`api.anthropic.com:443`, `api.openai.com:443`).
    #[arg(
        long = "model-host",
        env = "SEALPOD_UP_MODEL_HOSTS",
        value_delimiter = ',',
        default_values_t = default_model_hosts()
    )]
    pub model_hosts: Vec<String>,

    /// Directory of the sealpod binaries (`sealpod-operator`, `sealpod-api-server`,
    /// `sealpod-sidecar`, `sealpod-runtime`, `sealpod-fake-model`). Default: this program's
    /// own directory.
    #[arg(long, env = "SEALPOD_UP_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Deprecated, without effect (`up` warns): a pod in the host's network could not program its
    /// egress lock, so its session would never start. Pods are isolated whenever `up` runs as
    /// root.
    #[arg(long, env = "SEALPOD_UP_NO_ISOLATION")]
    pub no_isolation: bool,

    /// The Kubernetes control plane: `devcluster` (in process) or `kubernetes` (the upstream
    /// etcd, kube-apiserver and kube-controller-manager that `scripts/setup` builds, as child
    /// processes on loopback, with their state under `DATA_DIR/kubernetes/`).
    #[arg(
        long,
        env = "SEALPOD_UP_CONTROL_PLANE",
        value_enum,
        default_value_t = ControlPlaneKind::Devcluster
    )]
    pub control_plane: ControlPlaneKind,

    /// Directory of `etcd`, `kube-apiserver` and `kube-controller-manager` (with
    /// `--control-plane kubernetes`). Default: `.tools/bin` of the checkout this program was
    /// built from, then `PATH`.
    #[arg(long, env = "SEALPOD_UP_CONTROL_PLANE_BIN_DIR")]
    pub control_plane_bin_dir: Option<PathBuf>,

    /// Namespaces the operator and the API server serve (comma-separated), as the chart's
    /// `rbac.tenantNamespaces` tells them, for identities whose rights are granted per namespace.
    /// Empty (the default): every namespace.
    #[arg(long, env = "SEALPOD_UP_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Run the operator with the bearer token in this file instead of as admin: e.g. a token of
    /// the Helm chart's operator ServiceAccount (`kubectl create token`), so it runs with exactly
    /// the rights the chart grants it in a cluster. `up` itself still prepares the cluster as
    /// admin. The file is read again whenever the token is needed (rotation works).
    #[arg(long, env = "SEALPOD_UP_OPERATOR_TOKEN_FILE")]
    pub operator_token_file: Option<PathBuf>,

    /// Run the API server with the bearer token in this file instead of as admin (as
    /// `--operator-token-file` does for the operator).
    #[arg(long, env = "SEALPOD_UP_API_SERVER_TOKEN_FILE")]
    pub api_server_token_file: Option<PathBuf>,

    /// Seconds between the API server's sweeps for idle sessions to hibernate.
    #[arg(long, env = "SEALPOD_UP_IDLE_SWEEP_SECONDS", default_value_t = 5)]
    pub idle_sweep_seconds: u64,

    /// The API server's store: `sqlite://PATH` or `postgres://USER@HOST:PORT/DB` (passed to the
    /// API server in its environment, never on a command line). Default: `sqlite://` of
    /// `DATA_DIR/api.db`.
    #[arg(long, env = "SEALPOD_UP_DATABASE_URL")]
    pub database_url: Option<String>,

    /// API-server replicas. More than one needs PostgreSQL (`--database-url postgres://…`): the
    /// replicas share the event log and fan SSE out to each other through it. They then listen on
    /// ports of their own, behind a loopback load balancer on `--listen` (and one on the runtime
    /// API's address), as replicas sit behind a Service.
    #[arg(long, env = "SEALPOD_UP_API_SERVER_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub api_server_replicas: u8,

    /// Operator replicas: one leads (the leader-election Lease), the others wait to take over.
    #[arg(long, env = "SEALPOD_UP_OPERATOR_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub operator_replicas: u8,

    /// First delay, in milliseconds, before the operator recreates a lost sandbox pod.
    #[arg(long, env = "SEALPOD_UP_RESTART_BACKOFF_MS", default_value_t = 1_000)]
    pub restart_backoff_ms: u64,
}

pub use sealpod_controlplane::ControlPlaneKind;

/// Every known provider's API hosts on port 443.
fn default_model_hosts() -> Vec<String> {
    sealpod_resources::provider::hosts()
        .map(|h| format!("{h}:443"))
        .collect()
}
