//! The API server's store (sqlx `Any`): the event log, the conversational state of sessions,
//! turns, idempotency keys and token revocations. SQLite by default (one replica, a file),
//! PostgreSQL with `--database-url postgres://…` (several replicas; SSE wake-ups by
//! LISTEN/NOTIFY). Both run the same queries (`$N` parameters work on both).
//!
//! Every write is one transaction; `seq` is assigned under the session row's lock (the first
//! statement of every write updates that row), so it is gap-free per session, and an append is
//! published to the SSE hub only after its commit: an acknowledged event is durable. This module
//! must never publish an uncommitted event nor hand out a seq outside a locked session row.

mod console_sessions;
mod deployments;
mod events;
pub mod hub;
mod incarnations;
pub mod large_body;
pub mod outbox;
pub mod postgres;
mod row_cache;
mod schedule_names;
mod schedules;
mod sessions;
pub mod sqlite;
mod tokens;
mod turns;

use std::sync::Arc;

use sealpod_resources::session::Phase;
use sqlx::AnyPool;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use hub::Hub;
use row_cache::RowCache;

pub use console_sessions::ConsoleSessionRow;
pub use deployments::{Begun, DeploymentRow, NewDeployment, Outcome as DeploymentOutcome};
pub use events::{Draft, EventFilter, StoredEvent};
pub(crate) use events::{level_code, level_column};
pub use incarnations::retired_id;
pub use schedule_names::{NameScope, STALE_AFTER_SECONDS};
pub use schedules::{FireState, Outcome, RunRow};
pub use sessions::{
    AdoptedSession, CreateOutcome, IdemKey, ListSessions, NewSession, SessionRow, SteerOutcome,
};
pub use tokens::TokenStanding;
pub use turns::{AppendError, TurnRow};

/// A store failure (detail is logged, never returned to clients).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A database call failed.
    #[error("database {op}: {source}")]
    Db {
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON column does not parse.
    #[error("stored {what} does not parse: {source}")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A stored column is missing or not of the type the schema gives it.
    #[error("stored column {column} does not decode: {source}")]
    Column {
        /// The column.
        column: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value outside its column's domain (an unknown level code or phase).
    #[error("stored {column} has an unknown value {value}")]
    Unknown {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// The database URL names no supported backend.
    #[error("unsupported database url (use sqlite://… or postgres://…)")]
    UnsupportedUrl,
}

impl StoreError {
    /// Whether the database could not be reached (a lost or refused connection, a pool with none
    /// free or closed): a retry may succeed. (A connection lost during a commit leaves it
    /// undecided; the writes a client retries are idempotent.)
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Db {
                source: sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed,
                ..
            }
        )
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Db { op, source }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { what, source })
}

/// The JSON text a nullable column stores for a value (`None`, SQL NULL, for JSON `null`).
pub(crate) fn json_text<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> StoreResult<Option<String>> {
    let value =
        serde_json::to_value(value).map_err(|source| StoreError::Corrupt { what, source })?;
    Ok((!value.is_null()).then(|| value.to_string()))
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file; one writer at a time (serialized in process).
    Sqlite,
    /// Several replicas; row locks serialize writers of a session.
    Postgres,
}

/// The store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer: taking this lock first turns "database is locked" into a queue.
    write_lock: tokio::sync::Mutex<()>,
    hub: Arc<Hub>,
    url: String,
    /// Bodies over this many bytes of JSON are truncated inline and stored whole beside.
    event_body_limit: usize,
    /// Session rows as last read (SQLite only: this process is its one writer).
    rows: Option<RowCache>,
}

/// A write transaction (holding the SQLite writer lock when on SQLite).
pub(crate) struct WriteTx<'a> {
    pub(crate) tx: Transaction<'static, Any>,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
    /// The cache of session rows, told at commit which rows this transaction wrote.
    rows: Option<&'a RowCache>,
    /// Ids of the session rows written.
    touched: Vec<String>,
}

