//! The `devcluster` binary: `devcluster serve` runs a cluster until interrupted.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A Kubernetes-API-compatible server on loopback for local mode and tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until SIGINT/SIGTERM; prints `listening on URL` once ready.
    Serve(Serve),
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SEALPOD_DEVCLUSTER_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for the admin user (and one context per other user) here.
    #[arg(long, env = "SEALPOD_DEVCLUSTER_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Persist all objects to this file (mode 0600) and load it at start.
    #[arg(long, env = "SEALPOD_DEVCLUSTER_STATE")]
    state: Option<PathBuf>,
    /// Encrypt Secrets in the state file with the AES-256-GCM key in this file (base64 of 32
    /// bytes; created, mode 0600, when missing).
    #[arg(long, env = "SEALPOD_DEVCLUSTER_STATE_KEY_FILE", requires = "state")]
    state_key_file: Option<PathBuf>,
    /// Serve HTTPS with a generated CA (written into the kubeconfig). On by default: kubectl
    /// sends no bearer token over plain HTTP. `--tls=false` serves plain HTTP, which only clients
    /// that send tokens anyway (kube-rs) can use.
    #[arg(
        long,
        env = "SEALPOD_DEVCLUSTER_TLS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    tls: bool,
    /// Static token file: `token,user[,uid[,"groups"]]` per line. Without it, one admin token
    /// is generated and only written into the kubeconfig.
    #[arg(long, env = "SEALPOD_DEVCLUSTER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The user of the kubeconfig's current context.
    #[arg(long, env = "SEALPOD_DEVCLUSTER_ADMIN_USER", default_value = "admin")]
    admin_user: String,
    /// How many change events of each resource kind watches can resume from (older
    /// resourceVersions get 410 Gone).
    #[arg(
        long,
        env = "SEALPOD_DEVCLUSTER_WATCH_LOG_EVENTS",
        default_value_t = 10_000
    )]
    watch_log_events: usize,
    /// How many seconds a change event stays resumable at most (older resourceVersions get
    /// 410 Gone, as after the API server's periodic etcd compaction).
    #[arg(
        long,
        env = "SEALPOD_DEVCLUSTER_WATCH_LOG_SECONDS",
        default_value_t = 300
    )]
    watch_log_seconds: u64,
    /// Seconds between watch bookmarks.
    #[arg(long, env = "SEALPOD_DEVCLUSTER_BOOKMARK_SECONDS", default_value_t = 5)]
    bookmark_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(sealpod_util::log::filter(
            sealpod_util::log::LOG_ENV,
            "info",
        ))
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve(args) = Cli::parse().command;
    let tokens = match &args.token_file {
        Some(p) => devcluster::read_token_file(p)?,
        None => vec![],
    };
    let config = devcluster::Config {
        listen: args.listen,
        tls: args.tls,
        state_file: args.state.clone(),
        state_key_file: args.state_key_file.clone(),
        tokens,
        admin_user: args.admin_user.clone(),
        bookmark_interval: std::time::Duration::from_secs(args.bookmark_seconds.max(1)),
        watch_log_capacity: args.watch_log_events,
        watch_log_max_age: std::time::Duration::from_secs(args.watch_log_seconds),
    };
    let cluster = devcluster::DevCluster::start(config).await?;
    if let Some(path) = &args.kubeconfig_out {
        cluster
            .write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("listening on {}", cluster.base_url());
    std::io::stdout().flush()?;
    sealpod_util::shutdown::signal().await;
    cluster.shutdown().await;
    Ok(())
}
