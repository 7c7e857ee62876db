//! The `Credential` custom resource: a model provider key, sealed at rest, bound to the hosts it
//! may be sent to and to the header slots the proxy may fill.
//!
//! The key itself never appears in the resource: only a reference to the Secret holding its
//! sealed value (see `sealing`).

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
    /// The Secret (same namespace) holding the sealed value under key `sealed`.
    pub sealed_secret_ref: SealedSecretRef,
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

/// The hosts a provider's key is bound to by default.
pub fn default_allowed_hosts(provider: &str) -> Vec<String> {
    match provider {
        "anthropic" => vec!["api.anthropic.com".to_owned()],
        "openai" => vec!["api.openai.com".to_owned()],
        _ => Vec::new(),
    }
}

/// The header slots of a provider's key by default.
pub fn default_headers(provider: &str) -> Vec<String> {
    match provider {
        "anthropic" => vec!["x-api-key".to_owned(), "authorization".to_owned()],
        _ => vec!["authorization".to_owned()],
    }
}

/// The environment variable the runtime gets the sealed token in, per provider.
pub fn provider_env_var(provider: &str) -> String {
    match provider {
        "anthropic" => "ANTHROPIC_API_KEY".to_owned(),
        "openai" => "OPENAI_API_KEY".to_owned(),
        other => format!("{}_API_KEY", other.to_ascii_uppercase().replace('-', "_")),
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

/// The Secret holding a credential's sealed value: named by `spec.sealedSecretRef`, labelled with
/// the credential and owned by it (so it is collected with it). `managed_by` names the writer.
/// `credential` must be the stored object (its uid makes the owner reference).
pub fn sealed_secret(
    credential: &Credential,
    sealed: &crate::sealing::SealedValue,
    managed_by: &str,
) -> k8s_openapi::api::core::v1::Secret {
    use crate::labels::{
        COMPONENT_LABEL, COMPONENT_SEALED_CREDENTIAL, CREDENTIAL_LABEL, MANAGED_BY, PART_OF,
        PART_OF_VALUE, SEALED_SECRET_KEY,
    };
    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;
    use kube::{Resource as _, ResourceExt as _};
    let labels = std::collections::BTreeMap::from([
        (MANAGED_BY.to_owned(), managed_by.to_owned()),
        (PART_OF.to_owned(), PART_OF_VALUE.to_owned()),
        (
            COMPONENT_LABEL.to_owned(),
            COMPONENT_SEALED_CREDENTIAL.to_owned(),
        ),
        (CREDENTIAL_LABEL.to_owned(), credential.name_any()),
    ]);
    k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some(credential.spec.sealed_secret_ref.name.clone()),
            namespace: credential.namespace(),
            labels: Some(labels),
            owner_references: credential.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            SEALED_SECRET_KEY.to_owned(),
            ByteString(sealed.as_str().as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_secret_is_named_labelled_and_owned_by_its_credential() {
        let mut c = Credential::new(
            "cred-a",
            CredentialSpec {
                display_name: None,
                provider: "anthropic".into(),
                allowed_hosts: default_allowed_hosts("anthropic"),
                headers: None,
                sealed_secret_ref: SealedSecretRef {
                    name: "cred-a-sealed".into(),
                },
                default: false,
            },
        );
        c.metadata.namespace = Some("tenant".into());
        c.metadata.uid = Some("uid-1".into());
        let sealed = crate::sealing::SealedValue::from_text("spseal1.k.v");
        let s = sealed_secret(&c, &sealed, "writer");
        assert_eq!(s.metadata.name.as_deref(), Some("cred-a-sealed"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("tenant"));
        let labels = s.metadata.labels.expect("labels");
        assert_eq!(labels[crate::labels::CREDENTIAL_LABEL], "cred-a");
        assert_eq!(labels[crate::labels::MANAGED_BY], "writer");
        let owner = &s.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.name.as_str(), owner.uid.as_str()),
            ("cred-a", "uid-1")
        );
        assert_eq!(
            s.data.expect("data")[crate::labels::SEALED_SECRET_KEY].0,
            b"spseal1.k.v"
        );
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
