//! Revisions, deployments and skills as the API server writes them to the cluster (devcluster,
//! or the real control plane with `SEALPOD_TEST_CONTROL_PLANE=kubernetes`): `AgentRevision`
//! objects owned by their agent, the skill bundle's immutable ConfigMap, the Agent's spec and
//! revision annotations moved together on activation, the activation log in the revision's
//! status, concurrent updates numbered apart, and an agent applied without a revision.

mod common;

use axum::http::StatusCode;
use common::{Env, TENANT_A};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};
use sealpod_resources::revision::{Activation, LastActivation};
use sealpod_resources::{Agent, AgentRevision, labels};
use serde_json::json;

fn revisions(env: &Env) -> Api<AgentRevision> {
    Api::namespaced(env.cluster.client(), TENANT_A)
}

fn object_of(id: &str) -> String {
    sealpod_resources::ids::id_to_object_name(id).expect("id")
}

// One test: each start of the real control plane costs seconds.
#[tokio::test]
async fn deployments_write_owned_revisions_skills_and_an_activation_log() {
    let env = Env::start().await;
    let a = Some(env.key_a.as_str());
    let id = env.agent("reviewer").await;
    let object = object_of(&id);
    let r1 = revisions(&env)
        .get(&format!("{object}-r1"))
        .await
        .expect("first revision");
    let agent: Agent = Api::namespaced(env.cluster.client(), TENANT_A)
        .get(&object)
        .await
        .expect("agent");
    assert_eq!(r1.owner_references()[0].uid, agent.uid().expect("uid"));
    assert_eq!(r1.spec.prompt, "p");

    let body = json!({"input": {"type": "inline", "prompt": "with skills", "skills": [
        {"path": "pdf/SKILL.md", "content": "---\ndescription: Reads PDFs.\n---\n"},
        {"path": "pdf/run.sh", "content": "#!/bin/sh\n", "mode": 493},
    ]}});
    let (s, created) = env
        .call(
            "POST",
            &format!("/v3/agents/{id}/deployments"),
            a,
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let r2 = revisions(&env)
        .get(&format!("{object}-r2"))
        .await
        .expect("second revision");
    assert_eq!(
        r2.labels()[labels::DEPLOYMENT_LABEL],
        created["deployment"]["id"].as_str().expect("id")
    );
    let bundle = r2.spec.skills.clone().expect("skills");
    let map: ConfigMap = Api::namespaced(env.cluster.client(), TENANT_A)
        .get(&bundle.config_map)
        .await
        .expect("skills config map");
    assert_eq!(map.immutable, Some(true));
    assert_eq!(map.owner_references()[0].uid, agent.uid().expect("uid"));
    let data = map.binary_data.expect("data");
    assert_eq!(data["f1"].0, b"#!/bin/sh\n");
    assert_eq!(bundle.files[1].mode, 0o555);

    // Rollback: spec and pointer move in one write; the log is on the revision made active.
    let (s, _) = env
        .call(
            "POST",
            &format!("/v3/agents/{id}/revisions/1/activate"),
            a,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let agent: Agent = Api::namespaced(env.cluster.client(), TENANT_A)
        .get(&object)
        .await
        .expect("agent");
    assert_eq!(agent.spec.prompt, "p");
    assert_eq!(agent.annotations()[labels::REVISION_ANNOTATION], "1");
    assert_eq!(
        agent.annotations()[labels::REVISION_DIGEST_ANNOTATION],
        r1.spec.digest
    );
    let r1 = revisions(&env)
        .get(&format!("{object}-r1"))
        .await
        .expect("r1");
    let log = r1.status.expect("status").activations;
    assert_eq!(
        log.iter()
            .map(|a| (a.reason.as_str(), a.from))
            .collect::<Vec<_>>(),
        [("create", None), ("rollback", Some(2))]
    );
    // The move is noted on the agent too, in the write that made it.
    let noted = LastActivation::of(&agent).expect("noted");
    assert_eq!((noted.to, &noted.activation), (1, &log[1]));

    // A writer that stopped between the two writes: the log shows the noted move at once.
    let stopped = LastActivation {
        to: 1,
        activation: Activation {
            id: "act_stoppedwriter".into(),
            from: Some(2),
            actor: Some("api".into()),
            reason: "rollback".into(),
            at: "2999-01-01T00:00:00Z".into(),
        },
    };
    Api::<Agent>::namespaced(env.cluster.client(), TENANT_A)
        .patch(
            &object,
            &Default::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {
                labels::LAST_ACTIVATION_ANNOTATION: stopped.to_annotation(),
            }}})),
        )
        .await
        .expect("note");
    let shown = env.data(&format!("/v3/agents/{id}/activations")).await;
    assert_eq!(shown[0]["id"], "act_stoppedwriter", "{shown:?}");
    assert_eq!(shown.len(), 4, "{shown:?}");

    // Two updates at once: both made, numbered apart.
    let path = format!("/v3/agents/{id}");
    let patch = |prompt: &'static str| env.call("PATCH", &path, a, Some(json!({"prompt": prompt})));
    let ((s1, u1), (s2, u2)) = tokio::join!(patch("left"), patch("right"));
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{u1} {u2}");
    let mut numbers: Vec<i64> = revisions(&env)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|r| r.spec.agent_ref == object)
        .map(|r| r.spec.number)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4]);

    // An agent applied without revisions (with kubectl, no operator running) gets its first
    // when the API is asked for them.
    let agents: Api<Agent> = Api::namespaced(env.cluster.client(), TENANT_A);
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "sealpod.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "agt-applied"},
        "spec": {"model": "anthropic/claude-x", "prompt": "from kubectl"}
    }))
    .expect("agent");
    agents
        .create(&Default::default(), &agent)
        .await
        .expect("create");
    let listed = env.data("/v3/agents/agt_applied/revisions").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            &listed[0]["number"],
            &listed[0]["prompt"],
            &listed[0]["active"]
        ),
        (&json!(1), &json!("from kubectl"), &json!(true))
    );
    let log = env.data("/v3/agents/agt_applied/activations").await;
    assert_eq!(log[0]["reason"], "create");
}
