//! The real control plane, started as `sealpod up --control-plane kubernetes` starts it: the
//! upstream version answers, the garbage collector of kube-controller-manager removes dependents
//! through ownerReferences, Pod Security admission refuses a pod that adds `NET_ADMIN` where the
//! `baseline` level is enforced (and admits it where `privileged` is), and a second start on the
//! same directory resumes the same objects. Needs the programs `scripts/setup` builds.

use sealpod_util::wait::until;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use sealpod_controlplane::{Config, ControlPlane, find_programs};
use serde_json::json;

async fn start(dir: &std::path::Path) -> ControlPlane {
    let programs = find_programs(None).expect("scripts/setup builds the control plane");
    ControlPlane::start(Config {
        dir: dir.to_path_buf(),
        programs,
        api_port: 0,
    })
    .await
    .expect("the control plane starts")
}

fn lock_like_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "lock", "image": "sealpod/sidecar:local",
                "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]
        }
    }))
    .expect("pod")
}

#[tokio::test]
async fn a_real_control_plane_collects_garbage_admits_by_pod_security_and_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let plane = start(dir.path()).await;
    let client = plane.client().await.expect("client");
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.git_version, "v1.37.2");

    // The garbage collector (kube-controller-manager) follows ownerReferences.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm"),
        )
        .await
        .expect("owner");
    let dependent = json!({"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner.metadata.uid.clone().expect("uid")}]}});
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(dependent).expect("cm"),
    )
    .await
    .expect("dependent");
    maps.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    let collected = until(
        "the dependent collected",
        Duration::from_secs(30),
        || async {
            maps.get_opt("dependent")
                .await
                .expect("get")
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(
        collected.is_ok(),
        "the garbage collector removes the dependent"
    );

    // Pod Security admission: NET_ADMIN is not `baseline`.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (name, level) in [("strict", "baseline"), ("sandboxes", "privileged")] {
        let ns = json!({"metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": level}}});
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(ns).expect("ns"),
            )
            .await
            .expect("namespace");
    }
    let strict: Api<Pod> = Api::namespaced(client.clone(), "strict");
    let refused = strict
        .create(&PostParams::default(), &lock_like_pod("lock"))
        .await
        .expect_err("baseline refuses NET_ADMIN");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 403
            && s.message.contains("violates PodSecurity \"baseline:")
            && s.message.contains("NET_ADMIN")),
        "{refused:?}"
    );
    // The namespace's service account comes from the controller manager; the pod waits for it.
    let sandboxes: Api<Pod> = Api::namespaced(client.clone(), "sandboxes");
    let admitted = until("the pod admitted", Duration::from_secs(30), || async {
        match sandboxes
            .create(&PostParams::default(), &lock_like_pod("lock"))
            .await
        {
            Ok(pod) => Some(pod),
            Err(kube::Error::Api(s)) if s.message.contains("serviceaccount") => None,
            Err(e) => panic!("privileged admits the pod: {e:?}"),
        }
    })
    .await;
    assert!(admitted.is_ok(), "the pod is admitted under privileged");
    plane.shutdown().await;

    // A second start resumes the same cluster.
    let plane = start(dir.path()).await;
    let client = plane.client().await.expect("client");
    let sandboxes: Api<Pod> = Api::namespaced(client, "sandboxes");
    assert!(sandboxes.get_opt("lock").await.expect("get").is_some());
    plane.shutdown().await;
}
