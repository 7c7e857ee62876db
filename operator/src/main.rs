//! `sealpod-operator`: parses configuration, initialises logging and hands over to
//! [`sealpod_operator::start`].

use clap::Parser;
use sealpod_operator::{Config, runner};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(sealpod_util::log::filter(
            sealpod_util::log::LOG_ENV,
            "info,kube=warn",
        ))
        .json()
        .init();
    // Fail fast on flags that cannot work (and read the files they name), before touching the
    // cluster.
    let settings = config.settings()?;
    let client = kube::Client::try_default().await?;
    if config.renew_sealing_key {
        runner::renew_sealing_key(client, &config).await?;
        return Ok(());
    }
    let running = runner::start_with(client, config, settings).await?;
    sealpod_util::shutdown::signal().await;
    running.stop().await?;
    Ok(())
}
