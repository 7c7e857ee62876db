//! `sealpod-api-server`: parses configuration and hands over to [`sealpod_api_server::run`].

fn main() -> anyhow::Result<()> {
    sealpod_api_server::run()
}
