//! Console sign-ins (`console::session`): the SHA-256 of each cookie's id with its tenant, the
//! SHA-256 of the org key it came from and its expiry. Expired rows are deleted by the next
//! sign-in, so the table holds at most the sign-ins of one lifetime.

use super::{Store, StoreResult, column, db};

/// A live console sign-in as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    /// The tenant.
    pub namespace: String,
    /// SHA-256 (hex) of the org key it was exchanged for.
    pub key_hash: String,
    /// Unix milliseconds after which it is refused.
    pub expires_ms: i64,
}

impl Store {
    /// Records a sign-in, and deletes the sign-ins expired before `now_ms`.
    pub async fn create_console_session(
        &self,
        id_hash: &str,
        row: &ConsoleSessionRow,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(self.pool())
            .await
            .map_err(db("expire console sessions"))?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, namespace, key_hash, expires_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(&row.namespace)
        .bind(&row.key_hash)
        .bind(row.expires_ms)
        .execute(self.pool())
        .await
        .map_err(db("create console session"))?;
        Ok(())
    }

    /// The sign-in whose id hashes to `id_hash`, unless it expired before `now_ms`.
    pub async fn console_session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<ConsoleSessionRow>> {
        let row = sqlx::query(
            "SELECT namespace, key_hash, expires_ms FROM console_sessions \
             WHERE id_hash = $1 AND expires_ms > $2",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await
        .map_err(db("console session"))?;
        row.map(|r| {
            Ok(ConsoleSessionRow {
                namespace: column(&r, "namespace")?,
                key_hash: column(&r, "key_hash")?,
                expires_ms: column(&r, "expires_ms")?,
            })
        })
        .transpose()
    }

    /// Ends a sign-in (nothing to do when it is already gone).
    pub async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await
            .map_err(db("delete console session"))?;
        Ok(())
    }
}
