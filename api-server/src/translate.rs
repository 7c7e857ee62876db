//! Pure conversions between the custom resources / store rows and the `/v3` wire objects
//! (Agent, Credential, Session, Turn). No I/O here; the wire format and the CRD schema evolve
//! apart through these functions. Never put a key or token into a wire object.

use kube::ResourceExt;
use sealpod_resources::agent::{MANAGED_CREDENTIAL, prompt_hash};
use sealpod_resources::ids::{Id, IdKind, object_name_to_id};
use sealpod_resources::labels::REVISION_ANNOTATION;
use sealpod_resources::{Agent, Credential};
use serde_json::{Value, json};

use crate::store::{SessionRow, TurnRow};

/// Annotation with the RFC 3339 time of the last `/v3` update of an object.
pub const UPDATED_AT_ANNOTATION: &str = "sealpod.dev/updated-at";

fn created_at<K: kube::Resource>(obj: &K) -> Value {
    obj.meta()
        .creation_timestamp
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or(Value::Null)
}

/// The agent's revision (annotation; absent means 1).
pub fn agent_revision(agent: &Agent) -> i64 {
    agent
        .annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `managed`, `cred_…`, or null, from a credential reference (object name).
pub fn credential_ref_to_id(reference: Option<&str>) -> Value {
    match reference {
        None => Value::Null,
        Some(MANAGED_CREDENTIAL) => json!(MANAGED_CREDENTIAL),
        Some(name) => object_name_to_id(name).map_or(Value::Null, Value::from),
    }
}

/// The wire Agent.
pub fn agent_to_wire(agent: &Agent) -> Value {
    let id = object_name_to_id(&agent.name_any()).unwrap_or_default();
    let revision = agent_revision(agent);
    let hash = prompt_hash(&agent.spec.prompt);
    let body = id.split_once('_').map_or("", |(_, b)| b);
    let rev_id = format!("rev_{body}r{revision}");
    let created = created_at(agent);
    let updated = agent
        .annotations()
        .get(UPDATED_AT_ANNOTATION)
        .map_or(created.clone(), |v| json!(v));
    json!({
        "id": id,
        "name": agent.spec.display_name,
        "prompt": agent.spec.prompt,
        "prompt_hash": hash,
        "model": agent.spec.model,
        "runtime": agent.spec.runtime,
        "revision": revision,
        "active_revision_id": rev_id,
        "active_revision": {"id": rev_id, "number": revision, "digest": hash},
        "credential_id": credential_ref_to_id(agent.spec.credential.as_deref()),
        "limits": limits_to_wire(agent.spec.limits.as_ref()),
        "created_at": created,
        "updated_at": updated,
    })
}

/// Wire limits (every field present, null when unset).
pub fn limits_to_wire(limits: Option<&sealpod_resources::common::Limits>) -> Value {
    match limits {
        None => json!({"tokens": null, "turn_seconds": null, "turns": null}),
        Some(l) => json!({"tokens": l.tokens, "turn_seconds": l.turn_seconds, "turns": l.turns}),
    }
}

/// The wire Credential (metadata only: never the key).
pub fn credential_to_wire(credential: &Credential) -> Value {
    let status = credential.status.clone().unwrap_or_default();
    json!({
        "id": object_name_to_id(&credential.name_any()).unwrap_or_default(),
        "provider": credential.spec.provider,
        "name": credential.spec.display_name,
        "last4": status.last4,
        "is_default": credential.spec.default,
        "version": status.version.unwrap_or(1),
        "created_at": created_at(credential),
    })
}

/// The wire Session.
pub fn session_to_wire(row: &SessionRow) -> Value {
    json!({
        "id": row.id,
        "status": row.status,
        "head": row.head,
        "input_cursor": row.input_cursor,
        "agent_id": row.agent_id,
        "credential_id": row.credential_id,
        "agent_snapshot": row.snapshot,
        "last_turn": row.last_turn,
        "limits": row.limits,
        "metadata": row.metadata,
        "key": row.key,
        "created_at": row.created_at,
    })
}

/// The wire Turn.
pub fn turn_to_wire(turn: &TurnRow) -> Value {
    json!({
        "id": turn.id,
        "state": turn.state,
        "yield_reason": turn.yield_reason,
        "result_event_id": turn.result_event_id,
        "error": turn.error,
        "started_at": turn.started_at,
        "completed_at": turn.completed_at,
        "attempt": turn.attempt,
        "number": turn.number,
        "input_from_seq": turn.input_from,
        "input_to_seq": turn.input_to,
        "usage": turn.usage,
    })
}

/// The object name of an API id of the given kind, or `None` when it is not one.
pub fn name_of(id: &str, kind: IdKind) -> Option<String> {
    Id::parse_kind(id, kind).ok().map(|id| id.object_name())
}

/// The deterministic agent id of a name in a tenant (create is idempotent by name).
pub fn agent_id_for_name(name: &str) -> String {
    let digest = crate::auth::sha256_hex(name);
    // 24 characters of [a-z0-9] from the digest: a hash of the name, stable and DNS-safe.
    let body: String = digest.chars().take(24).collect();
    format!("agt_{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpod_resources::AgentSpec;

    #[test]
    fn agent_wire_shape() {
        let mut agent = Agent::new(
            "agt-abc",
            AgentSpec {
                display_name: Some("reviewer".into()),
                model: "anthropic/claude-x".into(),
                runtime: "claude".into(),
                prompt: "be brief".into(),
                credential: Some("cred-xyz".into()),
                limits: None,
                egress: None,
                sandbox: None,
            },
        );
        agent
            .annotations_mut()
            .insert(REVISION_ANNOTATION.into(), "3".into());
        let wire = agent_to_wire(&agent);
        assert_eq!(wire["id"], "agt_abc");
        assert_eq!(wire["name"], "reviewer");
        assert_eq!(wire["revision"], 3);
        assert_eq!(wire["active_revision"]["number"], 3);
        assert_eq!(wire["credential_id"], "cred_xyz");
        assert_eq!(wire["prompt_hash"], prompt_hash("be brief"));
        assert_eq!(wire["limits"]["turns"], Value::Null);
    }

    #[test]
    fn agent_ids_are_stable_per_name() {
        assert_eq!(agent_id_for_name("a"), agent_id_for_name("a"));
        assert_ne!(agent_id_for_name("a"), agent_id_for_name("b"));
        assert!(Id::parse_kind(&agent_id_for_name("x y"), IdKind::Agent).is_ok());
    }
}
