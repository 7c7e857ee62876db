//! `sealpod-api-server`: parses configuration, sets up JSON logs and hands over to the library
//! (`serve`, or `api-key create`).

use clap::Parser as _;
use sealpod_api_server::config::{ApiKeyCommand, Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let serve = match cli.command {
        Some(Command::ApiKey(ApiKeyCommand::Create {
            namespace,
            kubeconfig,
        })) => {
            let key = sealpod_api_server::create_api_key(kubeconfig.as_deref(), &namespace)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            // The one place an org key is shown: printed once, never stored in plaintext.
            println!("{}", key.expose());
            return Ok(());
        }
        Some(Command::Serve(args)) => *args,
        None => cli.serve,
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(sealpod_util::log::parse(
            "--log/SEALPOD_LOG",
            &serve.log,
            "info",
        ))
        .with_current_span(false)
        .init();
    sealpod_api_server::serve(serve)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
