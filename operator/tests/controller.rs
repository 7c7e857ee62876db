//! The real operator against the test cluster (devcluster, or the real control plane with
//! `SEALPOD_TEST_CONTROL_PLANE=kubernetes`): children and owner references, conditions following
//! the (simulated) pod, hibernate → wake → archive, pod loss and recreation with backoff,
//! credential rotation, deletion with the finalizer (of the Session and of its namespace), leader
//! election, invalid specs, the proxy's
//! resolver-override and upstream-CA flags, and a scan of every object for the real key.

mod common;

use common::{Harness, NS, eventually, lease_renewals};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event as CoreEvent, Namespace, PersistentVolumeClaim, Pod, Secret,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sealpod_operator::build;
use sealpod_resources::conditions::{self, ConditionStatus, reasons};
use sealpod_resources::labels;
use sealpod_resources::runtime_token::{
    PROXY_SECRET_EVENTS_TOKEN_ENTRY, RUNTIME_SECRET_TOKEN_ENTRY,
};
use sealpod_resources::secret::is_sealed_token;
use sealpod_resources::{Agent, Credential, Session};
use serde_json::{Value, json};

const KEY1: &str = "sk-ant-api03-first-REAL-key-0001";
const KEY2: &str = "sk-ant-api03-second-REAL-key-0002";

async fn setup(h: &Harness) {
    h.default_credential("cred-a", KEY1).await;
    let _: Agent = h
        .create(json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "agt-a"},
            "spec": {"model": "anthropic/claude-sonnet-4-5", "runtime": "claude",
                     "prompt": "Review.", "egress": {"allow": ["github.com"]}}
        }))
        .await;
}

async fn new_session(h: &Harness, name: &str) -> Session {
    h.create(json!({
        "apiVersion": "sealpod.dev/v1alpha1", "kind": "Session",
        "metadata": {"name": name},
        "spec": {"agentRef": "agt-a", "input": {"text": "hello"}}
    }))
    .await
}

fn api<K>(h: &Harness) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    Api::namespaced(h.client.clone(), NS)
}

/// Waits until the session's condition `type_` has `status` and `reason`.
async fn wait_condition(
    h: &Harness,
    name: &str,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
) -> Session {
    let sessions: Api<Session> = api(h);
    eventually(&format!("{name}: {type_}={status:?}/{reason}"), || {
        let sessions = sessions.clone();
        async move {
            let s = sessions.get(name).await.ok()?;
            let c = conditions::find(&s.status.as_ref()?.conditions, type_)?;
            (c.status == status && c.reason == reason).then_some(s)
        }
    })
    .await
}

async fn wait_pod(h: &Harness, name: &str) -> Pod {
    let pods: Api<Pod> = api(h);
    eventually(&format!("pod {name}"), || {
        let pods = pods.clone();
        async move {
            pods.get_opt(name)
                .await
                .ok()
                .flatten()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
        }
    })
    .await
}

/// Waits until Credential `name` is `Ready` (its value opens) and returns it.
async fn ready_credential(h: &Harness, name: &str) -> Credential {
    let creds: Api<Credential> = api(h);
    eventually(&format!("{name} ready"), || {
        let creds = creds.clone();
        async move {
            let c = creds.get(name).await.ok()?;
            let st = c.status.as_ref()?;
            conditions::is_true(&st.conditions, conditions::READY).then_some(c)
        }
    })
    .await
}

async fn wait_gone<K>(h: &Harness, name: &str)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let objs: Api<K> = api(h);
    eventually(&format!("{name} gone"), || {
        let objs = objs.clone();
        async move { matches!(objs.get_opt(name).await, Ok(None)).then_some(()) }
    })
    .await;
}

/// Simulates the kubelet: the lock verified (`exit_code`), the proxy started, the runtime ready.
async fn run_pod(h: &Harness, name: &str, lock_exit: i32) {
    let pods: Api<Pod> = api(h);
    let status = json!({"status": {
        "phase": if lock_exit == 0 { "Running" } else { "Pending" },
        "initContainerStatuses": [
            {"name": "lock", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": lock_exit, "reason": "Completed"}}},
            {"name": "proxy", "ready": true, "started": true, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}
        ],
        "containerStatuses": [
            {"name": "runtime", "ready": lock_exit == 0, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}
        ]
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod status");
}

fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf8")
}

async fn set_desired(h: &Harness, name: &str, state: &str) {
    let sessions: Api<Session> = api(h);
    sessions
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"desiredState": state}})),
        )
        .await
        .expect("desiredState");
}

