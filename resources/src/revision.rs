//! The `AgentRevision` custom resource: one immutable, numbered version of an agent's behaviour
//! (prompt, model and skill bundle). An Agent owns its revisions; the Agent's
//! [`REVISION_ANNOTATION`](crate::labels::REVISION_ANNOTATION) names the active one, whose prompt
//! and model the Agent's spec always repeats. A new session pins the active revision (or the one
//! its create request names) and keeps it for life.
//!
//! Revisions are created by the API server (`PATCH /v3/agents/{id}`, deployments, skills) and by
//! the operator when `kubectl` changes an Agent's prompt or model. Nothing changes a revision's
//! spec once written; its status collects the times it was made active (the activation log).
//!
//! A skill bundle's files live in an immutable ConfigMap named by the bundle's digest
//! ([`skills_config_map_name`]), which every revision and session with that bundle shares; the
//! sandbox mounts it read-only at [`SKILLS_MOUNT_PATH`].

use std::collections::BTreeMap;

use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agent::{Agent, AgentSpec, CREDENTIAL_REF_REGEX, MODEL_REGEX, sha256_tagged};
use crate::labels;

/// The file every skill folder holds; its front matter's `description` says what the skill is
/// for.
pub const SKILL_FILE: &str = "SKILL.md";
/// Where the runtime container sees the pinned revision's skills (read-only).
pub const SKILLS_MOUNT_PATH: &str = "/skills";
/// Environment variable giving the runtime [`SKILLS_MOUNT_PATH`] (as its node maps it).
pub const SKILLS_DIR_ENV: &str = "SEALPOD_SKILLS_DIR";
/// Activations a revision's status keeps (the oldest are dropped beyond it).
pub const MAX_ACTIVATIONS_KEPT: usize = 50;
/// Maximum number of files in a skill bundle.
pub const MAX_SKILL_FILES: usize = 100;
/// Maximum size of one skill file, bytes.
pub const MAX_SKILL_FILE_BYTES: u64 = 256 * 1024;
/// Maximum total size of a skill bundle's files, bytes (a ConfigMap holds at most 1 MiB).
pub const MAX_SKILL_BUNDLE_BYTES: u64 = 768 * 1024;
/// Maximum length of a skill file's path.
pub const MAX_SKILL_PATH_LEN: usize = 255;

/// One immutable version of an agent's behaviour.
// The derive repeats `type_` once per printer column, which clippy mistakes for duplication.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sealpod.dev",
    version = "v1alpha1",
    kind = "AgentRevision",
    plural = "agentrevisions",
    shortname = "agtrev",
    namespaced,
    status = "AgentRevisionStatus",
    doc = "An immutable, numbered revision of a sealpod agent: prompt, model and skills.",
    printcolumn(name = "Agent", type_ = "string", json_path = ".spec.agentRef"),
    printcolumn(name = "Number", type_ = "integer", json_path = ".spec.number"),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"),
    printcolumn(
        name = "Skills",
        type_ = "integer",
        json_path = ".spec.skills.fileCount"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AgentRevisionSpec {
    /// Name of the Agent.
    #[schemars(regex(pattern = CREDENTIAL_REF_REGEX))]
    pub agent_ref: String,
    /// The revision's number: 1, 2, 3… per agent.
    #[schemars(range(min = 1))]
    pub number: i64,
    /// The system prompt.
    #[schemars(length(max = 102400))]
    pub prompt: String,
    /// `provider/model`.
    #[schemars(regex(pattern = MODEL_REGEX))]
    pub model: String,
    /// [`revision_digest`] of prompt, model and skill bundle.
    #[schemars(length(max = 128))]
    pub digest: String,
    /// The skill bundle (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<SkillBundle>,
    /// What made the revision: `api` (the `/v3` API) or `kubectl` (a changed Agent spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub origin: Option<String>,
}

/// A skill bundle: files in an immutable ConfigMap, one folder per skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillBundle {
    /// [`bundle_digest`] of the files.
    #[schemars(length(max = 128))]
    pub digest: String,
    /// The ConfigMap holding the files ([`skills_config_map_name`]).
    #[schemars(length(max = 253))]
    pub config_map: String,
    /// Number of files (a printer column).
    pub file_count: u32,
    /// The files: ConfigMap key, path in the bundle, mode, size.
    pub files: Vec<SkillFile>,
    /// Each skill: its folder and its `SKILL.md` description.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<SkillSummary>,
}

