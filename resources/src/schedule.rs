//! The `Schedule` custom resource: cron for an agent. At each scheduled time the API server starts
//! a session of the agent with the schedule's input, once, however many replicas run (a fire is a
//! row claimed in the API server's database). Created through `POST /v3/agents/{id}/schedules`
//! (object `sch-<id>`) or with `kubectl` (any object name `sch-…`): both fire alike.
//!
//! `spec` is what the schedule's owner says; `status` is written by the API server only.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most consecutive failed fires before a schedule pauses itself (`state: auto_paused`).
pub const AUTO_PAUSE_AFTER_FAILURES: u32 = 5;

/// Cron for an agent.
// The derive repeats `type_` once per printer column, which clippy mistakes for duplication.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sealpod.dev",
    version = "v1alpha1",
    kind = "Schedule",
    plural = "schedules",
    shortname = "sch",
    namespaced,
    status = "ScheduleStatus",
    doc = "A sealpod schedule: starts a session of an agent at each time a cron expression names.",
    printcolumn(name = "Agent", type_ = "string", json_path = ".spec.agentRef"),
    printcolumn(name = "Cron", type_ = "string", json_path = ".spec.cron"),
    printcolumn(name = "TZ", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Next", type_ = "string", json_path = ".status.nextFireAt"),
    printcolumn(name = "Last", type_ = "string", json_path = ".status.lastFiredAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// The schedule's `name` in the `/v3` API, unique among the agent's schedules.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Object name of the Agent whose sessions the schedule starts.
    #[schemars(length(min = 1, max = 63))]
    pub agent_ref: String,
    /// Five-field cron expression (minute hour day-of-month month day-of-week; names, ranges,
    /// steps and `@daily`-style macros allowed).
    #[schemars(length(min = 1, max = 256))]
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC). A local time skipped by a
    /// daylight-saving change fires once when the change ends; a repeated one fires once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// The input of each session started.
    #[schemars(length(min = 1))]
    pub input: String,
    /// What a fire does while the session of the schedule's previous fire still runs a turn.
    #[serde(default)]
    pub overlap: Overlap,
    /// No fire while true (a test fire still runs). Pausing also clears an automatic pause.
    #[serde(default)]
    pub paused: bool,
}

/// What a fire does while the previous fire's session still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// No new session: the run is recorded as `skipped`.
    #[default]
    Skip,
    /// A new session anyway.
    Allow,
}

impl Overlap {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }
}

/// Whether a schedule fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// Fires at its times.
    #[default]
    Active,
    /// Paused by its owner (`spec.paused`).
    Paused,
    /// Paused by the server after [`AUTO_PAUSE_AFTER_FAILURES`] failed fires in a row; pause and
    /// resume it (or `PATCH {"paused": false}`) to fire again.
    AutoPaused,
}

impl ScheduleState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Active => "active",
            ScheduleState::Paused => "paused",
            ScheduleState::AutoPaused => "auto_paused",
        }
    }
}

/// What the API server last recorded of a schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// Whether it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ScheduleState>,
    /// The next time it fires (RFC 3339, UTC), while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_at: Option<String>,
    /// When it last fired (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<String>,
    /// Failed fires since the last one that started a session or was skipped.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Why the last fire failed, while failures are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