#[tokio::test]
async fn a_session_becomes_owned_children_and_its_conditions_follow_the_pod() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    let session = new_session(&h, "ses-one").await;
    let uid = session.uid().expect("uid");

    // The snapshot is pinned from the Agent, with the namespace's default credential.
    let sessions: Api<Session> = api(&h);
    let pinned = eventually("snapshot pinned", || {
        let sessions = sessions.clone();
        async move { sessions.get("ses-one").await.ok()?.spec.agent_snapshot }
    })
    .await;
    assert_eq!(pinned.credential, "cred-a");
    assert_eq!(
        pinned.prompt_hash,
        sealpod_resources::agent::prompt_hash("Review.")
    );

    let pod = wait_pod(&h, "ses-one").await;
    let secrets: Api<Secret> = api(&h);
    let proxy = secrets.get("ses-one-proxy").await.expect("proxy secret");
    let runtime = secrets
        .get("ses-one-runtime")
        .await
        .expect("runtime secret");
    let policy = api::<NetworkPolicy>(&h)
        .get("ses-one-egress")
        .await
        .expect("network policy");
    let mut owned = vec![
        pod.owner_references().to_vec(),
        proxy.owner_references().to_vec(),
        runtime.owner_references().to_vec(),
        policy.owner_references().to_vec(),
    ];
    if h.claims {
        let claim = api::<PersistentVolumeClaim>(&h)
            .get("ses-one-workspace")
            .await
            .expect("claim");
        owned.push(claim.owner_references().to_vec());
    }
    for owners in owned {
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].kind, "Session");
        assert_eq!(owners[0].controller, Some(true));
    }
    assert_eq!(data(&proxy, build::PROXY_VALUE_ENTRY), KEY1);
    let sealed = data(&runtime, build::RUNTIME_SEALED_TOKEN_ENTRY);
    assert!(is_sealed_token(&sealed));
    let config = data(&proxy, build::PROXY_CONFIG_ENTRY);
    assert!(
        config.contains(&sealed),
        "the proxy swaps the runtime's token"
    );
    let parsed: sealpod_resources::proxy_config::ProxyConfig =
        serde_saphyr::from_str(&config).expect("the sidecar parses the config");
    let valid = parsed.validate().expect("the sidecar accepts the config");
    assert!(valid.allow.iter().any(|a| a.matches("github.com", 443)));
    assert_eq!(valid.credentials[0].sealed.expose(), sealed);

    // The finalizer is there for the revoke only.
    let s = sessions.get("ses-one").await.expect("session");
    assert_eq!(s.finalizers(), [labels::SESSION_FINALIZER]);

    wait_condition(
        &h,
        "ses-one",
        conditions::CREDENTIALS_BOUND,
        ConditionStatus::True,
        reasons::CREDENTIAL_BOUND,
    )
    .await;
    wait_condition(
        &h,
        "ses-one",
        conditions::READY,
        ConditionStatus::False,
        reasons::POD_PENDING,
    )
    .await;
    run_pod(&h, "ses-one", 0).await;
    let s = wait_condition(
        &h,
        "ses-one",
        conditions::READY,
        ConditionStatus::True,
        reasons::POD_RUNNING,
    )
    .await;
    let st = s.status.expect("status");
    assert!(conditions::is_true(
        &st.conditions,
        conditions::EGRESS_LOCKED
    ));
    assert_eq!(
        conditions::find(&st.conditions, conditions::EGRESS_LOCKED)
            .expect("c")
            .reason,
        reasons::LOCK_VERIFIED
    );
    assert_eq!(
        conditions::find(&st.conditions, conditions::HIBERNATED)
            .expect("c")
            .reason,
        reasons::AWAKE
    );
    assert_eq!(
        conditions::find(&st.conditions, conditions::DEGRADED)
            .expect("c")
            .status,
        ConditionStatus::False
    );
    assert_eq!(st.pod_name.as_deref(), Some("ses-one"));
    assert_eq!(st.observed_generation, s.metadata.generation);
    assert!(
        st.conditions
            .iter()
            .all(|c| c.observed_generation == s.metadata.generation)
    );

    // The Credential and Agent report too.
    let cred = eventually("credential ready", || {
        let creds: Api<Credential> = api(&h);
        async move {
            let c = creds.get("cred-a").await.ok()?;
            conditions::is_true(&c.status.as_ref()?.conditions, conditions::READY).then_some(c)
        }
    })
    .await;
    assert_eq!(
        cred.status.expect("status").key_id.as_deref(),
        Some(h.public_keys().await.current.as_str())
    );
    let agent = eventually("agent ready", || {
        let agents: Api<Agent> = api(&h);
        async move {
            let a = agents.get("agt-a").await.ok()?;
            conditions::is_true(&a.status.as_ref()?.conditions, conditions::READY).then_some(a)
        }
    })
    .await;
    let ast = agent.status.expect("status");
    assert_eq!(ast.revision, Some(1));
    assert_eq!(
        ast.prompt_hash.as_deref(),
        Some(pinned.prompt_hash.as_str())
    );

    // Events were published for the transitions.
    let events: Api<Event> = api(&h);
    let reasons_seen: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons_seen.iter().any(|r| r == reasons::POD_RUNNING),
        "{reasons_seen:?}"
    );
    assert!(
        reasons_seen.iter().any(|r| r == reasons::LOCK_VERIFIED),
        "{reasons_seen:?}"
    );

    scan_for_keys(&h, &op, &[KEY1]).await;
    op.stop().await.expect("stop");
}

/// Lists every kind the operator touches in every namespace and fails if a real key appears
/// anywhere but in a proxy Secret's value file entry.
async fn scan_for_keys(h: &Harness, op: &sealpod_operator::Running, keys: &[&str]) {
    let mut dump: Vec<(String, Value)> = Vec::new();
    macro_rules! all {
        ($k:ty, $what:expr) => {
            for o in Api::<$k>::all(h.client.clone())
                .list(&ListParams::default())
                .await
                .expect("list")
                .items
            {
                dump.push((
                    format!("{}/{}", $what, o.name_any()),
                    serde_json::to_value(&o).expect("json"),
                ));
            }
        };
    }
    all!(Pod, "pod");
    all!(NetworkPolicy, "networkpolicy");
    if h.claims {
        all!(PersistentVolumeClaim, "pvc");
    }
    all!(Session, "session");
    all!(Agent, "agent");
    all!(Credential, "credential");
    all!(Event, "event");
    all!(CoreEvent, "coreevent");
    all!(k8s_openapi::api::core::v1::ConfigMap, "configmap");
    all!(k8s_openapi::api::coordination::v1::Lease, "lease");
    for s in Api::<Secret>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        let is_proxy = s.labels().get(labels::COMPONENT_LABEL).map(String::as_str)
            == Some(labels::COMPONENT_PROXY_SECRET);
        let mut v = serde_json::to_value(&s).expect("json");
        if let Some(data) = &s.data {
            let decoded: serde_json::Map<String, Value> = data
                .iter()
                .filter(|(k, _)| !(is_proxy && k.as_str() == build::PROXY_VALUE_ENTRY))
                .map(|(k, b)| {
                    (
                        k.clone(),
                        Value::from(String::from_utf8_lossy(&b.0).into_owned()),
                    )
                })
                .collect();
            v["data"] = decoded.into();
        }
        dump.push((format!("secret/{}", s.name_any()), v));
    }
    dump.push(("metrics".into(), Value::from(op.metrics.render())));
    for (what, value) in dump {
        let text = value.to_string();
        for key in keys {
            assert!(!text.contains(key), "real key found in {what}");
            assert!(
                !text.contains("REAL-key"),
                "part of a real key found in {what}"
            );
        }
    }
}

