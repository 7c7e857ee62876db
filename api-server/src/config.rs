//! Command line and environment of `sealpod-api-server`, parsed once and typed. Every flag has
//! an `env = "SEALPOD_…"` twin and a doc comment (shown by `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sealpod_resources::labels::DEFAULT_SYSTEM_NAMESPACE;

/// The sealpod API server: the `/v3` REST and SSE API, the runtime API and the admin endpoints.
#[derive(Debug, Parser)]
#[command(name = "sealpod-api-server", version)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options (when no subcommand is given).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the APIs (the default).
    Serve(ServeArgs),
    /// Manage org API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

/// `api-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an org API key for a namespace (tenant); prints the key once. Only its SHA-256 is
    /// stored, in a Secret of that namespace labelled `sealpod.dev/component=api-key`.
    Create {
        /// The tenant namespace the key belongs to.
        #[arg(long, env = "SEALPOD_NAMESPACE")]
        namespace: String,
        /// Kubeconfig file (default: the usual kube resolution: KUBECONFIG, ~/.kube/config,
        /// in-cluster).
        #[arg(long, env = "SEALPOD_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
    },
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the public `/v3` API.
    #[arg(long, env = "SEALPOD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the runtime API (in-sandbox runtime and sidecar; never expose it publicly).
    #[arg(long, env = "SEALPOD_RUNTIME_LISTEN", default_value = "127.0.0.1:8081")]
    pub runtime_listen: SocketAddr,
    /// Address of the admin endpoints (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "SEALPOD_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// The store: `sqlite://PATH` (default, one replica) or `postgres://…` (several replicas).
    #[arg(
        long,
        env = "SEALPOD_DATABASE_URL",
        default_value = "sqlite://sealpod-api.db"
    )]
    pub database_url: String,
    /// Namespace of sealpod's own objects (sealing public keys, token keys).
    #[arg(long, env = "SEALPOD_SYSTEM_NAMESPACE", default_value = DEFAULT_SYSTEM_NAMESPACE)]
    pub system_namespace: String,
    /// Kubeconfig file (default: the usual kube resolution: KUBECONFIG, ~/.kube/config,
    /// in-cluster).
    #[arg(long, env = "SEALPOD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Name of the cluster's platform ("managed") Credential in the system namespace; when
    /// unset, sessions resolving to `managed` get `422 managed_unavailable`.
    #[arg(long, env = "SEALPOD_MANAGED_CREDENTIAL")]
    pub managed_credential: Option<String>,
    /// Seconds between SSE keep-alive comments.
    #[arg(long, env = "SEALPOD_SSE_PING_SECONDS", default_value_t = 15)]
    pub sse_ping_seconds: u64,
    /// Seconds between sweeps for idle sessions to hibernate.
    #[arg(long, env = "SEALPOD_IDLE_SWEEP_SECONDS", default_value_t = 10)]
    pub idle_sweep_seconds: u64,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "SEALPOD_LOG", default_value = "info")]
    pub log: String,
}

impl Default for ServeArgs {
    fn default() -> Self {
        // Parsing no arguments applies every default above; it cannot fail.
        Cli::parse_from(["sealpod-api-server"]).serve
    }
}
