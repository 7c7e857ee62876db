//! An in-memory fake of the runtime API (docs/runtime-api.md) for the runtime's tests: claim
//! with long-poll and re-claim of a running turn (attempt + 1), idempotent appends by
//! `client_id`, complete with status transitions, signal long-poll and cancel. Test helpers
//! steer, cancel and read the log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sealpod_resources::common::Limits;
use sealpod_resources::runtime_api::{
    Actor, AppendRequest, AppendResponse, AppendedEvent, ClaimRequest, ClaimedTurn,
    CompleteTurnRequest, Event, Level, SessionInfo, Signal, Usage, YieldReason,
};
use serde_json::{Value, json};
use tokio::sync::watch;

pub const SESSION: &str = "ses_test0001";

#[derive(Debug, Clone)]
pub struct TurnRec {
    pub id: String,
    pub number: u32,
    pub attempt: u32,
    pub from: i64,
    pub to: i64,
    pub completed: Option<CompleteTurnRequest>,
    pub canceled: bool,
}

#[derive(Debug, Default)]
pub struct ApiState {
    pub status: String,
    pub events: Vec<Event>,
    pub input_cursor: i64,
    pub turns: Vec<TurnRec>,
    pub client_ids: HashMap<String, usize>,
    pub limits: Limits,
    pub usage: Usage,
    pub prompt: String,
    pub model: String,
    /// Appends answered from the idempotency table instead of appending.
    pub replayed_appends: u32,
    /// This many `complete` calls answer 503 before one succeeds.
    pub fail_completes: u32,
    /// `complete` calls answered 503 so far.
    pub refused_completes: u32,
}

impl ApiState {
    fn push(
        &mut self,
        actor: Actor,
        type_: &str,
        level: Level,
        body: Value,
        turn_id: Option<String>,
    ) -> usize {
        let seq = self.events.len() as i64 + 1;
        self.events.push(Event {
            id: format!("evt_{seq:06}"),
            seq,
            ts: "2026-11-27T00:00:00Z".into(),
            session: SESSION.into(),
            actor,
            type_: type_.into(),
            level,
            body,
            refs: json!({}),
            turn_id,
            content_ref: None,
            body_truncated: false,
            body_bytes: None,
        });
        self.events.len() - 1
    }

    fn running(&mut self) -> Option<&mut TurnRec> {
        self.turns.iter_mut().find(|t| t.completed.is_none())
    }

    fn pending(&self) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.type_ == "user.message" && e.seq > self.input_cursor)
            .cloned()
            .collect()
    }

    pub fn of_type(&self, type_: &str) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.type_ == type_)
            .cloned()
            .collect()
    }
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<ApiState>,
    version: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ApiState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

#[derive(Debug, Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "code": code, "message": code, "request_id": "req_fake"}})),
    )
        .into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(shared.token.as_str())
}

impl FakeApi {
    pub async fn start(token: &str, limits: Limits, prompt: &str) -> FakeApi {
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            token: token.into(),
            state: Mutex::new(ApiState {
                status: "queued".into(),
                limits,
                prompt: prompt.into(),
                model: super::pinned_model(),
                ..ApiState::default()
            }),
            version,
        });
        let app = Router::new()
            .route("/runtime/v1/session", get(session))
            .route("/runtime/v1/claim", post(claim))
            .route("/runtime/v1/events", post(events))
            .route("/runtime/v1/turns/{id}/complete", post(complete))
            .route("/runtime/v1/turns/{id}/signal", get(signal))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, ApiState> {
        self.shared.lock()
    }

    pub fn steer(&self, text: &str) {
        let mut s = self.shared.lock();
        s.push(
            Actor {
                id: "you".into(),
                type_: "human".into(),
                display: Some("You".into()),
            },
            "user.message",
            Level::User,
            json!({"text": text}),
            None,
        );
        if s.running().is_none() {
            s.status = "queued".into();
        }
        drop(s);
        self.shared.bump();
    }

    pub fn cancel(&self) {
        let mut s = self.shared.lock();
        if let Some(t) = s.running() {
            t.canceled = true;
        }
        drop(s);
        self.shared.bump();
    }

    pub fn set_limits(&self, limits: Limits) {
        self.shared.lock().limits = limits;
    }

    /// Waits until `pred` holds on the state, up to `timeout`; panics with the event log if not.
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&ApiState) -> bool) {
        let mut rx = self.shared.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let s = self.shared.lock();
                if pred(&s) {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let s = self.shared.lock();
                let log: Vec<String> = s
                    .events
                    .iter()
                    .map(|e| format!("{} {} {}", e.seq, e.type_, e.body))
                    .collect();
                panic!("timed out waiting for {what}; log:\n{}", log.join("\n"));
            }
        }
    }

    /// Waits for the `n`-th `turn.completed` and returns its body.
    pub async fn completed(&self, n: usize, timeout: Duration) -> Value {
        self.wait_for(&format!("turn.completed #{n}"), timeout, |s| {
            s.of_type("turn.completed").len() >= n
        })
        .await;
        self.state().of_type("turn.completed")[n - 1].body.clone()
    }
}

