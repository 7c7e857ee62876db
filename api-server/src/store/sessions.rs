//! Sessions in the store: create (with `key` / `Idempotency-Key` get-or-create and the first
//! input as seq 1), read and list, steer (per-session idempotency), cancel, archive and the idle
//! sweep. The store row is the read model of `GET /v3/sessions`; the `Session` object holds the
//! desired state. Never change `status` or `head` without the row lock.

use sealpod_resources::runtime_api::Usage;
use sealpod_resources::session::Phase;
use serde_json::Value;
use sqlx::any::AnyRow;

use crate::wire::{TurnState, TurnSummary, WireLimits, WireSnapshot};

use super::row_cache::RowCache;
use super::{
    Draft, Store, StoreResult, StoredEvent, WriteTx, column, db, flag, json_column, json_text,
    now_unix, phase_column,
};

/// A session as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// `ses_…`
    pub id: String,
    /// Tenant.
    pub namespace: String,
    /// `agt_…`
    pub agent_id: String,
    /// `managed`, `cred_…`.
    pub credential_id: Option<String>,
    /// The agent as it was at start.
    pub snapshot: WireSnapshot,
    /// Effective limits.
    pub limits: WireLimits,
    /// Metadata verbatim, or null.
    pub metadata: Value,
    /// Routing key.
    pub key: Option<String>,
    /// `/v3` status.
    pub status: Phase,
    /// Highest seq.
    pub head: i64,
    /// How far the runtime has consumed input.
    pub input_cursor: i64,
    /// The last turn, or `None` before the first.
    pub last_turn: Option<TurnSummary>,
    /// Turns started.
    pub turns_started: i64,
    /// Usage summed over completed turns, or `None` before the first completes.
    pub usage: Option<Usage>,
    /// Seconds idle before hibernation (0 = never).
    pub idle_timeout: i64,
    /// True once hibernation was requested.
    pub hibernated: bool,
    /// RFC 3339.
    pub created_at: String,
    /// List order.
    pub n: i64,
    /// The `metadata.uid` of the Session object the row belongs to, once the API server has
    /// seen it (`None` before, and for rows written before it was recorded).
    pub object_uid: Option<String>,
}

pub(crate) const SESSION_COLUMNS: &str = "n, id, namespace, agent_id, credential_id, snapshot, \
    limits, metadata, skey, status, head, input_cursor, last_turn, turns_started, usage, \
    idle_timeout, hibernated, created_at, object_uid";

pub(crate) fn row_to_session(row: &AnyRow) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        id: column(row, "id")?,
        namespace: column(row, "namespace")?,
        agent_id: column(row, "agent_id")?,
        credential_id: column(row, "credential_id")?,
        snapshot: json_column(row, "snapshot")?,
        limits: json_column(row, "limits")?,
        metadata: json_column(row, "metadata")?,
        key: column(row, "skey")?,
        status: phase_column(row, "status")?,
        head: column(row, "head")?,
        input_cursor: column(row, "input_cursor")?,
        last_turn: json_column(row, "last_turn")?,
        turns_started: column(row, "turns_started")?,
        usage: json_column(row, "usage")?,
        idle_timeout: column(row, "idle_timeout")?,
        hibernated: flag(row, "hibernated")?,
        created_at: column(row, "created_at")?,
        n: column(row, "n")?,
        object_uid: column(row, "object_uid")?,
    })
}

/// What a new session is made of.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// `ses_…`
    pub id: String,
    /// Tenant.
    pub namespace: String,
    /// `agt_…`
    pub agent_id: String,
    /// `managed` or `cred_…`.
    pub credential_id: Option<String>,
    /// The agent as it is at start.
    pub snapshot: WireSnapshot,
    /// Effective limits.
    pub limits: WireLimits,
    /// Metadata, or null.
    pub metadata: Value,
    /// Routing key.
    pub key: Option<String>,
    /// Seconds idle before hibernation.
    pub idle_timeout: i64,
}

