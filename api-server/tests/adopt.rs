//! Sessions applied with kubectl (a `Session` object the store does not know) are adopted:
//! readable, claimable and steerable like created ones, never twice, at start after a restart,
//! only in served namespaces, and an unknown agent is refused with a warning naming the session.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use common::{Env, TENANT_A, TENANT_B};
use kube::Api;
use kube::api::PostParams;
use sealpod_api_server::adopt::{Adoption, Refusal, adopt};
use sealpod_resources::ids::id_to_object_name;
use sealpod_resources::runtime_token::Scope;
use sealpod_resources::{Agent, Session, SessionSpec};
use sealpod_util::wait::until;
use serde_json::{Value, json};

/// Applies a Session the way `kubectl apply -f examples/session.yaml` does (no snapshot: no
/// operator runs here to pin one).
async fn apply_session(env: &Env, ns: &str, name: &str, agent_ref: &str, spec: Value) -> Session {
    let mut full = json!({
        "agentRef": agent_ref,
        "input": {"text": "Why does the auth test fail?"},
        "desiredState": "Running",
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut full, spec) {
        base.extend(extra);
    }
    let spec: SessionSpec = serde_json::from_value(full).expect("spec");
    let api: Api<Session> = Api::namespaced(env.cluster.client(), ns);
    let params = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    api.create(&params, &Session::new(name, spec))
        .await
        .expect("create session object")
}

async fn events(env: &Env, id: &str) -> Vec<Value> {
    let (s, page) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/events?limit=1000"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["data"].as_array().expect("data").clone()
}

fn user_messages(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "user.message")
        .count()
}

