//! `sealpod`: the local-mode command line. `sealpod up` brings the platform up on this machine.

use clap::Parser;
use sealpod::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(sealpod_util::log::filter(
                    "SEALPOD_UP_LOG",
                    "warn,sealpod=info,sealpod_node=info",
                ))
                .with_writer(std::io::stderr)
                .init();
            sealpod::up::run(args).await
        }
    }
}
