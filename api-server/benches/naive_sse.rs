//! The baseline of the SSE benchmark (PERFORMANCE.md §5.3): a naive axum server with one
//! `tokio::sync::broadcast` channel per session and a stream (task + channel) per subscriber,
//! serializing each event once per subscriber. Not sealpod code; kept for comparison only.
//!
//! `cargo run --release -p sealpod-api-server --example naive-sse -- 127.0.0.1:18090`

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt as _, stream};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

type Log = (Vec<Value>, broadcast::Sender<Value>);
type AppState = Arc<Mutex<HashMap<String, Log>>>;

async fn append(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut map = s.lock().expect("lock");
    let (log, tx) = map
        .entry(id.clone())
        .or_insert_with(|| (Vec::new(), broadcast::channel(1024).0));
    let event = json!({"seq": log.len() + 1, "session": id, "type": "agent.message", "body": body});
    log.push(event.clone());
    let _ = tx.send(event.clone());
    Json(event)
}

async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let after: usize = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let (replay, rx) = {
        let mut map = s.lock().expect("lock");
        let (log, tx) = map
            .entry(id)
            .or_insert_with(|| (Vec::new(), broadcast::channel(1024).0));
        (
            log.iter().skip(after).cloned().collect::<Vec<_>>(),
            tx.subscribe(),
        )
    };
    let to_event = |v: Value| {
        Ok(Event::default()
            .id(v["seq"].to_string())
            .data(v.to_string()))
    };
    let live = BroadcastStream::new(rx).filter_map(move |r| async move { r.ok().map(to_event) });
    Sse::new(stream::iter(replay.into_iter().map(to_event)).chain(live))
        .keep_alive(KeepAlive::default())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let app = Router::new()
        .route("/append/{id}", post(append))
        .route("/events/{id}", get(events))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(AppState::default());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
