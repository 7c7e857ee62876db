//! The `Agent` custom resource: a reusable definition of model, prompt, runtime, credential,
//! default limits, egress policy and sandbox shape.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::common::{EgressPolicy, Limits};
use crate::conditions::Condition;

/// Pattern of `spec.model`: `provider/model`.
pub const MODEL_REGEX: &str = r"^[a-z0-9][a-z0-9-]{0,62}/[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$";
/// Pattern of `spec.runtime`.
pub const RUNTIME_REGEX: &str = r"^[a-z][a-z0-9-]{0,31}$";
/// Pattern of a credential reference: `managed` or a Credential object name.
pub const CREDENTIAL_REF_REGEX: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/// The credential reference meaning the cluster's platform credential.
pub const MANAGED_CREDENTIAL: &str = "managed";
/// The default runtime.
pub const DEFAULT_RUNTIME: &str = "claude";
/// Maximum prompt size in bytes.
pub const MAX_PROMPT_BYTES: usize = 100 * 1024;

fn default_runtime() -> String {
    DEFAULT_RUNTIME.to_owned()
}

/// An agent: what a session runs.
// The derive repeats `type_` once per printer column, which clippy mistakes for duplication.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sealpod.dev",
    version = "v1alpha1",
    kind = "Agent",
    plural = "agents",
    shortname = "agt",
    namespaced,
    status = "AgentStatus",
    doc = "A sealpod agent: model, prompt, runtime, credential, default limits, egress policy and sandbox shape.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"),
    printcolumn(name = "Runtime", type_ = "string", json_path = ".spec.runtime"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
    printcolumn(name = "Pool", type_ = "integer", json_path = ".status.warmPool.ready"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The agent's `name` in the `/v3` API, unique in its namespace (create is idempotent by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub display_name: Option<String>,
    /// `provider/model`, e.g. `anthropic/claude-sonnet-4-5`. The provider must match the runtime.
    #[schemars(regex(pattern = MODEL_REGEX))]
    pub model: String,
    /// The agent loop inside the sandbox: `claude` (default), `codex`, `pi`, ….
    #[serde(default = "default_runtime")]
    #[schemars(regex(pattern = RUNTIME_REGEX))]
    pub runtime: String,
    /// The system prompt.
    #[schemars(length(max = 102400))]
    pub prompt: String,
    /// `managed`, a Credential name, or unset for the namespace's default credential of the
    /// model's provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CREDENTIAL_REF_REGEX))]
    pub credential: Option<String>,
    /// Default limits of the agent's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Egress policy of the sandbox (the credential's bound hosts are always allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressPolicy>,
    /// Shape of the sandbox pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
    /// Sandbox pods kept started for the agent's next sessions, so that a new session starts
    /// in one at once (unset: none). An unclaimed pod holds no credential value and no session;
    /// each costs what an idle session's pod does (a proxy and an idle runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolSpec>,
}

/// A warm pool: sandbox pods started ahead of their sessions. Each is started as a session's
/// pod would be (egress lock verified, proxy running with its own CA) but holds no credential
/// and no session identity: the runtime waits. A new session of the agent claims a ready pod,
/// the operator binds the session's credential and identity into it, and a new pod takes its
/// place. A pod serves one session only and never returns to the pool. Each pod costs what an
/// idle session's pod does: a proxy and an idle runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolSpec {
    /// How many unclaimed pods to keep started (0 empties the pool).
    #[schemars(range(min = 0, max = 100))]
    pub size: u32,
}

/// What the warm pool holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolStatus {
    /// Unclaimed pods of the current template, started or starting.
    pub size: u32,
    /// Of those, the pods ready to be claimed.
    pub ready: u32,
    /// Fingerprint of the pod the pool keeps (label `sealpod.dev/pool-template` of its pods):
    /// it changes with the agent's model, runtime, egress, sandbox shape or credential binding,
    /// and pool pods of another template are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// The sandbox pod's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// Image of the runtime container (default: the operator's configured runtime image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Resource requests and limits of the runtime container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<SandboxResources>,
    /// RuntimeClass of the pod (e.g. `gvisor`, `kata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CREDENTIAL_REF_REGEX))]
    pub runtime_class_name: Option<String>,
    /// Seconds without a turn before the session hibernates (pod deleted, workspace kept).
    /// 0 never hibernates. Default 900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2592000))]
    pub idle_timeout_seconds: Option<u32>,
}

/// Resource quantities (`cpu: "500m"`, `memory: "1Gi"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxResources {
    /// Requests by resource name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits by resource name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// Default idle timeout before hibernation.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u32 = 900;

/// Observed state of an Agent (written by the operator).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of the active revision (the `AgentRevision` named in `activeRevision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Object name of the active `AgentRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,
    /// [`prompt_hash`] of the current prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_hash: Option<String>,
    /// The warm pool (absent when the agent has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolStatus>,
}

/// `sha256:<hex>` of a prompt: what a session pins and what `prompt_hash` reports.
pub fn prompt_hash(prompt: &str) -> String {
    sha256_tagged(prompt.as_bytes())
}

/// `sha256:<hex>` of `bytes`, the form of every digest the resources carry.
pub(crate) fn sha256_tagged(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The provider part of `provider/model`.
pub fn model_provider(model: &str) -> Option<&str> {
    model.split_once('/').map(|(provider, _)| provider)
}

/// The provider a runtime speaks to, for the runtimes sealpod knows.
pub fn runtime_provider(runtime: &str) -> Option<&'static str> {
    crate::provider::of_runtime(runtime).map(|p| p.name)
}

/// Checks that the model's provider matches the runtime (`claude` ↔ `anthropic/…`,
/// `codex` ↔ `openai/…`; other runtimes accept any provider).
pub fn check_model_runtime(model: &str, runtime: &str) -> Result<(), String> {
    let provider =
        model_provider(model).ok_or_else(|| format!("model `{model}` must be `provider/model`"))?;
    match runtime_provider(runtime) {
        Some(expected) if expected != provider => Err(format!(
            "runtime `{runtime}` needs a `{expected}/…` model, not `{model}`"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_hash_is_stable_and_prefixed() {
        assert_eq!(
            prompt_hash(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(prompt_hash("a"), prompt_hash("b"));
    }

    #[test]
    fn model_and_runtime_must_agree() {
        assert!(check_model_runtime("anthropic/claude-x", "claude").is_ok());
        assert!(check_model_runtime("openai/gpt-x", "codex").is_ok());
        assert!(check_model_runtime("openai/gpt-x", "claude").is_err());
        assert!(check_model_runtime("anthropic/claude-x", "codex").is_err());
        assert!(check_model_runtime("anything/m", "pi").is_ok());
        assert!(check_model_runtime("nomodel", "pi").is_err());
    }
}