#[tokio::test]
async fn hibernate_wake_and_archive_keep_the_workspace() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    new_session(&h, "ses-two").await;
    let first = wait_pod(&h, "ses-two").await;
    run_pod(&h, "ses-two", 0).await;
    wait_condition(
        &h,
        "ses-two",
        conditions::READY,
        ConditionStatus::True,
        reasons::POD_RUNNING,
    )
    .await;

    set_desired(&h, "ses-two", "Hibernated").await;
    wait_gone::<Pod>(&h, "ses-two").await;
    let s = wait_condition(
        &h,
        "ses-two",
        conditions::HIBERNATED,
        ConditionStatus::True,
        reasons::IDLE_TIMEOUT,
    )
    .await;
    assert_eq!(s.status.expect("status").pod_name, None);
    if h.claims {
        let claim = api::<PersistentVolumeClaim>(&h)
            .get("ses-two-workspace")
            .await
            .expect("workspace kept");
        assert!(claim.metadata.deletion_timestamp.is_none());
    }

    set_desired(&h, "ses-two", "Running").await;
    let second = wait_pod(&h, "ses-two").await;
    assert_ne!(first.uid(), second.uid(), "a new pod");
    wait_condition(
        &h,
        "ses-two",
        conditions::HIBERNATED,
        ConditionStatus::False,
        reasons::AWAKE,
    )
    .await;
    let secrets: Api<Secret> = api(&h);
    assert_eq!(
        data(
            &secrets.get("ses-two-proxy").await.expect("proxy"),
            build::PROXY_VALUE_ENTRY
        ),
        KEY1
    );

    set_desired(&h, "ses-two", "Archived").await;
    wait_gone::<Pod>(&h, "ses-two").await;
    wait_condition(
        &h,
        "ses-two",
        conditions::READY,
        ConditionStatus::False,
        reasons::ARCHIVED,
    )
    .await;
    if h.claims {
        api::<PersistentVolumeClaim>(&h)
            .get("ses-two-workspace")
            .await
            .expect("workspace kept");
    }
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn a_lost_pod_is_recreated_with_backoff_and_degraded_says_why() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    new_session(&h, "ses-three").await;
    let first = wait_pod(&h, "ses-three").await;
    run_pod(&h, "ses-three", 0).await;
    wait_condition(
        &h,
        "ses-three",
        conditions::READY,
        ConditionStatus::True,
        reasons::POD_RUNNING,
    )
    .await;

    // Deleted from under the operator.
    api::<Pod>(&h)
        .delete("ses-three", &DeleteParams::default())
        .await
        .expect("delete");
    let degraded = wait_condition(
        &h,
        "ses-three",
        conditions::DEGRADED,
        ConditionStatus::True,
        reasons::POD_FAILED,
    )
    .await;
    let message = conditions::find(
        &degraded.status.expect("s").conditions,
        conditions::DEGRADED,
    )
    .expect("c")
    .message
    .clone();
    assert!(
        message.contains("1 in a row") && message.contains("300ms backoff"),
        "{message}"
    );
    let second = wait_pod(&h, "ses-three").await;
    assert_ne!(first.uid(), second.uid());

    // Evicted: the pod is replaced again, after a doubled backoff (the loss streak continues
    // until a replacement becomes ready).
    let pods: Api<Pod> = api(&h);
    pods.patch_status(
        "ses-three",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on memory."}})),
    )
    .await
    .expect("evict");
    let degraded = eventually("evicted reported", || {
        let sessions: Api<Session> = api(&h);
        async move {
            let s = sessions.get("ses-three").await.ok()?;
            let c = conditions::find(&s.status.as_ref()?.conditions, conditions::DEGRADED)?.clone();
            c.message.contains("Evicted").then_some(c)
        }
    })
    .await;
    assert_eq!(degraded.reason, reasons::POD_FAILED);
    assert!(
        degraded.message.contains("2 in a row") && degraded.message.contains("600ms"),
        "{}",
        degraded.message
    );
    let third = eventually("replacement of the evicted pod", || {
        let pods = pods.clone();
        let old = second.uid();
        async move {
            pods.get_opt("ses-three")
                .await
                .ok()
                .flatten()
                .filter(|p| p.uid() != old && p.metadata.deletion_timestamp.is_none())
        }
    })
    .await;
    assert_ne!(third.uid(), first.uid());
    run_pod(&h, "ses-three", 0).await;
    wait_condition(
        &h,
        "ses-three",
        conditions::DEGRADED,
        ConditionStatus::False,
        reasons::AS_EXPECTED,
    )
    .await;

    // A failed lock self-test is a lost pod too, and EgressLocked says so.
    run_pod(&h, "ses-three", 3).await;
    wait_condition(
        &h,
        "ses-three",
        conditions::EGRESS_LOCKED,
        ConditionStatus::False,
        reasons::LOCK_FAILED,
    )
    .await;
    wait_condition(
        &h,
        "ses-three",
        conditions::DEGRADED,
        ConditionStatus::True,
        reasons::LOCK_FAILED,
    )
    .await;
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn credential_rotation_rewrites_the_proxy_secret_and_keeps_the_sealed_token() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    new_session(&h, "ses-four").await;
    wait_pod(&h, "ses-four").await;
    let secrets: Api<Secret> = api(&h);
    let before = eventually("proxy secret", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("ses-four-proxy").await.ok().flatten() }
    })
    .await;
    assert_eq!(data(&before, build::PROXY_VALUE_ENTRY), KEY1);
    let runtime_before = secrets.get("ses-four-runtime").await.expect("runtime");

    // Rotate as the API server does: a new sealed value in the spec, version bumped in status.
    h.rotate("cred-a", KEY2, 2).await;
    let after = eventually("rotated value in the proxy secret", || {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get("ses-four-proxy").await.ok()?;
            (data(&s, build::PROXY_VALUE_ENTRY) == KEY2
                && s.annotations()
                    .get(labels::CREDENTIAL_VERSION_ANNOTATION)
                    .map(String::as_str)
                    == Some("2"))
            .then_some(s)
        }
    })
    .await;
    assert_eq!(
        data(&after, build::PROXY_CONFIG_ENTRY),
        data(&before, build::PROXY_CONFIG_ENTRY),
        "same sealed token and config"
    );
    let runtime_after = secrets.get("ses-four-runtime").await.expect("runtime");
    assert_eq!(
        runtime_after.data, runtime_before.data,
        "the runtime's tokens do not change"
    );
    scan_for_keys(&h, &op, &[KEY1, KEY2]).await;
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn a_child_changed_or_deleted_by_someone_else_is_written_again() {
    // The operator ignores the watch events of its own writes; someone else's must still bring
    // the Session back.
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    new_session(&h, "ses-drift").await;
    wait_pod(&h, "ses-drift").await;
    let secrets: Api<Secret> = api(&h);
    let written = eventually("proxy secret", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("ses-drift-proxy").await.ok().flatten() }
    })
    .await;
    secrets
        .patch(
            "ses-drift-proxy",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {(build::PROXY_VALUE_ENTRY): "sk-tampered"}})),
        )
        .await
        .expect("tamper");
    eventually("proxy secret written again", || {
        let secrets = secrets.clone();
        let want = written.data.clone();
        async move {
            let s = secrets.get("ses-drift-proxy").await.ok()?;
            (s.data == want).then_some(())
        }
    })
    .await;
    let policies: Api<NetworkPolicy> = api(&h);
    let old = policies.get("ses-drift-egress").await.expect("policy");
    policies
        .delete("ses-drift-egress", &DeleteParams::default())
        .await
        .expect("delete policy");
    eventually("network policy created again", || {
        let policies = policies.clone();
        let old_uid = old.uid();
        async move {
            let p = policies.get_opt("ses-drift-egress").await.ok()??;
            (p.uid() != old_uid).then_some(())
        }
    })
    .await;
    op.stop().await.expect("stop");
}

