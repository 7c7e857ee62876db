//! `crdgen`: writes the CRDs generated from the types to `crds/` (or the directory given as the
//! first argument).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds"));
    std::fs::create_dir_all(&dir)?;
    for (file, crd) in sealpod_resources::crds::all() {
        let path = dir.join(file);
        std::fs::write(&path, sealpod_resources::crds::to_yaml(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
