//! The `Session` custom resource: one run of an agent, with the agent's configuration pinned at
//! create, its input, limits, opaque metadata, routing key and desired lifecycle state.
//!
//! Status has two owners (server-side apply keeps them apart): the API server writes the
//! conversational state (`phase`, `head`, `lastTurn`) under its field manager; the operator writes
//! `conditions`, `podName` and `observedGeneration` under its own.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::{CREDENTIAL_REF_REGEX, MODEL_REGEX, RUNTIME_REGEX};
use crate::common::{EgressPolicy, Limits, opaque_object};
use crate::conditions::Condition;
use crate::revision::SkillBundle;

/// Maximum size of `spec.metadata`, serialized as JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// One run of an agent.
// The derive repeats `type_` once per printer column, which clippy mistakes for duplication.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sealpod.dev",
    version = "v1alpha1",
    kind = "Session",
    plural = "sessions",
    shortname = "ses",
    namespaced,
    status = "SessionStatus",
    doc = "A sealpod session: one run of an agent in its own sandbox pod, with the agent pinned at create.",
    printcolumn(name = "Agent", type_ = "string", json_path = ".spec.agentRef"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Head", type_ = "integer", json_path = ".status.head"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    /// Name of the Agent this session runs.
    #[schemars(regex(pattern = CREDENTIAL_REF_REGEX))]
    pub agent_ref: String,
    /// The agent's configuration pinned at create; later edits of the Agent do not reach this
    /// session (credential rotation does, through the credential's value). When absent (a
    /// session applied with kubectl), the operator pins it from the Agent on first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_snapshot: Option<AgentSnapshot>,
    /// The first input of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<SessionInput>,
    /// Limits of this session; each unset field falls back to the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Opaque JSON object (at most 16 KiB), echoed verbatim by the API and in webhooks; never
    /// shown to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub metadata: Option<serde_json::Value>,
    /// Routing key: one session per key and namespace (get-or-create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub key: Option<String>,
    /// `Running` (default), `Hibernated` (pod deleted, workspace kept) or `Archived`.
    #[serde(default)]
    pub desired_state: DesiredState,
}

/// The agent configuration a session pins at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSnapshot {
    /// `provider/model`.
    #[schemars(regex(pattern = MODEL_REGEX))]
    pub model: String,
    /// The runtime.
    #[schemars(regex(pattern = RUNTIME_REGEX))]
    pub runtime: String,
    /// The prompt text (pinned, so later agent edits do not change a running session).
    #[schemars(length(max = 102400))]
    pub prompt: String,
    /// `sha256:<hex>` of the prompt.
    #[schemars(length(max = 128))]
    pub prompt_hash: String,
    /// The agent revision pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The pinned revision's skill bundle (absent: none), mounted read-only in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<SkillBundle>,
    /// Limits of the agent at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Egress policy of the agent at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressPolicy>,
    /// The credential resolved at create: a Credential name or `managed`.
    #[schemars(regex(pattern = CREDENTIAL_REF_REGEX))]
    pub credential: String,
}

/// A session input: text, or an envelope (see the `/v3` messaging contract).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInput {
    /// The text of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1048576))]
    pub text: Option<String>,
    /// An input envelope, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub envelope: Option<serde_json::Value>,
}

/// The lifecycle state the session should be in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DesiredState {
    /// A sandbox pod runs.
    #[default]
    Running,
    /// The pod is deleted, the workspace kept; new input sets `Running` again.
    Hibernated,
    /// The pod is deleted; the session is read-only.
    Archived,
}

/// The conversational phase of a session (`status` in the `/v3` API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Scheduled; no turn is running.
    Queued,
    /// A turn is executing.
    Running,
    /// A turn ended asking a question.
    AwaitingInput,
    /// No turn is running; steerable.
    Idle,
    /// The last turn ended in an error; a steer starts a new turn.
    Failed,
    /// Closed; read-only.
    Archived,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 6] = [
        Phase::Queued,
        Phase::Running,
        Phase::AwaitingInput,
        Phase::Idle,
        Phase::Failed,
        Phase::Archived,
    ];

    /// The phase of a wire name, if it is one.
    pub fn from_wire(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Running => "running",
            Phase::AwaitingInput => "awaiting_input",
            Phase::Idle => "idle",
            Phase::Failed => "failed",
            Phase::Archived => "archived",
        }
    }
}

/// The last turn of a session, as `last_turn` in the `/v3` API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastTurn {
    /// Turn id (`trn_…`).
    pub id: String,
    /// `queued`, `accepted`, `running`, `ok` or `error`.
    pub state: String,
    /// Why the turn ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yield_reason: Option<String>,
    /// The event holding the turn's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_event_id: Option<String>,
}

/// Observed state of a Session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// Conversational phase (API server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Highest event `seq` of the session's log (API server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<i64>,
    /// The last turn (API server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_turn: Option<LastTurn>,
    /// The sandbox pod (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// `Ready`, `CredentialsBound`, `EgressLocked`, `Hibernated`, `Degraded` (operator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the operator's part of the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_use_the_wire_names() {
        for phase in Phase::ALL {
            assert_eq!(
                serde_json::to_value(phase).expect("json"),
                serde_json::Value::from(phase.as_str())
            );
            assert_eq!(Phase::from_wire(phase.as_str()), Some(phase));
        }
        assert_eq!(Phase::from_wire("paused"), None);
    }
}