/// Creates session `name`, waits for its pod and returns its runtime token.
async fn running_session_token(h: &Harness, name: &str) -> String {
    new_session(h, name).await;
    wait_pod(h, name).await;
    let secrets: Api<Secret> = api(h);
    let runtime = eventually("runtime secret", || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(&format!("{name}-runtime"))
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    data(&runtime, RUNTIME_SECRET_TOKEN_ENTRY)
}

#[tokio::test]
async fn deleting_a_session_revokes_its_tokens_and_collects_everything() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    let token = running_session_token(&h, "ses-five").await;

    api::<Session>(&h)
        .delete("ses-five", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone::<Session>(&h, "ses-five").await;
    assert_eq!(
        *h.api.revoked.lock().expect("lock"),
        [token],
        "revoked with the session's own token"
    );
    wait_gone::<Pod>(&h, "ses-five").await;
    wait_gone::<Secret>(&h, "ses-five-proxy").await;
    wait_gone::<Secret>(&h, "ses-five-runtime").await;
    wait_gone::<NetworkPolicy>(&h, "ses-five-egress").await;
    if h.claims {
        wait_gone::<PersistentVolumeClaim>(&h, "ses-five-workspace").await;
    }
    op.stop().await.expect("stop");
}

/// A runtime token's payload without its nonce: `runtime:<namespace>:<session>:<object uid>`.
fn session_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token
        .strip_prefix("sprt_")
        .and_then(|t| t.split('.').next())
        .expect("a runtime token");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let text = String::from_utf8(decoded).expect("utf8");
    let mut parts: Vec<&str> = text.split(':').collect();
    assert_eq!(parts.len(), 5, "{text}");
    parts.remove(3);
    parts.join(":")
}

#[tokio::test]
async fn a_session_applied_again_under_its_name_keeps_nothing_of_the_old_ones_secrets() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    // The Secrets of a deleted Session of the same name, not yet collected (garbage collection
    // runs after the deletion on a real cluster): owned by an object that is gone.
    for (suffix, entry) in [
        ("runtime", RUNTIME_SECRET_TOKEN_ENTRY),
        ("proxy", PROXY_SECRET_EVENTS_TOKEN_ENTRY),
    ] {
        let _: Secret = h
            .create(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("ses-again-{suffix}"), "ownerReferences": [{
                    "apiVersion": "sealpod.dev/v1alpha1", "kind": "Session", "name": "ses-again",
                    "uid": "6f9c0d3e-0000-4000-8000-00000000dead"}]},
                "stringData": {entry: "sprt_stale.token"}
            }))
            .await;
    }
    let session = new_session(&h, "ses-again").await;
    let uid = session.metadata.uid.clone().expect("uid");
    let secrets: Api<Secret> = api(&h);
    for (suffix, entry) in [
        ("runtime", RUNTIME_SECRET_TOKEN_ENTRY),
        ("proxy", PROXY_SECRET_EVENTS_TOKEN_ENTRY),
    ] {
        let name = format!("ses-again-{suffix}");
        let token = eventually("the secret rewritten for the new session", || {
            let (secrets, name) = (secrets.clone(), name.clone());
            async move {
                let secret = secrets.get_opt(&name).await.ok().flatten()?;
                let token = data(&secret, entry);
                (token != "sprt_stale.token").then_some(token)
            }
        })
        .await;
        assert!(
            session_of(&token).ends_with(&format!(":ses-again:{uid}")),
            "minted for the new object: {}",
            session_of(&token)
        );
    }
    op.stop().await.expect("stop");
}

