//! Agent revisions as the real operator keeps them, against the test cluster (devcluster, or the
//! real control plane with `SEALPOD_TEST_CONTROL_PLANE=kubernetes`): an Agent applied with
//! kubectl gets its first revision, a spec changed with kubectl becomes a new active revision
//! (keeping the skills of the one before), the Agent's status names it, an activation noted on
//! the Agent but not logged on its revision is logged, and a Session applied with kubectl pins
//! it, skills mounted read-only.

mod common;

use common::{Harness, NS, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use sealpod_resources::revision::{Activation, LastActivation, SkillBundle, SkillFile};
use sealpod_resources::{Agent, AgentRevision, Session, labels};
use serde_json::json;

fn api<K>(h: &Harness) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    Api::namespaced(h.client.clone(), NS)
}

/// The agent once its status names `revision` active.
async fn active(h: &Harness, revision: &str) -> Agent {
    eventually(&format!("agent at {revision}"), || {
        let agents: Api<Agent> = api(h);
        async move {
            let a = agents.get("agt-a").await.ok()?;
            (a.status.as_ref()?.active_revision.as_deref() == Some(revision)).then_some(a)
        }
    })
    .await
}

async fn revision(h: &Harness, name: &str) -> AgentRevision {
    let revisions: Api<AgentRevision> = api(h);
    revisions.get(name).await.expect("revision")
}

#[tokio::test]
async fn a_spec_changed_with_kubectl_becomes_the_new_active_revision() {
    let h = Harness::new().await;
    let op = h.operator("replica-a", &[]).await;
    h.default_credential("cred-a", "sk-ant-api03-revisions-REAL-key-0001")
        .await;
    let agent: Agent = h
        .create(json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "agt-a"},
            "spec": {"model": "anthropic/claude-sonnet-4-5", "prompt": "v1"}
        }))
        .await;

    // Applied without a revision: the operator makes the first, owned by the agent.
    let at1 = active(&h, "agt-a-r1").await;
    assert_eq!(at1.status.as_ref().and_then(|s| s.revision), Some(1));
    let r1 = revision(&h, "agt-a-r1").await;
    assert_eq!(
        (
            r1.spec.number,
            r1.spec.prompt.as_str(),
            r1.spec.origin.as_deref()
        ),
        (1, "v1", Some("kubectl"))
    );
    assert_eq!(
        r1.owner_references()[0].uid,
        agent.uid().expect("uid"),
        "owned by its agent"
    );
    let log = r1.status.expect("status").activations;
    assert_eq!(
        (log.len(), log[0].reason.as_str(), log[0].from),
        (1, "create", None)
    );

    // A third revision with skills, made active as the API server makes one: the revision
    // first, then the spec and the pointer in one write.
    let bundle = SkillBundle {
        digest: "sha256:5k".into(),
        config_map: "agt-a-skills-5k".into(),
        file_count: 1,
        files: vec![SkillFile {
            key: "f0".into(),
            path: "pdf/SKILL.md".into(),
            mode: 0o444,
            size: 2,
        }],
        skills: vec![],
    };
    let spec = sealpod_resources::AgentRevisionSpec::new(
        "agt-a",
        3,
        "v3",
        "anthropic/claude-sonnet-4-5",
        Some(bundle.clone()),
        "api",
    );
    let revisions: Api<AgentRevision> = api(&h);
    revisions
        .create(&Default::default(), &AgentRevision::for_agent(&at1, spec))
        .await
        .expect("create r3");
    let agents: Api<Agent> = api(&h);
    agents
        .patch(
            "agt-a",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {labels::REVISION_ANNOTATION: "3"}},
                "spec": {"prompt": "v3"},
            })),
        )
        .await
        .expect("activate r3");
    active(&h, "agt-a-r3").await;

    // kubectl changes the prompt: revision 4, numbered after every revision, with the skills
    // of 3, made active and logged as kubectl's.
    agents
        .patch(
            "agt-a",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(json!({
                "apiVersion": "sealpod.dev/v1alpha1", "kind": "Agent",
                "metadata": {"name": "agt-a"},
                "spec": {"model": "anthropic/claude-sonnet-4-5", "prompt": "v4"}
            })),
        )
        .await
        .expect("apply");
    let at4 = active(&h, "agt-a-r4").await;
    assert_eq!(at4.annotations()[labels::REVISION_ANNOTATION], "4");
    let r4 = revision(&h, "agt-a-r4").await;
    assert_eq!(
        (
            r4.spec.prompt.as_str(),
            r4.spec.skills.as_ref(),
            r4.spec.origin.as_deref()
        ),
        ("v4", Some(&bundle), Some("kubectl"))
    );
    assert_eq!(
        at4.annotations()[labels::REVISION_DIGEST_ANNOTATION],
        r4.spec.digest
    );
    let log = r4.status.expect("status").activations;
    assert_eq!(
        (log[0].from, log[0].actor.as_deref(), log[0].reason.as_str()),
        (Some(3), Some("kubectl"), "spec")
    );

    // A writer that moved the pointer and stopped before logging the activation on the
    // revision: the operator logs it from the agent's note.
    let noted = LastActivation {
        to: 4,
        activation: Activation {
            id: "act_stoppedwriter".into(),
            from: Some(3),
            actor: Some("api".into()),
            reason: "promote".into(),
            at: "2026-12-07T00:00:00Z".into(),
        },
    };
    agents
        .patch(
            "agt-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                labels::LAST_ACTIVATION_ANNOTATION: noted.to_annotation(),
            }}})),
        )
        .await
        .expect("note");
    eventually("the noted activation logged", || {
        let revisions: Api<AgentRevision> = api(&h);
        async move {
            let r4 = revisions.get("agt-a-r4").await.ok()?;
            r4.status?
                .activations
                .iter()
                .any(|a| a.id == "act_stoppedwriter")
                .then_some(())
        }
    })
    .await;

    // A Session applied with kubectl pins revision 4 and mounts its skills read-only.
    let _: Session = h
        .create(json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Session",
            "metadata": {"name": "ses-k"},
            "spec": {"agentRef": "agt-a", "input": {"text": "hello"}}
        }))
        .await;
    let pod = eventually("the session's pod", || {
        let pods: Api<Pod> = api(&h);
        async move { pods.get("ses-k").await.ok() }
    })
    .await;
    let session: Session = api::<Session>(&h).get("ses-k").await.expect("session");
    let pinned = session.spec.agent_snapshot.expect("pinned");
    assert_eq!((pinned.revision, pinned.prompt.as_str()), (Some(4), "v4"));
    let spec = pod.spec.expect("spec");
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "skills")
        .expect("skills volume");
    assert_eq!(
        volume.config_map.as_ref().map(|c| c.name.as_str()),
        Some("agt-a-skills-5k")
    );
    let mount = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "skills")
        .expect("skills mount");
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/skills", Some(true))
    );
    op.stop().await.expect("stop");
}
