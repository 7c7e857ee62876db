//! `sealpod-operator`: parses configuration and hands over to [`sealpod_operator::run`].

fn main() -> anyhow::Result<()> {
    sealpod_operator::run()
}
