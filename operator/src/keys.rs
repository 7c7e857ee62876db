//! The cluster's key material, owned by the operator: the sealing key set (private keys in
//! Secret `sealpod-sealing-keys`, public keys in ConfigMap `sealpod-sealing-public` for the API
//! server) and the runtime-token key (Secret `sealpod-runtime-token-key`, shared with the API
//! server). Created on first start when absent; renewal adds a key and keeps the old ones.
//!
//! This module must never log or return key bytes except through the redacting types.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sealpod_resources::labels::{
    self, SEALING_KEYS_ENTRY, SEALING_PRIVATE_SECRET, SEALING_PUBLIC_CONFIGMAP,
};
use sealpod_resources::runtime_token::{
    CLIENT_TOKEN_KEY_SECRET, TOKEN_KEY_ENTRY, TOKEN_KEY_SECRET, TokenKey, generate_client_token_key,
};
use sealpod_resources::sealing::KeySet;
use sealpod_resources::secret::Secret as SecretString;

use crate::error::{Error, KeysError, is_status};

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (
                labels::MANAGED_BY.to_owned(),
                labels::OPERATOR_FIELD_MANAGER.to_owned(),
            ),
            (labels::PART_OF.to_owned(), labels::PART_OF_VALUE.to_owned()),
        ])),
        ..ObjectMeta::default()
    }
}

fn entry<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
}

fn import(secret: &Secret) -> Result<KeySet, Error> {
    let raw = entry(secret, SEALING_KEYS_ENTRY).ok_or_else(|| {
        Error::from(KeysError::MissingEntry {
            secret: SEALING_PRIVATE_SECRET.to_owned(),
            entry: SEALING_KEYS_ENTRY,
        })
    })?;
    let text = std::str::from_utf8(raw).map_err(|_| KeysError::NotUtf8)?;
    Ok(KeySet::import(&SecretString::new(text)).map_err(KeysError::from)?)
}

/// Reads the sealing key set, if it exists.
pub async fn load_sealing_keys(client: &Client, namespace: &str) -> Result<Option<KeySet>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets
        .get_opt(SEALING_PRIVATE_SECRET)
        .await
        .map_err(Error::kube("get sealing keys"))?
    {
        Some(s) => import(&s).map(Some),
        None => Ok(None),
    }
}

/// Writes the public keys of `keys` into the ConfigMap the API server reads.
async fn publish(client: &Client, namespace: &str, keys: &KeySet) -> Result<(), Error> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let public = serde_json::to_string(&keys.public_keys()).map_err(KeysError::PublicKeys)?;
    let cm = ConfigMap {
        metadata: meta(SEALING_PUBLIC_CONFIGMAP, namespace),
        data: Some(BTreeMap::from([(SEALING_KEYS_ENTRY.to_owned(), public)])),
        ..ConfigMap::default()
    };
    maps.patch(
        SEALING_PUBLIC_CONFIGMAP,
        &PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await
    .map_err(Error::kube("apply sealing public keys"))?;
    Ok(())
}

fn key_secret(namespace: &str, keys: &KeySet) -> Secret {
    Secret {
        metadata: meta(SEALING_PRIVATE_SECRET, namespace),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            SEALING_KEYS_ENTRY.to_owned(),
            ByteString(keys.export().expose().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Returns the sealing key set, creating it (and its public ConfigMap) on first start.
pub async fn ensure_sealing_keys(client: &Client, namespace: &str) -> Result<KeySet, Error> {
    let keys = match load_sealing_keys(client, namespace).await? {
        Some(keys) => keys,
        None => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let fresh = KeySet::generate();
            match secrets
                .create(&PostParams::default(), &key_secret(namespace, &fresh))
                .await
            {
                Ok(_) => {
                    tracing::info!(key_id = %fresh.current().id(), "created the cluster sealing key set");
                    fresh
                }
                // Another replica won the race: use its keys.
                Err(e) if is_status(&e, 409) => load_sealing_keys(client, namespace)
                    .await?
                    .ok_or(KeysError::Vanished)?,
                Err(e) => return Err(Error::kube("create sealing keys")(e)),
            }
        }
    };
    publish(client, namespace, &keys).await?;
    Ok(keys)
}

/// Adds a new current sealing key (old keys keep opening their values) and republishes the
/// public keys. Returns the new key set.
pub async fn renew_sealing_keys(client: &Client, namespace: &str) -> Result<KeySet, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = secrets
        .get_opt(SEALING_PRIVATE_SECRET)
        .await
        .map_err(Error::kube("get sealing keys"))?;
    let Some(existing) = existing else {
        return ensure_sealing_keys(client, namespace).await;
    };
    let mut keys = import(&existing)?;
    let id = keys.renew();
    let mut next = key_secret(namespace, &keys);
    // The resourceVersion precondition refuses to overwrite a concurrent renewal.
    next.metadata.resource_version = existing.metadata.resource_version.clone();
    secrets
        .replace(SEALING_PRIVATE_SECRET, &PostParams::default(), &next)
        .await
        .map_err(Error::kube("replace sealing keys"))?;
    publish(client, namespace, &keys).await?;
    tracing::info!(key_id = %id, "renewed the cluster sealing key");
    Ok(keys)
}

/// Returns the runtime-token key, creating it on first start (the API server may have created
/// it first: a conflict reads the existing one).
pub async fn ensure_token_key(client: &Client, namespace: &str) -> Result<TokenKey, Error> {
    let bytes = ensure_key_secret(client, namespace, TOKEN_KEY_SECRET, || {
        TokenKey::generate().expose().to_vec()
    })
    .await?;
    TokenKey::from_bytes(&bytes).ok_or_else(|| {
        Error::from(KeysError::Unusable {
            secret: TOKEN_KEY_SECRET,
            entry: TOKEN_KEY_ENTRY,
        })
    })
}

/// Creates the API server's client-token key on first start, so an API server that may not
/// create Secrets (the chart's role) finds it; the operator never uses it.
pub async fn ensure_client_token_key(client: &Client, namespace: &str) -> Result<(), Error> {
    ensure_key_secret(
        client,
        namespace,
        CLIENT_TOKEN_KEY_SECRET,
        generate_client_token_key,
    )
    .await
    .map(drop)
}

/// The `key` entry of key Secret `name`, creating the Secret with `generate()` when missing
/// (whoever creates it first wins: a conflict reads the existing one).
async fn ensure_key_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    generate: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |s: &Secret| {
        entry(s, TOKEN_KEY_ENTRY)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::from(KeysError::MissingEntry {
                    secret: name.to_owned(),
                    entry: TOKEN_KEY_ENTRY,
                })
            })
    };
    if let Some(s) = secrets
        .get_opt(name)
        .await
        .map_err(Error::kube("get token key"))?
    {
        return read(&s);
    }
    let key = generate();
    let secret = Secret {
        metadata: meta(name, namespace),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY_ENTRY.to_owned(),
            ByteString(key.clone()),
        )])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(key),
        Err(e) if is_status(&e, 409) => {
            let s = secrets
                .get(name)
                .await
                .map_err(Error::kube("get token key"))?;
            read(&s)
        }
        Err(e) => Err(Error::kube("create token key")(e)),
    }
}