/// Deleting the tenant namespace deletes its Sessions (the namespace controller), which the
/// operator finalizes (the tokens revoked) before the namespace and every child are gone.
#[tokio::test]
async fn deleting_the_namespace_revokes_its_sessions_and_collects_everything() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    let token = running_session_token(&h, "ses-ns").await;

    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    namespaces
        .delete(NS, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    eventually("the namespace gone", || {
        let namespaces = namespaces.clone();
        async move { matches!(namespaces.get_opt(NS).await, Ok(None)).then_some(()) }
    })
    .await;
    // The namespace controller may delete the runtime Secret before the Session: the operator
    // then revokes with a fresh token of the same session (revocation is per session). A
    // finalizer's cleanup runs at least once (again when a stale event follows its success), and
    // revoking twice is harmless; every revocation must name this session.
    let revoked = h.api.revoked.lock().expect("lock").clone();
    assert!(!revoked.is_empty(), "the session was finalized");
    for t in &revoked {
        assert_eq!(
            session_of(t),
            session_of(&token),
            "revoked with a token of the session"
        );
    }
    let everywhere = ListParams::default().labels(&format!("{}=ses-ns", labels::SESSION_LABEL));
    assert!(
        Api::<Pod>::all(h.client.clone())
            .list(&everywhere)
            .await
            .expect("pods")
            .items
            .is_empty()
    );
    assert!(
        Api::<Secret>::all(h.client.clone())
            .list(&everywhere)
            .await
            .expect("secrets")
            .items
            .is_empty()
    );
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn an_unreachable_api_server_delays_deletion_only_for_the_revoke_timeout() {
    let h = Harness::new().await;
    // A closed port: every revoke fails to connect.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let op = sealpod_operator::start(
        h.client.clone(),
        common::config(&url, "replica-a", h.claims, &["--revoke-timeout-seconds=1"]),
    )
    .await
    .expect("operator");
    setup(&h).await;
    new_session(&h, "ses-six").await;
    wait_pod(&h, "ses-six").await;
    let secrets: Api<Secret> = api(&h);
    eventually("runtime secret", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("ses-six-runtime").await.ok().flatten() }
    })
    .await;
    api::<Session>(&h)
        .delete("ses-six", &DeleteParams::default())
        .await
        .expect("delete");
    // Still there while retrying…
    let s = api::<Session>(&h)
        .get("ses-six")
        .await
        .expect("still present");
    assert!(s.metadata.deletion_timestamp.is_some());
    // …then the finalizer is removed anyway and everything is collected.
    wait_gone::<Session>(&h, "ses-six").await;
    wait_gone::<Pod>(&h, "ses-six").await;
    assert!(op.metrics.render().contains("result=\"RevokeError\""));
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn an_invalid_spec_is_degraded_and_not_requeued() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    let _: Session = h
        .create(json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Session",
            "metadata": {"name": "ses-bad"},
            "spec": {"agentRef": "agt-a", "agentSnapshot": {
                "model": "openai/gpt-5", "runtime": "claude", "prompt": "x",
                "promptHash": "sha256:00", "credential": "cred-a"}}
        }))
        .await;
    let s = wait_condition(
        &h,
        "ses-bad",
        conditions::DEGRADED,
        ConditionStatus::True,
        reasons::INVALID,
    )
    .await;
    let st = s.status.expect("s");
    let message = &conditions::find(&st.conditions, conditions::READY)
        .expect("c")
        .message;
    assert!(message.contains("runtime `claude`"), "{message}");
    assert!(
        api::<Pod>(&h)
            .get_opt("ses-bad")
            .await
            .expect("get")
            .is_none()
    );
    // An invalid Agent is reported the same way.
    let _: Agent = h
        .create(json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "agt-bad"},
            "spec": {"model": "anthropic/claude-x", "runtime": "claude", "prompt": "x",
                     "egress": {"allow": ["github.com:99999"]}}
        }))
        .await;
    let agent = eventually("agent invalid", || {
        let agents: Api<Agent> = api(&h);
        async move {
            let a = agents.get("agt-bad").await.ok()?;
            let c = conditions::find(&a.status.as_ref()?.conditions, conditions::DEGRADED)?.clone();
            (c.reason == reasons::INVALID).then_some(c)
        }
    })
    .await;
    assert!(
        agent.message.contains("egress.allow[0]"),
        "{}",
        agent.message
    );

    // No requeue storm: with nothing changing, the reconcile count stays put while the leader
    // renews its lease three times (two seconds of the operator's clock).
    lease_renewals(&h, 1).await;
    let before = op.metrics.reconcile_count("session") + op.metrics.reconcile_count("agent");
    lease_renewals(&h, 3).await;
    let after = op.metrics.reconcile_count("session") + op.metrics.reconcile_count("agent");
    assert!(
        after - before <= 1,
        "{before} -> {after} reconciles while nothing changed"
    );
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn a_second_replica_stays_passive_until_the_leader_lease_lapses() {
    let h = Harness::new().await;
    let a = h.operator("replica-a", &[]).await;
    eventually("a leads", || async { a.metrics.is_leader().then_some(()) }).await;
    let b = h.operator("replica-b", &[]).await;
    setup(&h).await;
    new_session(&h, "ses-seven").await;
    wait_pod(&h, "ses-seven").await;
    // Several lease periods pass (six renewals by a, two lease durations): b never leads and
    // never reconciles.
    lease_renewals(&h, 6).await;
    assert!(!b.metrics.is_leader());
    assert_eq!(b.metrics.reconcile_count("session"), 0);
    assert!(a.metrics.reconcile_count("session") > 0);

    // The leader dies without releasing: b takes over once the lease lapses.
    a.abort();
    eventually("b leads", || async { b.metrics.is_leader().then_some(()) }).await;
    new_session(&h, "ses-eight").await;
    wait_pod(&h, "ses-eight").await;
    // The pod appears mid-reconcile; the count is taken when the reconcile returns.
    eventually("b counted its reconcile", || async {
        (b.metrics.reconcile_count("session") > 0).then_some(())
    })
    .await;
    let text = b.metrics.render();
    assert!(text.contains("sealpod_operator_leader 1"));
    assert!(
        text.contains("sealpod_operator_reconcile_duration_seconds_count{controller=\"session\"}")
    );
    b.stop().await.expect("stop");
}

