//! Test helpers for code running against a devcluster: a small Lease-based leader elector
//! (kube has none built in) with the usual semantics: acquire when the Lease is free or its
//! holder stopped renewing for longer than the lease duration, renew while holding, and never
//! take a Lease another holder renewed in time. Conflicts (409) mean someone else won the race.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::Duration;

/// One candidate for leadership of one Lease.
#[derive(Debug, Clone)]
pub struct LeaseElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
}

/// The outcome of one election round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This candidate holds the Lease (acquired or renewed).
    Leading,
    /// Someone else holds it.
    Following {
        /// The current holder.
        holder: String,
    },
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl LeaseElector {
    /// A candidate `identity` for Lease `name` in the client's namespace of `api`.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, lease_duration: Duration) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            lease_duration,
        }
    }

    /// One round: acquire or renew if possible.
    pub async fn try_acquire_or_renew(&self) -> Result<Leadership, kube::Error> {
        let secs = i32::try_from(self.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Leadership::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => self.holder().await,
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(secs)).unwrap_or(0),
        );
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let expired = match renewed {
            None => true,
            Some(t) => {
                let age = k8s_openapi::jiff::Timestamp::now().duration_since(t);
                age.as_secs_f64() > duration.as_secs_f64()
            }
        };
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(Leadership::Following { holder });
        }
        if holder != self.identity {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(now());
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(secs);
        // The update carries the resourceVersion we read: a concurrent winner makes it 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Leadership::Leading),
            Err(kube::Error::Api(e)) if e.code == 409 => self.holder().await,
            Err(e) => Err(e),
        }
    }

    async fn holder(&self) -> Result<Leadership, kube::Error> {
        let lease = self.api.get(&self.name).await?;
        let holder = lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        if holder == self.identity {
            Ok(Leadership::Leading)
        } else {
            Ok(Leadership::Following { holder })
        }
    }
}

/// Reads every CustomResourceDefinition in the `*.yaml` / `*.yml` files of a directory (multi-
/// document files allowed; other kinds are skipped), in file-name order.
pub fn crds_from_dir(
    dir: &std::path::Path,
) -> Result<Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>, crate::Error>
{
    let mut out = Vec::new();
    for doc in yaml_documents(dir)? {
        if doc.get("kind").and_then(serde_json::Value::as_str) == Some("CustomResourceDefinition") {
            let crd = serde_json::from_value(doc).map_err(|e| crate::Error::Parse {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
            out.push(crd);
        }
    }
    Ok(out)
}

/// Every YAML document of the `*.yaml` / `*.yml` files of a directory, in file-name order.
pub fn yaml_documents(dir: &std::path::Path) -> Result<Vec<serde_json::Value>, crate::Error> {
    let io = |source| crate::Error::File {
        what: "reading",
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io)?;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| crate::Error::Parse {
                path: f.display().to_string(),
                message: e.to_string(),
            })?;
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    Ok(out)
}
