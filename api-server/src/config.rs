//! Command line and environment of `sealpod-api-server`, parsed once and typed. Every flag has
//! an `env = "SEALPOD_…"` twin and a doc comment (shown by `--help`).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sealpod_resources::labels::DEFAULT_SYSTEM_NAMESPACE;

/// Default lifetime of a console sign-in: a working day.
pub const DEFAULT_CONSOLE_SESSION_SECONDS: u64 = 8 * 3600;

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
    Serve(Box<ServeArgs>),
    /// Manage org API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

/// `api-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an org API key for a namespace (tenant); prints the key once. Only its SHA-256 is
    /// stored, in a ConfigMap of that namespace labelled `sealpod.dev/component=api-key`.
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
    /// Tenant namespaces this server serves, comma-separated (the operator's list). Sessions
    /// applied with kubectl are adopted only there; empty means every namespace but the system
    /// namespace.
    #[arg(long, env = "SEALPOD_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Seconds between SSE keep-alive comments.
    #[arg(long, env = "SEALPOD_SSE_PING_SECONDS", default_value_t = 15)]
    pub sse_ping_seconds: u64,
    /// Bytes of an event body's JSON above which the event carries a truncated body
    /// (`body_truncated`) and the whole one is served by `GET …/events/{id}/content` (at least
    /// 1024).
    #[arg(
        long,
        env = "SEALPOD_EVENT_BODY_LIMIT",
        default_value_t = crate::store::large_body::DEFAULT_EVENT_BODY_LIMIT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
            .range(crate::store::large_body::MIN_EVENT_BODY_LIMIT as u64..)
    )]
    pub event_body_limit: usize,
    /// Seconds between sweeps for idle sessions to hibernate.
    #[arg(long, env = "SEALPOD_IDLE_SWEEP_SECONDS", default_value_t = 10)]
    pub idle_sweep_seconds: u64,
    /// Webhook delivery options.
    #[command(flatten)]
    pub webhooks: Box<WebhookArgs>,
    /// Seconds a console sign-in lasts (the cookie's lifetime; 60 to 604800). Signing out, or
    /// deleting the org key it was made with, ends it sooner.
    #[arg(
        long,
        env = "SEALPOD_CONSOLE_SESSION_SECONDS",
        default_value_t = DEFAULT_CONSOLE_SESSION_SECONDS,
        value_parser = clap::value_parser!(u64).range(60..=604_800)
    )]
    pub console_session_seconds: u64,
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

impl ServeArgs {
    /// The webhook settings: the `--webhooks-*` flags, with this server's own three listen
    /// addresses refused as destinations beside the `--webhooks-deny-addr` ones.
    pub fn webhook_config(&self) -> Result<crate::webhooks::Config, WebhookArgsError> {
        let mut config = self.webhooks.config()?;
        config
            .deny
            .extend([self.listen, self.runtime_listen, self.admin_listen]);
        Ok(config)
    }
}

/// Webhook delivery options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Admit `http://` and loopback webhook destinations (local mode and tests only). Private,
    /// link-local, metadata and other non-public addresses stay refused, and so do this server's
    /// own listeners and every `--webhooks-deny-addr`.
    #[arg(long, env = "SEALPOD_WEBHOOKS_ALLOW_INSECURE")]
    pub webhooks_allow_insecure: bool,
    /// A platform listener (`HOST:PORT`) that is never a webhook destination, in any mode, beside
    /// this server's own `--listen`, `--runtime-listen` and `--admin-listen` (e.g. the cluster
    /// API, the operator's metrics). Repeatable, or comma-separated in the environment; a host
    /// name is resolved once at start, and a `0.0.0.0`/`[::]` host covers every loopback address.
    #[arg(long, env = "SEALPOD_WEBHOOKS_DENY_ADDR", value_delimiter = ',')]
    pub webhooks_deny_addr: Vec<String>,
    /// Delays before each retry of a failed delivery, comma-separated (`ms`, `s`, `m`, `h`);
    /// the last one repeats.
    #[arg(
        long,
        env = "SEALPOD_WEBHOOKS_RETRY_SCHEDULE",
        default_value = "1s,5s,30s,2m,10m,1h"
    )]
    pub webhooks_retry_schedule: String,
    /// Attempts of a delivery before it becomes `dead_letter`.
    #[arg(long, env = "SEALPOD_WEBHOOKS_MAX_ATTEMPTS", default_value_t = 6)]
    pub webhooks_max_attempts: u32,
    /// Timeout of one delivery attempt (connect, TLS, request and response head).
    #[arg(long, env = "SEALPOD_WEBHOOKS_TIMEOUT", default_value = "10s")]
    pub webhooks_timeout: String,
    /// How often the delivery worker looks for due deliveries.
    #[arg(long, env = "SEALPOD_WEBHOOKS_POLL", default_value = "500ms")]
    pub webhooks_poll: String,
}

/// A webhook option that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct WebhookArgsError {
    flag: &'static str,
    message: String,
}

impl WebhookArgs {
    /// The typed settings.
    pub fn config(&self) -> Result<crate::webhooks::Config, WebhookArgsError> {
        let err = |flag: &'static str| move |message: String| WebhookArgsError { flag, message };
        let mut deny = Vec::new();
        for entry in self.webhooks_deny_addr.iter().map(|e| e.trim()) {
            // Resolved once, at start: a platform listener's address does not move.
            let addrs = entry
                .to_socket_addrs()
                .map_err(|e| err("--webhooks-deny-addr")(format!("`{entry}`: {e}")))?;
            deny.extend(addrs);
        }
        Ok(crate::webhooks::Config {
            allow_insecure: self.webhooks_allow_insecure,
            deny,
            schedule: crate::webhooks::parse_schedule(&self.webhooks_retry_schedule)
                .map_err(err("--webhooks-retry-schedule"))?,
            max_attempts: self.webhooks_max_attempts.max(1),
            timeout: crate::webhooks::parse_duration(&self.webhooks_timeout)
                .map_err(err("--webhooks-timeout"))?,
            poll: crate::webhooks::parse_duration(&self.webhooks_poll)
                .map_err(err("--webhooks-poll"))?,
            batch: 16,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["sealpod-api-server"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("flags").serve
    }

    #[test]
    fn webhook_destinations_exclude_the_platform_listeners() {
        let args = parse(&[
            "--listen=127.0.0.1:7001",
            "--runtime-listen=127.0.0.2:7002",
            "--admin-listen=127.0.0.1:7003",
            "--webhooks-deny-addr=127.0.0.1:6443",
            "--webhooks-deny-addr",
            "[::1]:6444,localhost:6445",
        ]);
        let deny = args.webhook_config().expect("config").deny;
        for want in [
            "127.0.0.1:7001",
            "127.0.0.2:7002",
            "127.0.0.1:7003",
            "127.0.0.1:6443",
            "[::1]:6444",
            "127.0.0.1:6445",
        ] {
            let want: SocketAddr = want.parse().expect("addr");
            assert!(deny.contains(&want), "{want} in {deny:?}");
        }
        let defaults = ServeArgs::default().webhook_config().expect("config").deny;
        assert_eq!(defaults.len(), 3);
        let bad = parse(&["--webhooks-deny-addr=no-port"]);
        let e = bad.webhook_config().expect_err("no port");
        assert!(e.to_string().starts_with("--webhooks-deny-addr"), "{e}");
    }
}
