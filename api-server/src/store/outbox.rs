//! The webhook tables: destinations, and deliveries as a durable outbox. Deliveries are created
//! in the event append transaction ([`enqueue_in`]); the worker claims due rows with a lease
//! ([`Store::claim_deliveries`], `FOR UPDATE SKIP LOCKED` on PostgreSQL) and settles them only
//! while its lease holds. Times that schedule work are Unix milliseconds. The secret column is
//! read only by the worker; no function here returns it to a route.

use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::runtime_api::Level;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::wire::DeliveryStatus;

use super::{
    Backend, Store, StoreResult, StoredEvent, column, db, flag, json_column, json_text, level_code,
    level_column, now_rfc3339,
};

/// True when an event passes a destination's level threshold and type allow-list.
pub fn passes(threshold: Level, types: Option<&[String]>, level: Level, type_: &str) -> bool {
    if !level.passes(threshold) {
        return false;
    }
    match types {
        None => true,
        Some(list) => list.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => type_.starts_with(prefix),
            None => type_ == p,
        }),
    }
}

/// A destination as given by a caller (validated by the route).
#[derive(Debug, Clone)]
pub struct NewDestination {
    /// Target URL.
    pub url: String,
    /// Signing secret.
    pub secret: Option<String>,
    /// Level threshold.
    pub level: Level,
    /// Type allow-list.
    pub types: Option<Vec<String>>,
    /// Keep `event.body.raw`.
    pub include_raw: bool,
    /// Delivering.
    pub enabled: bool,
}

/// A stored destination (its secret only as `has_secret`, except for the worker).
#[derive(Clone)]
pub struct Destination {
    /// `dst_…`
    pub id: String,
    /// `ses_…`
    pub session: String,
    /// Target URL.
    pub url: String,
    pub(crate) secret: Option<String>,
    /// Level threshold.
    pub level: Level,
    /// Type allow-list.
    pub types: Option<Vec<String>>,
    /// Keep `event.body.raw`.
    pub include_raw: bool,
    /// Delivering.
    pub enabled: bool,
    /// Only events after this seq.
    pub created_after_seq: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("session", &self.session)
            .field("has_secret", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Destination {
    fn accepts(&self, event: &StoredEvent) -> bool {
        self.enabled
            && event.seq > self.created_after_seq
            && passes(self.level, self.types.as_deref(), event.level, &event.type_)
    }
}

const DEST_COLUMNS: &str = "id, session, url, secret, level, types, include_raw, enabled, \
    created_after_seq, created_at, updated_at";

fn row_to_destination(row: &AnyRow) -> StoreResult<Destination> {
    Ok(Destination {
        id: column(row, "id")?,
        session: column(row, "session")?,
        url: column(row, "url")?,
        secret: column(row, "secret")?,
        level: level_column(row, "level")?,
        types: json_column(row, "types")?,
        include_raw: flag(row, "include_raw")?,
        enabled: flag(row, "enabled")?,
        created_after_seq: column(row, "created_after_seq")?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
    })
}

/// A delivery row.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `dlv_…`
    pub id: String,
    /// `ses_…`
    pub session: String,
    /// `dst_…`
    pub destination: String,
    /// `evt_…` (the `webhook-id`).
    pub event_id: String,
    /// The event's seq.
    pub event_seq: i64,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far (all budgets).
    pub attempts: i64,
    /// `attempts` when the current retry budget started (a redelivery starts a new one).
    pub budget_from: i64,
    /// The claim's lease (Unix ms).
    pub lease_until: i64,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// Last HTTP status.
    pub response_code: Option<i64>,
    /// Last failure.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

const DLV_COLUMNS: &str = "id, session, destination, event_id, event_seq, status, attempts, \
    budget_from, lease_until, last_attempt_at, response_code, error, created_at, updated_at";

fn row_to_delivery(row: &AnyRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: column(row, "id")?,
        session: column(row, "session")?,
        destination: column(row, "destination")?,
        event_id: column(row, "event_id")?,
        event_seq: column(row, "event_seq")?,
        status: status_column(row, "status")?,
        attempts: column(row, "attempts")?,
        budget_from: column(row, "budget_from")?,
        lease_until: column(row, "lease_until")?,
        last_attempt_at: column(row, "last_attempt_at")?,
        response_code: column(row, "response_code")?,
        error: column(row, "error")?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
    })
}

