//! Wire types of `/v3` answers (snake_case, as API.md §4 and the SDK's type definitions spell
//! them). Handlers answer with these, never with hand-built JSON, so a field's name and presence
//! is decided once. `translate` fills them from the custom resources and store rows; the types
//! the store also persists (`WireSnapshot`, `WireLimits`, `TurnSummary`) round-trip through
//! serde. Opaque user data (`metadata`, event bodies) stays `serde_json::Value`.
//!
//! Optional fields serialize as `null`, never absent: the SDK reads them as `T | null`.

use sealpod_resources::common::Limits;
use sealpod_resources::runtime_api::{Level, TurnError, Usage};
use sealpod_resources::session::Phase;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A page of a list: `{data, next_cursor}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items, in list order.
    pub data: Vec<T>,
    /// Where the next page starts, or null on the last page.
    pub next_cursor: Option<String>,
}

/// Where a turn stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// Executing (or waiting to be picked up again after a restart).
    Running,
    /// Ended without an error.
    Ok,
    /// Ended with an error.
    Error,
}

impl TurnState {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TurnState::Running => "running",
            TurnState::Ok => "ok",
            TurnState::Error => "error",
        }
    }

    /// The state of a stored name, if it is one.
    pub fn from_wire(name: &str) -> Option<TurnState> {
        [TurnState::Running, TurnState::Ok, TurnState::Error]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// Where a delivery stands (API.md §4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Due (now or at its next attempt).
    Pending,
    /// Claimed by a worker under a lease.
    Delivering,
    /// Acknowledged with a 2xx.
    Delivered,
    /// The last attempt failed; another is scheduled.
    Failed,
    /// Given up: its retry budget is spent, or its destination or event is gone.
    DeadLetter,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::DeadLetter,
    ];

    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::DeadLetter => "dead_letter",
        }
    }

    /// The status of a wire name, if it is one.
    pub fn from_wire(name: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// `limits`: every field present, null when unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLimits {
    /// Token budget of the session.
    pub tokens: Option<u64>,
    /// Wall-clock seconds per turn.
    pub turn_seconds: Option<u32>,
    /// Turns per session.
    pub turns: Option<u32>,
}

impl From<&Limits> for WireLimits {
    fn from(l: &Limits) -> WireLimits {
        WireLimits {
            tokens: l.tokens,
            turn_seconds: l.turn_seconds,
            turns: l.turns,
        }
    }
}

impl From<WireLimits> for Limits {
    fn from(l: WireLimits) -> Limits {
        Limits {
            tokens: l.tokens,
            turn_seconds: l.turn_seconds,
            turns: l.turns,
        }
    }
}

/// `active_revision` of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// `rev_…`
    pub id: String,
    /// 1-based revision number.
    pub number: i64,
    /// `sha256:…` over the revision's prompt, model and skill bundle.
    pub digest: String,
}

/// A revision in full (`GET /v3/agents/{id}/revisions[/{rev}]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevisionDetail {
    /// `rev_…`
    pub id: String,
    /// 1-based revision number.
    pub number: i64,
    /// See [`Revision::digest`].
    pub digest: String,
    /// System prompt.
    pub prompt: String,
    /// `provider/model`.
    pub model: String,
    /// `sha256:…` of the skill bundle, or null without skills.
    pub skill_bundle_digest: Option<String>,
    /// Always null: every revision runs the agent's runtime.
    pub runtime_ref: Option<Value>,
    /// Whether it is the agent's active revision.
    pub active: bool,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// The skill bundle's files.
    pub files: Vec<RevisionFile>,
}

/// One file of a revision's skill bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionFile {
    /// Path in the bundle.
    pub path: String,
    /// Permission bits as the sandbox sees them (`0o444` = 292, `0o555` = 365).
    pub mode: u32,
    /// Bytes.
    pub size: u64,
}

/// `POST /v3/agents/{id}/revisions/{rev}/activate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activated {
    /// `rev_…` now active.
    pub active_revision_id: String,
}

