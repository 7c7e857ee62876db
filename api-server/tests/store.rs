//! The store on SQLite (and on PostgreSQL when `SEALPOD_TEST_POSTGRES_URL` is set): gap-free
//! seqs under concurrent appends, idempotent creates, steers and runtime appends, the turn
//! life cycle and its status transitions, and reads that see every kind of session write (on
//! SQLite they are served from the rows the store keeps).

use std::sync::Arc;

use sealpod_api_server::store::hub::Hub;
use sealpod_api_server::store::{CreateOutcome, Draft, NewSession, SteerOutcome, Store};
use sealpod_api_server::wire::{TurnState, WireLimits, WireSnapshot};
use sealpod_resources::runtime_api::{
    Actor, CompleteTurnRequest, Level, NewEvent, Usage, YieldReason,
};
use sealpod_resources::session::Phase;
use serde_json::json;

async fn stores() -> Vec<(Arc<Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut out = vec![(
        Arc::new(Store::connect(&url, Hub::new()).await.expect("sqlite")),
        Some(dir),
    )];
    if let Ok(pg) = std::env::var("SEALPOD_TEST_POSTGRES_URL") {
        out.push((
            Arc::new(Store::connect(&pg, Hub::new()).await.expect("postgres")),
            None,
        ));
    }
    out
}

fn new_session(ns: &str) -> NewSession {
    NewSession {
        id: sealpod_resources::ids::Id::generate(sealpod_resources::ids::IdKind::Session)
            .to_string(),
        namespace: ns.to_owned(),
        agent_id: "agt_a".into(),
        credential_id: Some("managed".into()),
        snapshot: WireSnapshot {
            prompt_hash: sealpod_resources::agent::prompt_hash("be brief"),
            model: "anthropic/x".into(),
            runtime: "claude".into(),
            revision: 1,
        },
        limits: WireLimits::default(),
        metadata: json!({"pullNumber": 42}),
        key: None,
        idle_timeout: 900,
    }
}

fn message(text: &str) -> Draft {
    Draft {
        type_: "user.message".into(),
        level: Level::User,
        actor: Actor {
            id: "user".into(),
            type_: "human".into(),
            display: None,
        },
        body: json!({"text": text}),
        refs: json!({}),
        turn_id: None,
        client_id: None,
    }
}

fn runtime_event(client_id: &str, turn: Option<&str>) -> (NewEvent, Actor) {
    (
        NewEvent {
            client_id: client_id.into(),
            type_: "agent.message".into(),
            level: Level::User,
            body: json!({"text": client_id}),
            turn_id: turn.map(str::to_owned),
            refs: None,
        },
        Actor::agent(),
    )
}

async fn created(store: &Store, ns: &str) -> String {
    match store
        .create_session(new_session(ns), message("hello"), vec![])
        .await
        .expect("create")
    {
        CreateOutcome::Created(row) => {
            assert_eq!(row.head, 1);
            assert_eq!(row.status, Phase::Queued);
            assert_eq!(row.metadata, json!({"pullNumber": 42}));
            row.id
        }
        other => panic!("not created: {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_appends_get_gap_free_seqs() {
    for (store, _dir) in stores().await {
        let id = created(&store, "t").await;
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let batch = vec![
                        runtime_event(&format!("w{w}-{i}-a"), None),
                        runtime_event(&format!("w{w}-{i}-b"), None),
                    ];
                    let out = store.append_runtime("t", &id, batch).await.expect("append");
                    assert_eq!(out[1].seq, out[0].seq + 1, "a batch is contiguous");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let events = store
            .list_events(&id, 0, &Default::default(), 1000)
            .await
            .expect("list");
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=161).collect::<Vec<_>>());
        // Re-sending a batch appends nothing and answers with the stored events.
        let again = store
            .append_runtime(
                "t",
                &id,
                vec![runtime_event("w0-0-a", None), runtime_event("new", None)],
            )
            .await
            .expect("append");
        assert!(again[0].seq < 161);
        assert_eq!(again[1].seq, 162);
        assert_eq!(
            store
                .get_session("t", &id)
                .await
                .expect("get")
                .expect("row")
                .head,
            162
        );
        // Another namespace does not see the session.
        assert!(
            store
                .get_session("other", &id)
                .await
                .expect("get")
                .is_none()
        );
    }
}

