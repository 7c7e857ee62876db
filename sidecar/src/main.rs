//! `sealpod-sidecar`: parses flags, sets up logging, hands over to [`sealpod_sidecar::cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sealpod_sidecar::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(sealpod_util::log::filter(
            sealpod_util::log::LOG_ENV,
            "info",
        ))
        .with_writer(std::io::stderr)
        .json()
        .init();
    sealpod_sidecar::cli::run(cli)
}