/// A session adopted from its object: what a create would store, plus the state the object
/// already asks for.
#[derive(Debug, Clone)]
pub struct AdoptedSession {
    /// The row's fields, as on create.
    pub new: NewSession,
    /// `queued` (with input), `idle` (without) or `archived`.
    pub status: Phase,
    /// True when the object asks to be hibernated.
    pub hibernated: bool,
    /// The object's creation time (Unix seconds).
    pub created_unix: i64,
    /// The object's `metadata.uid`.
    pub object_uid: Option<String>,
}

/// The idempotency scope of a session's steers.
pub(super) fn steer_scope(session: &str) -> String {
    format!("steer:{session}")
}

/// An idempotency claim: `(scope, key, request fingerprint)`.
pub type IdemKey = (String, String, String);

/// Result of a create.
#[derive(Debug)]
pub enum CreateOutcome {
    /// Created now.
    Created(SessionRow),
    /// A replay of an earlier create with the same key and body.
    Replay(SessionRow),
    /// The key was used with a different body; names which key.
    Conflict(&'static str),
}

/// Result of a steer.
#[derive(Debug)]
pub enum SteerOutcome {
    /// Appended now.
    Appended(StoredEvent, SessionRow, bool),
    /// The idempotency key was seen: the original event.
    Replay(StoredEvent, SessionRow),
    /// The session is archived.
    Archived,
    /// No such session in this namespace.
    NotFound,
}

/// Filters of `GET /v3/sessions`.
#[derive(Debug, Clone, Default)]
pub struct ListSessions {
    /// Agent id.
    pub agent: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Routing key.
    pub key: Option<String>,
    /// `created_at` strictly after (Unix seconds).
    pub after: Option<i64>,
    /// `created_at` strictly before (Unix seconds).
    pub before: Option<i64>,
    /// Only rows with `n` below this (cursor).
    pub below_n: Option<i64>,
    /// Page size.
    pub limit: i64,
}

impl Store {
    /// Locks a session row (first statement of a write) and returns it.
    pub(crate) async fn lock_session(
        &self,
        w: &mut WriteTx<'_>,
        namespace: &str,
        id: &str,
    ) -> StoreResult<Option<SessionRow>> {
        w.touch(id);
        let sql = format!(
            "UPDATE sessions SET head = head WHERE id = $1 AND namespace = $2 \
             RETURNING {SESSION_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(namespace)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db("lock session"))?;
        row.as_ref().map(row_to_session).transpose()
    }

    /// Writes back the mutable columns of a locked row.
    pub(crate) async fn save_session(w: &mut WriteTx<'_>, row: &SessionRow) -> StoreResult<()> {
        w.touch(&row.id);
        sqlx::query(
            "UPDATE sessions SET status = $2, head = $3, input_cursor = $4, last_turn = $5, \
             turns_started = $6, usage = $7, hibernated = $8, last_activity = $9 WHERE id = $1",
        )
        .bind(&row.id)
        .bind(row.status.as_str())
        .bind(row.head)
        .bind(row.input_cursor)
        .bind(json_text("session last turn", &row.last_turn)?)
        .bind(row.turns_started)
        .bind(json_text("session usage", &row.usage)?)
        .bind(i64::from(row.hibernated))
        .bind(now_unix())
        .execute(&mut *w.tx)
        .await
        .map_err(db("save session"))?;
        Ok(())
    }

    /// Creates a session with its first input as seq 1, honouring idempotency claims (all of
    /// them must be new, or all replay the same session).
    pub async fn create_session(
        &self,
        new: NewSession,
        input: Draft,
        claims: Vec<IdemKey>,
    ) -> StoreResult<CreateOutcome> {
        self.create_session_with(new, input, claims, Vec::new())
            .await
    }

    /// [`Store::create_session`] that also registers webhook destinations, in the same
    /// transaction and before the first event (so they see the whole session).
    pub async fn create_session_with(
        &self,
        new: NewSession,
        input: Draft,
        claims: Vec<IdemKey>,
        destinations: Vec<crate::store::outbox::NewDestination>,
    ) -> StoreResult<CreateOutcome> {
        // A concurrent create with the same key on another replica makes our insert fail on the
        // key's primary key: the retry then sees its row and replays.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .try_create_session(new.clone(), input.clone(), &claims, &destinations)
                .await
            {
                Err(super::StoreError::Db {
                    source: sqlx::Error::Database(e),
                    ..
                }) if e.is_unique_violation() && attempt < 3 => continue,
                other => return other,
            }
        }
    }