#[tokio::test]
async fn create_keys_replay_or_conflict() {
    for (store, _dir) in stores().await {
        let claim = |hash: &str| vec![("key:t".to_owned(), "pr-42".to_owned(), hash.to_owned())];
        let first = store
            .create_session(new_session("t"), message("a"), claim("h1"))
            .await
            .expect("create");
        let CreateOutcome::Created(first) = first else {
            panic!("created")
        };
        let CreateOutcome::Replay(again) = store
            .create_session(new_session("t"), message("a"), claim("h1"))
            .await
            .expect("replay")
        else {
            panic!("replay")
        };
        assert_eq!(again.id, first.id);
        assert!(matches!(
            store
                .create_session(new_session("t"), message("b"), claim("h2"))
                .await
                .expect("conflict"),
            CreateOutcome::Conflict("key")
        ));
    }
}

#[tokio::test]
async fn turn_life_cycle_moves_the_status() {
    for (store, _dir) in stores().await {
        let id = created(&store, "t").await;
        // Steer twice before the runtime claims: one turn takes both inputs.
        let SteerOutcome::Appended(e2, _, _) = store
            .steer("t", &id, message("more"), Some(("k1".into(), "h".into())))
            .await
            .expect("steer")
        else {
            panic!("appended")
        };
        let SteerOutcome::Replay(replayed, _) = store
            .steer("t", &id, message("more"), Some(("k1".into(), "h".into())))
            .await
            .expect("steer")
        else {
            panic!("replay")
        };
        assert_eq!(replayed.id, e2.id);
        let turn = store.claim("t", &id).await.expect("claim").expect("a turn");
        assert_eq!(
            (
                turn.input_from_seq,
                turn.input_to_seq,
                turn.attempt,
                turn.number
            ),
            (1, 2, 1, 1)
        );
        assert_eq!(turn.inputs.len(), 2);
        assert_eq!(
            store
                .get_session("t", &id)
                .await
                .expect("get")
                .expect("row")
                .status,
            Phase::Running
        );
        // A crashed runtime claims again: the same turn, attempt 2.
        let again = store
            .claim("t", &id)
            .await
            .expect("claim")
            .expect("the same turn");
        assert_eq!(
            (again.turn_id.as_str(), again.attempt),
            (turn.turn_id.as_str(), 2)
        );
        let out = store
            .append_runtime("t", &id, vec![runtime_event("answer", Some(&turn.turn_id))])
            .await
            .expect("append");
        let done = store
            .complete_turn(
                "t",
                &id,
                &turn.turn_id,
                &CompleteTurnRequest {
                    yield_reason: YieldReason::NeedsInput,
                    result_event_id: Some(out[0].id.clone()),
                    usage: Usage {
                        input_tokens: 5,
                        output_tokens: 7,
                        ..Usage::default()
                    },
                    error: None,
                },
            )
            .await
            .expect("complete")
            .expect("turn");
        assert_eq!(done.state, TurnState::Ok);
        let row = store
            .get_session("t", &id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(row.status, Phase::AwaitingInput);
        let last = row.last_turn.expect("last turn");
        assert_eq!(last.yield_reason.as_deref(), Some("needs_input"));
        assert_eq!(row.usage.expect("usage").output_tokens, 7);
        assert!(
            store.claim("t", &id).await.expect("claim").is_none(),
            "no pending input"
        );
        // Cancel reaches the running turn; its events are then refused.
        store
            .steer("t", &id, message("go on"), None)
            .await
            .expect("steer");
        let t2 = store.claim("t", &id).await.expect("claim").expect("turn 2");
        assert_eq!(t2.number, 2);
        store.cancel("t", &id).await.expect("cancel");
        assert!(
            store
                .turn_cancelled(&id, &t2.turn_id)
                .await
                .expect("signal")
        );
        assert!(
            store
                .append_runtime("t", &id, vec![runtime_event("late", Some(&t2.turn_id))])
                .await
                .is_err()
        );
        store
            .complete_turn(
                "t",
                &id,
                &t2.turn_id,
                &CompleteTurnRequest {
                    yield_reason: YieldReason::Canceled,
                    result_event_id: None,
                    usage: Usage::default(),
                    error: None,
                },
            )
            .await
            .expect("complete");
        assert_eq!(
            store
                .get_session("t", &id)
                .await
                .expect("get")
                .expect("row")
                .status,
            Phase::Idle
        );
        // Archive: read-only, client tokens revoked.
        store.archive("t", &id).await.expect("archive");
        assert!(matches!(
            store
                .steer("t", &id, message("x"), None)
                .await
                .expect("steer"),
            SteerOutcome::Archived
        ));
        assert!(
            store
                .client_tokens_revoked_before(&id)
                .await
                .expect("rev")
                .is_some()
        );
        let turns = store.list_turns(&id, None, 10).await.expect("turns");
        assert_eq!(
            turns.iter().map(|t| t.number).collect::<Vec<_>>(),
            vec![2, 1]
        );
    }
}

/// A stored value outside its column's domain is reported, not read as a default.
#[tokio::test]
async fn an_unknown_stored_phase_is_an_error_not_a_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let id = created(
        &Store::connect(&url, Hub::new()).await.expect("sqlite"),
        "ns",
    )
    .await;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url)
        .await
        .expect("a second connection");
    sqlx::query("UPDATE sessions SET status = 'paused' WHERE id = $1")
        .bind(&id)
        .execute(&pool)
        .await
        .expect("update");
    // Read by a store opened after the foreign write: on SQLite a store keeps the rows it has
    // read (it is the database's one writer) and would not see a write it did not make.
    let store = Store::connect(&url, Hub::new()).await.expect("sqlite");
    let err = store
        .get_session("ns", &id)
        .await
        .expect_err("an unknown phase does not decode");
    assert_eq!(
        err.to_string(),
        "stored status has an unknown value paused",
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_truncated_inline_and_kept_whole_once() {
    for (store, _dir) in stores().await {
        let store = Arc::try_unwrap(store)
            .expect("one owner")
            .with_event_body_limit(1024);
        let id = created(&store, "t").await;
        let output = "0123456789".repeat(500);
        let big = || {
            let (mut event, actor) = runtime_event("big", None);
            event.type_ = "exec.completed".into();
            event.body = json!({"command": "make", "output": output});
            (event, actor)
        };
        let stored = store
            .append_runtime("t", &id, vec![big()])
            .await
            .expect("append");
        let event = stored[0].to_event().expect("event");
        let whole = json!({"command": "make", "output": output}).to_string();
        assert!(event.body_truncated);
        assert_eq!(event.body_bytes, Some(whole.len() as i64));
        assert_eq!(
            event.content_ref.as_deref(),
            Some(format!("/sessions/{id}/events/{}/content", event.id).as_str())
        );
        assert!(event.body.to_string().len() <= 1024);
        assert_eq!(event.body["command"], "make");
        let content = store.event_content(&id, &event.id).await.expect("content");
        assert_eq!(content.as_deref(), Some(whole.as_str()));
        // Sent again, the event is the one stored: nothing is truncated or stored twice.
        let again = store
            .append_runtime("t", &id, vec![big()])
            .await
            .expect("append");
        assert_eq!(again[0].id, event.id);
        assert_eq!(again[0].data, stored[0].data);
        // An event under the limit is whole inline, and its content is its body.
        let small = store
            .append_runtime("t", &id, vec![runtime_event("small", None)])
            .await
            .expect("append");
        let small = small[0].to_event().expect("event");
        assert!(!small.body_truncated && small.content_ref.is_none());
        let content = store.event_content(&id, &small.id).await.expect("content");
        assert_eq!(content.as_deref(), Some(r#"{"text":"small"}"#));
        assert_eq!(
            store.event_content(&id, "evt_none").await.expect("content"),
            None
        );
    }
}

#[tokio::test]
async fn a_read_after_each_kind_of_session_write_sees_it() {
    for (store, _dir) in stores().await {
        let id = created(&store, "t").await;
        let read = |id: String| {
            let store = store.clone();
            async move { store.get_session("t", &id).await.expect("get") }
        };
        assert_eq!(read(id.clone()).await.expect("row").head, 1);

        let SteerOutcome::Appended(..) = store
            .steer("t", &id, message("more"), None)
            .await
            .expect("steer")
        else {
            panic!("appended")
        };
        assert_eq!(read(id.clone()).await.expect("row").head, 2);

        store.claim("t", &id).await.expect("claim").expect("a turn");
        assert_eq!(read(id.clone()).await.expect("row").status, Phase::Running);

        store.mark_hibernated(&id).await.expect("hibernate");
        assert!(read(id.clone()).await.expect("row").hibernated);

        store.record_object_uid(&id, "uid-1").await.expect("uid");
        assert_eq!(
            read(id.clone()).await.expect("row").object_uid.as_deref(),
            Some("uid-1")
        );

        let retired = store
            .retire_session("t", &id, "uid-1")
            .await
            .expect("retire")
            .expect("retired");
        assert!(read(id.clone()).await.is_none(), "the id is free again");
        assert_eq!(
            read(retired.clone()).await.expect("row").status,
            Phase::Archived
        );

        store.forget_session(&retired).await.expect("forget");
        assert!(read(retired).await.is_none());
    }
}
