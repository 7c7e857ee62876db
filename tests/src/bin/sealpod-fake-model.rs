//! `sealpod-fake-model`: serves the fake model APIs of `sealpod_tests::fake_model` (Anthropic's
//! Messages API and OpenAI's Responses API) until interrupted. Prints `listening on URL` once ready.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use sealpod_resources::secret::Secret;
use sealpod_tests::fake_model::scenario::ScenarioDefaults;
use sealpod_tests::fake_model::{FakeModel, FakeModelConfig, ScenarioFile, TlsSettings};

/// A fake of the Anthropic Messages API and the OpenAI Responses API for tests.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SEALPOD_FAKE_MODEL_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// File holding the only accepted API key (surrounding whitespace is ignored).
    #[arg(long, env = "SEALPOD_FAKE_MODEL_KEY_FILE")]
    api_key_file: PathBuf,
    /// Serve plain HTTP instead of TLS.
    #[arg(long, env = "SEALPOD_FAKE_MODEL_PLAIN")]
    plain: bool,
    /// Host names the self-signed certificate is valid for (repeatable).
    #[arg(long = "host-name", env = "SEALPOD_FAKE_MODEL_HOST_NAMES", value_delimiter = ',', default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
    host_names: Vec<String>,
    /// Where to write the certificate PEM for clients to trust.
    #[arg(long, env = "SEALPOD_FAKE_MODEL_CERT_OUT")]
    cert_out: Option<PathBuf>,
    /// JSON scenario settings: `{"default_scenario", "retry_after_secs", "chunk_chars"}`.
    #[arg(long, env = "SEALPOD_FAKE_MODEL_SCENARIO_FILE")]
    scenario_file: Option<PathBuf>,
    /// Write the bound address (`IP:PORT`) to this file once listening.
    #[arg(long, env = "SEALPOD_FAKE_MODEL_ADDR_FILE")]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let key = std::fs::read_to_string(&args.api_key_file)
        .with_context(|| format!("reading {}", args.api_key_file.display()))?;
    let mut scenarios = ScenarioDefaults::default();
    if let Some(path) = &args.scenario_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ScenarioFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        file.apply(&mut scenarios);
    }
    let config = FakeModelConfig {
        listen: args.listen,
        tls: (!args.plain).then(|| TlsSettings {
            host_names: args.host_names.clone(),
            cert_out: args.cert_out.clone(),
        }),
        api_key: Secret::new(key.trim()),
        scenarios,
    };
    let model = FakeModel::start(config).await?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, model.addr().to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("listening on {}", model.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
