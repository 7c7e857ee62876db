//! The event log: appending drafts inside a locked session row (gap-free `seq`), and reading pages
//! by cursor and filters. Appends are serialized to the wire JSON once, here; the SSE hub shares
//! those bytes. Never append outside a transaction that locked the session row.

use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::runtime_api::{Actor, Event, Level};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::Any;
use sqlx::Transaction;
use sqlx::any::AnyRow;

use super::large_body::spill;
use super::{Store, StoreError, StoreResult, column, db, now_rfc3339, parse_json};

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Event type.
    pub type_: String,
    /// Level.
    pub level: Level,
    /// Producer.
    pub actor: Actor,
    /// Body.
    pub body: Value,
    /// Refs (an object).
    pub refs: Value,
    /// Producing turn.
    pub turn_id: Option<String>,
    /// Idempotency key of the runtime (per session).
    pub client_id: Option<String>,
}

/// A committed event: its filter columns and its wire JSON.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Session id.
    pub session: String,
    /// Seq.
    pub seq: i64,
    /// `evt_…`
    pub id: String,
    /// Type.
    pub type_: String,
    /// Level.
    pub level: Level,
    /// Producing turn.
    pub turn_id: Option<String>,
    /// The runtime's idempotency key.
    pub client_id: Option<String>,
    /// The wire JSON of the event.
    pub data: String,
}

impl StoredEvent {
    /// The event's JSON as stored (checked, not re-encoded).
    pub fn to_raw(&self) -> StoreResult<Box<RawValue>> {
        RawValue::from_string(self.data.clone()).map_err(|source| StoreError::Corrupt {
            what: "event",
            source,
        })
    }

    /// The event as the typed envelope.
    pub fn to_event(&self) -> StoreResult<Event> {
        serde_json::from_str(&self.data).map_err(|source| StoreError::Corrupt {
            what: "event",
            source,
        })
    }
}

/// Where an event's whole body is served, relative to the `/v3` base (`content_ref`).
pub(crate) fn content_ref(session: &str, event: &str) -> String {
    format!("/sessions/{session}/events/{event}/content")
}

/// Read filters of a page or a stream.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Cumulative level threshold.
    pub level: Option<Level>,
    /// Exact type, or a `prefix.*` pattern.
    pub type_: Option<String>,
    /// Only this turn's events.
    pub turn_id: Option<String>,
    /// Only `*.message` events (the messages alias).
    pub messages_only: bool,
}

impl EventFilter {
    /// True when an event passes (same rules as the SQL below).
    pub fn matches(&self, level: Level, type_: &str, turn_id: Option<&str>) -> bool {
        if let Some(threshold) = self.level
            && !level.passes(threshold)
        {
            return false;
        }
        if let Some(pattern) = &self.type_ {
            let ok = match pattern.strip_suffix('*') {
                Some(prefix) => type_.starts_with(prefix),
                None => type_ == pattern,
            };
            if !ok {
                return false;
            }
        }
        if let Some(turn) = &self.turn_id
            && turn_id != Some(turn.as_str())
        {
            return false;
        }
        !self.messages_only || type_.ends_with(".message")
    }
}

/// The stored code of a level (events and webhook destinations).
pub(crate) fn level_code(level: Level) -> i64 {
    match level {
        Level::User => 0,
        Level::Progress => 1,
        Level::Internal => 2,
    }
}

/// A level column, read back from its code.
pub(crate) fn level_column(row: &AnyRow, name: &'static str) -> StoreResult<Level> {
    match column::<i64>(row, name)? {
        0 => Ok(Level::User),
        1 => Ok(Level::Progress),
        2 => Ok(Level::Internal),
        code => Err(StoreError::Unknown {
            column: name,
            value: code.to_string(),
        }),
    }
}

pub(crate) fn row_to_event(row: &AnyRow) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        session: column(row, "session")?,
        seq: column(row, "seq")?,
        id: column(row, "id")?,
        type_: column(row, "type")?,
        level: level_column(row, "level")?,
        turn_id: column(row, "turn_id")?,
        client_id: column(row, "client_id")?,
        data: column(row, "data")?,
    })
}

/// The wire JSON of an event.
fn event_json(event: &Event) -> StoreResult<String> {
    serde_json::to_string(event).map_err(|source| StoreError::Corrupt {
        what: "event",
        source,
    })
}

const EVENT_COLUMNS: &str = "session, seq, id, type, level, turn_id, client_id, data";

impl Store {
    /// Appends drafts after `head` inside `tx` (whose caller locked the session row and will
    /// store the new head). A body over the limit is stored whole beside its event, which carries
    /// a truncated copy (`large_body`). Returns the stored events, in order.
    pub(crate) async fn append_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        session: &str,
        head: i64,
        drafts: Vec<Draft>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(drafts.len());
        let ts = now_rfc3339();
        for (i, draft) in drafts.into_iter().enumerate() {
            let seq = head + 1 + i as i64;
            let id = Id::generate(IdKind::Event).to_string();
            let mut event = Event {
                id: id.clone(),
                seq,
                ts: ts.clone(),
                session: session.to_owned(),
                actor: draft.actor,
                type_: draft.type_.clone(),
                level: draft.level,
                body: draft.body,
                refs: draft.refs,
                turn_id: draft.turn_id.clone(),
                content_ref: None,
                body_truncated: false,
                body_bytes: None,
            };
            let mut data = event_json(&event)?;
            // An event within the limit has a body within it: serialized once (the usual case).
            let mut whole = None;
            if data.len() > self.event_body_limit
                && let Some(spilled) = spill(&event.body, self.event_body_limit)
            {
                event.body = spilled.inline;
                event.content_ref = Some(content_ref(session, &id));
                event.body_truncated = true;
                event.body_bytes = Some(spilled.whole.len() as i64);
                data = event_json(&event)?;
                whole = Some(spilled.whole);
            }
            sqlx::query(
                "INSERT INTO events (session, seq, id, type, level, turn_id, client_id, data, \
                 content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(session)
            .bind(seq)
            .bind(&id)
            .bind(&draft.type_)
            .bind(level_code(draft.level))
            .bind(draft.turn_id.clone())
            .bind(draft.client_id.clone())
            .bind(&data)
            .bind(whole)
            .execute(&mut **tx)
            .await
            .map_err(db("insert event"))?;
            out.push(StoredEvent {
                session: session.to_owned(),
                seq,
                id,
                type_: draft.type_,
                level: draft.level,
                turn_id: draft.turn_id,
                client_id: draft.client_id,
                data,
            });
        }
        // Webhook deliveries of these events, in this transaction: an acknowledged event has them.
        crate::store::outbox::enqueue_in(tx, session, &out).await?;
        Ok(out)
    }

