//! PostgreSQL specifics: the pool, the embedded migrations and the LISTEN side of the SSE
//! wake-ups (the NOTIFY is sent inside each write transaction by `Store::notify`). Queries are
//! shared with SQLite in `store`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgListener;

use super::{Store, StoreResult, db};

/// The PostgreSQL migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects the pool.
pub(crate) async fn connect(url: &str) -> StoreResult<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await
        .map_err(db("connect postgres"))
}

/// Listens for other replicas' appends and control changes and wakes the local hub. Runs until
/// the process ends; reconnects after errors (a missed wake-up is repaired by the next one, and
/// the streams' periodic checks).
pub async fn listen(store: Arc<Store>) {
    loop {
        match PgListener::connect(store.url()).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen("sealpod_events").await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    loop {
                        match listener.recv().await {
                            Ok(note) => {
                                if let Some((session, what)) = note.payload().rsplit_once(':') {
                                    store.remote_change(session, what).await;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "LISTEN connection lost");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the PostgreSQL listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
