//! SQLite specifics: WAL with `synchronous=FULL` (a commit is on disk before it is acknowledged),
//! a busy timeout, and the embedded migrations. Queries are shared with PostgreSQL in `store`.

use sqlx::AnyPool;
use sqlx::Executor as _;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use super::{StoreResult, db};

/// The SQLite migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating if missing) the database file.
pub(crate) async fn connect(url: &str) -> StoreResult<AnyPool> {
    let url = if url.contains('?') {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    };
    AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode=WAL").await?;
                conn.execute("PRAGMA synchronous=FULL").await?;
                conn.execute("PRAGMA busy_timeout=10000").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(db("connect sqlite"))
}