/// Ids of tenant A's sessions as listed (the list never adopts on demand: only the watch does).
async fn listed(env: &Env) -> Vec<String> {
    let (s, page) = env
        .call("GET", "/v3/sessions?limit=200", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Waits until the watch has adopted `id` (it shows in the list); false after 20 s.
async fn wait_listed(env: &Env, id: &str) -> bool {
    until("the session listed", Duration::from_secs(20), || async {
        listed(env).await.iter().any(|s| s == id).then_some(())
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_kubectl_session_is_adopted_read_claimed_and_steered() {
    let env = Env::start().await;
    let agent = env.agent("reviewer").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    apply_session(
        &env,
        TENANT_A,
        "ses-example",
        &agent_name,
        json!({"limits": {"turns": 4}, "metadata": {"pullNumber": 42}, "key": "adopt-pr-42"}),
    )
    .await;

    let (s, session) = env
        .call("GET", "/v3/sessions/ses_example", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["id"], "ses_example");
    assert_eq!(session["agent_id"], agent.as_str());
    assert_eq!(session["status"], "queued");
    assert_eq!(session["head"], 1);
    assert_eq!(session["metadata"], json!({"pullNumber": 42}));
    assert_eq!(session["key"], "adopt-pr-42");
    assert_eq!(session["limits"]["turns"], 4);
    assert_eq!(session["agent_snapshot"]["model"], "anthropic/claude-x");
    assert!(
        session["credential_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("cred_")),
        "{session}"
    );
    // Another tenant still cannot see it.
    let (s, _) = env
        .call("GET", "/v3/sessions/ses_example", Some(&env.key_b), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let log = events(&env, "ses_example").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["seq"], 1);
    assert_eq!(log[0]["type"], "user.message");
    assert_eq!(log[0]["body"]["text"], "Why does the auth test fail?");

    // The runtime claims its input and runs a turn; the session then settles like any other.
    let (_, result) = env.run_turn("ses_example", "the fixture expired").await;
    let (_, session) = env
        .call("GET", "/v3/sessions/ses_example", Some(&env.key_a), None)
        .await;
    assert_eq!(session["status"], "idle", "{session}");
    assert_eq!(session["last_turn"]["result_event_id"], result.as_str());

    // Steerable, and listed.
    let (s, steer) = env
        .call(
            "POST",
            "/v3/sessions/ses_example/messages",
            Some(&env.key_a),
            Some(json!({"text": "and now?"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{steer}");
    assert_eq!(steer["session"]["status"], "queued");
    assert!(wait_listed(&env, "ses_example").await);
    let log = events(&env, "ses_example").await;
    assert_eq!(user_messages(&log), 2, "{log:?}");
    assert_eq!(
        log.first().expect("first")["body"]["text"],
        "Why does the auth test fail?"
    );

    // Adopted once, whichever of the watch and the requests came first.
    let (s, metrics, _) = Env::send(&env.admin, Env::request("GET", "/metrics", None, None)).await;
    assert_eq!(s, StatusCode::OK);
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(
        metrics.contains("sealpod_api_server_sessions_adopted_total 1\n"),
        "{metrics}"
    );

    // The adopted key routes like a created one: the same key with a body is a conflict.
    let (s, e) = env
        .call(
            "POST",
            "/v3/sessions",
            Some(&env.key_a),
            Some(json!({"agent": agent, "input": "other", "key": "adopt-pr-42"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
}

#[tokio::test]
async fn a_runtime_claim_adopts_before_anything_else_reads() {
    let env = Env::start().await;
    let agent = env.agent("claimer").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    apply_session(&env, TENANT_A, "ses-claimfirst", &agent_name, json!({})).await;
    // The first thing to touch it is the runtime (the watch may or may not have run yet).
    let token = env.runtime_token(TENANT_A, "ses_claimfirst", Scope::Runtime);
    let (s, turn) = env
        .rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await;
    assert_eq!(s, StatusCode::OK, "{turn}");
    assert!(turn["turn_id"].as_str().is_some(), "{turn}");
    let (s, info) = env.rt(&token, "GET", "/session", None).await;
    assert_eq!(s, StatusCode::OK, "{info}");
    assert_eq!(info["model"], "anthropic/claude-x");
    assert_eq!(info["status"], "running");
    assert_eq!(user_messages(&events(&env, "ses_claimfirst").await), 1);
}

#[tokio::test]
async fn sessions_are_never_adopted_twice() {
    let env = Env::start().await;
    let agent = env.agent("once").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    let (created, _) = env.session(&agent, "created through the API").await;

    // Two adopters racing over one new object (plus the watch): one row, one first input.
    let object = apply_session(&env, TENANT_A, "ses-raced", &agent_name, json!({})).await;
    let (a, b) = tokio::join!(adopt(&env.state, &object), adopt(&env.state, &object));
    let adopted = [a.expect("adopt a"), b.expect("adopt b")]
        .iter()
        .filter(|o| matches!(o, Adoption::Adopted(_)))
        .count();
    assert!(adopted <= 1, "adopted {adopted} times");

    // One ordered watch stream: once a later object is listed, the watch has seen both.
    apply_session(&env, TENANT_A, "ses-marker", &agent_name, json!({})).await;
    assert!(wait_listed(&env, "ses_marker").await);
    let ids = listed(&env).await;
    assert_eq!(ids.iter().filter(|i| **i == created).count(), 1, "{ids:?}");
    assert_eq!(
        ids.iter().filter(|i| *i == "ses_raced").count(),
        1,
        "{ids:?}"
    );
    let created_log = events(&env, &created).await;
    assert_eq!(created_log.len(), 1, "{created_log:?}");
    assert_eq!(created_log[0]["body"]["text"], "created through the API");
    assert_eq!(user_messages(&events(&env, "ses_raced").await), 1);

    // Adopting again, or adopting the API's own object, finds the existing row.
    let api: Api<Session> = Api::namespaced(env.cluster.client(), TENANT_A);
    let own = api
        .get(&id_to_object_name(&created).expect("name"))
        .await
        .expect("object");
    assert!(matches!(
        adopt(&env.state, &own).await.expect("adopt own"),
        Adoption::Known(row) if row.id == created
    ));
    assert!(matches!(
        adopt(&env.state, &object).await.expect("adopt again"),
        Adoption::Known(_)
    ));
    assert_eq!(user_messages(&events(&env, &created).await), 1);
    assert_eq!(user_messages(&events(&env, "ses_raced").await), 1);
}

#[tokio::test]
async fn a_late_event_of_a_replaced_object_does_not_retire_its_successor() {
    let env = Env::start().await;
    let agent = env.agent("late").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    let first = apply_session(&env, TENANT_A, "ses-late", &agent_name, json!({})).await;
    assert!(matches!(
        adopt(&env.state, &first).await.expect("adopt first"),
        Adoption::Adopted(_) | Adoption::Known(_)
    ));
    let api: Api<Session> = Api::namespaced(env.cluster.client(), TENANT_A);
    api.delete("ses-late", &Default::default())
        .await
        .expect("delete");
    let second = apply_session(
        &env,
        TENANT_A,
        "ses-late",
        &agent_name,
        json!({"input": {"text": "Second life"}}),
    )
    .await;
    let second_uid = second.metadata.uid.clone().expect("uid");
    adopt(&env.state, &second).await.expect("adopt second");
    // The watch delivers an event of the first object only now (as it may under load): the
    // second stays the session, with its input.
    let late = adopt(&env.state, &first).await.expect("late event");
    assert!(
        matches!(&late, Adoption::Known(row) if row.object_uid.as_deref() == Some(second_uid.as_str())),
        "{late:?}"
    );
    let log = events(&env, "ses_late").await;
    assert_eq!(log[0]["body"]["text"], "Second life", "{log:?}");
}

#[tokio::test]
async fn a_session_applied_while_the_server_is_down_is_adopted_at_start() {
    let mut env = Env::start().await;
    let agent = env.agent("later").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    // A server serving only tenant B never touches tenant A's objects (nor knows its keys).
    env.restart(vec![TENANT_B.to_owned()]).await;
    apply_session(&env, TENANT_A, "ses-unserved", &agent_name, json!({})).await;
    let (s, _) = env
        .call("GET", "/v3/sessions/ses_unserved", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let stored = env
        .state
        .store()
        .get_session(TENANT_A, "ses_unserved")
        .await;
    assert!(stored.expect("store").is_none(), "not adopted");

    // Down, a session is applied; the next server (serving tenant A) adopts both at start,
    // through its watch's initial list (the list route never adopts on demand).
    let _ = env.shutdown.send(true);
    apply_session(&env, TENANT_A, "ses-whiledown", &agent_name, json!({})).await;
    env.restart(Vec::new()).await;
    assert!(wait_listed(&env, "ses_whiledown").await);
    assert!(wait_listed(&env, "ses_unserved").await);
    let (s, session) = env
        .call("GET", "/v3/sessions/ses_whiledown", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["agent_id"], agent.as_str());
    assert_eq!(user_messages(&events(&env, "ses_whiledown").await), 1);
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_unknown_agent_is_refused_with_a_warning_naming_the_session() {
    let env = Env::start().await;
    let object = apply_session(&env, TENANT_A, "ses-orphan", "agt-missing", json!({})).await;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let outcome = {
        let _guard = tracing::subscriber::set_default(subscriber);
        adopt(&env.state, &object).await.expect("adopt")
    };
    assert!(
        matches!(&outcome, Adoption::Refused(Refusal::UnknownAgent(a)) if a == "agt-missing"),
        "{outcome:?}"
    );
    let mut text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    text.retain(|c| c != '\n');
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("ses-orphan"), "{text}");
    assert!(text.contains("agent `agt-missing` not found"), "{text}");

    // Not readable, not claimable, not listed.
    let (s, _) = env
        .call("GET", "/v3/sessions/ses_orphan", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let token = env.runtime_token(TENANT_A, "ses_orphan", Scope::Runtime);
    let (s, _) = env
        .rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!listed(&env).await.iter().any(|i| i == "ses_orphan"));

    // Once the agent exists (its next change or any read retries), it is adopted.
    let template = env.agent("template").await;
    let agents: Api<Agent> = Api::namespaced(env.cluster.client(), TENANT_A);
    let spec = agents
        .get(&id_to_object_name(&template).expect("name"))
        .await
        .expect("agent")
        .spec;
    agents
        .create(&PostParams::default(), &Agent::new("agt-missing", spec))
        .await
        .expect("create agent");
    let (s, session) = env
        .call("GET", "/v3/sessions/ses_orphan", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["agent_id"], "agt_missing");
    assert_eq!(user_messages(&events(&env, "ses_orphan").await), 1);
}

/// Polls `check` on the Session object until it holds; false after 20 s.
async fn object_until(env: &Env, name: &str, check: impl Fn(&Session) -> bool) -> bool {
    let api: Api<Session> = Api::namespaced(env.cluster.client(), TENANT_A);
    until("the Session object", Duration::from_secs(20), || async {
        check(&api.get(name).await.expect("object")).then_some(())
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn an_adopted_session_mirrors_status_hibernates_with_its_agent_and_archives() {
    let env = Env::start().await;
    let agent = env.agent("sleepy").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    // The idle timeout comes from the agent's sandbox shape, as on create.
    Api::<Agent>::namespaced(env.cluster.client(), TENANT_A)
        .patch(
            &agent_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"sandbox": {"idleTimeoutSeconds": 1}}})),
        )
        .await
        .expect("patch agent");
    apply_session(&env, TENANT_A, "ses-sleepy", &agent_name, json!({})).await;
    env.run_turn("ses_sleepy", "done").await;
    // The conversational state reaches the object's status, as for created sessions.
    assert!(
        object_until(&env, "ses-sleepy", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.phase == Some(sealpod_resources::session::Phase::Idle)
                    && st.head.is_some_and(|h| h >= 3)
            })
        })
        .await,
        "status mirrored"
    );
    tokio::spawn(sealpod_api_server::lifecycle::run_idle_sweep(
        env.state.clone(),
        Duration::from_millis(200),
    ));
    assert!(
        object_until(&env, "ses-sleepy", |s| {
            s.spec.desired_state == sealpod_resources::session::DesiredState::Hibernated
        })
        .await,
        "hibernated after the agent's idle timeout"
    );
    let (s, session) = env
        .call(
            "POST",
            "/v3/sessions/ses_sleepy/archive",
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["status"], "archived");
    assert!(
        object_until(&env, "ses-sleepy", |s| {
            s.spec.desired_state == sealpod_resources::session::DesiredState::Archived
        })
        .await
    );

    // An object applied already archived is adopted read-only.
    apply_session(
        &env,
        TENANT_A,
        "ses-closed",
        &agent_name,
        json!({"desiredState": "Archived"}),
    )
    .await;
    let (s, session) = env
        .call("GET", "/v3/sessions/ses_closed", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["status"], "archived");
    let (s, _) = env
        .call(
            "POST",
            "/v3/sessions/ses_closed/messages",
            Some(&env.key_a),
            Some(json!({"text": "hello?"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_pinned_snapshot_is_what_the_adopted_session_runs() {
    let env = Env::start().await;
    let agent = env.agent("pinned").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    // As the operator pins it on first reconcile: the agent's configuration at that time.
    apply_session(
        &env,
        TENANT_A,
        "ses-pinned",
        &agent_name,
        json!({"agentSnapshot": {
            "model": "anthropic/claude-then", "runtime": "claude", "prompt": "then",
            "promptHash": "sha256:x", "revision": 7, "limits": {"turnSeconds": 30},
            "credential": "managed",
        }}),
    )
    .await;
    let (s, session) = env
        .call("GET", "/v3/sessions/ses_pinned", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["agent_snapshot"]["model"], "anthropic/claude-then");
    assert_eq!(session["agent_snapshot"]["revision"], 7);
    assert_eq!(session["credential_id"], "managed");
    assert_eq!(session["limits"]["turn_seconds"], 30);
    let token = env.runtime_token(TENANT_A, "ses_pinned", Scope::Runtime);
    let (s, info) = env.rt(&token, "GET", "/session", None).await;
    assert_eq!(s, StatusCode::OK, "{info}");
    assert_eq!(info["prompt"], "then");
}

/// Deletes `ses-again` as kubectl does and applies it again with `spec`; returns the new uid.
async fn reapply(env: &Env, agent_name: &str, spec: Value) -> String {
    let objects: Api<Session> = Api::namespaced(env.cluster.client(), TENANT_A);
    objects
        .delete("ses-again", &Default::default())
        .await
        .expect("delete");
    let again = apply_session(env, TENANT_A, "ses-again", agent_name, spec).await;
    again.metadata.uid.expect("uid")
}

/// A runtime claim that does not wait.
async fn claim_now(env: &Env, token: &str) -> (StatusCode, Value) {
    env.rt(token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await
}

/// The first event's text of a session's log; none while there is no such session or its log is
/// empty (as for a moment between the old session's retirement and the new one's adoption).
async fn first_text(env: &Env, id: &str) -> Option<Value> {
    let (s, page) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/events?limit=1"),
            Some(&env.key_a),
            None,
        )
        .await;
    (s == StatusCode::OK).then(|| page["data"][0]["body"]["text"].clone())
}

#[tokio::test]
async fn a_session_applied_again_under_its_name_is_a_new_session_and_the_old_is_archived() {
    let env = Env::start().await;
    let agent = env.agent("again").await;
    let agent_name = id_to_object_name(&agent).expect("name");
    let first = apply_session(
        &env,
        TENANT_A,
        "ses-again",
        &agent_name,
        json!({"key": "pr-7"}),
    )
    .await;
    let first_uid = first.metadata.uid.clone().expect("uid");
    let old_token = env.runtime_token_of(TENANT_A, "ses_again", Scope::Runtime, &first_uid);
    let (s, turn) = claim_now(&env, &old_token).await;
    assert_eq!(s, StatusCode::OK, "{turn}");
    let (s, _) = env
        .call(
            "POST",
            "/v3/sessions/ses_again/messages",
            Some(&env.key_a),
            Some(json!({"text": "more"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let old_log = events(&env, "ses_again").await;
    assert_eq!(old_log.len(), 3, "input, turn.started, steer: {old_log:?}");

    // Deleted as kubectl does (its finalizer revokes the object's tokens first), then applied
    // again under the same name.
    let (s, revoked) = env.rt(&old_token, "POST", "/revoke", None).await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    let second_uid = reapply(
        &env,
        &agent_name,
        json!({"input": {"text": "Second life"}, "key": "pr-7"}),
    )
    .await;
    assert_ne!(first_uid, second_uid);

    // The watch adopts it as a new session, from seq 1.
    until(
        "the new session adopted",
        Duration::from_secs(20),
        || async { (first_text(&env, "ses_again").await? == "Second life").then_some(()) },
    )
    .await
    .expect("the name holds the new session");
    let (s, session) = env
        .call("GET", "/v3/sessions/ses_again", Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["status"], "queued", "{session}");
    assert_eq!(session["head"], 1);
    assert_eq!(
        session["key"], "pr-7",
        "the routing key passed to the new session"
    );

    // The old history, archived under an id of its own, whole.
    let retired = sealpod_api_server::store::retired_id("ses_again", &first_uid);
    let (s, old) = env
        .call(
            "GET",
            &format!("/v3/sessions/{retired}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{old}");
    assert_eq!(old["status"], "archived");
    let moved = events(&env, &retired).await;
    let ids = |log: &[Value]| log.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&moved), ids(&old_log), "every event moved, in order");
    assert!(
        moved.iter().all(|e| e["session"] == retired.as_str()),
        "{moved:?}"
    );

    // The deleted object's tokens reach nothing; the new object's reach the new session.
    let (s, _) = claim_now(&env, &old_token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let new_token = env.runtime_token_of(TENANT_A, "ses_again", Scope::Runtime, &second_uid);
    let (s, turn) = claim_now(&env, &new_token).await;
    assert_eq!(s, StatusCode::OK, "{turn}");
    assert_eq!(turn["inputs"][0]["body"]["text"], "Second life", "{turn}");

    // A runtime that comes first (before the watch) adopts the new object itself.
    let third_uid = reapply(&env, &agent_name, json!({"input": {"text": "Third life"}})).await;
    let third_token = env.runtime_token_of(TENANT_A, "ses_again", Scope::Runtime, &third_uid);
    let (s, turn) = claim_now(&env, &third_token).await;
    assert_eq!(s, StatusCode::OK, "{turn}");
    assert_eq!(turn["inputs"][0]["body"]["text"], "Third life", "{turn}");
    let (s, second_old) = env
        .call(
            "GET",
            &format!(
                "/v3/sessions/{}",
                sealpod_api_server::store::retired_id("ses_again", &second_uid)
            ),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{second_old}");
    assert_eq!(second_old["status"], "archived");

    // The second object's tokens were never revoked (as when its finalizer gave up): they still
    // reach nothing now that a third object holds the name, on any route.
    let second_proxy = env.runtime_token_of(TENANT_A, "ses_again", Scope::Proxy, &second_uid);
    let (s, gate) = env
        .rt(
            &second_proxy,
            "POST",
            "/egress-gate",
            Some(json!({"metered_tokens": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{gate}");
    let second_runtime = env.runtime_token_of(TENANT_A, "ses_again", Scope::Runtime, &second_uid);
    let (s, appended) = env
        .rt(
            &second_runtime,
            "POST",
            "/events",
            Some(
                json!({"events": [{"client_id": "stale", "type": "agent.message",
                "level": "user", "body": {"text": "from a deleted object"}}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{appended}");
    let (s, gate) = env
        .rt(
            &env.runtime_token_of(TENANT_A, "ses_again", Scope::Proxy, &third_uid),
            "POST",
            "/egress-gate",
            Some(json!({"metered_tokens": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the current object's proxy: {gate}");
}
