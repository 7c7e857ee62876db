//! `sealpod`: the local-mode command line. `sealpod up` brings the platform up on this machine;
//! `sealpod pod-runner` is the pod runner it starts.

use clap::Parser;
use sealpod::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(sealpod_util::log::filter(
            "SEALPOD_UP_LOG",
            "warn,sealpod=info,sealpod_node=info",
        ))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Up(args) => sealpod::up::run(args).await,
        Command::PodRunner(args) => sealpod::pod_runner::run(args).await,
    }
}