/// Now in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Inserts destinations of a session inside `tx` (session create: before the first event).
pub(crate) async fn insert_destinations_in(
    tx: &mut Transaction<'static, Any>,
    session: &str,
    after_seq: i64,
    destinations: &[NewDestination],
) -> StoreResult<Vec<String>> {
    let mut ids = Vec::with_capacity(destinations.len());
    let now = now_rfc3339();
    for d in destinations {
        let id = Id::generate(IdKind::Destination).to_string();
        sqlx::query(
            "INSERT INTO webhook_destinations (id, session, url, secret, level, types, \
             include_raw, enabled, created_after_seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(session)
        .bind(&d.url)
        .bind(d.secret.clone())
        .bind(level_code(d.level))
        .bind(json_text("destination types", &d.types)?)
        .bind(i64::from(d.include_raw))
        .bind(i64::from(d.enabled))
        .bind(after_seq)
        .bind(&now)
        .execute(&mut **tx)
        .await
        .map_err(db("insert destination"))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Enqueues the deliveries of freshly appended events inside their append transaction.
pub(crate) async fn enqueue_in(
    tx: &mut Transaction<'static, Any>,
    session: &str,
    events: &[StoredEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT {DEST_COLUMNS} FROM webhook_destinations WHERE session = $1 AND enabled = 1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(session)
        .fetch_all(&mut **tx)
        .await
        .map_err(db("read destinations"))?;
    if rows.is_empty() {
        return Ok(());
    }
    let dests = rows
        .iter()
        .map(row_to_destination)
        .collect::<StoreResult<Vec<_>>>()?;
    let now = now_rfc3339();
    let due = now_ms();
    for event in events {
        for d in dests.iter().filter(|d| d.accepts(event)) {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, session, destination, event_id, event_seq, \
                 status, attempts, budget_from, next_attempt, lease_until, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, 0, $6, 0, $7, $7)",
            )
            .bind(Id::generate(IdKind::Delivery).to_string())
            .bind(session)
            .bind(&d.id)
            .bind(&event.id)
            .bind(event.seq)
            .bind(due)
            .bind(&now)
            .execute(&mut **tx)
            .await
            .map_err(db("enqueue delivery"))?;
        }
    }
    Ok(())
}

/// A change to a destination (`None` = unchanged; `types: Some(None)` clears).
#[derive(Debug, Clone, Default)]
pub struct DestinationPatch {
    /// New URL.
    pub url: Option<String>,
    /// New secret.
    pub secret: Option<String>,
    /// New level.
    pub level: Option<Level>,
    /// New types (`Some(None)` clears).
    pub types: Option<Option<Vec<String>>>,
    /// New include_raw.
    pub include_raw: Option<bool>,
    /// New enabled.
    pub enabled: Option<bool>,
}

fn status_column(row: &AnyRow, name: &'static str) -> StoreResult<DeliveryStatus> {
    let value: String = column(row, name)?;
    DeliveryStatus::from_wire(&value).ok_or(super::StoreError::Unknown {
        column: name,
        value,
    })
}

/// Filters of a delivery page.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this destination's.
    pub destination: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// After this delivery id (the cursor).
    pub after: Option<String>,
}

/// What the worker settles an attempt with.
#[derive(Debug, Clone)]
pub struct Settle {
    /// New status.
    pub status: DeliveryStatus,
    /// Count an attempt.
    pub attempted: bool,
    /// Next attempt (Unix ms) when retrying.
    pub next_attempt: i64,
    /// HTTP status.
    pub response_code: Option<i64>,
    /// Failure.
    pub error: Option<String>,
}

impl Store {
    /// Adds a destination to a session of `namespace`; `None` when the session does not exist.
    /// `created_after_seq` is the head read under the session row lock, so no event can fall
    /// between it and the destination's first enqueue.
    pub async fn create_destination(
        &self,
        namespace: &str,
        session: &str,
        new: NewDestination,
    ) -> StoreResult<Option<Destination>> {
        let mut w = self.begin().await?;
        let Some(row) = self.lock_session(&mut w, namespace, session).await? else {
            return Ok(None);
        };
        let ids = insert_destinations_in(&mut w.tx, session, row.head, &[new]).await?;
        w.commit().await?;
        match ids.first() {
            Some(id) => self.get_destination(session, id).await,
            None => Ok(None),
        }
    }

    /// One destination of a session.
    pub async fn get_destination(
        &self,
        session: &str,
        id: &str,
    ) -> StoreResult<Option<Destination>> {
        let sql = format!(
            "SELECT {DEST_COLUMNS} FROM webhook_destinations WHERE id = $1 AND session = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(session)
            .fetch_optional(self.pool())
            .await
            .map_err(db("get destination"))?;
        row.as_ref().map(row_to_destination).transpose()
    }

    /// A session's destinations, oldest first.
    pub async fn list_destinations(&self, session: &str) -> StoreResult<Vec<Destination>> {
        let sql = format!(
            "SELECT {DEST_COLUMNS} FROM webhook_destinations WHERE session = $1 \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .fetch_all(self.pool())
            .await
            .map_err(db("list destinations"))?;
        rows.iter().map(row_to_destination).collect()
    }

    /// Applies a patch; `None` when the destination does not exist.
    pub async fn update_destination(
        &self,
        session: &str,
        id: &str,
        patch: DestinationPatch,
    ) -> StoreResult<Option<Destination>> {
        let Some(mut d) = self.get_destination(session, id).await? else {
            return Ok(None);
        };
        if let Some(u) = patch.url {
            d.url = u;
        }
        if let Some(s) = patch.secret {
            d.secret = Some(s);
        }
        if let Some(l) = patch.level {
            d.level = l;
        }
        if let Some(t) = patch.types {
            d.types = t;
        }
        if let Some(r) = patch.include_raw {
            d.include_raw = r;
        }
        if let Some(e) = patch.enabled {
            d.enabled = e;
        }
        let mut w = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_destinations SET url = $3, secret = $4, level = $5, types = $6, \
             include_raw = $7, enabled = $8, updated_at = $9 WHERE id = $1 AND session = $2",
        )
        .bind(id)
        .bind(session)
        .bind(&d.url)
        .bind(d.secret.clone())
        .bind(level_code(d.level))
        .bind(json_text("destination types", &d.types)?)
        .bind(i64::from(d.include_raw))
        .bind(i64::from(d.enabled))
        .bind(now_rfc3339())
        .execute(&mut *w.tx)
        .await
        .map_err(db("update destination"))?;
        w.commit().await?;
        self.get_destination(session, id).await
    }

    /// Deletes a destination (its deliveries stay readable; pending ones end as `dead_letter`
    /// when the worker finds the destination gone). False when it did not exist.
    pub async fn delete_destination(&self, session: &str, id: &str) -> StoreResult<bool> {
        let mut w = self.begin().await?;
        let done = sqlx::query("DELETE FROM webhook_destinations WHERE id = $1 AND session = $2")
            .bind(id)
            .bind(session)
            .execute(&mut *w.tx)
            .await
            .map_err(db("delete destination"))?;
        w.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// A page of a session's deliveries, oldest first.
    pub async fn list_deliveries(
        &self,
        session: &str,
        filter: &DeliveryFilter,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let mut sql = format!("SELECT {DLV_COLUMNS} FROM webhook_deliveries WHERE session = $1");
        let mut binds = vec![session.to_owned()];
        if let Some(d) = &filter.destination {
            binds.push(d.clone());
            sql.push_str(&format!(" AND destination = ${}", binds.len()));
        }
        if let Some(s) = filter.status {
            binds.push(s.as_str().to_owned());
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(a) = &filter.after {
            binds.push(a.clone());
            sql.push_str(&format!(
                " AND n > COALESCE((SELECT n FROM webhook_deliveries WHERE id = ${}), 0)",
                binds.len()
            ));
        }
        sql.push_str(&format!(" ORDER BY n LIMIT ${}", binds.len() + 1));
        // Only `$N` placeholders and fixed text are interpolated above; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db("list deliveries"))?;
        rows.iter().map(row_to_delivery).collect()
    }

    /// One delivery of a session.
    pub async fn get_delivery(&self, session: &str, id: &str) -> StoreResult<Option<Delivery>> {
        let sql =
            format!("SELECT {DLV_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND session = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(session)
            .fetch_optional(self.pool())
            .await
            .map_err(db("get delivery"))?;
        row.as_ref().map(row_to_delivery).transpose()
    }

    /// Makes a delivery due now with a fresh retry budget (any status). Its `webhook-id` (the
    /// event id) is unchanged. An in-flight attempt loses its lease and cannot settle it.
    pub async fn redeliver(&self, session: &str, id: &str) -> StoreResult<Option<Delivery>> {
        let mut w = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', budget_from = attempts, \
             next_attempt = $3, lease_until = 0, updated_at = $4 WHERE id = $1 AND session = $2",
        )
        .bind(id)
        .bind(session)
        .bind(now_ms())
        .bind(now_rfc3339())
        .execute(&mut *w.tx)
        .await
        .map_err(db("redeliver"))?;
        w.commit().await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_delivery(session, id).await
    }

    /// Claims up to `limit` due deliveries (pending or failed whose time came, or delivering
    /// whose lease expired) with a lease until `lease_until` (Unix ms).
    pub async fn claim_deliveries(
        &self,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'delivering', lease_until = $1, updated_at = $2 \
             WHERE id IN (SELECT id FROM webhook_deliveries WHERE \
             (status IN ('pending', 'failed') AND next_attempt <= $3) \
             OR (status = 'delivering' AND lease_until <= $3) \
             ORDER BY next_attempt, n LIMIT $4{lock}) RETURNING {DLV_COLUMNS}"
        );
        let mut w = self.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_until)
            .bind(now_rfc3339())
            .bind(now_ms())
            .bind(limit)
            .fetch_all(&mut *w.tx)
            .await
            .map_err(db("claim deliveries"))?;
        w.commit().await?;
        rows.iter().map(row_to_delivery).collect()
    }

    /// Settles a claimed delivery; false when the lease was lost (redelivered or re-claimed).
    pub async fn settle_delivery(&self, d: &Delivery, s: &Settle) -> StoreResult<bool> {
        let now = now_rfc3339();
        let mut w = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = attempts + $4, \
             next_attempt = $5, lease_until = 0, last_attempt_at = CASE WHEN $4 = 1 THEN $6 \
             ELSE last_attempt_at END, response_code = $7, error = $8, updated_at = $6 \
             WHERE id = $1 AND status = 'delivering' AND lease_until = $2",
        )
        .bind(&d.id)
        .bind(d.lease_until)
        .bind(s.status.as_str())
        .bind(i64::from(s.attempted))
        .bind(s.next_attempt)
        .bind(&now)
        .bind(s.response_code)
        .bind(s.error.clone())
        .execute(&mut *w.tx)
        .await
        .map_err(db("settle delivery"))?;
        w.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The session metadata and event JSON a delivery sends.
    pub(crate) async fn delivery_payload(
        &self,
        session: &str,
        seq: i64,
    ) -> StoreResult<Option<(Value, String)>> {
        let row = sqlx::query(
            "SELECT s.metadata AS metadata, e.data AS data FROM events e \
             JOIN sessions s ON s.id = e.session WHERE e.session = $1 AND e.seq = $2",
        )
        .bind(session)
        .bind(seq)
        .fetch_optional(self.pool())
        .await
        .map_err(db("delivery payload"))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            json_column(&row, "metadata")?,
            column(&row, "data")?,
        )))
    }

    /// Undelivered rows by status (the outbox depth gauge).
    pub async fn outbox_depth(&self) -> StoreResult<Vec<(DeliveryStatus, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM webhook_deliveries \
             WHERE status IN ('pending', 'delivering', 'failed') GROUP BY status",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db("outbox depth"))?;
        rows.iter()
            .map(|r| Ok((status_column(r, "status")?, column(r, "n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_then_types() {
        let types = vec!["turn.*".to_owned(), "agent.message".to_owned()];
        assert!(passes(Level::User, None, Level::User, "x"));
        assert!(!passes(Level::User, None, Level::Progress, "x"));
        assert!(passes(Level::Progress, None, Level::User, "x"));
        assert!(passes(
            Level::Internal,
            Some(&types),
            Level::Internal,
            "turn.started"
        ));
        assert!(passes(
            Level::User,
            Some(&types),
            Level::User,
            "agent.message"
        ));
        assert!(!passes(
            Level::User,
            Some(&types),
            Level::User,
            "agent.messages"
        ));
        assert!(!passes(
            Level::User,
            Some(&types),
            Level::User,
            "user.message"
        ));
        assert!(!passes(
            Level::User,
            Some(&types),
            Level::Progress,
            "turn.started"
        ));
    }
}
