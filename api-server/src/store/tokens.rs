//! Token revocations in the store: client tokens (per session, set when it is archived) and
//! runtime tokens (per session, set by the operator before a Session goes away).

use super::{Store, StoreResult, column, db};

impl Store {
    /// Client tokens of `session` issued at or before this Unix time are revoked.
    pub async fn client_tokens_revoked_before(&self, session: &str) -> StoreResult<Option<i64>> {
        let row =
            sqlx::query("SELECT revoked_before FROM client_token_revocations WHERE session = $1")
                .bind(session)
                .fetch_optional(self.pool())
                .await
                .map_err(db("client token revocations"))?;
        row.map(|r| column(&r, "revoked_before")).transpose()
    }

    /// Revokes every runtime token of a session.
    pub async fn revoke_runtime_tokens(&self, namespace: &str, session: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO runtime_token_revocations (namespace, session) VALUES ($1, $2) \
             ON CONFLICT (namespace, session) DO NOTHING",
        )
        .bind(namespace)
        .bind(session)
        .execute(self.pool())
        .await
        .map_err(db("revoke runtime tokens"))?;
        Ok(())
    }

    /// True when the session's runtime tokens were revoked.
    pub async fn runtime_tokens_revoked(
        &self,
        namespace: &str,
        session: &str,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM runtime_token_revocations WHERE namespace = $1 AND session = $2",
        )
        .bind(namespace)
        .bind(session)
        .fetch_optional(self.pool())
        .await
        .map_err(db("runtime token revocations"))?;
        Ok(row.is_some())
    }
}
