//! Pure conversions from the custom resources and store rows to the `/v3` wire objects of
//! [`crate::wire`] (Agent, Credential, Session, Turn, Destination, Delivery). No I/O here; the
//! wire format and the CRD schema evolve apart through these functions. Never put a key or
//! token into a wire object.

use kube::ResourceExt;
use sealpod_resources::agent::{MANAGED_CREDENTIAL, prompt_hash};
use sealpod_resources::ids::{Id, IdKind, object_name_to_id};
use sealpod_resources::labels::REVISION_DIGEST_ANNOTATION;
use sealpod_resources::revision::{LastActivation, SkillFile, active_number, revision_digest};
use sealpod_resources::{Agent, AgentRevision, Credential};
use serde_json::Value;

use crate::store::outbox::{Delivery, Destination};
use crate::store::{DeploymentRow, SessionRow, TurnRow};
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

/// `managed`, `cred_…`, or `None`, from a credential reference (object name).
pub(crate) fn credential_ref_to_id(reference: Option<&str>) -> Option<String> {
    match reference? {
        MANAGED_CREDENTIAL => Some(MANAGED_CREDENTIAL.to_owned()),
        name => object_name_to_id(name).ok(),
    }
}

/// `rev_…` without its number, for revisions of `agent`.
pub(crate) fn revision_id_prefix(agent: &Agent) -> String {
    let id = object_name_to_id(&agent.name_any()).unwrap_or_default();
    let body = id.split_once('_').map_or("", |(_, b)| b);
    format!("rev_{body}r")
}

/// `rev_…` of revision `number` of `agent`.
pub(crate) fn revision_id(agent: &Agent, number: i64) -> String {
    format!("{}{number}", revision_id_prefix(agent))
}

/// The digest of the agent's active revision (its annotation; for an agent without one, the
/// digest of its prompt and model without skills).
pub(crate) fn active_digest(agent: &Agent) -> String {
    agent
        .annotations()
        .get(REVISION_DIGEST_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| revision_digest(&agent.spec.prompt, &agent.spec.model, None))
}

/// The files of a skill bundle on the wire.
fn files_to_wire<'a>(files: impl IntoIterator<Item = &'a SkillFile>) -> Vec<wire::RevisionFile> {
    files
        .into_iter()
        .map(|f| wire::RevisionFile {
            path: f.path.clone(),
            mode: f.mode,
            size: f.size,
        })
        .collect()
}

/// The wire revision of `revision`, a revision of `agent`.
pub(crate) fn revision_to_wire(agent: &Agent, revision: &AgentRevision) -> wire::RevisionDetail {
    let spec = &revision.spec;
    wire::RevisionDetail {
        id: revision_id(agent, spec.number),
        number: spec.number,
        digest: spec.digest.clone(),
        prompt: spec.prompt.clone(),
        model: spec.model.clone(),
        skill_bundle_digest: spec.skills.as_ref().map(|s| s.digest.clone()),
        runtime_ref: None,
        active: spec.number == active_number(agent),
        created_at: created_at(revision),
        files: spec
            .skills
            .as_ref()
            .map(|s| files_to_wire(&s.files))
            .unwrap_or_default(),
    }
}

/// The wire skills of `agent`'s active revision.
pub(crate) fn skills_to_wire(agent: &Agent, revision: &AgentRevision) -> wire::AgentSkills {
    let bundle = revision.spec.skills.as_ref();
    wire::AgentSkills {
        revision: Some(wire::Revision {
            id: revision_id(agent, revision.spec.number),
            number: revision.spec.number,
            digest: revision.spec.digest.clone(),
        }),
        skill_bundle_digest: bundle.map(|b| b.digest.clone()),
        skills: bundle
            .map(|b| {
                b.skills
                    .iter()
                    .map(|skill| wire::SkillSummary {
                        name: skill.name.clone(),
                        description: skill.description.clone(),
                        files: files_to_wire(b.files.iter().filter(|f| {
                            f.path
                                .strip_prefix(skill.name.as_str())
                                .is_some_and(|rest| rest.starts_with('/'))
                        })),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The activation log of `agent`, from its revisions (and the agent's note of the latest, which
/// its revision may not have logged yet), newest first.
pub(crate) fn activations_to_wire(
    agent: &Agent,
    revisions: &[AgentRevision],
) -> Vec<wire::Activation> {
    let logged = revisions.iter().flat_map(|r| {
        r.status
            .iter()
            .flat_map(|s| &s.activations)
            .map(|a| (r.spec.number, a))
    });
    let last = LastActivation::of(agent);
    let unlogged = last.as_ref().filter(|last| {
        revisions
            .iter()
            .find(|r| r.spec.number == last.to)
            .is_some_and(|r| last.missing_from(r))
    });
    let mut log: Vec<wire::Activation> = logged
        .chain(unlogged.map(|last| (last.to, &last.activation)))
        .map(|(to, a)| wire::Activation {
            id: a.id.clone(),
            from: a.from.map(|n| revision_id(agent, n)),
            to: revision_id(agent, to),
            actor: a.actor.clone(),
            reason: a.reason.clone(),
            created_at: a.at.clone(),
        })
        .collect();
    log.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    log
}

/// The wire deployment of a stored one.
pub(crate) fn deployment_to_wire(agent: &Agent, row: DeploymentRow) -> wire::Deployment {
    wire::Deployment {
        revision_id: row.revision.map(|n| revision_id(agent, n)),
        active: row.revision == Some(active_number(agent)),
        id: row.id,
        state: row.state,
        result: row.result,
        input_type: row.input_type,
        ref_: None,
        sha: None,
        error: row.error,
        error_class: row.error_class,
        client_context: row.client_context,
        created_at: row.created_at,
    }
}

/// The wire Agent.
pub(crate) fn agent_to_wire(agent: &Agent) -> wire::Agent {
    let id = object_name_to_id(&agent.name_any()).unwrap_or_default();
    let revision = active_number(agent);
    let hash = prompt_hash(&agent.spec.prompt);
    let rev_id = revision_id(agent, revision);
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
        prompt_hash: hash,
        model: agent.spec.model.clone(),
        runtime: agent.spec.runtime.clone(),
        revision,
        active_revision_id: rev_id.clone(),
        active_revision: wire::Revision {
            id: rev_id,
            number: revision,
            digest: active_digest(agent),
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
    use sealpod_resources::labels::REVISION_ANNOTATION;

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