#[tokio::test]
async fn renewing_the_sealing_key_keeps_old_values_opening_and_new_ones_open_too() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    let ready_with = |name: &'static str| {
        let h = &h;
        async move {
            let ready = ready_credential(h, name).await;
            ready.status.and_then(|s| s.key_id).expect("key id")
        }
    };
    let old_key = ready_with("cred-a").await;

    sealpod_operator::runner::renew_sealing_key(
        h.client.clone(),
        &common::config(&h.api.url, "renewer", h.claims, &[]),
    )
    .await
    .expect("renew");
    let public = h.public_keys().await;
    assert_ne!(public.current.as_str(), old_key);
    assert_eq!(public.keys.len(), 2, "the old key is kept");

    // A value sealed with the new key opens in the running operator (it reloads the key set).
    h.write_sealed("cred-b", KEY2).await;
    let _: Credential = h
        .create(json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Credential",
            "metadata": {"name": "cred-b"},
            "spec": {"provider": "anthropic", "allowedHosts": ["api.anthropic.com"],
                     "sealedSecretRef": {"name": "cred-b-sealed"}}
        }))
        .await;
    assert_eq!(ready_with("cred-b").await, public.current.as_str());
    // The value sealed with the old key still opens and binds.
    new_session(&h, "ses-nine").await;
    wait_pod(&h, "ses-nine").await;
    let proxy = api::<Secret>(&h)
        .get("ses-nine-proxy")
        .await
        .expect("proxy");
    assert_eq!(data(&proxy, build::PROXY_VALUE_ENTRY), KEY1);
    op.stop().await.expect("stop");
}

/// A sealed value the API server once kept in a Secret of its own moves into the Credential's
/// spec and the Secret goes; a Secret the user wrote stays where the Credential points.
#[tokio::test]
async fn sealed_secrets_written_by_sealpod_move_into_the_credential() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    h.write_sealed_by("cred-old", KEY1, Some(labels::API_SERVER_FIELD_MANAGER))
        .await;
    h.write_sealed("cred-mine", KEY2).await;
    for name in ["cred-old", "cred-mine"] {
        let _: Credential = h
            .create(json!({
                "apiVersion": "sealpod.dev/v1alpha1", "kind": "Credential",
                "metadata": {"name": name},
                "spec": {"provider": "anthropic", "allowedHosts": ["api.anthropic.com"],
                         "sealedSecretRef": {"name": format!("{name}-sealed")}}
            }))
            .await;
    }
    let creds: Api<Credential> = api(&h);
    let ready = |name: &'static str| ready_credential(&h, name);
    let moved = eventually("the sealed value moved", || {
        let creds = creds.clone();
        async move {
            let c = creds.get("cred-old").await.ok()?;
            (c.spec.sealed_secret_ref.is_none()).then_some(c)
        }
    })
    .await;
    let sealed = moved.spec.sealed_value.expect("sealed value in the spec");
    assert!(sealed.starts_with("spseal"), "ciphertext only");
    let secrets: Api<Secret> = api(&h);
    wait_gone::<Secret>(&h, "cred-old-sealed").await;
    ready("cred-old").await;
    let mine = ready("cred-mine").await;
    assert_eq!(
        mine.spec.sealed_secret_ref.map(|r| r.name).as_deref(),
        Some("cred-mine-sealed")
    );
    assert_eq!(mine.spec.sealed_value, None);
    assert!(
        secrets
            .get_opt("cred-mine-sealed")
            .await
            .expect("get")
            .is_some(),
        "the user's Secret stays"
    );
    op.stop().await.expect("stop");
}

/// An org API key's hash that an earlier API server kept in a Secret moves into a ConfigMap of
/// the same name once the operator leads, and the Secret goes (the API server reads no Secrets).
#[tokio::test]
async fn org_api_key_secrets_move_into_config_maps() {
    let h = Harness::new().await;
    let hash = "ab".repeat(32);
    let legacy: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sealpod-api-key-abababababab",
                     "labels": {labels::COMPONENT_LABEL: labels::COMPONENT_API_KEY}},
        "stringData": {labels::API_KEY_HASH_ENTRY: hash},
    }))
    .expect("secret");
    let secrets: Api<Secret> = api(&h);
    secrets
        .create(&PostParams::default(), &legacy)
        .await
        .expect("legacy secret");
    let op = h.operator("replica-a", &[]).await;
    let records: Api<ConfigMap> = api(&h);
    let record = eventually("the org key record", || {
        let records = records.clone();
        async move {
            records
                .get_opt("sealpod-api-key-abababababab")
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(
        record.data.as_ref().expect("data")[labels::API_KEY_HASH_ENTRY],
        hash
    );
    assert_eq!(
        record
            .labels()
            .get(labels::COMPONENT_LABEL)
            .map(String::as_str),
        Some(labels::COMPONENT_API_KEY)
    );
    wait_gone::<Secret>(&h, "sealpod-api-key-abababababab").await;
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn with_watch_namespaces_only_those_namespaces_are_reconciled() {
    let h = Harness::new().await;
    let op = h
        .operator("replica-a", &["--watch-namespaces=tenant-a"])
        .await;
    setup(&h).await;
    let other: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    other
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "tenant-b"}})).expect("ns"),
        )
        .await
        .expect("namespace");
    let outside: Api<Session> = Api::namespaced(h.client.clone(), "tenant-b");
    outside
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "apiVersion": "sealpod.dev/v1alpha1", "kind": "Session",
                "metadata": {"name": "ses-outside"}, "spec": {"agentRef": "agt-a"}
            }))
            .expect("session"),
        )
        .await
        .expect("create");
    new_session(&h, "ses-inside").await;
    wait_pod(&h, "ses-inside").await;
    wait_condition(
        &h,
        "ses-inside",
        conditions::CREDENTIALS_BOUND,
        ConditionStatus::True,
        reasons::CREDENTIAL_BOUND,
    )
    .await;
    let s = outside.get("ses-outside").await.expect("get");
    assert!(s.finalizers().is_empty(), "not reconciled");
    assert!(s.status.is_none(), "not reconciled");
    op.stop().await.expect("stop");
}