/// One file of a skill bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillFile {
    /// Key of the file in the ConfigMap (`f0`, `f1`, …).
    #[schemars(length(max = 16))]
    pub key: String,
    /// Path in the bundle (`skill/SKILL.md`), relative, `/`-separated.
    #[schemars(length(min = 1, max = 255))]
    pub path: String,
    /// Permission bits (`0o444` or `0o555`: every file is read-only in the sandbox).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
}

/// One skill of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillSummary {
    /// The skill's folder (its name).
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// `description` of the front matter of its `SKILL.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

/// Observed state of a revision: when it was made active.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRevisionStatus {
    /// Each time the revision became the agent's active one, oldest first (at most
    /// [`MAX_ACTIVATIONS_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activations: Vec<Activation>,
}

/// One change of an agent's active revision, recorded on the revision made active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    /// `act_…`.
    #[schemars(length(max = 64))]
    pub id: String,
    /// The number of the revision active before (absent for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Who: `api` (an org API key) or `kubectl` (a changed Agent spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub actor: Option<String>,
    /// Why: `create`, `update`, `deploy`, `skills`, `rollback`, `promote` or `spec`.
    #[schemars(length(max = 64))]
    pub reason: String,
    /// When (RFC 3339).
    #[schemars(length(max = 64))]
    pub at: String,
}

/// The number of `agent`'s active revision: its [`REVISION_ANNOTATION`](labels::REVISION_ANNOTATION)
/// (missing, unparsable or below 1: 1).
pub fn active_number(agent: &Agent) -> i64 {
    agent
        .annotations()
        .get(labels::REVISION_ANNOTATION)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Object name of revision `number` of agent `agent` (an Agent object name).
pub fn revision_object_name(agent: &str, number: i64) -> String {
    format!("{agent}-r{number}")
}

/// Name of the ConfigMap holding the skill bundle `digest` of agent `agent`.
pub fn skills_config_map_name(agent: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("{agent}-skills-{}", &hex[..hex.len().min(16)])
}

/// The latest move of an agent's revision pointer, as
/// [`LAST_ACTIVATION_ANNOTATION`](crate::labels::LAST_ACTIVATION_ANNOTATION) holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastActivation {
    /// The number of the revision made active.
    pub to: i64,
    /// The activation, as that revision's log records it.
    #[serde(flatten)]
    pub activation: Activation,
}

impl LastActivation {
    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("strings and numbers serialize")
    }

    /// The latest move recorded on `agent` (none, or an unreadable annotation: `None`).
    pub fn of(agent: &Agent) -> Option<LastActivation> {
        serde_json::from_str(
            agent
                .annotations()
                .get(labels::LAST_ACTIVATION_ANNOTATION)?,
        )
        .ok()
    }

    /// Whether `revision` is the one it moved to and its log lacks it.
    pub fn missing_from(&self, revision: &AgentRevision) -> bool {
        self.to == revision.spec.number && !revision.has_logged(&self.activation.id)
    }
}

/// `sha256:<hex>` over a bundle's files (path, mode and content digest, in path order): equal
/// bundles have equal digests whatever their ConfigMap keys.
pub fn bundle_digest<'a>(files: impl IntoIterator<Item = (&'a str, u32, &'a [u8])>) -> String {
    let mut listed: Vec<(&str, u32, String)> = files
        .into_iter()
        .map(|(path, mode, content)| (path, mode, hex::encode(Sha256::digest(content))))
        .collect();
    listed.sort();
    sha256_tagged(&serde_json::to_vec(&listed).expect("strings and numbers serialize"))
}

