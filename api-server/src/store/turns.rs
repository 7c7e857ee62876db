//! Turns in the store: the runtime's claim of pending input (which starts a turn and appends
//! `turn.started`), its event appends (idempotent by `client_id`), turn completion (which appends
//! `turn.completed` and moves the session to its next status), cancel signals and the turn
//! reads of `/v3`. Every step is one transaction under the session row lock.

use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::runtime_api::{
    Actor, ClaimedTurn, CompleteTurnRequest, Level, NewEvent, TurnError, Usage, YieldReason,
};
use sealpod_resources::session::Phase;
use serde_json::{Value, json};
use sqlx::any::AnyRow;

use crate::wire::{TurnState, TurnSummary};

use super::events::row_to_event;
use super::{
    Draft, SessionRow, Store, StoreResult, StoredEvent, column, db, flag, json_column, json_text,
    now_rfc3339,
};

/// A turn as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRow {
    /// `trn_…`
    pub id: String,
    /// `ses_…`
    pub session: String,
    /// 1-based turn number.
    pub number: i64,
    /// Where it stands.
    pub state: TurnState,
    /// Attempts so far.
    pub attempt: i64,
    /// First input seq.
    pub input_from: i64,
    /// Last input seq.
    pub input_to: i64,
    /// Why it ended.
    pub yield_reason: Option<String>,
    /// Result event.
    pub result_event_id: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<TurnError>,
    /// Usage of the turn, once completed.
    pub usage: Option<Usage>,
    /// Cancel requested.
    pub cancel: bool,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub completed_at: Option<String>,
    /// When `limits.turn_seconds` runs out (Unix milliseconds), if the session has the limit.
    pub deadline_ms: Option<i64>,
}

const TURN_COLUMNS: &str = "id, session, number, state, attempt, input_from, input_to, \
    yield_reason, result_event_id, error, usage, cancel, started_at, completed_at, deadline_ms";

fn row_to_turn(row: &AnyRow) -> StoreResult<TurnRow> {
    Ok(TurnRow {
        id: column(row, "id")?,
        session: column(row, "session")?,
        number: column(row, "number")?,
        state: {
            let value: String = column(row, "state")?;
            TurnState::from_wire(&value).ok_or(super::StoreError::Unknown {
                column: "turns.state",
                value,
            })?
        },
        attempt: column(row, "attempt")?,
        input_from: column(row, "input_from")?,
        input_to: column(row, "input_to")?,
        yield_reason: column(row, "yield_reason")?,
        result_event_id: column(row, "result_event_id")?,
        error: json_column(row, "error")?,
        usage: json_column(row, "usage")?,
        cancel: flag(row, "cancel")?,
        started_at: column(row, "started_at")?,
        completed_at: column(row, "completed_at")?,
        deadline_ms: column(row, "deadline_ms")?,
    })
}

impl TurnRow {
    /// `last_turn` of a session.
    pub fn summary(&self) -> TurnSummary {
        TurnSummary {
            id: self.id.clone(),
            state: self.state,
            yield_reason: self.yield_reason.clone(),
            result_event_id: self.result_event_id.clone(),
        }
    }
}

/// Why a runtime append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The events' turn was cancelled: the runtime must complete it with `canceled`.
    #[error("turn {0} was canceled")]
    TurnCanceled(String),
    /// The session is archived.
    #[error("the session is archived")]
    Archived,
    /// The session does not exist.
    #[error("session not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

fn system_draft(type_: &str, level: Level, body: Value, turn: &str) -> Draft {
    Draft {
        type_: type_.to_owned(),
        level,
        actor: Actor::system(),
        body,
        refs: json!({}),
        turn_id: Some(turn.to_owned()),
        client_id: None,
    }
}