#[tokio::test]
async fn proxy_resolve_and_upstream_ca_flags_reach_every_proxy_secret_and_survive_rotation() {
    let ca = rcgen::generate_simple_self_signed(vec!["gateway.local".to_owned()])
        .expect("cert")
        .cert
        .pem();
    let dir = tempfile::tempdir().expect("dir");
    let ca_path = dir.path().join("gateway-ca.pem");
    std::fs::write(&ca_path, &ca).expect("write ca");
    let h = Harness::new().await;
    let op = h
        .operator(
            "replica-a",
            &[
                "--proxy-resolve=api.anthropic.com=127.0.0.1:8443,github.com:443=10.96.7.7",
                &format!("--upstream-ca-file={}", ca_path.display()),
            ],
        )
        .await;
    setup(&h).await;
    new_session(&h, "ses-flags").await;
    wait_pod(&h, "ses-flags").await;
    let secrets: Api<Secret> = api(&h);
    let before = eventually("proxy secret", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("ses-flags-proxy").await.ok().flatten() }
    })
    .await;
    assert_eq!(data(&before, build::UPSTREAM_CA_ENTRY), ca);
    let config: sealpod_resources::proxy_config::ProxyConfig =
        serde_saphyr::from_str(&data(&before, build::PROXY_CONFIG_ENTRY)).expect("yaml");
    assert_eq!(
        config.resolve,
        std::collections::BTreeMap::from([
            (
                "api.anthropic.com".to_owned(),
                vec!["127.0.0.1:8443".to_owned()]
            ),
            ("github.com:443".to_owned(), vec!["10.96.7.7".to_owned()]),
        ])
    );
    assert_eq!(
        config.extra_roots,
        [std::path::PathBuf::from("upstream-ca.pem")]
    );
    for cidr in ["127.0.0.1/32", "10.96.7.7/32"] {
        assert!(
            config.allow_cidrs.iter().any(|c| c == cidr),
            "{cidr} in {:?}",
            config.allow_cidrs
        );
    }
    config.validate().expect("the sidecar accepts it");
    // The backstop lets the private (not the loopback) override address through, on its port.
    let policy = api::<NetworkPolicy>(&h)
        .get("ses-flags-egress")
        .await
        .expect("network policy");
    let policy = serde_json::to_value(&policy).expect("json");
    let rules = policy["spec"]["egress"].as_array().expect("egress");
    assert!(
        rules.contains(&json!({"ports": [{"port": 443, "protocol": "TCP"}],
                               "to": [{"ipBlock": {"cidr": "10.96.7.7/32"}}]})),
        "{rules:?}"
    );
    assert!(!policy.to_string().contains("127.0.0.1/32"), "{policy}");

    // Rotation rewrites the proxy Secret: the CA entry and the overrides stay.
    h.rotate("cred-a", KEY2, 2).await;
    let after = eventually("rotated value in the proxy secret", || {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get("ses-flags-proxy").await.ok()?;
            (data(&s, build::PROXY_VALUE_ENTRY) == KEY2).then_some(s)
        }
    })
    .await;
    assert_eq!(data(&after, build::UPSTREAM_CA_ENTRY), ca);
    assert_eq!(
        data(&after, build::PROXY_CONFIG_ENTRY),
        data(&before, build::PROXY_CONFIG_ENTRY)
    );
    scan_for_keys(&h, &op, &[KEY1, KEY2]).await;
    op.stop().await.expect("stop");
}

