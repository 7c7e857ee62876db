//! The `sealpod-controlplane` binary: `sealpod-controlplane serve` runs the real control plane
//! (etcd, kube-apiserver, kube-controller-manager) until interrupted, as `devcluster serve` runs
//! devcluster, so scripts can drive either with the same steps.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sealpod_controlplane::{Config, ControlPlane, find_programs};

/// A real Kubernetes control plane on loopback, built from upstream modules by `scripts/setup`.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGINT/SIGTERM; prints `listening on URL` once the API server is ready and
    /// the controller manager has made the `default` service account.
    Serve(Serve),
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Directory of its state (PKI, etcd data, logs); a second start on it resumes the cluster.
    #[arg(long, env = "SEALPOD_CONTROLPLANE_DIR")]
    dir: PathBuf,
    /// The API server's port on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "SEALPOD_CONTROLPLANE_PORT", default_value_t = 0)]
    port: u16,
    /// Write an admin (`system:masters`) kubeconfig here (mode 0600).
    #[arg(long, env = "SEALPOD_CONTROLPLANE_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Directory of `etcd`, `kube-apiserver` and `kube-controller-manager`. Default: `.tools/bin`
    /// of the checkout this program was built from, then `PATH`.
    #[arg(long, env = "SEALPOD_CONTROLPLANE_BIN_DIR")]
    bin_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    let programs = find_programs(args.bin_dir.as_deref())?;
    let mut plane = ControlPlane::start(Config {
        dir: args.dir.clone(),
        programs,
        api_port: args.port,
    })
    .await
    .context("starting the control plane")?;
    if let Some(path) = &args.kubeconfig_out {
        plane
            .write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("listening on {}", plane.url());
    std::io::stdout().flush()?;
    let exited = wait_for_stop(&mut plane).await;
    plane.shutdown().await;
    match exited {
        Some((name, status)) => anyhow::bail!("{name} exited by itself ({status})"),
        None => Ok(()),
    }
}

/// Waits for SIGINT or SIGTERM (None) or for a program to exit by itself (its name and status).
async fn wait_for_stop(plane: &mut ControlPlane) -> Option<(String, String)> {
    let stop = sealpod_util::shutdown::signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            () = &mut stop => return None,
            _ = tick.tick() => {
                if let Some(exited) = plane.exited() {
                    return Some(exited);
                }
            }
        }
    }
}