    async fn try_create_session(
        &self,
        new: NewSession,
        input: Draft,
        claims: &[IdemKey],
        destinations: &[crate::store::outbox::NewDestination],
    ) -> StoreResult<CreateOutcome> {
        let mut w = self.begin().await?;
        for (scope, key, hash) in claims {
            let found = sqlx::query(
                "SELECT request_hash, target FROM idempotency WHERE scope = $1 AND ikey = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db("read idempotency"))?;
            if let Some(found) = found {
                drop(w);
                if &column::<String>(&found, "request_hash")? != hash {
                    let which = if scope.starts_with("key:") {
                        "key"
                    } else {
                        "idempotency_key"
                    };
                    return Ok(CreateOutcome::Conflict(which));
                }
                let target: String = column(&found, "target")?;
                return Ok(match self.get_session(&new.namespace, &target).await? {
                    Some(row) => CreateOutcome::Replay(row),
                    None => CreateOutcome::Conflict("key"),
                });
            }
        }
        let now = chrono::Utc::now();
        w.touch(&new.id);
        sqlx::query(
            "INSERT INTO sessions (id, namespace, agent_id, credential_id, snapshot, limits, \
             metadata, skey, status, head, input_cursor, last_turn, turns_started, usage, \
             idle_timeout, last_activity, hibernated, created_at, created_unix) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 1, 0, NULL, 0, NULL, $9, $10, 0, \
             $11, $10)",
        )
        .bind(&new.id)
        .bind(&new.namespace)
        .bind(&new.agent_id)
        .bind(new.credential_id.clone())
        .bind(json_text("session snapshot", &new.snapshot)?)
        .bind(json_text("session limits", &new.limits)?)
        .bind(json_text("session metadata", &new.metadata)?)
        .bind(new.key.clone())
        .bind(new.idle_timeout)
        .bind(now.timestamp())
        .bind(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .execute(&mut *w.tx)
        .await
        .map_err(db("insert session"))?;
        crate::store::outbox::insert_destinations_in(&mut w.tx, &new.id, 0, destinations).await?;
        self.append_in(&mut w.tx, &new.id, 0, vec![input]).await?;
        for (scope, key, hash) in claims {
            sqlx::query(
                "INSERT INTO idempotency (scope, ikey, request_hash, target) VALUES ($1, $2, $3, $4)",
            )
            .bind(scope)
            .bind(key)
            .bind(hash)
            .bind(&new.id)
            .execute(&mut *w.tx)
            .await
            .map_err(db("insert idempotency"))?;
        }
        w.commit().await?;
        let row = self.get_session(&new.namespace, &new.id).await?;
        Ok(row.map_or(CreateOutcome::Conflict("key"), CreateOutcome::Created))
    }

    /// Creates the row of a session whose object already exists (adoption of a `Session`
    /// applied with kubectl): `input`, when given, becomes seq 1 exactly as on create. Returns
    /// `None` when a row with that id exists already (the API's own create, or an adoption by
    /// another task or replica won): the insert is `ON CONFLICT DO NOTHING` and the input is
    /// appended only by the transaction whose insert took, so a session never gets a second
    /// first input. The routing key is claimed only if no other session holds it.
    pub async fn adopt_session(
        &self,
        adopted: AdoptedSession,
        input: Option<Draft>,
    ) -> StoreResult<Option<SessionRow>> {
        let AdoptedSession {
            new,
            status,
            hibernated,
            created_unix,
            object_uid,
        } = adopted;
        let mut w = self.begin().await?;
        let head = i64::from(input.is_some());
        let created_at = chrono::DateTime::from_timestamp(created_unix, 0)
            .unwrap_or_else(chrono::Utc::now)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        w.touch(&new.id);
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, namespace, agent_id, credential_id, snapshot, limits, \
             metadata, skey, status, head, input_cursor, last_turn, turns_started, usage, \
             idle_timeout, last_activity, hibernated, created_at, created_unix, object_uid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, NULL, 0, NULL, $11, $12, $13, \
             $14, $15, $16) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.namespace)
        .bind(&new.agent_id)
        .bind(new.credential_id.clone())
        .bind(json_text("session snapshot", &new.snapshot)?)
        .bind(json_text("session limits", &new.limits)?)
        .bind(json_text("session metadata", &new.metadata)?)
        .bind(new.key.clone())
        .bind(status.as_str())
        .bind(head)
        .bind(new.idle_timeout)
        .bind(now_unix())
        .bind(i64::from(hibernated))
        .bind(created_at)
        .bind(created_unix)
        .bind(object_uid)
        .execute(&mut *w.tx)
        .await
        .map_err(db("adopt session"))?;
        if inserted.rows_affected() == 0 {
            // Dropping the transaction rolls it back; the existing row stays as it is.
            return Ok(None);
        }
        if let Some(input) = input {
            self.append_in(&mut w.tx, &new.id, 0, vec![input]).await?;
        }
        if let Some(key) = &new.key {
            sqlx::query(
                "INSERT INTO idempotency (scope, ikey, request_hash, target) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (scope, ikey) DO NOTHING",
            )
            .bind(format!("key:{}", new.namespace))
            .bind(key)
            // No request body exists to fingerprint: a later create with this key conflicts.
            .bind(format!("adopted:{}", new.id))
            .bind(&new.id)
            .execute(&mut *w.tx)
            .await
            .map_err(db("claim adopted key"))?;
        }
        w.commit().await?;
        self.get_session(&new.namespace, &new.id).await
    }

