//! The operator's operation for the instruction-count gate (`scripts/instructions`, run under
//! `valgrind --tool=callgrind`): the first reconcile of a new Session (finalizer, Secrets, Pod,
//! status), by the operator's own reconcile function, one after another on one thread, against an
//! in-process devcluster (whose side of each API call is counted too). Not a test: every run
//! creates the same `--sessions` Sessions, then reconciles `--count` of them, so that the
//! difference of two runs' counts divided by the difference of their `--count`s is one reconcile.
//!
//! ```text
//! cargo build --workspace --example reconcile_instructions
//! target/debug/examples/reconcile_instructions --sessions 60 --count 10
//! ```

mod common;

use std::sync::Arc;

use kube::Api;
use sealpod_operator::controller::session;
use sealpod_resources::Session;

#[derive(Debug, clap::Parser)]
struct Args {
    /// Sessions created before any reconcile (the same in every run).
    #[arg(long, default_value_t = 60)]
    sessions: usize,
    /// Sessions reconciled.
    #[arg(long, default_value_t = 10)]
    count: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { sessions, count } = clap::Parser::parse();
    anyhow::ensure!(count <= sessions, "--count must not exceed --sessions");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cluster = common::cluster().await?;
        let client = cluster.client();
        common::populate(&client, sessions).await?;
        let ctx = common::context(&client).await?;
        let api: Api<Session> = Api::namespaced(client, common::NS);
        let mut list = api.list(&Default::default()).await?.items;
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for object in list.into_iter().take(count) {
            session::reconcile(Arc::new(object), ctx.clone()).await?;
        }
        cluster.shutdown().await;
        anyhow::Ok(())
    })
}