/// A deployment (`/v3/agents/{id}/deployments`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    /// `dep_…`
    pub id: String,
    /// `pending`, `ready` or `failed`.
    pub state: String,
    /// `activated`, `staged` or `failed` once finished.
    pub result: Option<String>,
    /// The revision it made.
    pub revision_id: Option<String>,
    /// Whether that revision is the active one now.
    pub active: bool,
    /// `inline`, `zip` or `remove`.
    pub input_type: String,
    /// Always null (no repository deploys).
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    /// Always null (no repository deploys).
    pub sha: Option<String>,
    /// `{type, message}` of a failure, else null.
    pub error: Value,
    /// `validation` or `internal` for a failure.
    pub error_class: Option<String>,
    /// The caller's `client_context`, verbatim (null when none).
    pub client_context: Value,
    /// RFC 3339.
    pub created_at: String,
}

/// `{deployment}`: the answer of `POST /v3/agents/{id}/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentEnvelope {
    /// The deployment.
    pub deployment: Deployment,
}

/// One change of an agent's active revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activation {
    /// `act_…`
    pub id: String,
    /// `rev_…` active before, or null.
    pub from: Option<String>,
    /// `rev_…` made active.
    pub to: String,
    /// `api` or `kubectl`.
    pub actor: Option<String>,
    /// `create`, `update`, `deploy`, `skills`, `rollback`, `promote` or `spec`.
    pub reason: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /v3/agents/{id}/skills`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSkills {
    /// The active revision.
    pub revision: Option<Revision>,
    /// `sha256:…` of its skill bundle, or null.
    pub skill_bundle_digest: Option<String>,
    /// Its skills.
    pub skills: Vec<SkillSummary>,
}

/// One skill of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkillSummary {
    /// The skill's folder.
    pub name: String,
    /// `description` of its `SKILL.md` front matter.
    pub description: Option<String>,
    /// Its files (paths in the bundle).
    pub files: Vec<RevisionFile>,
}

/// An Agent (API.md §4.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    /// `agt_…`
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// System prompt.
    pub prompt: String,
    /// `sha256:…` of the prompt.
    pub prompt_hash: String,
    /// `provider/model`.
    pub model: String,
    /// Runtime name.
    pub runtime: String,
    /// Revision number.
    pub revision: i64,
    /// `rev_…` of the active revision.
    pub active_revision_id: String,
    /// The active revision.
    pub active_revision: Revision,
    /// `managed`, `cred_…` or null.
    pub credential_id: Option<String>,
    /// Default limits of its sessions.
    pub limits: WireLimits,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
}

/// A Credential: metadata only, never the key (API.md §4.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Credential {
    /// `cred_…`
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// Display name.
    pub name: Option<String>,
    /// The key's last four characters.
    pub last4: Option<String>,
    /// The provider's default credential of the tenant.
    pub is_default: bool,
    /// Rotations so far, plus one.
    pub version: i64,
    /// RFC 3339.
    pub created_at: Option<String>,
}

/// The agent a session was started from (`agent_snapshot`; stored with the session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSnapshot {
    /// `sha256:…` of the prompt.
    pub prompt_hash: String,
    /// `provider/model` (an override included).
    pub model: String,
    /// Runtime name.
    pub runtime: String,
    /// The agent revision.
    pub revision: i64,
}

/// `last_turn` of a session (stored with the session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnSummary {
    /// `trn_…`
    pub id: String,
    /// Where it stands.
    pub state: TurnState,
    /// Why it ended.
    pub yield_reason: Option<String>,
    /// The event holding the result.
    pub result_event_id: Option<String>,
}

/// A Session (API.md §4.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// `ses_…`
    pub id: String,
    /// Conversational status.
    pub status: Phase,
    /// Highest seq.
    pub head: i64,
    /// How far the runtime has consumed input.
    pub input_cursor: i64,
    /// `agt_…`
    pub agent_id: String,
    /// `managed`, `cred_…` or null.
    pub credential_id: Option<String>,
    /// The agent as it was at start.
    pub agent_snapshot: WireSnapshot,
    /// The last turn, or null before the first.
    pub last_turn: Option<TurnSummary>,
    /// Effective limits.
    pub limits: WireLimits,
    /// Metadata verbatim, or null.
    pub metadata: Value,
    /// Routing key.
    pub key: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v3/sessions`: the session, a client token for it, and its sources.