    /// Removes a session whose object could not be created (compensation of a failed create).
    pub async fn forget_session(&self, id: &str) -> StoreResult<()> {
        let mut w = self.begin().await?;
        w.touch(id);
        for sql in [
            "DELETE FROM events WHERE session = $1",
            "DELETE FROM webhook_deliveries WHERE session = $1",
            "DELETE FROM webhook_destinations WHERE session = $1",
            "DELETE FROM idempotency WHERE target = $1",
            "DELETE FROM sessions WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *w.tx)
                .await
                .map_err(db("forget session"))?;
        }
        w.commit().await
    }

    /// One session of a namespace.
    pub async fn get_session(&self, namespace: &str, id: &str) -> StoreResult<Option<SessionRow>> {
        if let Some(row) = self.rows.as_ref().and_then(|c| c.get(namespace, id)) {
            return Ok(Some(row));
        }
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 AND namespace = $2");
        let start = self.rows.as_ref().map(RowCache::read_start);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(namespace)
            .fetch_optional(self.pool())
            .await
            .map_err(db("get session"))?;
        let row = row.as_ref().map(row_to_session).transpose()?;
        if let (Some(cache), Some(start), Some(row)) = (&self.rows, start, &row) {
            cache.keep(start, row);
        }
        Ok(row)
    }

