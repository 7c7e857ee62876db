//! Claims on schedule names: a name is unique among an agent's schedules. The API's create
//! claims the name (one insert: of two creates of one name, one takes it) before it creates the
//! Schedule object; forgetting the schedule ([`Store::forget_schedule`]: deleted, or not
//! created after all) releases it. A claim
//! whose schedule is gone without its release (deleted with kubectl while no API server
//! watched) is taken over once it is [`STALE_AFTER_SECONDS`] old: by then a create that made it
//! has long created its object or released the claim.

use super::{Store, StoreResult, column, db, now_unix};

/// Age after which a claim whose schedule does not exist may be taken over.
pub const STALE_AFTER_SECONDS: i64 = 60;

/// Where a name is claimed: `(namespace, agent object name, schedule name)`.
#[derive(Debug, Clone, Copy)]
pub struct NameScope<'a> {
    /// The tenant.
    pub namespace: &'a str,
    /// The agent's object name.
    pub agent: &'a str,
    /// The schedule's name.
    pub name: &'a str,
}

impl Store {
    /// Claims `scope`'s name for schedule `schedule`. False when another schedule holds it: one
    /// in `live` (the ids of the agent's schedules that exist), or one whose claim is younger
    /// than [`STALE_AFTER_SECONDS`] (its create may still be under way).
    pub async fn claim_schedule_name(
        &self,
        scope: NameScope<'_>,
        schedule: &str,
        live: &[String],
    ) -> StoreResult<bool> {
        let mut w = self.begin().await?;
        let now = now_unix();
        let inserted = sqlx::query(
            "INSERT INTO schedule_names (namespace, agent, name, schedule, claimed_unix) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, agent, name) DO NOTHING",
        )
        .bind(scope.namespace)
        .bind(scope.agent)
        .bind(scope.name)
        .bind(schedule)
        .bind(now)
        .execute(&mut *w.tx)
        .await
        .map_err(db("claim schedule name"))?;
        if inserted.rows_affected() == 1 {
            w.commit().await?;
            return Ok(true);
        }
        let held = sqlx::query(
            "SELECT schedule, claimed_unix FROM schedule_names \
             WHERE namespace = $1 AND agent = $2 AND name = $3",
        )
        .bind(scope.namespace)
        .bind(scope.agent)
        .bind(scope.name)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(db("read schedule name"))?;
        let holder: String = column(&held, "schedule")?;
        let claimed: i64 = column(&held, "claimed_unix")?;
        if live.contains(&holder) || claimed > now - STALE_AFTER_SECONDS {
            return Ok(false);
        }
        let taken = sqlx::query(
            "UPDATE schedule_names SET schedule = $1, claimed_unix = $2 \
             WHERE namespace = $3 AND agent = $4 AND name = $5 AND schedule = $6",
        )
        .bind(schedule)
        .bind(now)
        .bind(scope.namespace)
        .bind(scope.agent)
        .bind(scope.name)
        .bind(&holder)
        .execute(&mut *w.tx)
        .await
        .map_err(db("take over schedule name"))?;
        w.commit().await?;
        Ok(taken.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hub::Hub;

    #[tokio::test]
    async fn a_held_name_is_refused_until_its_schedule_is_gone_and_its_claim_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, Hub::new()).await.expect("store");
        let scope = NameScope {
            namespace: "tenant-a",
            agent: "agt-a",
            name: "nightly",
        };
        assert!(
            store
                .claim_schedule_name(scope, "sch_one", &[])
                .await
                .expect("claim")
        );
        // Young: its create may still be under way.
        assert!(
            !store
                .claim_schedule_name(scope, "sch_two", &[])
                .await
                .expect("claim")
        );
        sqlx::query("UPDATE schedule_names SET claimed_unix = claimed_unix - $1")
            .bind(STALE_AFTER_SECONDS + 1)
            .execute(store.pool())
            .await
            .expect("age the claim");
        // Old, but its schedule exists.
        let live = ["sch_one".to_owned()];
        assert!(
            !store
                .claim_schedule_name(scope, "sch_two", &live)
                .await
                .expect("claim")
        );
        // Old, and its schedule is gone: taken over.
        assert!(
            store
                .claim_schedule_name(scope, "sch_two", &[])
                .await
                .expect("claim")
        );
        assert!(
            !store
                .claim_schedule_name(scope, "sch_three", &[])
                .await
                .expect("claim")
        );
        // Forgetting the schedule frees the name.
        store.forget_schedule("sch_two").await.expect("forget");
        assert!(
            store
                .claim_schedule_name(scope, "sch_three", &[])
                .await
                .expect("claim")
        );
    }
}