#[derive(Debug, Serialize)]
pub struct SessionCreated {
    /// The session.
    pub session: Session,
    /// A read-and-steer client token (secret; only ever in this answer).
    pub client_token: String,
    /// Event sources (none yet).
    pub sources: Vec<Value>,
}

/// A Turn (API.md §4.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// `trn_…`
    pub id: String,
    /// Where it stands.
    pub state: TurnState,
    /// Why it ended.
    pub yield_reason: Option<String>,
    /// The event holding the result.
    pub result_event_id: Option<String>,
    /// Why it failed, or null.
    pub error: Option<TurnError>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub completed_at: Option<String>,
    /// Attempts so far.
    pub attempt: i64,
    /// 1-based number.
    pub number: i64,
    /// First input seq.
    pub input_from_seq: i64,
    /// Last input seq.
    pub input_to_seq: i64,
    /// Usage once completed, or null.
    pub usage: Option<Usage>,
}

/// `GET /v3/sessions/{id}/result`.
#[derive(Debug, Serialize)]
pub struct TurnResult {
    /// The last turn, or null.
    pub last_turn: Option<Turn>,
    /// The event holding its result, or null.
    pub result: Option<Box<RawValue>>,
}

/// A client token as minted: `{token, scopes, expires_at}`.
#[derive(Serialize)]
pub struct ClientToken {
    /// The token (secret; only ever in the mint answer).
    pub token: String,
    /// `read`, `steer`.
    pub scopes: Vec<&'static str>,
    /// RFC 3339.
    pub expires_at: String,
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientToken")
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An event's place in its session: `{id, seq}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRef {
    /// `evt_…`
    pub id: String,
    /// Its seq.
    pub seq: i64,
}

/// A session's status and head after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionHead {
    /// `ses_…`
    pub id: String,
    /// Conversational status.
    pub status: Phase,
    /// Highest seq.
    pub head: i64,
}

/// A steer's answer: the event it appended (or replayed) and the session after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Steered {
    /// The event.
    pub event: EventRef,
    /// The session.
    pub session: SessionHead,
}

/// A webhook Destination (API.md §4.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// `dst_…`
    pub id: String,
    /// `ses_…`
    pub session: String,
    /// Always `webhook`.
    pub kind: &'static str,
    /// Where deliveries go.
    pub url: String,
    /// Level threshold.
    pub level: Level,
    /// Type allow-list, or null for every type.
    pub types: Option<Vec<String>>,
    /// Keep `event.body.raw`.
    pub include_raw: bool,
    /// Delivering.
    pub enabled: bool,
    /// Whether deliveries are signed (the secret itself is never shown).
    pub has_secret: bool,
    /// Only events after this seq.
    pub created_after_seq: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A webhook Delivery (API.md §4.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `dlv_…`
    pub id: String,
    /// `ses_…`
    pub session: String,
    /// `dst_…`
    pub destination: String,
    /// `evt_…`
    pub event_id: String,
    /// The event's seq.
    pub event_seq: i64,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// Last HTTP status.
    pub response_code: Option<i64>,
    /// Last failure.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// The error envelope's inner object (API.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorObject {
    /// Error kind.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// The same kind.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request's id.
    pub request_id: String,
    /// The offending parameter, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// The error envelope: `{"error": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorObject,
}

/// The POST body of a webhook delivery (API.md §8; camelCase there).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload<'a> {
    /// The event's type.
    #[serde(rename = "type")]
    pub type_: Value,
    /// `ses_…`
    pub session_id: &'a str,
    /// `evt_…` (also the `webhook-id`).
    pub event_id: &'a str,
    /// The session's metadata, or null.
    pub metadata: &'a Value,
    /// The event (`body.raw` dropped unless the destination keeps it).
    pub event: Value,
}