    /// A page of a namespace's sessions, newest first.
    pub async fn list_sessions(
        &self,
        namespace: &str,
        q: &ListSessions,
    ) -> StoreResult<Vec<SessionRow>> {
        let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE namespace = $1");
        let mut n = 1;
        let mut texts: Vec<(usize, String)> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let mut add_text = |sql: &mut String, col: &str, v: &Option<String>, n: &mut usize| {
            if let Some(v) = v {
                *n += 1;
                sql.push_str(&format!(" AND {col} = ${n}"));
                texts.push((*n, v.clone()));
            }
        };
        add_text(&mut sql, "agent_id", &q.agent, &mut n);
        add_text(&mut sql, "status", &q.status, &mut n);
        add_text(&mut sql, "skey", &q.key, &mut n);
        for (col, op, v) in [
            ("created_unix", ">", q.after),
            ("created_unix", "<", q.before),
            ("n", "<", q.below_n),
        ] {
            if let Some(v) = v {
                n += 1;
                sql.push_str(&format!(" AND {col} {op} ${n}"));
                ints.push((n, v));
            }
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY n DESC LIMIT ${n}"));
        ints.push((n, q.limit));
        // Bind in placeholder order.
        let mut all: Vec<(usize, Result<i64, String>)> = texts
            .into_iter()
            .map(|(i, t)| (i, Err(t)))
            .chain(ints.into_iter().map(|(i, v)| (i, Ok(v))))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        // Only column names and `$N` placeholders are interpolated; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(namespace.to_owned());
        for (_, v) in all {
            query = match v {
                Ok(i) => query.bind(i),
                Err(t) => query.bind(t),
            };
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(db("list sessions"))?;
        rows.iter().map(row_to_session).collect()
    }

    /// Appends a `user.message` (steer). `claim` is the per-session idempotency key and the
    /// request's fingerprint. The third field of `Appended` is true when the session was
    /// hibernated and must be woken.
    pub async fn steer(
        &self,
        namespace: &str,
        id: &str,
        draft: Draft,
        claim: Option<(String, String)>,
    ) -> StoreResult<SteerOutcome> {
        let mut w = self.begin().await?;
        let Some(mut row) = self.lock_session(&mut w, namespace, id).await? else {
            return Ok(SteerOutcome::NotFound);
        };
        if row.status == Phase::Archived {
            return Ok(SteerOutcome::Archived);
        }
        let scope = steer_scope(id);
        if let Some((key, _)) = &claim {
            let found =
                sqlx::query("SELECT target FROM idempotency WHERE scope = $1 AND ikey = $2")
                    .bind(&scope)
                    .bind(key)
                    .fetch_optional(&mut *w.tx)
                    .await
                    .map_err(db("read idempotency"))?;
            if let Some(found) = found {
                drop(w);
                let target: String = column(&found, "target")?;
                let event = self.get_event(id, &target).await?;
                let row = self.get_session(namespace, id).await?;
                return Ok(match (event, row) {
                    (Some(event), Some(row)) => SteerOutcome::Replay(event, row),
                    _ => SteerOutcome::NotFound,
                });
            }
        }
        let events = self.append_in(&mut w.tx, id, row.head, vec![draft]).await?;
        row.head += 1;
        if matches!(
            row.status,
            Phase::Idle | Phase::AwaitingInput | Phase::Failed
        ) {
            row.status = Phase::Queued;
        }
        let wake = row.hibernated;
        row.hibernated = false;
        Self::save_session(&mut w, &row).await?;
        if let Some((key, hash)) = &claim {
            sqlx::query(
                "INSERT INTO idempotency (scope, ikey, request_hash, target) VALUES ($1, $2, $3, $4)",
            )
            .bind(&scope)
            .bind(key)
            .bind(hash)
            .bind(&events[0].id)
            .execute(&mut *w.tx)
            .await
            .map_err(db("insert idempotency"))?;
        }
        self.notify(&mut w.tx, id, &row.head.to_string()).await?;
        w.commit().await?;
        self.hub.publish(id, &events);
        let event = events
            .into_iter()
            .next()
            .expect("one draft appends one event");
        Ok(SteerOutcome::Appended(event, row, wake))
    }

    /// Cancels the running turn, if any (the runtime learns it from its signal). Returns the
    /// session, or `None` when it does not exist.
    pub async fn cancel(&self, namespace: &str, id: &str) -> StoreResult<Option<SessionRow>> {
        let mut w = self.begin().await?;
        let Some(row) = self.lock_session(&mut w, namespace, id).await? else {
            return Ok(None);
        };
        self.cancel_running_turn(&mut w, &row).await?;
        w.commit().await?;
        self.hub.signal(id);
        Ok(Some(row))
    }

    pub(super) async fn cancel_running_turn(
        &self,
        w: &mut WriteTx<'_>,
        row: &SessionRow,
    ) -> StoreResult<()> {
        if let Some(turn) = &row.last_turn
            && turn.state == TurnState::Running
        {
            sqlx::query("UPDATE turns SET cancel = 1 WHERE id = $1 AND session = $2")
                .bind(&turn.id)
                .bind(&row.id)
                .execute(&mut *w.tx)
                .await
                .map_err(db("cancel turn"))?;
            self.notify(&mut w.tx, &row.id, "ctl").await?;
        }
        Ok(())
    }

    /// Revokes the client tokens of `session` issued at or before `before` (Unix seconds).
    pub(super) async fn revoke_client_tokens(
        w: &mut WriteTx<'_>,
        session: &str,
        before: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO client_token_revocations (session, revoked_before) VALUES ($1, $2) \
             ON CONFLICT (session) DO UPDATE SET revoked_before = excluded.revoked_before",
        )
        .bind(session)
        .bind(before)
        .execute(&mut *w.tx)
        .await
        .map_err(db("revoke client tokens"))?;
        Ok(())
    }

    /// Archives a session: cancels its running turn, makes it read-only and revokes its client
    /// tokens. Returns the session, or `None` when it does not exist.
    pub async fn archive(&self, namespace: &str, id: &str) -> StoreResult<Option<SessionRow>> {
        let mut w = self.begin().await?;
        let Some(mut row) = self.lock_session(&mut w, namespace, id).await? else {
            return Ok(None);
        };
        if row.status != Phase::Archived {
            self.cancel_running_turn(&mut w, &row).await?;
            row.status = Phase::Archived;
            Self::save_session(&mut w, &row).await?;
            Self::revoke_client_tokens(&mut w, id, i64::MAX).await?;
            self.notify(&mut w.tx, id, "ctl").await?;
        }
        w.commit().await?;
        self.hub.signal(id);
        Ok(Some(row))
    }

    /// Sessions idle longer than their timeout and not yet hibernated: `(namespace, id)`.
    pub async fn idle_sessions(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT namespace, id FROM sessions WHERE hibernated = 0 AND idle_timeout > 0 \
             AND status IN ('idle', 'awaiting_input', 'failed') \
             AND last_activity + idle_timeout < $1",
        )
        .bind(now_unix())
        .fetch_all(self.pool())
        .await
        .map_err(db("idle sessions"))?;
        rows.iter()
            .map(|r| Ok((column(r, "namespace")?, column(r, "id")?)))
            .collect()
    }

    /// Records that hibernation was requested for a session.
    pub async fn mark_hibernated(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET hibernated = 1 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db("mark hibernated"))?;
        if let Some(cache) = &self.rows {
            cache.forget([id]);
        }
        Ok(())
    }

    /// Records the model tokens a session's sidecar reports having metered (a running total: the
    /// largest report wins, so a late or repeated one never lowers it) and returns the total.
    pub async fn meter(&self, id: &str, reported: u64) -> StoreResult<u64> {
        let reported = i64::try_from(reported).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE sessions SET metered_tokens = $2 WHERE id = $1 AND metered_tokens < $2",
        )
        .bind(id)
        .bind(reported)
        .execute(self.pool())
        .await
        .map_err(db("meter"))?;
        let row = sqlx::query("SELECT metered_tokens FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db("metered tokens"))?;
        let total: i64 = row
            .map(|r| column(&r, "metered_tokens"))
            .transpose()?
            .unwrap_or(0);
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// The namespace of a session (for the runtime API and the hub), if it exists.
    pub async fn session_namespace(&self, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT namespace FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db("session namespace"))?;
        row.map(|r| column(&r, "namespace")).transpose()
    }
}
