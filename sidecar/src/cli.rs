//! Command-line interface of `sealpod-sidecar`: `proxy`, `ready` (waits until a proxy serves),
//! `lock` (and `lock --verify`), plus the hidden `lock-probe` that `lock --verify` runs under the
//! sandbox UID.
//!
//! Every flag has an `SEALPOD_…` environment variable. Exit codes are part of the contract with
//! the operator (see `sidecar/README.md`); this module must never print a secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::{admin, config, lock, resolve, running};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure (cannot bind, cannot mint the CA, `nft` failed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the configuration is invalid (nothing was bound).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: `lock --verify` found egress not locked.
pub const EXIT_NOT_LOCKED: u8 = 3;

/// sealpod sidecar: egress proxy with sealed-token swap, and the egress lock.
#[derive(Debug, Parser)]
#[command(name = "sealpod-sidecar", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the egress proxy (native sidecar).
    Proxy(ProxyArgs),
    /// Wait until the proxy serves (its admin `GET /ready` answers 200): exit 0 then, 1 when the
    /// wait runs out. The proxy container's `postStart` hook, so the next container starts the
    /// moment the proxy is ready, not at a probe's next period.
    Ready(ReadyArgs),
    /// Program the egress lock in this network namespace (init container, needs NET_ADMIN), or
    /// verify it with `--verify`.
    Lock(LockArgs),
    /// Internal: the probe `lock --verify` runs under the sandbox UID.
    #[command(hide = true)]
    LockProbe(ProbeArgs),
}

/// Flags of `proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The proxy configuration file (YAML).
    #[arg(long, env = "SEALPOD_SIDECAR_CONFIG")]
    pub config: PathBuf,
    /// Where to write the CA certificate clients must trust; overrides the configuration's
    /// `ca_cert_out` (useful when the configuration is mounted read-only away from that
    /// directory).
    #[arg(long, env = "SEALPOD_SIDECAR_CA_CERT_OUT")]
    pub ca_cert_out: Option<PathBuf>,
    /// Validate the configuration and exit (0 when valid, 2 otherwise) without binding.
    #[arg(long, env = "SEALPOD_SIDECAR_CHECK_CONFIG")]
    pub check_config: bool,
    /// Runtime worker threads (default: one per available CPU). Match the container's CPU limit.
    #[arg(long, env = "SEALPOD_SIDECAR_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
}

/// Flags of `ready`.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// The proxy's admin address.
    #[arg(long, env = "SEALPOD_SIDECAR_ADMIN", default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// How long to wait, in seconds.
    #[arg(long, env = "SEALPOD_SIDECAR_READY_WAIT_SECONDS", default_value_t = 60)]
    pub wait_seconds: u64,
}

/// Flags of `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// UID the proxy runs as: its traffic is not restricted.
    #[arg(long, env = "SEALPOD_LOCK_PROXY_UID")]
    pub proxy_uid: u32,
    /// The proxy's listen port on loopback: the only destination other UIDs may reach.
    #[arg(long, env = "SEALPOD_LOCK_PROXY_PORT")]
    pub proxy_port: u16,
    /// Verify instead of programming: exit 0 when the lock is in place and effective, 3 otherwise.
    #[arg(long, env = "SEALPOD_LOCK_VERIFY")]
    pub verify: bool,
    /// With `--verify`: UID (and GID) the probes run as (the sandbox's).
    #[arg(long, env = "SEALPOD_LOCK_SANDBOX_UID", default_value_t = 65534)]
    pub sandbox_uid: u32,
    /// With `--verify`: an extra `ip:port` that direct TCP must not reach (repeatable).
    #[arg(
        long = "probe-tcp",
        env = "SEALPOD_LOCK_PROBE_TCP",
        value_delimiter = ','
    )]
    pub probe_tcp: Vec<SocketAddr>,
    /// With `--verify`: an extra `ip:port` that direct UDP must not reach (repeatable).
    #[arg(
        long = "probe-udp",
        env = "SEALPOD_LOCK_PROBE_UDP",
        value_delimiter = ','
    )]
    pub probe_udp: Vec<SocketAddr>,
}

