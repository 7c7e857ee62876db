//! The fire state of schedules and their runs. A cron fire is claimed by inserting its run: the
//! pair (schedule, scheduled time) is unique, so of every replica that sees a time due, one
//! insert takes it and only that replica enacts it. A run is `pending` from its claim until its
//! outcome is recorded; one left pending by a replica that stopped is enacted again by any
//! replica (enacting is idempotent: the session's `key` names the run).

use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::schedule::AUTO_PAUSE_AFTER_FAILURES;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, column, db, flag};

/// What a run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Claimed; not yet enacted.
    Pending,
    /// A session was started.
    Enacted,
    /// Not enacted: the previous fire's session was still running (`overlap: skip`).
    Skipped,
    /// The session could not be started (`error` says why).
    Failed,
}

impl Outcome {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Enacted => "enacted",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Option<Outcome> {
        [
            Outcome::Pending,
            Outcome::Enacted,
            Outcome::Skipped,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == value)
    }
}

/// A schedule's fire state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireState {
    /// Failed cron fires since the last that did not fail.
    pub consecutive_failures: i64,
    /// The error of the last failed fire, while failures are counted.
    pub last_error: Option<String>,
    /// When a run last fired (RFC 3339).
    pub last_fired_at: Option<String>,
    /// Paused after too many failures in a row.
    pub auto_paused: bool,
    /// The latest scheduled time claimed (Unix seconds), if any.
    pub last_scheduled: Option<i64>,
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Order of claim (the cursor of run lists).
    pub n: i64,
    /// `run_…`
    pub id: String,
    /// `sch_…`
    pub schedule: String,
    /// The time it was scheduled for (Unix seconds); None for a test fire.
    pub scheduled: Option<i64>,
    /// When it was claimed (RFC 3339).
    pub fired_at: String,
    /// What it came to.
    pub outcome: Outcome,
    /// The session it started (or found started).
    pub session_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

fn row_to_run(row: &AnyRow) -> StoreResult<RunRow> {
    let outcome: String = column(row, "outcome")?;
    Ok(RunRow {
        n: column(row, "n")?,
        id: column(row, "id")?,
        schedule: column(row, "schedule")?,
        scheduled: column(row, "scheduled_unix")?,
        fired_at: column(row, "fired_at")?,
        outcome: Outcome::parse(&outcome).ok_or(super::StoreError::Unknown {
            column: "outcome",
            value: outcome,
        })?,
        session_id: column(row, "session_id")?,
        error: column(row, "error")?,
    })
}

const RUN_COLUMNS: &str = "n, id, schedule, scheduled_unix, fired_at, outcome, session_id, error";

impl Store {
    /// A schedule's fire state (the default before its first fire).
    pub async fn fire_state(&self, schedule: &str) -> StoreResult<FireState> {
        let row = sqlx::query(
            "SELECT consecutive_failures, last_error, last_fired_at, auto_paused FROM schedules \
             WHERE id = $1",
        )
        .bind(schedule)
        .fetch_optional(self.pool())
        .await
        .map_err(db("get schedule"))?;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(scheduled_unix) FROM schedule_runs WHERE schedule = $1")
                .bind(schedule)
                .fetch_one(self.pool())
                .await
                .map_err(db("last scheduled run"))?;
        let Some(row) = row else {
            return Ok(FireState {
                last_scheduled: last,
                ..FireState::default()
            });
        };
        Ok(FireState {
            consecutive_failures: column(&row, "consecutive_failures")?,
            last_error: column(&row, "last_error")?,
            last_fired_at: column(&row, "last_fired_at")?,
            auto_paused: flag(&row, "auto_paused")?,
            last_scheduled: last,
        })
    }