    /// The whole body of an event (JSON): the one stored beside it when its body was truncated,
    /// else its body. None when the session has no such event.
    pub async fn event_content(&self, session: &str, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT data, content FROM events WHERE session = $1 AND id = $2")
            .bind(session)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db("get event content"))?;
        let Some(row) = row else { return Ok(None) };
        if let Some(content) = column::<Option<String>>(&row, "content")? {
            return Ok(Some(content));
        }
        let event: Event = parse_json("event", &column::<String>(&row, "data")?)?;
        Ok(Some(event.body.to_string()))
    }

    /// A page of events with `seq > after` passing `filter`, oldest first, at most `limit`.
    pub async fn list_events(
        &self,
        session: &str,
        after: i64,
        filter: &EventFilter,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE session = $1 AND seq > $2");
        let mut n = 2;
        let mut binds: Vec<BindValue> = Vec::new();
        if let Some(level) = filter.level {
            n += 1;
            sql.push_str(&format!(" AND level <= ${n}"));
            binds.push(BindValue::Int(level_code(level)));
        }
        if let Some(pattern) = &filter.type_ {
            n += 1;
            match pattern.strip_suffix('*') {
                Some(prefix) => {
                    sql.push_str(&format!(" AND substr(type, 1, {}) = ${n}", prefix.len()));
                    binds.push(BindValue::Text(prefix.to_owned()));
                }
                None => {
                    sql.push_str(&format!(" AND type = ${n}"));
                    binds.push(BindValue::Text(pattern.clone()));
                }
            }
        }
        if let Some(turn) = &filter.turn_id {
            n += 1;
            sql.push_str(&format!(" AND turn_id = ${n}"));
            binds.push(BindValue::Text(turn.clone()));
        }
        if filter.messages_only {
            sql.push_str(" AND type LIKE '%.message'");
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY seq LIMIT ${n}"));
        // Only `$N` placeholders and fixed text are interpolated above; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(session.to_owned())
            .bind(after);
        for b in binds {
            query = match b {
                BindValue::Int(i) => query.bind(i),
                BindValue::Text(t) => query.bind(t),
            };
        }
        let rows = query
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db("list events"))?;
        rows.iter().map(row_to_event).collect()
    }

    /// Events with `from < seq <= to`, unfiltered (the hub's gap fill).
    pub async fn events_between(
        &self,
        session: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT session, seq, id, type, level, turn_id, client_id, data FROM events \
             WHERE session = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(session)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await
        .map_err(db("events between"))?;
        rows.iter().map(row_to_event).collect()
    }

    /// One event by id.
    pub async fn get_event(&self, session: &str, id: &str) -> StoreResult<Option<StoredEvent>> {
        let row = sqlx::query(
            "SELECT session, seq, id, type, level, turn_id, client_id, data FROM events \
             WHERE session = $1 AND id = $2",
        )
        .bind(session)
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(db("get event"))?;
        row.as_ref().map(row_to_event).transpose()
    }

    /// Another replica changed a session: pull its new events into the local hub, wake the
    /// session's control waiters, or drop the tail of a retired one.
    pub async fn remote_change(&self, session: &str, what: &str) {
        if what == "ctl" {
            self.hub.signal(session);
            return;
        }
        if what == super::incarnations::RETIRED {
            self.hub.forget(session);
            return;
        }
        let Ok(seq) = what.parse::<i64>() else { return };
        let Some(from) = self.hub.wants(session, seq) else {
            return;
        };
        match self.events_between(session, from, seq).await {
            Ok(events) => self.hub.publish(session, &events),
            Err(e) => tracing::warn!(error = %e, session, "cannot read remote events"),
        }
    }
}

enum BindValue {
    Int(i64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_the_sql() {
        let f = EventFilter {
            level: Some(Level::Progress),
            type_: Some("turn.*".into()),
            turn_id: None,
            messages_only: false,
        };
        assert!(f.matches(Level::Progress, "turn.started", None));
        assert!(f.matches(Level::User, "turn.completed", None));
        assert!(!f.matches(Level::Internal, "turn.started", None));
        assert!(!f.matches(Level::User, "agent.message", None));
        let exact = EventFilter {
            type_: Some("agent.message".into()),
            turn_id: Some("trn_a".into()),
            ..EventFilter::default()
        };
        assert!(exact.matches(Level::Internal, "agent.message", Some("trn_a")));
        assert!(!exact.matches(Level::Internal, "agent.message", Some("trn_b")));
        assert!(!exact.matches(Level::Internal, "agent.messages", Some("trn_a")));
        let messages = EventFilter {
            messages_only: true,
            ..EventFilter::default()
        };
        assert!(messages.matches(Level::User, "user.message", None));
        assert!(!messages.matches(Level::User, "turn.completed", None));
    }
}
