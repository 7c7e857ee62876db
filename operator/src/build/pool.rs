//! Warm pool pods: a session's sandbox pod and Secrets, built before the session exists.
//!
//! A pool pod is built from a *template plan*: the [`SessionPlan`] a new session of the agent
//! would have, with no session in it (no name, no tokens, an empty credential value) and the
//! pool pod's own name and sealed token. The session builders make the objects; this module
//! gives them the pool's metadata (owned by the Agent, labelled [`labels::POOL_LABEL`]) and
//! strips every entry that belongs to a session: the real value, the events token, the runtime
//! token and the session id. What remains lets the pod start all the way (lock verified, proxy
//! serving with its CA and the sealed token's mapping, runtime waiting), and nothing in it is a
//! secret of any session. The claim writes the session's entries through the session builders.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use sealpod_resources::labels;
use sealpod_resources::runtime_token::{
    PROXY_SECRET_EVENTS_TOKEN_ENTRY, RUNTIME_SECRET_SESSION_ENTRY, RUNTIME_SECRET_TOKEN_ENTRY,
};
use sealpod_resources::secret::{SealedToken, Secret as SecretString};
use sha2::{Digest, Sha256};

use super::proxy_config::proxy_config;
use super::{
    PROXY_VALUE_ENTRY, SessionPlan, Settings, network_policy, proxy_secret, runtime_secret,
    sandbox_pod, workspace_claim,
};