impl Store {
    async fn turn_in(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        session: &str,
        id: &str,
    ) -> StoreResult<Option<TurnRow>> {
        let sql = format!("SELECT {TURN_COLUMNS} FROM turns WHERE id = $1 AND session = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(session)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("get turn"))?;
        row.as_ref().map(row_to_turn).transpose()
    }

    /// Claims the next turn's input: a running turn again (attempt + 1), or a new turn over all
    /// pending `user.message`s. `None` when there is nothing to run.
    pub async fn claim(&self, namespace: &str, session: &str) -> StoreResult<Option<ClaimedTurn>> {
        let mut w = self.begin().await?;
        let Some(mut row) = self.lock_session(&mut w, namespace, session).await? else {
            return Ok(None);
        };
        if row.status == Phase::Archived {
            return Ok(None);
        }
        let running = match &row.last_turn {
            Some(last) if last.state == TurnState::Running => {
                Self::turn_in(&mut w.tx, session, &last.id).await?
            }
            _ => None,
        };
        let mut turn = match running {
            Some(mut turn) => {
                turn.attempt += 1;
                sqlx::query("UPDATE turns SET attempt = $2 WHERE id = $1")
                    .bind(&turn.id)
                    .bind(turn.attempt)
                    .execute(&mut *w.tx)
                    .await
                    .map_err(db("bump attempt"))?;
                turn
            }
            None => {
                let pending = sqlx::query(
                    "SELECT seq FROM events WHERE session = $1 AND seq > $2 \
                     AND type = 'user.message' ORDER BY seq",
                )
                .bind(session)
                .bind(row.input_cursor)
                .fetch_all(&mut *w.tx)
                .await
                .map_err(db("pending input"))?;
                let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
                    return Ok(None);
                };
                let turn = TurnRow {
                    id: Id::generate(IdKind::Turn).to_string(),
                    session: session.to_owned(),
                    number: row.turns_started + 1,
                    state: TurnState::Running,
                    attempt: 1,
                    input_from: column(first, "seq")?,
                    input_to: column(last, "seq")?,
                    yield_reason: None,
                    result_event_id: None,
                    error: None,
                    usage: None,
                    cancel: false,
                    started_at: now_rfc3339(),
                    completed_at: None,
                    deadline_ms: row
                        .limits
                        .turn_seconds
                        .map(|s| chrono::Utc::now().timestamp_millis() + i64::from(s) * 1000),
                };
                sqlx::query(
                    "INSERT INTO turns (id, session, number, state, attempt, input_from, input_to, \
                     cancel, started_at, deadline_ms) \
                     VALUES ($1, $2, $3, 'running', 1, $4, $5, 0, $6, $7)",
                )
                .bind(&turn.id)
                .bind(session)
                .bind(turn.number)
                .bind(turn.input_from)
                .bind(turn.input_to)
                .bind(&turn.started_at)
                .bind(turn.deadline_ms)
                .execute(&mut *w.tx)
                .await
                .map_err(db("insert turn"))?;
                row.turns_started += 1;
                row.input_cursor = turn.input_to;
                turn
            }
        };
        let started = system_draft(
            "turn.started",
            Level::Progress,
            json!({"turn_id": turn.id, "input_from_seq": turn.input_from,
                   "input_to_seq": turn.input_to, "attempt": turn.attempt}),
            &turn.id,
        );
        let events = self
            .append_in(&mut w.tx, session, row.head, vec![started])
            .await?;
        row.head += 1;
        row.status = Phase::Running;
        turn.state = TurnState::Running;
        row.last_turn = Some(turn.summary());
        Self::save_session(&mut w, &row).await?;
        let inputs = sqlx::query(
            "SELECT session, seq, id, type, level, turn_id, client_id, data FROM events \
             WHERE session = $1 AND seq >= $2 AND seq <= $3 AND type = 'user.message' ORDER BY seq",
        )
        .bind(session)
        .bind(turn.input_from)
        .bind(turn.input_to)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(db("turn inputs"))?;
        let inputs = inputs
            .iter()
            .map(|r| row_to_event(r)?.to_event())
            .collect::<StoreResult<Vec<_>>>()?;
        self.notify(&mut w.tx, session, &row.head.to_string())
            .await?;
        w.commit().await?;
        self.hub.publish(session, &events);
        Ok(Some(ClaimedTurn {
            turn_id: turn.id,
            attempt: u32::try_from(turn.attempt).unwrap_or(u32::MAX),
            number: u32::try_from(turn.number).unwrap_or(u32::MAX),
            input_from_seq: turn.input_from,
            input_to_seq: turn.input_to,
            inputs,
        }))
    }

