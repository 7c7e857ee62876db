//! `sealpod`: the local-mode command line. `sealpod up` brings the platform up on this machine.

use clap::Parser;
use sealpod::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("SEALPOD_UP_LOG")
                        .unwrap_or_else(|_| "warn,sealpod=info,sealpod_node=info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            sealpod::up::run(args).await
        }
    }
}
