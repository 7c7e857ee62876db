//! Pure conversions from the custom resources and store rows to the `/v3` wire objects of
//! [`crate::wire`] (Agent, Credential, Session, Turn, Destination, Delivery). No I/O here; the
//! wire format and the CRD schema evolve apart through these functions. Never put a key or
//! token into a wire object.

use kube::ResourceExt;
use sealpod_resources::agent::{MANAGED_CREDENTIAL, prompt_hash};
use sealpod_resources::ids::{Id, IdKind, object_name_to_id};
use sealpod_resources::labels::REVISION_ANNOTATION;
use sealpod_resources::{Agent, Credential};
use serde_json::Value;

use crate::store::outbox::{Delivery, Destination};
use crate::store::{SessionRow, TurnRow};
use crate::wire::{self, WireLimits};

/// Annotation with the RFC 3339 time of the last `/v3` update of an object.
pub(crate) const UPDATED_AT_ANNOTATION: &str = "sealpod.dev/updated-at";

pub(crate) fn created_at<K: kube::Resource>(obj: &K) -> Option<String> {
    let time = obj.meta().creation_timestamp.as_ref()?;
    // Kubernetes' own rendering of the time (RFC 3339, seconds, `Z`).
    match serde_json::to_value(time) {
        Ok(Value::String(text)) => Some(text),
        _ => None,
    }
}

/// The agent's revision (annotation; absent means 1).
pub(crate) fn agent_revision(agent: &Agent) -> i64 {
    agent
        .annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `managed`, `cred_…`, or `None`, from a credential reference (object name).
pub(crate) fn credential_ref_to_id(reference: Option<&str>) -> Option<String> {
    match reference? {
        MANAGED_CREDENTIAL => Some(MANAGED_CREDENTIAL.to_owned()),
        name => object_name_to_id(name).ok(),
    }
}

/// The wire Agent.
pub(crate) fn agent_to_wire(agent: &Agent) -> wire::Agent {
    let id = object_name_to_id(&agent.name_any()).unwrap_or_default();
    let revision = agent_revision(agent);
    let hash = prompt_hash(&agent.spec.prompt);
    let body = id.split_once('_').map_or("", |(_, b)| b);
    let rev_id = format!("rev_{body}r{revision}");
    let created = created_at(agent);
    let updated = agent
        .annotations()
        .get(UPDATED_AT_ANNOTATION)
        .cloned()
        .or_else(|| created.clone());
    wire::Agent {
        id,
        name: agent.spec.display_name.clone(),
        prompt: agent.spec.prompt.clone(),
        prompt_hash: hash.clone(),
        model: agent.spec.model.clone(),
        runtime: agent.spec.runtime.clone(),
        revision,
        active_revision_id: rev_id.clone(),
        active_revision: wire::Revision {
            id: rev_id,
            number: revision,
            digest: hash,
        },
        credential_id: credential_ref_to_id(agent.spec.credential.as_deref()),
        limits: agent
            .spec
            .limits
            .as_ref()
            .map(WireLimits::from)
            .unwrap_or_default(),
        created_at: created,
        updated_at: updated,
    }
}

/// The wire Credential (metadata only: never the key).
pub(crate) fn credential_to_wire(credential: &Credential) -> wire::Credential {
    let status = credential.status.clone().unwrap_or_default();
    wire::Credential {
        id: object_name_to_id(&credential.name_any()).unwrap_or_default(),
        provider: credential.spec.provider.clone(),
        name: credential.spec.display_name.clone(),
        last4: status.last4,
        is_default: credential.spec.default,
        version: status.version.unwrap_or(1),
        created_at: created_at(credential),
    }
}

/// The wire Session.
pub(crate) fn session_to_wire(row: SessionRow) -> wire::Session {
    wire::Session {
        id: row.id,
        status: row.status,
        head: row.head,
        input_cursor: row.input_cursor,
        agent_id: row.agent_id,
        credential_id: row.credential_id,
        agent_snapshot: row.snapshot,
        last_turn: row.last_turn,
        limits: row.limits,
        metadata: row.metadata,
        key: row.key,
        created_at: row.created_at,
    }
}

/// The wire Turn.
pub(crate) fn turn_to_wire(turn: &TurnRow) -> wire::Turn {
    wire::Turn {
        id: turn.id.clone(),
        state: turn.state,
        yield_reason: turn.yield_reason.clone(),
        result_event_id: turn.result_event_id.clone(),
        error: turn.error.clone(),
        started_at: turn.started_at.clone(),
        completed_at: turn.completed_at.clone(),
        attempt: turn.attempt,
        number: turn.number,
        input_from_seq: turn.input_from,
        input_to_seq: turn.input_to,
        usage: turn.usage,
    }
}

/// The wire Destination (whether it signs, never its secret).
pub(crate) fn destination_to_wire(d: &Destination) -> wire::Destination {
    wire::Destination {
        id: d.id.clone(),
        session: d.session.clone(),
        kind: "webhook",
        url: d.url.clone(),
        level: d.level,
        types: d.types.clone(),
        include_raw: d.include_raw,
        enabled: d.enabled,
        has_secret: d.secret.is_some(),
        created_after_seq: d.created_after_seq,
        created_at: d.created_at.clone(),
        updated_at: d.updated_at.clone(),
    }
}

/// The wire Delivery.
pub(crate) fn delivery_to_wire(d: &Delivery) -> wire::Delivery {
    wire::Delivery {
        id: d.id.clone(),
        session: d.session.clone(),
        destination: d.destination.clone(),
        event_id: d.event_id.clone(),
        event_seq: d.event_seq,
        status: d.status,
        attempts: d.attempts,
        last_attempt_at: d.last_attempt_at.clone(),
        response_code: d.response_code,
        error: d.error.clone(),
        created_at: d.created_at.clone(),
        updated_at: d.updated_at.clone(),
    }
}

/// The object name of an API id of the given kind, or `None` when it is not one.
pub(crate) fn name_of(id: &str, kind: IdKind) -> Option<String> {
    Id::parse_kind(id, kind).ok().map(|id| id.object_name())
}

/// The deterministic agent id of a name in a tenant (create is idempotent by name).
pub(crate) fn agent_id_for_name(name: &str) -> String {
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
                warm_pool: None,
            },
        );
        agent
            .annotations_mut()
            .insert(REVISION_ANNOTATION.into(), "3".into());
        let wire = serde_json::to_value(agent_to_wire(&agent)).expect("agent");
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
