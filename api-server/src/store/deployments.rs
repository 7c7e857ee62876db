//! An agent's deployments (`/v3/agents/{id}/deployments`, and the skills routes, which deploy
//! too). [`Store::begin_deployment`] writes the row `pending` before any work, claiming its
//! idempotency key in the same insert; [`Store::finish_deployment`] records the outcome. A
//! retry with the key finds the row: finished, it is answered as it is; still pending after
//! [`RESUME_AFTER_MS`] (its server stopped midway), the retry does the work again.

use serde_json::Value;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, column, db, json_column, json_text, now_rfc3339};

/// Age after which a pending deployment may be taken over by a retry of its request.
pub(crate) const RESUME_AFTER_MS: i64 = 30_000;

/// A deployment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    /// `dep_…`.
    pub id: String,
    /// `inline`, `zip` (a skills upload) or `remove` (skills removed).
    pub input_type: String,
    /// `pending`, `ready` or `failed`.
    pub state: String,
    /// `activated`, `staged` or `failed` once finished.
    pub result: Option<String>,
    /// The revision number it made.
    pub revision: Option<i64>,
    /// `{type, message}` of a failure.
    pub error: Value,
    /// `validation` or `internal` for a failure.
    pub error_class: Option<String>,
    /// The caller's note, verbatim.
    pub client_context: Value,
    /// SHA-256 of the request (a replay of the key must carry the same).
    pub request_hash: String,
    /// Unix milliseconds of the latest attempt.
    pub created_ms: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// A deployment about to be attempted.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    /// `dep_…`.
    pub id: String,
    /// The tenant.
    pub namespace: String,
    /// The agent's object name.
    pub agent: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request.
    pub request_hash: String,
    /// See [`DeploymentRow::input_type`].
    pub input_type: String,
    /// Whether to activate the revision.
    pub activate: bool,
    /// The caller's note.
    pub client_context: Value,
}

/// What [`Store::begin_deployment`] found.
#[derive(Debug)]
pub enum Begun {
    /// The row is written (or an abandoned one taken over): do the work.
    Started(DeploymentRow),
    /// The key names an earlier deployment (finished, or pending and not abandoned).
    Existing(DeploymentRow),
}

/// How a deployment ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Its revision was made and activated (or not).
    Ready {
        /// The revision number.
        revision: i64,
        /// Whether it was activated.
        activated: bool,
    },
    /// Nothing was activated.
    Failed {
        /// `{type, message}`.
        error: Value,
        /// `validation` or `internal`.
        class: &'static str,
    },
}

/// A `SELECT` of the columns a [`DeploymentRow`] holds, then `$rest` (a literal, so the query is
/// one string).
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, input_type, state, result, revision, error, ",
            "error_class, client_context, request_hash, created_ms, created_at FROM deployments ",
            $rest
        )
    };
}

fn decode(row: &AnyRow) -> StoreResult<DeploymentRow> {
    Ok(DeploymentRow {
        id: column(row, "id")?,
        input_type: column(row, "input_type")?,
        state: column(row, "state")?,
        result: column(row, "result")?,
        revision: column(row, "revision")?,
        error: json_column(row, "error")?,
        error_class: column(row, "error_class")?,
        client_context: json_column(row, "client_context")?,
        request_hash: column(row, "request_hash")?,
        created_ms: column(row, "created_ms")?,
        created_at: column(row, "created_at")?,
    })
}

impl Store {
    /// Writes `new` as `pending`, unless its idempotency key names an earlier deployment of the
    /// agent: then that one, taken over when it was abandoned pending.
    pub async fn begin_deployment(&self, new: NewDeployment) -> StoreResult<Begun> {
        let now = chrono::Utc::now().timestamp_millis();
        let inserted = sqlx::query(
            "INSERT INTO deployments (id, namespace, agent, idempotency_key, request_hash, \
             input_type, activate, state, client_context, created_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10) \
             ON CONFLICT (namespace, agent, idempotency_key) DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.namespace)
        .bind(&new.agent)
        .bind(&new.idempotency_key)
        .bind(&new.request_hash)
        .bind(&new.input_type)
        .bind(i64::from(new.activate))
        .bind(json_text("client context", &new.client_context)?)
        .bind(now)
        .bind(now_rfc3339())
        .execute(self.pool())
        .await
        .map_err(db("insert deployment"))?;
        if inserted.rows_affected() == 1 {
            let row = self
                .get_deployment(&new.namespace, &new.agent, &new.id)
                .await?
                .ok_or_else(|| db("read deployment")(sqlx::Error::RowNotFound))?;
            return Ok(Begun::Started(row));
        }
        let existing = sqlx::query(select!(
            "WHERE namespace = $1 AND agent = $2 AND idempotency_key = $3"
        ))
        .bind(&new.namespace)
        .bind(&new.agent)
        .bind(&new.idempotency_key)
        .fetch_one(self.pool())
        .await
        .map_err(db("read deployment"))?;
        let existing = decode(&existing)?;
        if existing.state != "pending"
            || existing.request_hash != new.request_hash
            || existing.created_ms > now - RESUME_AFTER_MS
        {
            return Ok(Begun::Existing(existing));
        }
        // Abandoned midway: this attempt takes it over (one of two concurrent retries does).
        let taken = sqlx::query(
            "UPDATE deployments SET created_ms = $1 \
             WHERE id = $2 AND state = 'pending' AND created_ms = $3",
        )
        .bind(now)
        .bind(&existing.id)
        .bind(existing.created_ms)
        .execute(self.pool())
        .await
        .map_err(db("take over deployment"))?;
        Ok(if taken.rows_affected() == 1 {
            Begun::Started(existing)
        } else {
            Begun::Existing(existing)
        })
    }

    /// Records how deployment `id` ended.
    pub async fn finish_deployment(&self, id: &str, outcome: &Outcome) -> StoreResult<()> {
        let (state, result, revision, error, class) = match outcome {
            Outcome::Ready {
                revision,
                activated,
            } => (
                "ready",
                if *activated { "activated" } else { "staged" },
                Some(*revision),
                None,
                None,
            ),
            Outcome::Failed { error, class } => (
                "failed",
                "failed",
                None,
                json_text("deployment error", error)?,
                Some(*class),
            ),
        };
        sqlx::query(
            "UPDATE deployments SET state = $1, result = $2, revision = $3, error = $4, \
             error_class = $5 WHERE id = $6",
        )
        .bind(state)
        .bind(result)
        .bind(revision)
        .bind(error)
        .bind(class)
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db("finish deployment"))?;
        Ok(())
    }

    /// One deployment of an agent.
    pub async fn get_deployment(
        &self,
        namespace: &str,
        agent: &str,
        id: &str,
    ) -> StoreResult<Option<DeploymentRow>> {
        let row = sqlx::query(select!("WHERE namespace = $1 AND agent = $2 AND id = $3"))
            .bind(namespace)
            .bind(agent)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db("read deployment"))?;
        row.as_ref().map(decode).transpose()
    }

    /// An agent's deployments, newest first: `limit` of them after skipping `offset`.
    pub async fn list_deployments(
        &self,
        namespace: &str,
        agent: &str,
        offset: i64,
        limit: i64,
    ) -> StoreResult<Vec<DeploymentRow>> {
        let rows = sqlx::query(select!(
            "WHERE namespace = $1 AND agent = $2 ORDER BY created_ms DESC, id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(namespace)
        .bind(agent)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await
        .map_err(db("list deployments"))?;
        rows.iter().map(decode).collect()
    }
}
