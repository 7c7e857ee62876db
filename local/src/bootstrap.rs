//! What `sealpod up` creates in the cluster: the system and tenant namespaces, and (with the
//! fake model) the managed Credential holding the fake model's key, sealed with the cluster's
//! public key exactly as the API server seals a key it is given. It never writes a key in the
//! clear to the cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use sealpod_resources::Credential;
use sealpod_resources::credential::{CredentialSpec, default_allowed_hosts};
use sealpod_resources::labels::{SEALING_KEYS_ENTRY, SEALING_PUBLIC_CONFIGMAP};
use sealpod_resources::sealing::PublicKeySet;

/// Name of the managed Credential `up --fake-model` creates in the system namespace.
pub const FAKE_MODEL_CREDENTIAL: &str = "fake-model";

/// A step of the bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A Kubernetes call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The operator did not publish the sealing public key in time.
    #[error("the operator did not publish the sealing public key within {0} s")]
    NoSealingKey(u64),
    /// Sealing failed.
    #[error("sealing: {0}")]
    Seal(String),
}

fn kube_err(what: &str) -> impl FnOnce(kube::Error) -> BootstrapError + '_ {
    move |e| BootstrapError::Kube {
        what: what.to_owned(),
        source: Box::new(e),
    }
}

/// Creates a namespace unless it exists.
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<(), BootstrapError> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api
        .get_opt(name)
        .await
        .map_err(kube_err("get namespace"))?
        .is_none()
    {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(kube_err("create namespace"))?;
    }
    Ok(())
}

/// Waits for the operator's sealing public keys.
pub async fn sealing_keys(
    client: &kube::Client,
    system_ns: &str,
    secs: u64,
) -> Result<PublicKeySet, BootstrapError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), system_ns);
    for _ in 0..secs * 10 {
        if let Some(keys) = api
            .get_opt(SEALING_PUBLIC_CONFIGMAP)
            .await
            .map_err(kube_err("get sealing public keys"))?
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(SEALING_KEYS_ENTRY).cloned())
            .and_then(|text| serde_json::from_str(&text).ok())
        {
            return Ok(keys);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BootstrapError::NoSealingKey(secs))
}

/// Creates the managed Anthropic Credential `name` in the system namespace, its key sealed into
/// its spec, unless it exists (a resumed `up` keeps it).
pub async fn managed_credential(
    client: &kube::Client,
    system_ns: &str,
    name: &str,
    key: &str,
    public: &PublicKeySet,
) -> Result<(), BootstrapError> {
    let creds: Api<Credential> = Api::namespaced(client.clone(), system_ns);
    // Kept as is on resume: the key file is the same, and resealing would rotate the value.
    if creds
        .get_opt(name)
        .await
        .map_err(kube_err("get credential"))?
        .is_some()
    {
        return Ok(());
    }
    let sealed = public
        .seal(
            &CredentialSpec::sealing_context(system_ns, name),
            key.as_bytes(),
        )
        .map_err(|e| BootstrapError::Seal(e.to_string()))?;
    let credential = Credential::new(
        name,
        CredentialSpec {
            display_name: Some(name.to_owned()),
            provider: "anthropic".to_owned(),
            allowed_hosts: default_allowed_hosts("anthropic"),
            headers: None,
            sealed_value: Some(sealed.as_str().to_owned()),
            sealed_secret_ref: None,
            default: false,
        },
    );
    creds
        .create(&PostParams::default(), &credential)
        .await
        .map_err(kube_err("create credential"))?;
    Ok(())
}
