//! The `Credential` custom resource: a model provider key, sealed at rest, bound to the hosts it
//! may be sent to and to the header slots the proxy may fill.
//!
//! The key itself never appears in the resource: only its sealed value (`spec.sealedValue`,
//! ciphertext that only the operator's private keys open; see `sealing`), or a reference to a
//! Secret holding that sealed value.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::BOUND_HOST_REGEX;
use crate::conditions::Condition;

/// Pattern of `spec.provider`.
pub const PROVIDER_REGEX: &str = r"^[a-z][a-z0-9-]{0,31}$";
/// Pattern of a header slot name.
pub const HEADER_REGEX: &str = r"^[a-z0-9][a-z0-9-]{0,63}$";

/// A model provider key, sealed at rest.
// The derive repeats `type_` once per printer column, which clippy mistakes for duplication.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sealpod.dev",
    version = "v1alpha1",
    kind = "Credential",
    plural = "credentials",
    shortname = "cred",
    namespaced,
    status = "CredentialStatus",
    doc = "A sealpod credential: a provider key sealed at rest, bound to the hosts and header slots it may fill.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Last4", type_ = "string", json_path = ".status.last4"),
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpec {
    /// The credential's `name` in the `/v3` API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub display_name: Option<String>,
    /// `anthropic`, `openai`, or another provider name.
    #[schemars(regex(pattern = PROVIDER_REGEX))]
    pub provider: String,
    /// Hosts the key may be sent to (`host` or `*.suffix`). Required and non-empty; there is no
    /// "any host".
    #[schemars(length(min = 1, max = 32), inner(regex(pattern = BOUND_HOST_REGEX)))]
    pub allowed_hosts: Vec<String>,
    /// Header slots the proxy may fill with the key (lowercase names). Default per provider:
    /// `x-api-key` and `authorization` for anthropic, `authorization` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8), inner(regex(pattern = HEADER_REGEX)))]
    pub headers: Option<Vec<String>>,
    /// The key sealed with the cluster's public sealing key under context `namespace/name`
    /// (`spseal1.…`): ciphertext only, opened by the operator alone. Where the API keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16384))]
    pub sealed_value: Option<String>,
    /// A Secret (same namespace) holding the sealed value under key `sealed`, for credentials
    /// applied with their value in a Secret. Read only when `sealedValue` is unset; the operator
    /// moves a value the API server once wrote this way into `sealedValue` and deletes the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret_ref: Option<SealedSecretRef>,
    /// The namespace's default credential for its provider.
    #[serde(default)]
    pub default: bool,
}

/// Reference to the Secret that holds a credential's sealed value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Observed state of a Credential.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Last four characters of the key, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4))]
    pub last4: Option<String>,
    /// Version of the value: 1 at create, +1 at each rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Id of the sealing key the value is sealed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `Ready` (the value opens), `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The hosts a provider's key is bound to by default (none for a provider sealpod does not know).
pub fn default_allowed_hosts(provider: &str) -> Vec<String> {
    crate::provider::named(provider)
        .map(|p| p.hosts.iter().map(|h| (*h).to_owned()).collect())
        .unwrap_or_default()
}

/// The header slots of a provider's key by default (`authorization` for one sealpod does not
/// know).
pub fn default_headers(provider: &str) -> Vec<String> {
    crate::provider::named(provider)
        .map_or(&["authorization"][..], |p| p.headers)
        .iter()
        .map(|h| (*h).to_owned())
        .collect()
}

/// The environment variable the runtime gets the sealed token in, per provider.
pub fn provider_env_var(provider: &str) -> String {
    match crate::provider::named(provider) {
        Some(p) => p.key_env.to_owned(),
        None => format!(
            "{}_API_KEY",
            provider.to_ascii_uppercase().replace('-', "_")
        ),
    }
}

impl CredentialSpec {
    /// The header slots in effect (explicit, or the provider's defaults).
    pub fn effective_headers(&self) -> Vec<String> {
        self.headers
            .clone()
            .unwrap_or_else(|| default_headers(&self.provider))
    }

    /// The context a credential's value is sealed under: `namespace/name`. Binding it into the
    /// ciphertext makes a sealed value copied to another credential fail to open.
    pub fn sealing_context(namespace: &str, name: &str) -> Vec<u8> {
        format!("{namespace}/{name}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_keeps_its_sealed_value_in_the_spec_and_a_legacy_one_a_reference() {
        let spec = |value: serde_json::Value| -> CredentialSpec {
            serde_json::from_value(value).expect("spec")
        };
        let new = spec(serde_json::json!({"provider": "anthropic",
            "allowedHosts": ["api.anthropic.com"], "sealedValue": "spseal1.k.v"}));
        assert_eq!(new.sealed_value.as_deref(), Some("spseal1.k.v"));
        assert_eq!(new.sealed_secret_ref, None);
        let legacy = spec(serde_json::json!({"provider": "anthropic",
            "allowedHosts": ["api.anthropic.com"], "sealedSecretRef": {"name": "cred-a-sealed"}}));
        assert_eq!(legacy.sealed_value, None);
        assert_eq!(
            legacy.sealed_secret_ref.map(|r| r.name).as_deref(),
            Some("cred-a-sealed")
        );
        let written = serde_json::to_value(&new).expect("json");
        assert!(written.get("sealedSecretRef").is_none(), "{written}");
    }

    #[test]
    fn provider_defaults() {
        assert_eq!(default_headers("anthropic"), ["x-api-key", "authorization"]);
        assert_eq!(default_headers("openai"), ["authorization"]);
        assert_eq!(default_allowed_hosts("anthropic"), ["api.anthropic.com"]);
        assert!(default_allowed_hosts("other").is_empty());
        assert_eq!(provider_env_var("anthropic"), "ANTHROPIC_API_KEY");
        assert_eq!(provider_env_var("my-llm"), "MY_LLM_API_KEY");
    }
}
