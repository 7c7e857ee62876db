//! The API server's operations for the instruction-count gate (`scripts/instructions`, run under
//! `valgrind --tool=callgrind`): the real router and store (SQLite) over an in-process
//! devcluster, driven in this process with no sockets, on one thread. Not a test: it repeats one
//! operation `--count` times after the same set-up, so that the difference of two runs' counts
//! divided by the difference of their `--count`s is the cost of one operation.
//!
//! ```text
//! cargo build --workspace --example instructions
//! target/debug/examples/instructions --op get-session --count 100
//! ```
//!
//! Operations (`--op`):
//! - `get-session`: `GET /v3/sessions/{id}` with the org key.
//! - `deliver`: one event appended through the runtime API (`POST /runtime/v1/events`) and read
//!   as an SSE frame by one subscriber of the session's stream.

#[path = "../tests/common/mod.rs"]
mod common;

use axum::http::StatusCode;
use common::{Env, TENANT_A};
use http_body_util::BodyExt as _;
use sealpod_resources::runtime_token::Scope;
use serde_json::json;
use tower::ServiceExt as _;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn main() {
    let op = arg("--op").unwrap_or_else(|| "get-session".into());
    let count: u64 = arg("--count").and_then(|c| c.parse().ok()).unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let env = Env::start().await;
        let agent = env.agent("instructions").await;
        let (session, _) = env.session(&agent, "hello").await;
        match op.as_str() {
            "get-session" => get_session(&env, &session, count).await,
            "deliver" => deliver(&env, &session, count).await,
            other => panic!("unknown --op {other} (get-session, deliver)"),
        }
        let _ = env.shutdown.send(true);
    });
}

async fn get_session(env: &Env, session: &str, count: u64) {
    let path = format!("/v3/sessions/{session}");
    for _ in 0..count {
        let (status, body) = env.call("GET", &path, Some(&env.key_a), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

async fn deliver(env: &Env, session: &str, count: u64) {
    let token = env.runtime_token(TENANT_A, session, Scope::Runtime);
    let (status, turn) = env
        .rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await;
    assert_eq!(status, StatusCode::OK, "{turn}");
    let turn_id = turn["turn_id"].as_str().expect("turn").to_owned();
    let stream = Env::request(
        "GET",
        &format!("/v3/sessions/{session}/events?stream=sse&after=0"),
        Some(&env.key_a),
        None,
    );
    let response = env.app.clone().oneshot(stream).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut pending = String::new();
    // The frames of the events before the first append.
    let mut seen = frames_until(&mut body, &mut pending, |_| true, 1).await;
    for i in 0..count {
        let text = format!("event {i}");
        let (status, appended) = env
            .rt(
                &token,
                "POST",
                "/events",
                Some(json!({"events": [{
                    "client_id": format!("{turn_id}-{i}"), "type": "agent.message",
                    "level": "user", "body": {"text": text}, "turn_id": turn_id,
                }]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{appended}");
        seen += frames_until(&mut body, &mut pending, |f| f.contains(&text), 1).await;
    }
    assert!(seen > count, "every appended event was delivered");
}

/// Reads SSE frames from `body` until `wanted` of them match `done`; returns how many were read.
async fn frames_until(
    body: &mut axum::body::Body,
    pending: &mut String,
    done: impl Fn(&str) -> bool,
    wanted: usize,
) -> u64 {
    let (mut read, mut matched) = (0, 0);
    loop {
        while let Some(end) = pending.find("\n\n") {
            let frame: String = pending.drain(..end + 2).collect();
            read += 1;
            if frame.contains("data:") && done(&frame) {
                matched += 1;
            }
        }
        if matched >= wanted {
            return read;
        }
        let frame = body
            .frame()
            .await
            .expect("the stream ended")
            .expect("stream");
        if let Ok(bytes) = frame.into_data() {
            pending.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}