/// The runtime API's batch answer: how many events were accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Events accepted.
    pub accepted: usize,
}

/// The runtime API's revoke answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Revoked {
    /// Always true: the session's runtime tokens are revoked.
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_fields_serialize_as_null_and_stored_types_round_trip() {
        assert_eq!(
            serde_json::to_value(WireLimits::default()).expect("limits"),
            json!({"tokens": null, "turn_seconds": null, "turns": null})
        );
        let summary = TurnSummary {
            id: "trn_a".into(),
            state: TurnState::Running,
            yield_reason: None,
            result_event_id: None,
        };
        let stored = serde_json::to_string(&summary).expect("summary");
        assert_eq!(
            stored,
            r#"{"id":"trn_a","state":"running","yield_reason":null,"result_event_id":null}"#
        );
        assert_eq!(
            serde_json::from_str::<TurnSummary>(&stored).expect("parse"),
            summary
        );
        for state in [TurnState::Running, TurnState::Ok, TurnState::Error] {
            assert_eq!(TurnState::from_wire(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).expect("state"),
                json!(state.as_str())
            );
        }
        assert_eq!(TurnState::from_wire("done"), None);
    }

    #[test]
    fn the_error_envelope_names_a_parameter_only_when_one_is() {
        let mut envelope = ErrorEnvelope {
            error: ErrorObject {
                type_: "invalid",
                code: "invalid",
                message: "bad".into(),
                request_id: "req_1".into(),
                param: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&envelope).expect("envelope"),
            json!({"error": {"type": "invalid", "code": "invalid", "message": "bad", "request_id": "req_1"}})
        );
        envelope.error.param = Some("ttl".into());
        assert_eq!(
            serde_json::to_value(&envelope).expect("envelope")["error"]["param"],
            json!("ttl")
        );
    }
}

/// A schedule (the SDK's `Schedule`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// `sch_…`
    pub id: String,
    /// `agt_…`
    pub agent_id: String,
    /// Unique among the agent's schedules.
    pub name: String,
    /// Five-field cron expression.
    pub cron: String,
    /// IANA time zone, or null for UTC.
    pub tz: Option<String>,
    /// The input of each session started.
    pub input: String,
    /// `skip` or `allow`.
    pub overlap: &'static str,
    /// `active`, `paused` or `auto_paused`.
    pub state: &'static str,
    /// The next time the cron names (it fires then only while active); null when it names none.
    pub next_fire_at: Option<String>,
    /// When it last fired.
    pub last_fired_at: Option<String>,
    /// Failed cron fires in a row.
    pub consecutive_failures: u32,
    /// Why the last fire failed (or why the spec cannot fire).
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change through the API.
    pub updated_at: String,
}

/// One run of a schedule (the SDK's `ScheduleRun`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRun {
    /// `run_…`
    pub id: String,
    /// `sch_…`
    pub schedule_id: String,
    /// The time the cron named; null for a test fire.
    pub scheduled_for: Option<String>,
    /// When it fired.
    pub fired_at: String,
    /// `enacted`, `skipped`, `failed` (or `pending` while it is being enacted).
    pub outcome: &'static str,
    /// The session it started.
    pub session_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// `{schedule}`.
#[derive(Debug, Serialize)]
pub struct ScheduleOne {
    /// The schedule.
    pub schedule: Schedule,
}

/// `{schedules}`.
#[derive(Debug, Serialize)]
pub struct ScheduleList {
    /// The agent's schedules, oldest first.
    pub schedules: Vec<Schedule>,
}

/// `{run}`.
#[derive(Debug, Serialize)]
pub struct RunOne {
    /// The run.
    pub run: ScheduleRun,
}

/// `{runs, next_cursor}`: runs newest first.
#[derive(Debug, Serialize)]
pub struct RunsPage {
    /// The runs.
    pub runs: Vec<ScheduleRun>,
    /// Where the next page starts, or null on the last page.
    pub next_cursor: Option<String>,
}
