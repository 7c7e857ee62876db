//! The per-session proxy Secret (proxy configuration, the real value, the proxy-scope events
//! token, and the extra upstream roots when `--upstream-ca-file` is set) and runtime Secret
//! (runtime-scope token, the sealed token).
//!
//! The proxy Secret's value file entry is the only place in any built object where the real
//! credential value is written.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use sealpod_resources::runtime_token::{
    PROXY_SECRET_EVENTS_TOKEN_ENTRY, RUNTIME_SECRET_SESSION_ENTRY, RUNTIME_SECRET_TOKEN_ENTRY,
};
use sealpod_resources::{ids, labels};

use super::proxy_config::proxy_config;
use super::{SessionPlan, Settings, child_meta, proxy_secret_name, runtime_secret_name};

/// Entry of the proxy configuration YAML in the proxy Secret.
pub const PROXY_CONFIG_ENTRY: &str = "config.yaml";
/// Entry of the real credential value in the proxy Secret (the proxy's `value_file`).
pub const PROXY_VALUE_ENTRY: &str = "credential";
/// Entry of the extra upstream roots (`--upstream-ca-file`) in the proxy Secret (the proxy's
/// `extra_roots`).
pub const UPSTREAM_CA_ENTRY: &str = "upstream-ca.pem";
/// Entry of the sealed token in the runtime Secret (the runtime's provider key variable).
pub const RUNTIME_SEALED_TOKEN_ENTRY: &str = "sealed-token";

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

/// The proxy Secret: mounted only into the proxy container. Fails only when its configuration
/// does not serialize (never written empty).
pub fn proxy_secret(
    plan: &SessionPlan,
    settings: &Settings,
) -> Result<Secret, serde_saphyr::SerializeError> {
    let config = proxy_config(plan, settings);
    let yaml = serde_saphyr::to_string(&config)?;
    let mut meta = child_meta(
        plan,
        proxy_secret_name(&plan.pod),
        labels::COMPONENT_PROXY_SECRET,
    );
    meta.annotations = Some(BTreeMap::from([(
        labels::CREDENTIAL_VERSION_ANNOTATION.to_owned(),
        plan.credential.version.to_string(),
    )]));
    let mut data = BTreeMap::from([
        (PROXY_CONFIG_ENTRY.to_owned(), bytes(&yaml)),
        // The one sink of the real value.
        (
            PROXY_VALUE_ENTRY.to_owned(),
            bytes(plan.credential.value.expose()),
        ),
        (
            PROXY_SECRET_EVENTS_TOKEN_ENTRY.to_owned(),
            bytes(plan.events_token.expose()),
        ),
    ]);
    // Built with the rest on every write (rotation included): an apply without it would drop
    // the file `extra_roots` names and the proxy would refuse to start.
    if let Some(ca) = &settings.upstream_ca {
        data.insert(UPSTREAM_CA_ENTRY.to_owned(), bytes(ca));
    }
    Ok(Secret {
        metadata: meta,
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

/// The runtime Secret: mounted into the runtime container (token and session id files) and read
/// into its environment (sealed token).
pub fn runtime_secret(plan: &SessionPlan) -> Secret {
    Secret {
        metadata: child_meta(
            plan,
            runtime_secret_name(&plan.pod),
            labels::COMPONENT_RUNTIME_SECRET,
        ),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                RUNTIME_SECRET_TOKEN_ENTRY.to_owned(),
                bytes(plan.runtime_token.expose()),
            ),
            (
                RUNTIME_SEALED_TOKEN_ENTRY.to_owned(),
                bytes(plan.credential.sealed.expose()),
            ),
            (
                RUNTIME_SECRET_SESSION_ENTRY.to_owned(),
                bytes(&ids::object_name_to_id(&plan.name).unwrap_or_else(|_| plan.name.clone())),
            ),
        ])),
        ..Secret::default()
    }
}