/// The Agent a pool belongs to.
#[derive(Debug, Clone)]
pub struct PoolOwner {
    /// The Agent's object name.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

/// The plan of a pool pod: `template` (a session plan of the agent, any identity in it is
/// replaced) as the pod `pod`, with its own sealed token.
pub fn pool_plan(template: &SessionPlan, pod: &str, sealed: SealedToken) -> SessionPlan {
    let mut plan = template.clone();
    plan.name = pod.to_owned();
    plan.uid = String::new();
    plan.pod = pod.to_owned();
    plan.credential.sealed = sealed;
    plan.credential.value = SecretString::new("");
    plan.runtime_token = SecretString::new("");
    plan.events_token = SecretString::new("");
    plan
}

/// The fingerprint of what a plan's pod is built from, without its identity: the pod's spec, the
/// proxy configuration, the Secrets' entry names and the agent's revision. A session may claim a
/// pool pod only when the fingerprint of its own plan is the pod's
/// ([`labels::POOL_TEMPLATE_LABEL`]); a pool replaces its pods of another fingerprint. 32 hex
/// digits (a label value).
pub fn template_hash(plan: &SessionPlan, settings: &Settings) -> String {
    let blank = pool_plan(plan, "pool", SealedToken::zeroed());
    let pod = sandbox_pod(&blank, settings);
    let config = proxy_config(&blank, settings);
    let mut hash = Sha256::new();
    for part in [
        serde_json::to_vec(&pod.spec).unwrap_or_default(),
        serde_json::to_vec(&config).unwrap_or_default(),
        serde_json::to_vec(&plan.snapshot.revision).unwrap_or_default(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(&part);
    }
    hex::encode(&hash.finalize()[..16])
}

/// The labels of every object of a pool pod.
fn pool_labels(owner: &PoolOwner, template: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::OPERATOR_FIELD_MANAGER.to_owned(),
        ),
        (labels::PART_OF.to_owned(), labels::PART_OF_VALUE.to_owned()),
        (labels::AGENT_LABEL.to_owned(), owner.name.clone()),
        (labels::POOL_LABEL.to_owned(), owner.name.clone()),
        (labels::POOL_TEMPLATE_LABEL.to_owned(), template.to_owned()),
        (labels::COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

/// Gives `meta` (a session child's) the pool's labels and owner, keeping its name, namespace
/// and annotations.
fn pool_meta(meta: ObjectMeta, owner: &PoolOwner, template: &str) -> ObjectMeta {
    let component = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::COMPONENT_LABEL))
        .cloned()
        .unwrap_or_default();
    ObjectMeta {
        labels: Some(pool_labels(owner, template, &component)),
        owner_references: Some(vec![OwnerReference {
            api_version: format!("{}/{}", labels::GROUP, labels::VERSION),
            kind: "Agent".to_owned(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..meta
    }
}

/// Removes `entries` from a Secret's data.
fn without(mut secret: Secret, entries: &[&str]) -> Secret {
    if let Some(data) = secret.data.as_mut() {
        for e in entries {
            data.remove(*e);
        }
    }
    secret
}

/// A pool pod and the objects it needs, all built from one pool plan.
#[derive(Debug, Clone)]
pub struct PoolPod {
    /// The pod.
    pub pod: Pod,
    /// Its proxy Secret: the configuration (with the sealed token's mapping), no value.
    pub proxy_secret: Secret,
    /// Its runtime Secret: the sealed token only.
    pub runtime_secret: Secret,
    /// Its workspace claim, when workspaces are claims.
    pub workspace_claim: Option<PersistentVolumeClaim>,
}

/// Builds a pool pod from its plan ([`pool_plan`]). Fails only when the proxy configuration does
/// not serialize.
pub fn pool_pod(
    plan: &SessionPlan,
    owner: &PoolOwner,
    template: &str,
    settings: &Settings,
) -> Result<PoolPod, serde_saphyr::SerializeError> {
    let mut pod = sandbox_pod(plan, settings);
    pod.metadata = pool_meta(pod.metadata, owner, template);
    let mut proxy = without(
        proxy_secret(plan, settings)?,
        &[PROXY_VALUE_ENTRY, PROXY_SECRET_EVENTS_TOKEN_ENTRY],
    );
    proxy.metadata = pool_meta(proxy.metadata, owner, template);
    let mut runtime = without(
        runtime_secret(plan),
        &[RUNTIME_SECRET_TOKEN_ENTRY, RUNTIME_SECRET_SESSION_ENTRY],
    );
    runtime.metadata = pool_meta(runtime.metadata, owner, template);
    let workspace_claim = settings.workspace_claim.then(|| {
        let mut claim = workspace_claim(plan, settings);
        claim.metadata = pool_meta(claim.metadata, owner, template);
        claim
    });
    Ok(PoolPod {
        pod,
        proxy_secret: proxy,
        runtime_secret: runtime,
        workspace_claim,
    })
}

/// Name of the NetworkPolicy of an agent's pool (a session's ends in `-egress`, so they never
/// meet).
pub fn pool_network_policy_name(agent: &str) -> String {
    format!("{agent}-warm-pool")
}

/// The NetworkPolicy of an agent's unclaimed pool pods: a session's policy (the same rules),
/// selecting the pods by [`labels::POOL_LABEL`]. A claimed pod loses that label and is selected by
/// its session's policy instead.
pub fn pool_network_policy(
    template: &SessionPlan,
    owner: &PoolOwner,
    template_hash: &str,
    settings: &Settings,
) -> NetworkPolicy {
    let mut policy = network_policy(template, settings);
    let mut meta = pool_meta(policy.metadata, owner, template_hash);
    meta.name = Some(pool_network_policy_name(&owner.name));
    // One policy serves every template of the pool.
    if let Some(l) = meta.labels.as_mut() {
        l.remove(labels::POOL_TEMPLATE_LABEL);
    }
    policy.metadata = meta;
    if let Some(spec) = policy.spec.as_mut() {
        spec.pod_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (labels::POOL_LABEL.to_owned(), owner.name.clone()),
                (
                    labels::COMPONENT_LABEL.to_owned(),
                    labels::COMPONENT_SANDBOX.to_owned(),
                ),
            ])),
            match_expressions: None,
        });
    }
    policy
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::super::fixture::{self, REAL_KEY};
    use super::*;

    fn owner() -> PoolOwner {
        PoolOwner {
            name: "agt-reviewer".into(),
            uid: "uid-agt".into(),
        }
    }

    fn sealed() -> SealedToken {
        SealedToken::parse("sp_sealed_ffffffffffffffffffffffffffffffff").expect("sealed")
    }