    /// Claims a run of `schedule` for `scheduled` (Unix seconds; None: a test fire, always
    /// claimed). None when another claim took that time first.
    pub async fn claim_run(
        &self,
        schedule: &str,
        namespace: &str,
        scheduled: Option<i64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<RunRow>> {
        let mut w = self.begin().await?;
        sqlx::query("INSERT INTO schedules (id, namespace) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(schedule)
            .bind(namespace)
            .execute(&mut *w.tx)
            .await
            .map_err(db("insert schedule"))?;
        let id = Id::generate(IdKind::ScheduleRun).to_string();
        let fired_at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO schedule_runs (id, schedule, scheduled_unix, fired_at, fired_unix, \
             outcome) VALUES ($1, $2, $3, $4, $5, 'pending') ON CONFLICT DO NOTHING \
             RETURNING {RUN_COLUMNS}"
        )))
        .bind(&id)
        .bind(schedule)
        .bind(scheduled)
        .bind(&fired_at)
        .bind(now.timestamp())
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(db("claim run"))?;
        let run = row.as_ref().map(row_to_run).transpose()?;
        w.commit().await?;
        Ok(run)
    }

    /// Records what a pending run came to, and the schedule's state with it: a failed cron fire
    /// counts (and pauses the schedule at [`AUTO_PAUSE_AFTER_FAILURES`]), any other outcome of
    /// a cron fire resets the count; a test fire only sets `last_fired_at`. False when the run
    /// was no longer pending (another replica recorded it).
    pub async fn finish_run(
        &self,
        run: &RunRow,
        outcome: Outcome,
        session_id: Option<&str>,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let mut w = self.begin().await?;
        let done = sqlx::query(
            "UPDATE schedule_runs SET outcome = $1, session_id = $2, error = $3 \
             WHERE id = $4 AND outcome = 'pending'",
        )
        .bind(outcome.as_str())
        .bind(session_id)
        .bind(error)
        .bind(&run.id)
        .execute(&mut *w.tx)
        .await
        .map_err(db("finish run"))?
        .rows_affected()
            == 1;
        if !done {
            return Ok(false);
        }
        let state = match (run.scheduled, outcome) {
            (None, _) => sqlx::query("UPDATE schedules SET last_fired_at = $2 WHERE id = $1")
                .bind(&run.schedule)
                .bind(&run.fired_at),
            (Some(_), Outcome::Failed) => sqlx::query(
                "UPDATE schedules SET consecutive_failures = consecutive_failures + 1, \
                 last_error = $2, last_fired_at = $3, auto_paused = CASE \
                 WHEN consecutive_failures + 1 >= $4 THEN 1 ELSE auto_paused END WHERE id = $1",
            )
            .bind(&run.schedule)
            .bind(error.unwrap_or_default())
            .bind(&run.fired_at)
            .bind(i64::from(AUTO_PAUSE_AFTER_FAILURES)),
            (Some(_), _) => sqlx::query(
                "UPDATE schedules SET consecutive_failures = 0, last_error = NULL, \
                 last_fired_at = $2 WHERE id = $1",
            )
            .bind(&run.schedule)
            .bind(&run.fired_at),
        };
        state
            .execute(&mut *w.tx)
            .await
            .map_err(db("record schedule state"))?;
        w.commit().await?;
        Ok(true)
    }

    /// Clears an automatic pause and the failure count (the owner paused or resumed the schedule).
    pub async fn clear_auto_pause(&self, schedule: &str) -> StoreResult<()> {
        let mut w = self.begin().await?;
        sqlx::query(
            "UPDATE schedules SET auto_paused = 0, consecutive_failures = 0, last_error = NULL \
             WHERE id = $1",
        )
        .bind(schedule)
        .execute(&mut *w.tx)
        .await
        .map_err(db("clear auto pause"))?;
        w.commit().await
    }

    /// Runs of `schedule`, newest first, claimed before the run numbered `below` (None: from
    /// the newest), at most `limit`.
    pub async fn list_runs(
        &self,
        schedule: &str,
        below: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<RunRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE schedule = $1 AND n < $2 \
             ORDER BY n DESC LIMIT $3"
        )))
        .bind(schedule)
        .bind(below.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(db("list runs"))?;
        rows.iter().map(row_to_run).collect()
    }

    /// The session of the schedule's latest run that started or found one.
    pub async fn last_enacted_session(&self, schedule: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT session_id FROM schedule_runs WHERE schedule = $1 AND outcome = 'enacted' \
             ORDER BY n DESC LIMIT 1",
        )
        .bind(schedule)
        .fetch_optional(self.pool())
        .await
        .map_err(db("last enacted run"))
        .map(Option::flatten)
    }

    /// Runs still pending that were claimed at or before `claimed_before` (Unix seconds): their
    /// replica stopped before recording an outcome.
    pub async fn stale_runs(&self, claimed_before: i64) -> StoreResult<Vec<RunRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE outcome = 'pending' \
             AND fired_unix <= $1 ORDER BY n LIMIT 100"
        )))
        .bind(claimed_before)
        .fetch_all(self.pool())
        .await
        .map_err(db("stale runs"))?;
        rows.iter().map(row_to_run).collect()
    }

    /// Forgets a deleted schedule: its state, its runs and its name.
    pub async fn forget_schedule(&self, schedule: &str) -> StoreResult<()> {
        let mut w = self.begin().await?;
        for sql in [
            "DELETE FROM schedule_runs WHERE schedule = $1",
            "DELETE FROM schedules WHERE id = $1",
            "DELETE FROM schedule_names WHERE schedule = $1",
        ] {
            sqlx::query(sql)
                .bind(schedule)
                .execute(&mut *w.tx)
                .await
                .map_err(db("forget schedule"))?;
        }
        w.commit().await
    }
}