/// Flags of the internal probe.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Must accept a TCP connection.
    #[arg(long)]
    pub open: Vec<SocketAddr>,
    /// Must refuse TCP.
    #[arg(long)]
    pub closed_tcp: Vec<SocketAddr>,
    /// Must not answer UDP.
    #[arg(long)]
    pub closed_udp: Vec<SocketAddr>,
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    ExitCode::from(match cli.command {
        Cmd::Proxy(args) => run_proxy(&args),
        Cmd::Ready(args) => {
            if admin::wait_ready(args.admin, Duration::from_secs(args.wait_seconds)) {
                EXIT_OK
            } else {
                eprintln!(
                    "sealpod-sidecar: the proxy at {} was not ready within {} s",
                    args.admin, args.wait_seconds
                );
                EXIT_FAILURE
            }
        }
        Cmd::Lock(args) => run_lock(&args),
        Cmd::LockProbe(args) => {
            let failures = lock::probe(&args.open, &args.closed_tcp, &args.closed_udp);
            for f in &failures {
                println!("{f}");
            }
            if failures.is_empty() {
                EXIT_OK
            } else {
                EXIT_NOT_LOCKED
            }
        }
    })
}

fn run_proxy(args: &ProxyArgs) -> u8 {
    let mut config = match config::load(&args.config) {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            eprintln!("sealpod-sidecar: {error}");
            return EXIT_CONFIG;
        }
    };
    if let Some(out) = &args.ca_cert_out {
        config.ca_cert_out.clone_from(out);
    }
    if args.check_config {
        return EXIT_OK;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.worker_threads {
        runtime.worker_threads(usize::from(workers));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async {
        let net = Arc::new(resolve::SystemNet::new(config.resolve.clone()));
        let running = match running::start(&config, net).await {
            Ok(r) => r,
            Err(error) => {
                tracing::error!(%error, "cannot start the proxy");
                eprintln!("sealpod-sidecar: {error}");
                return EXIT_FAILURE;
            }
        };
        tokio::select! {
            _ = running.wait() => EXIT_FAILURE,
            _ = shutdown() => EXIT_OK,
        }
    })
}

async fn shutdown() {
    sealpod_util::shutdown::signal().await;
    tracing::info!("shutting down");
}

fn run_lock(args: &LockArgs) -> u8 {
    if args.verify {
        let plan = lock::VerifyPlan {
            proxy_uid: args.proxy_uid,
            proxy_port: args.proxy_port,
            sandbox_uid: args.sandbox_uid,
            tcp: args.probe_tcp.clone(),
            udp: args.probe_udp.clone(),
        };
        return match lock::verify(&plan) {
            Ok(()) => {
                println!("egress locked");
                EXIT_OK
            }
            Err(lock::LockError::NotLocked(why)) => {
                println!("egress not locked: {why}");
                EXIT_NOT_LOCKED
            }
            Err(error) => {
                eprintln!("sealpod-sidecar: {error}");
                EXIT_FAILURE
            }
        };
    }
    match lock::apply(args.proxy_uid, args.proxy_port) {
        Ok(()) => {
            println!(
                "egress lock applied (proxy uid {}, port {})",
                args.proxy_uid, args.proxy_port
            );
            EXIT_OK
        }
        Err(error) => {
            eprintln!("sealpod-sidecar: {error}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "sealpod-sidecar",
            "lock",
            "--proxy-uid",
            "1337",
            "--proxy-port",
            "3128",
            "--verify",
        ])
        .expect("parse");
        assert!(matches!(
            cli.command,
            Cmd::Lock(LockArgs {
                verify: true,
                proxy_uid: 1337,
                ..
            })
        ));
    }
}
