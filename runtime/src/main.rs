//! `sealpod-runtime`: parses configuration and hands over to [`sealpod_runtime::run`].

fn main() -> anyhow::Result<()> {
    sealpod_runtime::run()
}
