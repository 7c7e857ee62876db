//! Wire types of the runtime API (the API server's second listener, default port 8081), shared
//! by the API server, the in-sandbox runtime and the sidecar's egress-event sink. The contract
//! is documented in `docs/runtime-api.md`; these types are its single definition.
//!
//! Also the `/v3` event envelope ([`Event`]), which the runtime reads as turn input and the API
//! server serves to apps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::Limits;

/// Path prefix of the runtime API.
pub const PREFIX: &str = "/runtime/v1";
/// Default port of the runtime API listener.
pub const DEFAULT_PORT: u16 = 8081;
/// Longest long-poll a caller may ask for.
pub const MAX_WAIT_SECONDS: u32 = 60;
/// Most events one append may carry.
pub const MAX_APPEND_BATCH: usize = 500;

/// Visibility level of an event. Filtering is cumulative: `user` ⊂ `progress` ⊂ `internal`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Answers, results, questions.
    User,
    /// Plain-language work updates.
    Progress,
    /// Tool calls and runtime detail.
    Internal,
}

impl Level {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::User => "user",
            Level::Progress => "progress",
            Level::Internal => "internal",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "user" => Some(Level::User),
            "progress" => Some(Level::Progress),
            "internal" => Some(Level::Internal),
            _ => None,
        }
    }

    /// True when an event at `self` passes a reader's `threshold` (cumulative filtering).
    pub fn passes(self, threshold: Level) -> bool {
        self <= threshold
    }
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum YieldReason {
    /// Finished normally.
    Completed,
    /// The agent asked a question (the `ask` tool).
    NeedsInput,
    /// The turn failed.
    Error,
    /// The `tokens` limit tripped.
    BudgetExceeded,
    /// The `turn_seconds` limit tripped.
    DeadlineExceeded,
    /// The `turns` limit tripped.
    MaxTurns,
    /// Cancelled through the API.
    Canceled,
}

impl YieldReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            YieldReason::Completed => "completed",
            YieldReason::NeedsInput => "needs_input",
            YieldReason::Error => "error",
            YieldReason::BudgetExceeded => "budget_exceeded",
            YieldReason::DeadlineExceeded => "deadline_exceeded",
            YieldReason::MaxTurns => "max_turns",
            YieldReason::Canceled => "canceled",
        }
    }
}

/// Who produced an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `agent`, `system`, or the sender's id.
    pub id: String,
    /// `human`, `agent` or `system`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Actor {
    /// The agent actor.
    pub fn agent() -> Actor {
        Actor {
            id: "agent".into(),
            type_: "agent".into(),
            display: None,
        }
    }

    /// The system actor (turn boundaries, egress events).
    pub fn system() -> Actor {
        Actor {
            id: "system".into(),
            type_: "system".into(),
            display: None,
        }
    }
}

/// The `/v3` event envelope, exactly as served on pages, SSE frames and webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_…`
    pub id: String,
    /// Monotonic, gap-free per session; the resume cursor.
    pub seq: i64,
    /// RFC 3339 time of the append.
    pub ts: String,
    /// `ses_…`
    pub session: String,
    /// Who produced it.
    pub actor: Actor,
    /// `user.message`, `agent.message`, `turn.started`, ….
    #[serde(rename = "type")]
    pub type_: String,
    /// Visibility level.
    pub level: Level,
    /// Type-specific body (snake_case keys).
    pub body: Value,
    /// Routing and threading anchors (always an object).
    pub refs: Value,
    /// The turn that produced the event.
    #[serde(default)]
    pub turn_id: Option<String>,
    /// Reference to spilled content, when the body was truncated.
    #[serde(default)]
    pub content_ref: Option<String>,
    /// True when `body` was truncated.
    #[serde(default)]
    pub body_truncated: bool,
    /// Size of the full body when truncated.
    #[serde(default)]
    pub body_bytes: Option<i64>,
}

/// `GET /runtime/v1/session`: what the runtime needs to run its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// `ses_…`
    pub id: String,
    /// The session's namespace.
    pub namespace: String,
    /// The `/v3` status (`queued`, `running`, …).
    pub status: String,
    /// Highest seq.
    pub head: i64,
    /// `provider/model` of the pinned agent.
    pub model: String,
    /// The runtime of the pinned agent.
    pub runtime: String,
    /// The pinned prompt.
    pub prompt: String,
    /// Effective limits (session over agent).
    pub limits: Limits,
    /// Usage summed over every completed turn.
    pub usage: Usage,
    /// Turns started so far (all attempts of one turn count once).
    pub turns_started: u32,
}

/// `POST /runtime/v1/claim` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// Long-poll up to this many seconds for input (0 answers at once; at most 60).
    #[serde(default)]
    pub wait_seconds: u32,
}

/// `POST /runtime/v1/claim` answer when there is a turn to run (otherwise `204 No Content`).
///
/// Claiming is what starts a turn: the API server appends `turn.started` and sets the session
/// `running` atomically with the claim. A turn claimed earlier and never completed (the runtime
/// crashed) is handed out again with `attempt` + 1, with the same inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedTurn {
    /// `trn_…`
    pub turn_id: String,
    /// 1 for the first run of this turn, +1 for each re-run after a runtime restart.
    pub attempt: u32,
    /// Which turn of the session this is (1-based; counts every turn, steer-started ones too).
    pub number: u32,
    /// First input seq taken by this turn.
    pub input_from_seq: i64,
    /// Last input seq taken by this turn.
    pub input_to_seq: i64,
    /// The input events (`user.message`), in seq order.
    pub inputs: Vec<Event>,
}

/// One event the runtime appends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Idempotency key chosen by the runtime, unique per session (1-128 chars). Appending the
    /// same `client_id` again returns the event already stored and appends nothing.
    pub client_id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Level.
    pub level: Level,
    /// Body.
    pub body: Value,
    /// Producing turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// Refs (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<Value>,
}

