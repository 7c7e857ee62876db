//! What earlier versions kept in Secrets and now lives elsewhere, moved once by the leader before
//! its controllers start, so that the API server needs no access to a tenant's Secrets: an org
//! API key's hash moves from its labelled Secret into a ConfigMap of the same name, and the Secret
//! is deleted (a key revoked by deleting its ConfigMap must not come back from the Secret). A
//! credential's sealed value moves into its Credential in the credential controller.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use sealpod_resources::labels::{API_KEY_HASH_ENTRY, COMPONENT_API_KEY, COMPONENT_LABEL};

use crate::controller::scoped;
use crate::error::Error;

/// Moves every org API key Secret of `scopes` (one namespace each, or `None` for all) into a
/// ConfigMap; returns how many moved.
pub async fn move_api_keys(client: &Client, scopes: &[Option<String>]) -> Result<usize, Error> {
    let selector = format!("{COMPONENT_LABEL}={COMPONENT_API_KEY}");
    let mut moved = 0;
    for scope in scopes {
        let legacy = scoped::<Secret>(client.clone(), scope.as_deref())
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::kube("list org API key secrets"))?;
        for secret in legacy.items {
            let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
                continue;
            };
            let hash = secret
                .data
                .as_ref()
                .and_then(|d| d.get(API_KEY_HASH_ENTRY))
                .and_then(|b| std::str::from_utf8(&b.0).ok());
            if let Some(hash) = hash {
                let record = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.clone()),
                        labels: Some(secret.labels().clone()),
                        ..ObjectMeta::default()
                    },
                    data: Some(BTreeMap::from([(
                        API_KEY_HASH_ENTRY.to_owned(),
                        hash.trim().to_owned(),
                    )])),
                    ..ConfigMap::default()
                };
                match Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .create(&PostParams::default(), &record)
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(Error::kube("create org API key record")(e)),
                }
            }
            match Api::<Secret>::namespaced(client.clone(), &ns)
                .delete(&name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::kube("delete a moved org API key secret")(e)),
            }
            tracing::info!(namespace = %ns, record = %name, "moved an org API key hash out of its Secret");
            moved += 1;
        }
    }
    Ok(moved)
}