/// `sha256:<hex>` over a revision's prompt, model and skill bundle digest: what the wire's
/// `digest` reports, equal for revisions of equal behaviour.
pub fn revision_digest(prompt: &str, model: &str, skills: Option<&str>) -> String {
    sha256_tagged(&serde_json::to_vec(&(prompt, model, skills)).expect("strings serialize"))
}

impl AgentRevisionSpec {
    /// A revision of `agent` with the given behaviour (its digest computed).
    pub fn new(
        agent: &str,
        number: i64,
        prompt: &str,
        model: &str,
        skills: Option<SkillBundle>,
        origin: &str,
    ) -> AgentRevisionSpec {
        AgentRevisionSpec {
            agent_ref: agent.to_owned(),
            number,
            prompt: prompt.to_owned(),
            model: model.to_owned(),
            digest: revision_digest(prompt, model, skills.as_ref().map(|s| s.digest.as_str())),
            skills,
            origin: Some(origin.to_owned()),
        }
    }
}

impl AgentRevisionSpec {
    /// Revision `number` of `agent` with the prompt and model of its spec.
    pub fn of_spec(
        agent: &Agent,
        number: i64,
        skills: Option<SkillBundle>,
        origin: &str,
    ) -> AgentRevisionSpec {
        AgentRevisionSpec::new(
            &agent.name_any(),
            number,
            &agent.spec.prompt,
            &agent.spec.model,
            skills,
            origin,
        )
    }
}

impl AgentRevision {
    /// A new revision object of `agent`, owned by it (deleted with it).
    pub fn for_agent(agent: &Agent, spec: AgentRevisionSpec) -> AgentRevision {
        let name = revision_object_name(&agent.name_any(), spec.number);
        let mut revision = AgentRevision::new(&name, spec);
        revision.metadata.namespace = agent.namespace();
        revision.metadata.owner_references = agent.controller_owner_ref(&()).map(|o| vec![o]);
        revision.metadata.labels = Some(BTreeMap::from([
            (labels::AGENT_LABEL.to_owned(), agent.name_any()),
            (labels::PART_OF.to_owned(), labels::PART_OF_VALUE.to_owned()),
        ]));
        revision
    }

    /// Whether the revision's activation log holds activation `id`.
    pub fn has_logged(&self, id: &str) -> bool {
        self.status
            .iter()
            .flat_map(|s| &s.activations)
            .any(|a| a.id == id)
    }

    /// Whether the revision's prompt and model are the agent spec's (its skills are never in
    /// the spec).
    pub fn matches(&self, agent: &AgentSpec) -> bool {
        self.spec.prompt == agent.prompt && self.spec.model == agent.model
    }
}

/// The number the next revision of an agent takes, given its revisions' numbers.
pub fn next_number(numbers: impl IntoIterator<Item = i64>) -> i64 {
    numbers.into_iter().max().unwrap_or(0) + 1
}

/// `status` with `activation` appended (unless one with its id is there already), keeping the
/// newest [`MAX_ACTIVATIONS_KEPT`].
pub fn with_activation(
    status: Option<&AgentRevisionStatus>,
    activation: Activation,
) -> AgentRevisionStatus {
    let mut activations = status.map(|s| s.activations.clone()).unwrap_or_default();
    if !activations.iter().any(|a| a.id == activation.id) {
        activations.push(activation);
    }
    let excess = activations.len().saturating_sub(MAX_ACTIVATIONS_KEPT);
    activations.drain(..excess);
    AgentRevisionStatus { activations }
}

/// The id of the activation that made revision `number` of the agent with UID `agent_uid` active
/// when it was first recorded without a request (an agent's first revision, or one made from a
/// changed spec): the same whoever records it, so two recorders add it once.
pub fn derived_activation_id(agent_uid: &str, number: i64) -> String {
    let digest = Sha256::digest(format!("{agent_uid}/{number}").as_bytes());
    format!("act_{}", &hex::encode(digest)[..24])
}