/// The unclaimed pool pods of `agt-a` (not being deleted), by name.
async fn pool_pods(h: &Harness) -> Vec<Pod> {
    let mut pods: Vec<Pod> = api::<Pod>(h)
        .list(&ListParams::default().labels(&format!("{}=agt-a", labels::POOL_LABEL)))
        .await
        .expect("list pool pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by_key(ResourceExt::name_any);
    pods
}

/// Waits until the pool holds `n` pods none of which is in `not`, and returns them.
async fn wait_pool(h: &Harness, n: usize, not: &[String]) -> Vec<Pod> {
    eventually(&format!("{n} pool pods, none of {not:?}"), || async move {
        let pods = pool_pods(h).await;
        (pods.len() == n && pods.iter().all(|p| !not.contains(&p.name_any()))).then_some(pods)
    })
    .await
}

async fn set_pool_size(h: &Harness, size: u32) {
    api::<Agent>(h)
        .patch(
            "agt-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"warmPool": {"size": size}}})),
        )
        .await
        .expect("pool size");
}

/// The pod a session runs in, once the operator recorded it.
async fn sandbox_pod_of(h: &Harness, session: &str) -> String {
    let sessions: Api<Session> = api(h);
    eventually(&format!("{session}: pod recorded"), || {
        let sessions = sessions.clone();
        async move {
            sessions
                .get(session)
                .await
                .ok()?
                .annotations()
                .get(labels::SANDBOX_POD_ANNOTATION)
                .cloned()
        }
    })
    .await
}

#[tokio::test]
async fn a_warm_pool_keeps_keyless_pods_that_each_serve_one_session_and_refills() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    setup(&h).await;
    ready_credential(&h, "cred-a").await;
    set_pool_size(&h, 2).await;
    let first = wait_pool(&h, 2, &[]).await;
    let secrets: Api<Secret> = api(&h);
    let mut sealed_before = Vec::new();
    for pod in &first {
        let name = pod.name_any();
        assert_eq!(pod.owner_references()[0].kind, "Agent");
        assert!(!pod.labels().contains_key(labels::SESSION_LABEL));
        // Before a claim, nothing in reach of the pod is a session's: no value, no token, no
        // session id (the runtime waits for the files).
        let proxy = secrets
            .get(&build::proxy_secret_name(&name))
            .await
            .expect("proxy secret");
        let keys: Vec<&String> = proxy.data.as_ref().expect("data").keys().collect();
        assert_eq!(
            keys,
            [build::PROXY_CONFIG_ENTRY],
            "{name}: only the configuration"
        );
        let runtime = secrets
            .get(&build::runtime_secret_name(&name))
            .await
            .expect("runtime secret");
        let keys: Vec<&String> = runtime.data.as_ref().expect("data").keys().collect();
        assert_eq!(
            keys,
            [build::RUNTIME_SEALED_TOKEN_ENTRY],
            "{name}: only the sealed token"
        );
        let sealed = data(&runtime, build::RUNTIME_SEALED_TOKEN_ENTRY);
        assert!(is_sealed_token(&sealed));
        assert!(data(&proxy, build::PROXY_CONFIG_ENTRY).contains(&sealed));
        for s in [&proxy, &runtime] {
            let text = serde_json::to_string(&s.data).expect("json");
            assert!(!text.contains(&base64(KEY1)) && !text.contains(KEY1));
        }
        let env = serde_json::to_string(&pod.spec.as_ref().expect("spec").containers[0].env)
            .expect("json");
        assert!(!env.contains(KEY1) && env.contains("SEALPOD_SESSION_ID_FILE"));
        sealed_before.push((name.clone(), sealed));
        run_pod(&h, &name, 0).await;
    }
    let agents: Api<Agent> = api(&h);
    eventually("pool ready", || {
        let agents = agents.clone();
        async move {
            let st = agents.get("agt-a").await.ok()?.status?;
            let pool = st.warm_pool?;
            (pool.ready == 2
                && pool.size == 2
                && conditions::is_true(&st.conditions, conditions::WARM_POOL_READY))
            .then_some(())
        }
    })
    .await;

    // A session claims a ready pod: the pod becomes the session's, its Secrets now hold the
    // session's value, tokens and id (the sealed token stays), and the pool refills.
    new_session(&h, "ses-pool-1").await;
    let claimed = sandbox_pod_of(&h, "ses-pool-1").await;
    let (_, sealed) = sealed_before
        .iter()
        .find(|(n, _)| *n == claimed)
        .expect("a pool pod was claimed");
    let pod = eventually("claim announced", || {
        let pods = api::<Pod>(&h);
        let claimed = claimed.clone();
        async move {
            let p = pods.get(&claimed).await.ok()?;
            p.annotations()
                .contains_key(labels::POOL_CLAIMED_AT_ANNOTATION)
                .then_some(p)
        }
    })
    .await;
    assert_eq!(pod.labels()[labels::SESSION_LABEL], "ses-pool-1");
    assert!(!pod.labels().contains_key(labels::POOL_LABEL));
    let session: Session = api::<Session>(&h).get("ses-pool-1").await.expect("session");
    assert_eq!(pod.owner_references().len(), 1);
    assert_eq!(pod.owner_references()[0].uid, session.uid().expect("uid"));
    let proxy = secrets
        .get(&build::proxy_secret_name(&claimed))
        .await
        .expect("proxy");
    assert_eq!(data(&proxy, build::PROXY_VALUE_ENTRY), KEY1);
    assert_eq!(proxy.owner_references()[0].kind, "Session");
    let runtime = secrets
        .get(&build::runtime_secret_name(&claimed))
        .await
        .expect("runtime");
    assert_eq!(&data(&runtime, build::RUNTIME_SEALED_TOKEN_ENTRY), sealed);
    let id = sealpod_resources::ids::object_name_to_id("ses-pool-1")
        .unwrap_or_else(|_| "ses-pool-1".to_owned());
    assert_eq!(data(&runtime, "session-id"), id);
    assert!(data(&runtime, RUNTIME_SECRET_TOKEN_ENTRY).starts_with("sprt_"));
    wait_condition(
        &h,
        "ses-pool-1",
        conditions::READY,
        ConditionStatus::True,
        reasons::POD_RUNNING,
    )
    .await;
    let refilled = wait_pool(&h, 2, std::slice::from_ref(&claimed)).await;

    // A claimed pod serves that session only: the next session takes the other ready pod.
    let other = first
        .iter()
        .map(ResourceExt::name_any)
        .find(|n| *n != claimed)
        .expect("the other pod");
    new_session(&h, "ses-pool-2").await;
    assert_eq!(sandbox_pod_of(&h, "ses-pool-2").await, other);
    let refilled: Vec<String> = refilled.iter().map(ResourceExt::name_any).collect();
    wait_pool(&h, 2, &[claimed.clone(), other.clone()]).await;

    // A change to the agent replaces the idle pods (of the old template) and leaves the
    // claimed ones alone.
    let old_template = pool_pods(&h).await[0].labels()[labels::POOL_TEMPLATE_LABEL].clone();
    agents
        .patch(
            "agt-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"egress": {"allow": ["github.com", "gitlab.com"]}}})),
        )
        .await
        .expect("agent change");
    let mut not: Vec<String> = pool_pods(&h)
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    not.extend(refilled);
    let replaced = wait_pool(&h, 2, &not).await;
    for p in &replaced {
        assert_ne!(p.labels()[labels::POOL_TEMPLATE_LABEL], old_template);
    }
    for name in [&claimed, &other] {
        let p = wait_pod(&h, name).await;
        assert!(
            p.labels().contains_key(labels::SESSION_LABEL),
            "{name} is still its session's"
        );
    }

    // A pool pod that is lost (its lock failed) is replaced.
    let lost = replaced[0].name_any();
    run_pod(&h, &lost, 1).await;
    wait_pool(&h, 2, std::slice::from_ref(&lost)).await;

    // No ready pod (the new ones have not started): a session starts cold, in its own pod.
    new_session(&h, "ses-pool-3").await;
    assert_eq!(sandbox_pod_of(&h, "ses-pool-3").await, "ses-pool-3");
    wait_pod(&h, "ses-pool-3").await;
    let metrics = op.metrics.render();
    assert!(
        metrics.contains("sealpod_operator_warm_pool_claims_total{result=\"hit\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sealpod_operator_warm_pool_claims_total{result=\"miss\"} 1\n"),
        "{metrics}"
    );

    // Size 0 empties the pool and drops its status.
    set_pool_size(&h, 0).await;
    wait_pool(&h, 0, &[]).await;
    eventually("pool status gone", || {
        let agents = agents.clone();
        async move {
            let st = agents.get("agt-a").await.ok()?.status?;
            (st.warm_pool.is_none()
                && conditions::find(&st.conditions, conditions::WARM_POOL_READY).is_none())
            .then_some(())
        }
    })
    .await;
    scan_for_keys(&h, &op, &[KEY1]).await;
    op.stop().await.expect("stop");
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