impl WriteTx<'_> {
    /// Records that this transaction writes the session row `id` (every statement that inserts,
    /// updates or deletes a session row calls this).
    pub(crate) fn touch(&mut self, id: &str) {
        if self.rows.is_some() && !self.touched.iter().any(|t| t == id) {
            self.touched.push(id.to_owned());
        }
    }

    pub(crate) async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await.map_err(db("commit"))?;
        if let Some(rows) = self.rows
            && !self.touched.is_empty()
        {
            rows.forget(self.touched.iter().map(String::as_str));
        }
        Ok(())
    }
}

impl Store {
    /// Connects, runs the embedded migrations and returns the store. `url` is `sqlite://PATH`
    /// (created if missing) or `postgres://…`.
    pub async fn connect(url: &str, hub: Arc<Hub>) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let (pool, backend) = if url.starts_with("sqlite:") {
            (sqlite::connect(url).await?, Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (postgres::connect(url).await?, Backend::Postgres)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        match backend {
            Backend::Sqlite => sqlite::MIGRATOR.run(&pool).await?,
            Backend::Postgres => postgres::MIGRATOR.run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            write_lock: tokio::sync::Mutex::new(()),
            hub,
            url: url.to_owned(),
            event_body_limit: large_body::DEFAULT_EVENT_BODY_LIMIT,
            rows: match backend {
                Backend::Sqlite => Some(RowCache::default()),
                Backend::Postgres => None,
            },
        })
    }

    /// The store with another event body limit (bytes of a body's JSON; at least
    /// [`large_body::MIN_EVENT_BODY_LIMIT`]).
    pub fn with_event_body_limit(mut self, limit: usize) -> Store {
        self.event_body_limit = limit.max(large_body::MIN_EVENT_BODY_LIMIT);
        self
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the store was opened with (for the PostgreSQL listener).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The SSE hub appends are published to.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn begin(&self) -> StoreResult<WriteTx<'_>> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        };
        let tx = self.pool.begin().await.map_err(db("begin"))?;
        Ok(WriteTx {
            tx,
            _guard: guard,
            rows: self.rows.as_ref(),
            touched: Vec::new(),
        })
    }

    /// Tells other replicas (PostgreSQL) that a session's log or control state changed; the
    /// notification is delivered at commit.
    pub(crate) async fn notify(
        &self,
        tx: &mut Transaction<'static, Any>,
        session: &str,
        what: &str,
    ) -> StoreResult<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify('sealpod_events', $1)")
                .bind(format!("{session}:{what}"))
                .execute(&mut **tx)
                .await
                .map_err(db("notify"))?;
        }
        Ok(())
    }
}

/// One column of a row, as the schema types it (`String`, `i64`, or `Option` of either where the
/// column is nullable). A missing column or one of another type is an error, never a default.
pub(crate) fn column<T>(row: &AnyRow, column: &'static str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column)
        .map_err(|source| StoreError::Column { column, source })
}

/// A 0/1 integer column.
pub(crate) fn flag(row: &AnyRow, name: &'static str) -> StoreResult<bool> {
    Ok(column::<i64>(row, name)? != 0)
}

/// A session phase column (its wire name).
pub(crate) fn phase_column(row: &AnyRow, name: &'static str) -> StoreResult<Phase> {
    let value: String = column(row, name)?;
    Phase::from_wire(&value).ok_or(StoreError::Unknown {
        column: name,
        value,
    })
}

/// A nullable column of JSON text decoded as `T`; NULL reads as JSON `null` (so `None` for an
/// `Option`, and an error for a type that cannot be null).
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    name: &'static str,
) -> StoreResult<T> {
    parse_json(
        name,
        column::<Option<String>>(row, name)?
            .as_deref()
            .unwrap_or("null"),
    )
}

/// Now as RFC 3339 with milliseconds (UTC).
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}
