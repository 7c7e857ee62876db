//! `sealpod-runtime`: reads its configuration from the environment (see `README.md`), then
//! hands over to [`sealpod_runtime::run`].

use std::process::ExitCode;
use std::time::Duration;

/// How often a runtime waiting to be claimed looks for its session's files: two small reads,
/// so a claim is seen within this time.
const CLAIM_POLL: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(sealpod_util::log::filter(
            sealpod_util::log::LOG_ENV,
            "info",
        ))
        .with_writer(std::io::stderr)
        .init();
    let env = |name: &str| std::env::var(name).ok();
    if sealpod_runtime::config::awaits_claim(&env) {
        tracing::info!("no session yet (a warm pool pod): waiting to be claimed");
        while sealpod_runtime::config::awaits_claim(&env) {
            std::thread::sleep(CLAIM_POLL);
        }
    }
    let config = match sealpod_runtime::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sealpod-runtime: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealpod-runtime: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sealpod_runtime::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealpod-runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
