//! Schedules fired by the API server's per-second pass, driven here with an injected clock (the
//! time each pass is given): one fire per scheduled time, across a restart and between two
//! replicas on one database; only the latest missed time after downtime; daylight-saving changes;
//! the overlap policy; automatic pause after repeated failures; and a run left pending by a
//! stopped replica enacted again. On SQLite, and on PostgreSQL when `SEALPOD_TEST_POSTGRES_URL`
//! is set (the two-replica test needs it).

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{Env, TENANT_A};
use kube::Api;
use sealpod_api_server::AppState;
use sealpod_api_server::schedule::{Plan, Ticker};
use sealpod_api_server::store::Store;
use sealpod_api_server::store::hub::Hub;
use sealpod_resources::Schedule;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Creates a schedule of `agent` in tenant A; returns its id.
async fn schedule(env: &Env, agent: &str, body: Value) -> String {
    let (s, v) = env
        .call(
            "POST",
            &format!("/v3/agents/{agent}/schedules"),
            Some(&env.key_a),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["schedule"]["id"].as_str().expect("id").to_owned()
}

/// The Schedule objects of tenant A, as the watch would hand them to a pass.
async fn objects(env: &Env) -> Vec<Schedule> {
    let api: Api<Schedule> = Api::namespaced(env.kube.client().clone(), TENANT_A);
    api.list(&Default::default()).await.expect("list").items
}

/// The runs of a schedule, newest first.
async fn runs(env: &Env, agent: &str, id: &str) -> Vec<Value> {
    let (s, v) = env
        .call(
            "GET",
            &format!("/v3/agents/{agent}/schedules/{id}/runs"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["runs"].as_array().expect("runs").clone()
}

async fn get(env: &Env, agent: &str, id: &str) -> Value {
    let (s, v) = env
        .call(
            "GET",
            &format!("/v3/agents/{agent}/schedules/{id}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["schedule"].clone()
}

fn unix(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("time")
        .timestamp()
}

/// The first time `cron` (UTC) names after now.
fn next_time(cron: &str) -> i64 {
    Plan::parse(cron, None)
        .expect("plan")
        .next_after(chrono::Utc::now().timestamp())
        .expect("next")
}

/// One pass of a fresh replica's ticker (what a restarted server does first).
async fn pass(state: &AppState, schedules: &[Schedule], now: i64) {
    Ticker::default().tick(state, schedules, now).await;
}

#[tokio::test]
async fn each_time_fires_once_across_restarts_and_downtime_fires_only_the_latest() {
    let env = Env::start().await;
    let agent = env.agent("cron-once").await;
    let id = schedule(
        &env,
        &agent,
        json!({"name": "ten", "cron": "*/10 * * * *", "input": "tick", "overlap": "allow"}),
    )
    .await;
    let all = objects(&env).await;
    let first = next_time("*/10 * * * *");
    let mut ticker = Ticker::default();
    ticker.tick(&env.state, &all, first - 1).await;
    assert!(
        runs(&env, &agent, &id).await.is_empty(),
        "nothing before its time"
    );
    ticker.tick(&env.state, &all, first).await;
    ticker.tick(&env.state, &all, first + 1).await;
    // A restarted server does not fire that time again.
    pass(&env.state, &all, first + 5).await;
    let fired = runs(&env, &agent, &id).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["outcome"], "enacted");
    assert_eq!(
        unix(fired[0]["scheduled_for"].as_str().expect("time")),
        first
    );
    // The run's session is a normal session whose metadata names the schedule and the run.
    let session = fired[0]["session_id"].as_str().expect("session");
    let (s, v) = env
        .call(
            "GET",
            &format!("/v3/sessions/{session}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["schedule_id"], id.as_str());
    assert_eq!(v["metadata"]["schedule_run_id"], fired[0]["id"]);
    // Down for an hour and a half: the latest missed time fires, once; the others never.
    let back = first + 5400 + 30;
    pass(&env.state, &all, back).await;
    pass(&env.state, &all, back + 1).await;
    let fired = runs(&env, &agent, &id).await;
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(
        unix(fired[0]["scheduled_for"].as_str().expect("time")),
        first + 5400
    );
    let state = get(&env, &agent, &id).await;
    assert_eq!(unix(state["next_fire_at"].as_str().expect("next")) % 600, 0);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (SEALPOD_TEST_POSTGRES_URL): scripts/test.d/40-api-conformance.sh runs it"]
async fn two_replicas_on_postgres_fire_each_time_once() {
    // Several replicas need PostgreSQL (SQLite is one replica's file).
    let url = std::env::var("SEALPOD_TEST_POSTGRES_URL").expect("SEALPOD_TEST_POSTGRES_URL");
    let env = Env::start().await;
    let agent = env.agent("cron-two").await;
    let id = schedule(
        &env,
        &agent,
        json!({"name": "minutely", "cron": "* * * * *", "input": "tick", "overlap": "allow"}),
    )
    .await;
    // A second replica: its own store connections and state, the same database and cluster.
    let store = Arc::new(Store::connect(&url, Hub::new()).await.expect("store"));
    let (_stop, rx) = watch::channel(false);
    let other = AppState::start(store, env.kube.clone(), env.state.settings().clone(), rx)
        .await
        .expect("second replica");
    let all = objects(&env).await;
    let start = next_time("* * * * *");
    let (mut a, mut b) = (Ticker::default(), Ticker::default());
    for minute in 0..5 {
        let now = start + minute * 60;
        tokio::join!(a.tick(&env.state, &all, now), b.tick(&other, &all, now));
    }
    let fired = runs(&env, &agent, &id).await;
    let mut times: Vec<i64> = fired
        .iter()
        .map(|r| unix(r["scheduled_for"].as_str().expect("time")))
        .collect();
    times.sort_unstable();
    assert_eq!(times, (0..5).map(|m| start + m * 60).collect::<Vec<_>>());
    assert!(fired.iter().all(|r| r["outcome"] == "enacted"), "{fired:?}");
}

#[tokio::test]
async fn a_time_skipped_by_daylight_saving_fires_once_when_the_change_ends() {
    let env = Env::start().await;
    let agent = env.agent("cron-dst").await;
    let id = schedule(
        &env,
        &agent,
        json!({"name": "night", "cron": "30 2 * * *", "tz": "America/New_York", "input": "tick", "overlap": "allow"}),
    )
    .await;
    let all = objects(&env).await;
    let at = |t: &str| unix(t);
    let mut ticker = Ticker::default();
    // 2027-03-13 02:30 EST; on 2027-03-14 clocks go from 02:00 EST to 03:00 EDT: 02:30 does not
    // exist and fires at 03:00 EDT (07:00Z), once; 2027-03-15 02:30 EDT is 06:30Z.
    for now in [
        "2027-03-13T07:30:00Z",
        "2027-03-14T06:59:59Z",
        "2027-03-14T07:00:00Z",
        "2027-03-14T07:30:00Z",
        "2027-03-14T08:00:00Z",
        "2027-03-15T06:30:00Z",
    ] {
        ticker.tick(&env.state, &all, at(now)).await;
    }
    let mut fired: Vec<String> = runs(&env, &agent, &id)
        .await
        .iter()
        .map(|r| r["scheduled_for"].as_str().expect("time").to_owned())
        .collect();
    fired.reverse();
    assert_eq!(
        fired,
        [
            "2027-03-13T07:30:00Z",
            "2027-03-14T07:00:00Z",
            "2027-03-15T06:30:00Z"
        ]
    );
}

#[tokio::test]
async fn overlap_skip_starts_nothing_while_the_last_session_runs() {
    let env = Env::start().await;
    let agent = env.agent("cron-overlap").await;
    let id = schedule(
        &env,
        &agent,
        json!({"name": "busy", "cron": "* * * * *", "input": "tick"}),
    )
    .await;
    let all = objects(&env).await;
    let start = next_time("* * * * *");
    let mut ticker = Ticker::default();
    ticker.tick(&env.state, &all, start).await;
    // The first session is queued (no runtime took its turn yet): the next minute skips.
    ticker.tick(&env.state, &all, start + 60).await;
    let fired = runs(&env, &agent, &id).await;
    let outcomes: Vec<&str> = fired
        .iter()
        .map(|r| r["outcome"].as_str().expect("o"))
        .collect();
    assert_eq!(outcomes, ["skipped", "enacted"]);
    assert!(fired[0]["session_id"].is_null());
    // Once its turn completed, the next minute starts a session again.
    let first = fired[1]["session_id"].as_str().expect("session").to_owned();
    env.run_turn(&first, "done").await;
    ticker.tick(&env.state, &all, start + 120).await;
    let fired = runs(&env, &agent, &id).await;
    assert_eq!(fired[0]["outcome"], "enacted", "{fired:?}");
    assert_ne!(fired[0]["session_id"], first.as_str());
}

#[tokio::test]
async fn repeated_failures_pause_the_schedule_until_its_owner_resumes_it() {
    let env = Env::start().await;
    let agent = env.agent("cron-fail").await;
    let id = schedule(
        &env,
        &agent,
        json!({"name": "broken", "cron": "* * * * *", "input": "tick", "overlap": "allow"}),
    )
    .await;
    // The agent's credential is gone: every fire fails with 422 no_credential.
    let (s, agent_v) = env
        .call(
            "GET",
            &format!("/v3/agents/{agent}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let cred = agent_v["credential_id"]
        .as_str()
        .expect("credential")
        .to_owned();
    let (s, v) = env
        .call(
            "DELETE",
            &format!("/v3/credentials/{cred}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert!(s.is_success(), "{v}");
    let all = objects(&env).await;
    let start = next_time("* * * * *");
    let mut ticker = Ticker::default();
    for minute in 0..7 {
        ticker.tick(&env.state, &all, start + minute * 60).await;
    }
    let fired = runs(&env, &agent, &id).await;
    assert_eq!(fired.len(), 5, "five failures, then no fire: {fired:?}");
    assert!(fired.iter().all(|r| r["outcome"] == "failed"));
    assert!(
        fired[0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no_credential: ")),
        "{fired:?}"
    );
    let state = get(&env, &agent, &id).await;
    assert_eq!(state["state"], "auto_paused");
    assert_eq!(state["consecutive_failures"], 5);
    let (s, metrics, _) = Env::send(&env.admin, Env::request("GET", "/metrics", None, None)).await;
    assert_eq!(s, StatusCode::OK);
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(
        metrics.contains("sealpod_api_server_schedule_runs_total{outcome=\"failed\"} 5\n"),
        "{metrics}"
    );
    // Resumed by its owner: active again, the count cleared, and it fires at its next time.
    let (s, v) = env
        .call(
            "PATCH",
            &format!("/v3/agents/{agent}/schedules/{id}"),
            Some(&env.key_a),
            Some(json!({"paused": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["schedule"]["state"], "active");
    assert_eq!(v["schedule"]["consecutive_failures"], 0);
    ticker
        .tick(&env.state, &objects(&env).await, start + 8 * 60)
        .await;
    assert_eq!(runs(&env, &agent, &id).await.len(), 6);
}

#[tokio::test]
async fn a_run_left_pending_by_a_stopped_replica_is_enacted_once() {
    let env = Env::start().await;
    let agent = env.agent("cron-stale").await;
    let id = schedule(
        &env,
        &agent,
        json!({"name": "stale", "cron": "0 0 1 1 *", "input": "tick", "overlap": "allow"}),
    )
    .await;
    // A replica claimed a time and stopped before enacting it.
    let now = chrono::Utc::now();
    let claimed = env
        .state
        .store()
        .claim_run(
            &id,
            TENANT_A,
            Some(now.timestamp() - 120),
            now - chrono::Duration::seconds(60),
        )
        .await
        .expect("claim")
        .expect("claimed");
    assert_eq!(runs(&env, &agent, &id).await[0]["outcome"], "pending");
    let all = objects(&env).await;
    pass(&env.state, &all, now.timestamp()).await;
    pass(&env.state, &all, now.timestamp() + 1).await;
    let fired = runs(&env, &agent, &id).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["id"], claimed.id.as_str());
    assert_eq!(fired[0]["outcome"], "enacted");
    // One session, found again by its key if the run were enacted a third time.
    let sessions = env.data(&format!("/v3/sessions?agent={agent}")).await;
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn a_schedule_applied_with_kubectl_fires_like_one_created_through_the_api() {
    let env = Env::start().await;
    let agent = env.agent("cron-kubectl").await;
    let agent_object = sealpod_resources::ids::id_to_object_name(&agent).expect("agent id");
    // As `kubectl apply -f examples/schedule.yaml` would write it (no owner, no annotation).
    let object: Schedule = serde_json::from_value(json!({
        "apiVersion": "sealpod.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "sch-nightly", "namespace": TENANT_A},
        "spec": {"name": "nightly", "agentRef": agent_object, "cron": "@daily", "input": "tick"},
    }))
    .expect("schedule");
    let api: Api<Schedule> = Api::namespaced(env.kube.client().clone(), TENANT_A);
    api.create(&Default::default(), &object)
        .await
        .expect("create");
    let all = objects(&env).await;
    let midnight = next_time("@daily");
    Ticker::default().tick(&env.state, &all, midnight).await;
    let (s, v) = env
        .call(
            "GET",
            &format!("/v3/agents/{agent}/schedules"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["schedules"][0]["id"], "sch_nightly");
    assert_eq!(v["schedules"][0]["overlap"], "skip");
    let fired = runs(&env, &agent, "sch_nightly").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["outcome"], "enacted");
    // Its status, written by the pass, is what `kubectl get schedules` shows.
    let status = api
        .get("sch-nightly")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(
        status.state,
        Some(sealpod_resources::schedule::ScheduleState::Active)
    );
    assert!(status.last_fired_at.is_some() && status.next_fire_at.is_some());
}

#[tokio::test]
async fn a_name_is_taken_once_even_by_concurrent_creates_and_a_delete_frees_it() {
    let env = Env::start().await;
    let agent = env.agent("names").await;
    let path = format!("/v3/agents/{agent}/schedules");
    let body = json!({"name": "nightly", "cron": "0 3 * * *", "input": "go"});
    let answers = futures::future::join_all(
        (0..6).map(|_| env.call("POST", &path, Some(&env.key_a), Some(body.clone()))),
    )
    .await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for (s, v) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*s, StatusCode::CONFLICT, "{v}");
        assert_eq!(
            v["error"]["message"],
            "the agent has a schedule named nightly"
        );
    }
    assert_eq!(objects(&env).await.len(), 1, "one Schedule object");

    // Deleting the schedule frees its name.
    let id = created[0]["schedule"]["id"].as_str().expect("id");
    let (s, v) = env
        .call("DELETE", &format!("{path}/{id}"), Some(&env.key_a), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    schedule(&env, &agent, body).await;
}
