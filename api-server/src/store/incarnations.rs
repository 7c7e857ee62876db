//! Which Session object a row belongs to. The API server records the object's `metadata.uid` on
//! the row when it first sees the object. A Session deleted with kubectl and applied again under
//! the same name is a new object, hence a new session: its old row, with its events, turns,
//! webhook destinations and deliveries, is *retired* (archived and moved, in one transaction,
//! under an id of its own, [`retired_id`]), so the name starts again from seq 1 while the old
//! history stays readable.

use sealpod_resources::ids::MAX_BODY_LEN;
use sealpod_resources::session::Phase;

use super::sessions::steer_scope;
use super::{Store, StoreResult, db, now_unix};

/// The notification other replicas get when a row is retired (they drop its live tail).
pub(crate) const RETIRED: &str = "retired";

/// The id a retired row takes: the session id's body, then `r` and the first 8 letters and
/// digits of its object's uid (`ses_example` → `ses_exampler1a2b3c4d`). The body is shortened
/// to keep within an id's length.
pub fn retired_id(id: &str, object_uid: &str) -> String {
    let (prefix, body) = id.split_once('_').unwrap_or(("ses", id));
    let mark: String = object_uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let keep = body.len().min(MAX_BODY_LEN - 1 - mark.len());
    format!("{prefix}_{}r{mark}", &body[..keep])
}

impl Store {
    /// Records `object_uid` as the Session object of row `id`, unless one is recorded already.
    pub async fn record_object_uid(&self, id: &str, object_uid: &str) -> StoreResult<()> {
        let mut w = self.begin().await?;
        w.touch(id);
        sqlx::query("UPDATE sessions SET object_uid = $1 WHERE id = $2 AND object_uid IS NULL")
            .bind(object_uid)
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(db("record session object"))?;
        w.commit().await
    }

    /// Retires row `id` of `namespace`, which belongs to the Session object `object_uid`, now
    /// replaced by another object of the same name: its running turn is cancelled, it is
    /// archived, and it moves with everything keyed by the session to [`retired_id`]. Its
    /// routing key passes to the new session, and client tokens issued until now stop reaching
    /// the id. Returns the retired id, or `None` when the row is not that object's (already
    /// retired by another request or replica).
    pub async fn retire_session(
        &self,
        namespace: &str,
        id: &str,
        object_uid: &str,
    ) -> StoreResult<Option<String>> {
        let mut w = self.begin().await?;
        let Some(row) = self.lock_session(&mut w, namespace, id).await? else {
            return Ok(None);
        };
        if row.object_uid.as_deref() != Some(object_uid) {
            return Ok(None);
        }
        self.cancel_running_turn(&mut w, &row).await?;
        let retired = retired_id(id, object_uid);
        w.touch(&retired);
        sqlx::query("UPDATE sessions SET id = $1, status = $2, skey = NULL WHERE id = $3")
            .bind(&retired)
            .bind(Phase::Archived.as_str())
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(db("retire session"))?;
        // An event names its session in its stored form (and in the address of a large body's
        // content): compact JSON written by this server, where `"session":"…"` and
        // `"/sessions/…/` cannot occur inside a string value (its quotes would be escaped).
        sqlx::query(
            "UPDATE events SET session = $1, \
             data = REPLACE(REPLACE(data, $3, $4), $5, $6) WHERE session = $2",
        )
        .bind(&retired)
        .bind(id)
        .bind(format!("\"session\":\"{id}\""))
        .bind(format!("\"session\":\"{retired}\""))
        .bind(format!("\"/sessions/{id}/"))
        .bind(format!("\"/sessions/{retired}/"))
        .execute(&mut *w.tx)
        .await
        .map_err(db("retire session events"))?;
        for sql in [
            "UPDATE turns SET session = $1 WHERE session = $2",
            "UPDATE outbox SET session = $1 WHERE session = $2",
            "UPDATE webhook_destinations SET session = $1 WHERE session = $2",
            "UPDATE webhook_deliveries SET session = $1 WHERE session = $2",
            "UPDATE schedule_runs SET session_id = $1 WHERE session_id = $2",
            "UPDATE client_token_revocations SET session = $1 WHERE session = $2",
        ] {
            sqlx::query(sql)
                .bind(&retired)
                .bind(id)
                .execute(&mut *w.tx)
                .await
                .map_err(db("retire session history"))?;
        }
        sqlx::query("UPDATE idempotency SET scope = $1 WHERE scope = $2")
            .bind(steer_scope(&retired))
            .bind(steer_scope(id))
            .execute(&mut *w.tx)
            .await
            .map_err(db("retire steer keys"))?;
        // The routing key goes to the new session; other claims (a create's key) keep
        // answering with the session they created.
        sqlx::query("DELETE FROM idempotency WHERE target = $1 AND scope = $2")
            .bind(id)
            .bind(format!("key:{namespace}"))
            .execute(&mut *w.tx)
            .await
            .map_err(db("release routing key"))?;
        sqlx::query("UPDATE idempotency SET target = $1 WHERE target = $2")
            .bind(&retired)
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(db("retire idempotency"))?;
        Self::revoke_client_tokens(&mut w, &retired, i64::MAX).await?;
        Self::revoke_client_tokens(&mut w, id, now_unix()).await?;
        // Revocations from before tokens named their object were meant for the old one.
        sqlx::query(
            "UPDATE runtime_revocations SET object_uid = $1 \
             WHERE namespace = $2 AND session = $3 AND object_uid = ''",
        )
        .bind(object_uid)
        .bind(namespace)
        .bind(id)
        .execute(&mut *w.tx)
        .await
        .map_err(db("retire runtime revocations"))?;
        self.notify(&mut w.tx, id, RETIRED).await?;
        w.commit().await?;
        self.hub.forget(id);
        Ok(Some(retired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_id_is_a_session_id_of_its_own() {
        let uid = "1A2b3c4d-5e6f-7081-92a3-b4c5d6e7f809";
        assert_eq!(retired_id("ses_example", uid), "ses_exampler1a2b3c4d");
        let long = format!("ses_{}", "x".repeat(MAX_BODY_LEN));
        let retired = retired_id(&long, uid);
        assert_eq!(retired.len(), "ses_".len() + MAX_BODY_LEN);
        assert!(retired.ends_with("r1a2b3c4d"));
        sealpod_resources::ids::Id::parse(&retired).expect("a valid id");
    }
}