/// `description` of a `SKILL.md`'s YAML front matter (`---` lines around `key: value` lines).
pub fn front_matter_description(content: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    for line in lines {
        if line.trim_end() == "---" {
            return None;
        }
        if let Some(value) = line.strip_prefix("description:") {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            let description: String = unquoted.chars().take(1024).collect();
            return (!description.is_empty()).then_some(description);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_content_not_order() {
        let a = bundle_digest([
            ("x/SKILL.md", 0o444, b"a".as_slice()),
            ("y/SKILL.md", 0o444, b"b"),
        ]);
        let b = bundle_digest([
            ("y/SKILL.md", 0o444, b"b".as_slice()),
            ("x/SKILL.md", 0o444, b"a"),
        ]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            bundle_digest([
                ("x/SKILL.md", 0o555, b"a".as_slice()),
                ("y/SKILL.md", 0o444, b"b")
            ])
        );
        assert_ne!(
            revision_digest("p", "m/x", None),
            revision_digest("p", "m/x", Some(&a))
        );
        assert_ne!(
            revision_digest("pm", "/x", None),
            revision_digest("p", "m/x", None)
        );
    }

    #[test]
    fn names_are_short_dns_labels() {
        assert_eq!(revision_object_name("agt-abc", 3), "agt-abc-r3");
        let name = skills_config_map_name("agt-abc", &bundle_digest([]));
        assert!(name.starts_with("agt-abc-skills-") && name.len() == "agt-abc-skills-".len() + 16);
    }

    #[test]
    fn activations_are_recorded_once_and_bounded() {
        let at = |i: usize| Activation {
            id: format!("act_{i}"),
            from: None,
            actor: None,
            reason: "update".into(),
            at: String::new(),
        };
        let mut status = with_activation(None, at(0));
        status = with_activation(Some(&status), at(0));
        assert_eq!(status.activations.len(), 1);
        for i in 1..=MAX_ACTIVATIONS_KEPT {
            status = with_activation(Some(&status), at(i));
        }
        assert_eq!(status.activations.len(), MAX_ACTIVATIONS_KEPT);
        assert_eq!(status.activations[0].id, "act_1");
        assert_eq!(next_number([]), 1);
        assert_eq!(next_number([1, 4, 2]), 5);
        assert_eq!(derived_activation_id("u", 2), derived_activation_id("u", 2));
        assert_ne!(derived_activation_id("u", 2), derived_activation_id("u", 3));
    }

    #[test]
    fn the_active_number_defaults_to_one() {
        let agent = |annotation: Option<&str>| {
            let mut agent = Agent::new(
                "agt-a",
                serde_json::from_value(serde_json::json!({"model": "a/m", "prompt": ""}))
                    .expect("spec"),
            );
            if let Some(value) = annotation {
                agent.metadata.annotations = Some(BTreeMap::from([(
                    labels::REVISION_ANNOTATION.to_owned(),
                    value.to_owned(),
                )]));
            }
            agent
        };
        assert_eq!(active_number(&agent(None)), 1);
        assert_eq!(active_number(&agent(Some("4"))), 4);
        assert_eq!(active_number(&agent(Some("x"))), 1);
        assert_eq!(active_number(&agent(Some("0"))), 1);
    }

    #[test]
    fn descriptions_come_from_the_front_matter_only() {
        let md = b"---\nname: pdf\ndescription: \"Reads PDFs.\"\n---\nBody\ndescription: no\n";
        assert_eq!(front_matter_description(md).as_deref(), Some("Reads PDFs."));
        assert_eq!(front_matter_description(b"description: x\n"), None);
        assert_eq!(
            front_matter_description(b"---\nname: a\n---\ndescription: x\n"),
            None
        );
        assert_eq!(front_matter_description(&[0xff, 0xfe]), None);
    }
}