/// `POST /runtime/v1/events` request: appended in order, atomically, durable before the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// At most 500 events.
    pub events: Vec<NewEvent>,
}

/// Where an appended event landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedEvent {
    /// The runtime's idempotency key.
    pub client_id: String,
    /// `evt_…`
    pub id: String,
    /// Its seq.
    pub seq: i64,
}

/// `POST /runtime/v1/events` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// One entry per request event, in request order.
    pub events: Vec<AppendedEvent>,
}

/// Token usage of a turn, or summed over turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Cache-creation input tokens.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Cache-read input tokens.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Every kind of token, summed (what `limits.tokens` is checked against).
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
    }

    /// Field-wise sum.
    pub fn add(&self, other: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens
                + other.cache_creation_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens + other.cache_read_input_tokens,
        }
    }
}

/// An error that ended a turn (opaque to clients; never carries a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnError {
    /// Stable code, e.g. `model_auth`, `model_unavailable`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// `POST /runtime/v1/turns/{turn_id}/complete` request. Idempotent: completing a completed turn
/// again returns it unchanged. The API server appends `turn.completed` (level `user`) and moves the
/// session to its next status (`idle`, `awaiting_input` or `failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteTurnRequest {
    /// Why the turn ended.
    pub yield_reason: YieldReason,
    /// The event holding the turn's result (the final `agent.message`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_event_id: Option<String>,
    /// Usage of this turn (all attempts).
    #[serde(default)]
    pub usage: Usage,
    /// Set when `yield_reason` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TurnError>,
}

/// `GET /runtime/v1/turns/{turn_id}/signal?wait_seconds=N` answer (long-poll until a signal or
/// the wait ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// The turn was cancelled through the API: abort and complete with `canceled`.
    pub cancel: bool,
}

/// One egress event from the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressEvent {
    /// `egress.allowed`, `egress.denied`, `egress.token_misuse` or `egress.request`.
    #[serde(rename = "type")]
    pub type_: String,
    /// RFC 3339 time of the decision.
    pub ts: String,
    /// `{host, port, reason, method, mode}`, and for `egress.request` the traffic (`path`,
    /// `status`, `bytes_sent`, `bytes_received`, `duration_ms`, `swapped`, `unrecorded`); never a
    /// token value, a header, a query or a body.
    pub body: Value,
}

/// `POST /runtime/v1/egress-events` request (scope `proxy`). Appended at level `internal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressEventBatch {
    /// The events, oldest first.
    pub events: Vec<EgressEvent>,
}

/// The event types an egress event may have.
pub const EGRESS_EVENT_TYPES: [&str; 4] = [
    "egress.allowed",
    "egress.denied",
    "egress.token_misuse",
    "egress.request",
];

/// `POST /runtime/v1/egress-gate` request (scope `proxy`): the sidecar reports the model tokens
/// it has metered for the session (a running total; the server keeps the largest it was told) and
/// asks whether it may swap sealed tokens now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressGateRequest {
    /// Model tokens the sidecar has metered from the provider's responses, in total.
    pub metered_tokens: u64,
}

/// Why the gate is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateClosed {
    /// No turn of the session is running: the key is usable only during a turn.
    NoTurn,
    /// The running turn is past `limits.turn_seconds`.
    DeadlineExceeded,
    /// The session's metered usage reached `limits.tokens`.
    BudgetExceeded,
}

impl GateClosed {
    /// The wire (and deny-reason) name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateClosed::NoTurn => "no_turn",
            GateClosed::DeadlineExceeded => "deadline_exceeded",
            GateClosed::BudgetExceeded => "budget_exceeded",
        }
    }
}

/// `POST /runtime/v1/egress-gate` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressGate {
    /// Why sealed tokens must not be swapped now; absent when they may be.
    pub closed: Option<GateClosed>,
    /// The session's metered model tokens as the server knows them (at least what was reported).
    pub metered_tokens: u64,
    /// `limits.tokens` of the session, if any.
    pub tokens_limit: Option<u64>,
    /// Milliseconds left of the running turn's `limits.turn_seconds`, if it has one.
    pub turn_ms_left: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_cumulatively() {
        assert!(Level::User.passes(Level::User));
        assert!(Level::User.passes(Level::Internal));
        assert!(Level::Progress.passes(Level::Progress));
        assert!(!Level::Progress.passes(Level::User));
        assert!(!Level::Internal.passes(Level::Progress));
        assert_eq!(Level::parse("progress"), Some(Level::Progress));
        assert_eq!(Level::parse("debug"), None);
    }

    #[test]
    fn event_round_trips_in_wire_shape() {
        let wire = serde_json::json!({
            "id": "evt_1", "seq": 3, "ts": "2026-11-27T00:00:00Z", "session": "ses_1",
            "actor": {"id": "agent", "type": "agent"}, "type": "agent.message", "level": "user",
            "body": {"text": "hi"}, "refs": {}, "turn_id": "trn_1",
            "content_ref": null, "body_truncated": false, "body_bytes": null
        });
        let event: Event = serde_json::from_value(wire.clone()).expect("parse");
        assert_eq!(serde_json::to_value(&event).expect("json"), wire);
        assert_eq!(
            serde_json::to_value(YieldReason::NeedsInput).expect("json"),
            "needs_input"
        );
    }

    #[test]
    fn usage_totals() {
        let a = Usage {
            input_tokens: 1,
            output_tokens: 2,
            cache_creation_input_tokens: 3,
            cache_read_input_tokens: 4,
        };
        assert_eq!(a.total(), 10);
        assert_eq!(a.add(&a).total(), 20);
    }
}