    /// Appends the runtime's events, idempotent by `client_id`; refuses events of a cancelled
    /// turn. Returns one stored event per request event, in order.
    pub async fn append_runtime(
        &self,
        namespace: &str,
        session: &str,
        events: Vec<(NewEvent, Actor)>,
    ) -> Result<Vec<StoredEvent>, AppendError> {
        let mut w = self.begin().await?;
        let Some(mut row) = self.lock_session(&mut w, namespace, session).await? else {
            return Err(AppendError::NotFound);
        };
        if row.status == Phase::Archived {
            return Err(AppendError::Archived);
        }
        enum Slot {
            Stored(StoredEvent),
            New(usize),
        }
        let mut turns_checked: Vec<String> = Vec::new();
        let mut slots: Vec<Slot> = Vec::with_capacity(events.len());
        let mut new_ids: Vec<String> = Vec::new();
        let mut drafts = Vec::new();
        for (event, actor) in events {
            let existing = sqlx::query(
                "SELECT session, seq, id, type, level, turn_id, client_id, data FROM events \
                 WHERE session = $1 AND client_id = $2",
            )
            .bind(session)
            .bind(&event.client_id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(|e| AppendError::Store(db("find client id")(e)))?;
            if let Some(existing) = existing {
                slots.push(Slot::Stored(row_to_event(&existing)?));
                continue;
            }
            // A client id repeated within the batch answers with its first occurrence.
            if let Some(pos) = new_ids.iter().position(|c| *c == event.client_id) {
                slots.push(Slot::New(pos));
                continue;
            }
            if let Some(turn) = &event.turn_id
                && !turns_checked.contains(turn)
            {
                if let Some(t) = Self::turn_in(&mut w.tx, session, turn).await?
                    && t.cancel
                    && t.state == TurnState::Running
                {
                    return Err(AppendError::TurnCanceled(turn.clone()));
                }
                turns_checked.push(turn.clone());
            }
            new_ids.push(event.client_id.clone());
            slots.push(Slot::New(drafts.len()));
            drafts.push(Draft {
                type_: event.type_,
                level: event.level,
                actor,
                body: event.body,
                refs: event.refs.unwrap_or_else(|| json!({})),
                turn_id: event.turn_id,
                client_id: Some(event.client_id),
            });
        }
        let n = drafts.len() as i64;
        let appended = self.append_in(&mut w.tx, session, row.head, drafts).await?;
        if n > 0 {
            row.head += n;
            Self::save_session(&mut w, &row).await?;
            self.notify(&mut w.tx, session, &row.head.to_string())
                .await?;
        }
        w.commit().await?;
        self.hub.publish(session, &appended);
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Stored(e) => e,
                Slot::New(i) => appended[i].clone(),
            })
            .collect())
    }

    /// Completes a turn (idempotent): appends `turn.completed`, records usage and moves the
    /// session on. `None` when the turn is unknown.
    pub async fn complete_turn(
        &self,
        namespace: &str,
        session: &str,
        turn_id: &str,
        req: &CompleteTurnRequest,
    ) -> StoreResult<Option<TurnRow>> {
        let mut w = self.begin().await?;
        let Some(mut row) = self.lock_session(&mut w, namespace, session).await? else {
            return Ok(None);
        };
        let Some(mut turn) = Self::turn_in(&mut w.tx, session, turn_id).await? else {
            return Ok(None);
        };
        if turn.state != TurnState::Running {
            return Ok(Some(turn));
        }
        let reason = req.yield_reason.as_str();
        let completed = system_draft(
            "turn.completed",
            Level::User,
            json!({"turn_id": turn.id, "yield_reason": reason,
                   "result_event_id": req.result_event_id, "usage": req.usage}),
            &turn.id,
        );
        let events = self
            .append_in(&mut w.tx, session, row.head, vec![completed])
            .await?;
        row.head += 1;
        turn.state = if req.yield_reason == YieldReason::Error {
            TurnState::Error
        } else {
            TurnState::Ok
        };
        turn.yield_reason = Some(reason.to_owned());
        turn.result_event_id = req.result_event_id.clone();
        turn.error = req.error.clone();
        turn.usage = Some(req.usage);
        turn.completed_at = Some(now_rfc3339());
        sqlx::query(
            "UPDATE turns SET state = $2, yield_reason = $3, result_event_id = $4, error = $5, \
             usage = $6, completed_at = $7 WHERE id = $1",
        )
        .bind(&turn.id)
        .bind(turn.state.as_str())
        .bind(reason)
        .bind(turn.result_event_id.clone())
        .bind(json_text("turn error", &turn.error)?)
        .bind(json_text("turn usage", &turn.usage)?)
        .bind(turn.completed_at.clone())
        .execute(&mut *w.tx)
        .await
        .map_err(db("complete turn"))?;
        // No usage yet is zero usage: no turn has completed before this one.
        row.usage = Some(row.usage.unwrap_or_default().add(&req.usage));
        row.last_turn = Some(turn.summary());
        if row.status != Phase::Archived {
            let pending = sqlx::query(
                "SELECT seq FROM events WHERE session = $1 AND seq > $2 \
                 AND type = 'user.message' LIMIT 1",
            )
            .bind(session)
            .bind(row.input_cursor)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db("pending input"))?;
            row.status = if pending.is_some() {
                Phase::Queued
            } else {
                match req.yield_reason {
                    YieldReason::NeedsInput => Phase::AwaitingInput,
                    YieldReason::Error => Phase::Failed,
                    _ => Phase::Idle,
                }
            };
        }
        Self::save_session(&mut w, &row).await?;
        self.notify(&mut w.tx, session, &row.head.to_string())
            .await?;
        w.commit().await?;
        self.hub.publish(session, &events);
        Ok(Some(turn))
    }

    /// One turn.
    pub async fn get_turn(&self, session: &str, id: &str) -> StoreResult<Option<TurnRow>> {
        let sql = format!("SELECT {TURN_COLUMNS} FROM turns WHERE id = $1 AND session = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(session)
            .fetch_optional(self.pool())
            .await
            .map_err(db("get turn"))?;
        row.as_ref().map(row_to_turn).transpose()
    }

    /// Turns newest first, below turn number `below` (cursor), at most `limit`.
    pub async fn list_turns(
        &self,
        session: &str,
        below: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<TurnRow>> {
        let sql = format!(
            "SELECT {TURN_COLUMNS} FROM turns WHERE session = $1 AND number < $2 \
             ORDER BY number DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session)
            .bind(below.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db("list turns"))?;
        rows.iter().map(row_to_turn).collect()
    }

    /// True when the turn was cancelled and is still running.
    pub async fn turn_cancelled(&self, session: &str, id: &str) -> StoreResult<bool> {
        Ok(self
            .get_turn(session, id)
            .await?
            .is_some_and(|t| t.cancel && t.state == TurnState::Running))
    }

    /// Running turns whose `turn_seconds` ran out before `now_ms`: `(namespace, session, turn)`.
    pub async fn overdue_turns(&self, now_ms: i64) -> StoreResult<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT s.namespace, t.session, t.id FROM turns t JOIN sessions s ON s.id = t.session \
             WHERE t.state = 'running' AND t.deadline_ms < $1",
        )
        .bind(now_ms)
        .fetch_all(self.pool())
        .await
        .map_err(db("overdue turns"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    column(r, "namespace")?,
                    column(r, "session")?,
                    column(r, "id")?,
                ))
            })
            .collect()
    }

    /// The session row as the runtime API sees it (no namespace check beyond the token's).
    pub async fn runtime_session(
        &self,
        namespace: &str,
        session: &str,
    ) -> StoreResult<Option<SessionRow>> {
        self.get_session(namespace, session).await
    }
}
