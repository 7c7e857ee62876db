//! Leader election with a `coordination.k8s.io/v1` Lease: one replica holds it and runs the
//! controllers; the others stay passive until the holder's lease lapses.
//!
//! Every write carries the resourceVersion it was computed from, so two replicas can never both
//! believe they took the lease. Expiry is judged on the local clock from when this replica last
//! saw the lease change (as client-go does), never by comparing another node's timestamps.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::error::{Error, is_status};

/// A replica's view of one Lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The resourceVersion last seen, and when this replica first saw it.
    observed: Mutex<Option<(String, Instant)>>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    /// An elector for Lease `namespace/name` as `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            observed: Mutex::new(None),
        }
    }

    /// How often the holder renews (a third of the lease duration).
    pub fn renew_period(&self) -> Duration {
        self.duration / 3
    }

    fn spec(&self, acquire: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs())
                    .unwrap_or(i32::MAX)
                    .max(1),
            ),
            acquire_time: Some(acquire),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One election round: creates, renews or takes over the Lease. Returns whether this
    /// replica holds it now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(Error::kube("get lease"))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now(), 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_status(&e, 409) => Ok(false),
                Err(e) => Err(Error::kube("create lease")(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let lapsed = {
            let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
            match observed.as_ref() {
                Some((seen, at)) if *seen == rv => at.elapsed() >= self.duration,
                _ => {
                    *observed = Some((rv.clone(), Instant::now()));
                    false
                }
            }
        };
        if !mine && holder.is_some() && !lapsed {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquire = if mine {
            spec.acquire_time.clone().unwrap_or_else(now)
        } else {
            now()
        };
        lease.spec = Some(self.spec(acquire, transitions));
        lease.metadata.managed_fields = None;
        // `lease.metadata.resource_version` is the precondition: a concurrent writer makes this
        // a 409 and this round a loss.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                let rv = written.metadata.resource_version.unwrap_or_default();
                *self.observed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((rv, Instant::now()));
                if !mine {
                    tracing::info!(identity = %self.identity, lease = %self.name, "acquired the leader lease");
                }
                Ok(true)
            }
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(Error::kube("renew lease")(e)),
        }
    }

    /// Gives the lease up (on shutdown) so another replica takes over without waiting.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(Error::kube("get lease"))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(Error::kube("release lease")(e)),
        }
    }
}
