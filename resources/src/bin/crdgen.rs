//! `crdgen [DIR]`: writes the CRDs generated from the types to `crds/` (or to DIR).

use std::path::PathBuf;

use clap::Parser;

/// Writes sealpod's CustomResourceDefinitions, generated from the Rust types, as YAML files.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Directory to write `agents.yaml`, `agentrevisions.yaml`, `credentials.yaml`,
    /// `sessions.yaml` and `schedules.yaml` into (created if missing). Default: `crds/` of this
    /// checkout.
    #[arg(value_name = "DIR")]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = cli
        .out
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds"));
    std::fs::create_dir_all(&dir)?;
    for (file, crd) in sealpod_resources::crds::all() {
        let path = dir.join(file);
        std::fs::write(&path, sealpod_resources::crds::to_yaml(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