async fn session(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let s = shared.lock();
    Json(SessionInfo {
        id: SESSION.into(),
        namespace: "default".into(),
        status: s.status.clone(),
        head: s.events.len() as i64,
        model: s.model.clone(),
        runtime: "claude".into(),
        prompt: s.prompt.clone(),
        limits: s.limits.clone(),
        usage: s.usage,
        turns_started: s.turns.len() as u32,
    })
    .into_response()
}

fn try_claim(s: &mut ApiState) -> Option<ClaimedTurn> {
    let events = s.events.clone();
    let inputs_of = |from: i64, to: i64| -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.type_ == "user.message" && e.seq >= from && e.seq <= to)
            .cloned()
            .collect()
    };
    let turn = if let Some(t) = s.running() {
        t.attempt += 1;
        t.clone()
    } else {
        let pending = s.pending();
        let (first, last) = (pending.first()?.seq, pending.last()?.seq);
        let number = s.turns.len() as u32 + 1;
        let t = TurnRec {
            id: format!("trn_test{number:04}"),
            number,
            attempt: 1,
            from: first,
            to: last,
            completed: None,
            canceled: false,
        };
        s.turns.push(t.clone());
        s.input_cursor = last;
        t
    };
    s.push(
        Actor::system(),
        "turn.started",
        Level::Progress,
        json!({"turn_id": turn.id, "input_from_seq": turn.from, "input_to_seq": turn.to, "attempt": turn.attempt}),
        Some(turn.id.clone()),
    );
    s.status = "running".into();
    Some(ClaimedTurn {
        turn_id: turn.id.clone(),
        attempt: turn.attempt,
        number: turn.number,
        input_from_seq: turn.from,
        input_to_seq: turn.to,
        inputs: inputs_of(turn.from, turn.to),
    })
}

async fn claim(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(req): Json<ClaimRequest>,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut rx = shared.version.subscribe();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(req.wait_seconds.min(60)));
    loop {
        let claimed = try_claim(&mut shared.lock());
        if let Some(turn) = claimed {
            shared.bump();
            return Json(turn).into_response();
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return StatusCode::NO_CONTENT.into_response();
        }
    }
}

async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(req): Json<AppendRequest>,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut s = shared.lock();
    for e in &req.events {
        if e.type_.starts_with("turn.") {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "reserved_type");
        }
        let canceled = e.turn_id.as_ref().is_some_and(|id| {
            s.turns
                .iter()
                .any(|t| &t.id == id && t.canceled && t.completed.is_none())
        });
        if canceled && !s.client_ids.contains_key(&e.client_id) {
            return error(StatusCode::CONFLICT, "turn_canceled");
        }
    }
    let mut out = Vec::new();
    for e in req.events {
        let index = match s.client_ids.get(&e.client_id) {
            Some(&i) => {
                s.replayed_appends += 1;
                i
            }
            None => {
                let i = s.push(Actor::agent(), &e.type_, e.level, e.body, e.turn_id);
                s.client_ids.insert(e.client_id.clone(), i);
                i
            }
        };
        out.push(AppendedEvent {
            client_id: e.client_id,
            id: s.events[index].id.clone(),
            seq: s.events[index].seq,
        });
    }
    drop(s);
    shared.bump();
    Json(AppendResponse { events: out }).into_response()
}

async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<CompleteTurnRequest>,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut s = shared.lock();
    if s.fail_completes > 0 {
        s.fail_completes -= 1;
        s.refused_completes += 1;
        drop(s);
        shared.bump();
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    let Some(i) = s.turns.iter().position(|t| t.id == id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    if s.turns[i].completed.is_none() {
        s.turns[i].completed = Some(req.clone());
        s.usage = s.usage.add(&req.usage);
        s.push(
            Actor::system(),
            "turn.completed",
            Level::User,
            json!({"turn_id": id, "yield_reason": req.yield_reason, "result_event_id": req.result_event_id, "usage": req.usage}),
            Some(id.clone()),
        );
        s.status = match req.yield_reason {
            YieldReason::NeedsInput => "awaiting_input",
            YieldReason::Error => "failed",
            _ => "idle",
        }
        .into();
        if !s.pending().is_empty() {
            s.status = "queued".into();
        }
    }
    drop(s);
    shared.bump();
    Json(json!({"id": id})).into_response()
}

async fn signal(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let wait: u64 = q
        .get("wait_seconds")
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    let mut rx = shared.version.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.min(60));
    loop {
        let cancel = shared.lock().turns.iter().any(|t| t.id == id && t.canceled);
        if cancel {
            return Json(Signal { cancel: true }).into_response();
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return Json(Signal { cancel: false }).into_response();
        }
    }
}
