//! `sealpod-sidecar`: parses configuration and hands over to [`sealpod_sidecar::run`].

fn main() -> anyhow::Result<()> {
    sealpod_sidecar::run()
}
