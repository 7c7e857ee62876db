//! Token revocations in the store: client tokens (per session, set when it is archived) and
//! runtime tokens (per Session object, set by the operator before a Session goes away).

use super::{Store, StoreResult, column, db};

/// A runtime token's standing ([`Store::runtime_token_standing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStanding {
    /// The token's tokens were revoked.
    pub revoked: bool,
    /// The Session object uid the session's row records.
    pub recorded_uid: Option<String>,
}

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

    /// Revokes every runtime token of a session's Session object (`object_uid`; `None` for a
    /// token minted before tokens named their object: every token without a uid).
    pub async fn revoke_runtime_tokens(
        &self,
        namespace: &str,
        session: &str,
        object_uid: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO runtime_revocations (namespace, session, object_uid) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, session, object_uid) DO NOTHING",
        )
        .bind(namespace)
        .bind(session)
        .bind(object_uid.unwrap_or_default())
        .execute(self.pool())
        .await
        .map_err(db("revoke runtime tokens"))?;
        Ok(())
    }

    /// What a runtime token of the session's object `object_uid` meets, in one read: whether
    /// its tokens were revoked (a token without a uid by any revocation of the session, one with
    /// a uid by its own object's or by one made without a uid), and the object uid the session's
    /// row records (`None`: no row, or none recorded).
    pub async fn runtime_token_standing(
        &self,
        namespace: &str,
        session: &str,
        object_uid: Option<&str>,
    ) -> StoreResult<TokenStanding> {
        let row = sqlx::query(
            "SELECT (SELECT 1 FROM runtime_revocations WHERE namespace = $1 AND session = $2 \
             AND ($3 = '' OR object_uid = '' OR object_uid = $3) LIMIT 1) AS revoked, \
             (SELECT object_uid FROM sessions WHERE id = $2 AND namespace = $1) AS recorded",
        )
        .bind(namespace)
        .bind(session)
        .bind(object_uid.unwrap_or_default())
        .fetch_one(self.pool())
        .await
        .map_err(db("runtime token standing"))?;
        Ok(TokenStanding {
            revoked: column::<Option<i64>>(&row, "revoked")?.is_some(),
            recorded_uid: column(&row, "recorded")?,
        })
    }
}