    #[test]
    fn a_pool_pod_holds_no_session_secret_and_belongs_to_its_agent() {
        let template = fixture::plan();
        let settings = fixture::settings();
        let hash = template_hash(&template, &settings);
        let plan = pool_plan(&template, "agt-reviewer-pool-0a1b2c3d", sealed());
        let built = pool_pod(&plan, &owner(), &hash, &settings).expect("builds");
        let text = serde_json::to_string(&(
            &built.pod,
            &built.proxy_secret,
            &built.runtime_secret,
            &built.workspace_claim,
        ))
        .expect("json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for secret in [
            REAL_KEY,
            fixture::RUNTIME_TOKEN,
            fixture::EVENTS_TOKEN,
            fixture::SEALED,
        ] {
            assert!(!text.contains(secret) && !text.contains(&b64(secret)));
        }
        assert!(
            !text.contains("ses-abc123"),
            "nothing of the template's session"
        );
        let keys = |s: &Secret| {
            s.data
                .clone()
                .unwrap_or_default()
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&built.proxy_secret), ["config.yaml"]);
        assert_eq!(keys(&built.runtime_secret), ["sealed-token"]);
        for meta in [
            &built.pod.metadata,
            &built.proxy_secret.metadata,
            &built.runtime_secret.metadata,
        ] {
            let labels = meta.labels.as_ref().expect("labels");
            assert_eq!(labels[labels::POOL_LABEL], "agt-reviewer");
            assert_eq!(labels[labels::POOL_TEMPLATE_LABEL], hash);
            assert!(!labels.contains_key(labels::SESSION_LABEL));
            let owners = meta.owner_references.as_ref().expect("owner");
            assert_eq!(
                (owners[0].kind.as_str(), owners[0].uid.as_str()),
                ("Agent", "uid-agt")
            );
        }
        assert_eq!(
            built.pod.metadata.name.as_deref(),
            Some("agt-reviewer-pool-0a1b2c3d")
        );
        assert!(
            built.proxy_secret.data.as_ref().expect("data")["config.yaml"]
                .0
                .windows(sealed().expose().len())
                .any(|w| w == sealed().expose().as_bytes()),
            "the proxy maps the pool pod's own sealed token"
        );
    }

    #[test]
    fn the_template_ignores_the_session_and_follows_what_the_pod_is_built_from() {
        let settings = fixture::settings();
        let plan = fixture::plan();
        let hash = template_hash(&plan, &settings);
        assert_eq!(hash.len(), 32);
        // Another session of the same agent: the same template.
        let mut other = plan.clone();
        other.name = "ses-other".into();
        other.uid = "uid-other".into();
        other.pod = "agt-reviewer-pool-99".into();
        other.credential.sealed = sealed();
        other.credential.value = SecretString::new("sk-another");
        other.runtime_token = SecretString::new("sprt_other");
        assert_eq!(template_hash(&other, &settings), hash);
        // The agent changed: another template.
        let mut egress = plan.clone();
        if let Some(e) = egress.snapshot.egress.as_mut() {
            e.allow.push("gitlab.com".into());
        }
        let mut image = plan.clone();
        image.sandbox.image = Some("example/runtime:2".into());
        let mut revision = plan.clone();
        revision.snapshot.revision = Some(2);
        let mut hosts = plan;
        hosts.credential.hosts.push("api2.anthropic.com".into());
        for changed in [egress, image, revision, hosts] {
            assert_ne!(template_hash(&changed, &settings), hash);
        }
    }

    #[test]
    fn the_pool_policy_selects_unclaimed_pods_of_the_agent_with_a_sessions_rules() {
        let settings = fixture::settings();
        let plan = fixture::plan();
        let policy = pool_network_policy(&plan, &owner(), "t", &settings);
        let session = network_policy(&plan, &settings);
        assert_eq!(
            policy.metadata.name.as_deref(),
            Some("agt-reviewer-warm-pool")
        );
        let spec = policy.spec.expect("spec");
        assert_eq!(spec.egress, session.spec.expect("spec").egress);
        let selector = spec
            .pod_selector
            .expect("selector")
            .match_labels
            .expect("labels");
        assert_eq!(selector[labels::POOL_LABEL], "agt-reviewer");
        assert!(!selector.contains_key(labels::SESSION_LABEL));
    }
}
