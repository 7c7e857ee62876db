//! Webhooks over devcluster with a real receiver on loopback: the wire format verified by the
//! official SDK's `verifyWebhook`, filters, unsigned destinations, retries, dead letters and
//! redelivery, a restart mid-retry, the outbound guard, and two replicas on PostgreSQL.

mod common;

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser as _;
use common::{Env, TENANT_A};
use sealpod_api_server::AppState;
use sealpod_api_server::store::outbox::NewDestination;
use sealpod_api_server::webhooks::Config;
use sealpod_api_server::wire::DeliveryStatus;
use sealpod_resources::runtime_api::Level;
use sealpod_testkit::eventually;
use serde_json::{Value, json};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Captured {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("delivery body is JSON")
    }
}

#[derive(Debug, Default)]
struct Receiver {
    got: std::sync::Mutex<Vec<Captured>>,
    /// Answers 500 to this many more requests.
    fail_next: AtomicUsize,
    /// Answers 500 to everything while set.
    fail_all: AtomicBool,
}

impl Receiver {
    async fn start() -> (Arc<Receiver>, SocketAddr) {
        let r = Arc::new(Receiver::default());
        let app = Router::new()
            .fallback(
                |State(r): State<Arc<Receiver>>,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    r.got.lock().expect("lock").push(Captured {
                        path: uri.path().to_owned(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let failing = r.fail_all.load(Ordering::SeqCst)
                        || r.fail_next
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    if failing {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                },
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(axum::serve(listener, app).into_future());
        (r, addr)
    }

    fn got(&self) -> Vec<Captured> {
        self.got.lock().expect("lock").clone()
    }
}

/// On PostgreSQL every test shares one database, and any running worker claims any due row: the
/// tests of this file take turns so each test's worker (and its settings) is the only one.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn fast(allow_insecure: bool, max_attempts: u32) -> Config {
    Config {
        allow_insecure,
        schedule: vec![Duration::from_millis(150)],
        max_attempts,
        timeout: Duration::from_secs(3),
        poll: Duration::from_millis(40),
        batch: 16,
        ..Config::default()
    }
}

async fn deliveries(env: &Env, session: &str, query: &str) -> Vec<Value> {
    let (s, v) = env
        .call(
            "GET",
            &format!("/v3/sessions/{session}/deliveries{query}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].as_array().expect("data").clone()
}

/// Waits until the session has `n` deliveries and all are `status`.
/// Waits until the worker of each server has finished `n` more claim rounds: whatever was due
/// when this was called has been claimed (and an attempt that was not due is still absent).
async fn rounds_pass(servers: &[&AppState], n: u64) {
    let from: Vec<u64> = servers.iter().map(|s| s.webhooks().rounds()).collect();
    eventually(&format!("{n} more worker rounds"), || async {
        servers
            .iter()
            .zip(&from)
            .all(|(s, from)| s.webhooks().rounds() >= from + n)
            .then_some(())
    })
    .await;
}

async fn settled(env: &Env, session: &str, n: usize, status: &str) -> Vec<Value> {
    eventually(&format!("{n} deliveries {status}"), || async {
        let d = deliveries(env, session, "").await;
        (d.len() == n && d.iter().all(|x| x["status"] == status)).then_some(d)
    })
    .await
}

async fn add_destination(env: &Env, session: &str, body: Value) -> Value {
    let (s, v) = env
        .call(
            "POST",
            &format!("/v3/sessions/{session}/destinations"),
            Some(&env.key_a),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// Runs the SDK verifier over `(delivery, secret)` pairs; `None` when the SDK is not installed.
fn sdk_verify(items: &[(&Captured, &str)]) -> Option<Vec<Value>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance");
    if !dir.join("node_modules/@opencomputer/sdk").is_dir() {
        return None;
    }
    let input: Vec<Value> = items
        .iter()
        .map(|(c, secret)| {
            let headers: serde_json::Map<String, Value> = c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({"headers": headers, "body": c.body, "secret": secret})
        })
        .collect();
    let mut child = std::process::Command::new("node")
        .arg("webhook-verify.mjs")
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json!(input).to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success(), "the verifier failed");
    Some(serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("verifier JSON"))
}

#[tokio::test]
async fn deliveries_verify_with_the_sdk_and_follow_filters() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    env.state.start_webhooks(fast(true, 3));
    let (rx, addr) = Receiver::start().await;
    let agent = env.agent("hooks").await;
    // Inline at create: unsigned, default level `user`, sees the first input (seq 1).
    let (s, created) = env
        .call(
            "POST",
            "/v3/sessions",
            Some(&env.key_a),
            Some(
                json!({"agent": agent, "input": {"text": "hi", "raw": {"secret-ish": 1}},
                        "metadata": {"owner": "acme", "pullNumber": 42},
                        "webhook": format!("http://{addr}/inline")}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["session"]["id"].as_str().expect("id").to_owned();
    let b64 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let progress = add_destination(
        &env,
        &id,
        json!({"url": format!("http://{addr}/progress"), "secret": b64, "level": "progress",
               "types": ["turn.*", "agent.message"], "include_raw": true}),
    )
    .await;
    assert_eq!(progress["has_secret"], true);
    assert!(progress.get("secret").is_none(), "{progress}");
    assert_eq!(progress["created_after_seq"], 1);
    assert_eq!(progress["kind"], "webhook");
    let plain = add_destination(
        &env,
        &id,
        json!({"url": format!("http://{addr}/plain"), "secret": "testsecret"}),
    )
    .await;
    assert_eq!(plain["level"], "user");
    assert_eq!(plain["types"], Value::Null);
    let (s, listed) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/destinations"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed["data"].as_array().expect("data").len(), 3);
    assert!(!listed.to_string().contains("testsecret"));

    // Events: 2 turn.started (progress), 3 tool.call (internal), 4 agent.message (user),
    // 5 turn.completed (user), then 6 user.message (steer, with raw).
    env.run_turn(&id, "done").await;
    let (s, _) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/messages"),
            Some(&env.key_a),
            Some(json!({"envelope": {"text": "more", "raw": {"r": 1}}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // inline: 1, 4, 5, 6; progress: 2, 4, 5; plain: 4, 5, 6.
    settled(&env, &id, 10, "delivered").await;
    let got = rx.got();
    assert_eq!(got.len(), 10);
    // Every delivery carries the documented headers and envelope.
    for c in &got {
        let j = c.json();
        let wid = c.header("webhook-id").expect("webhook-id");
        assert!(
            c.header("x-oc-delivery-id")
                .is_some_and(|d| d.starts_with("dlv_"))
        );
        assert_eq!(c.header("x-oc-session-id"), Some(id.as_str()));
        assert_eq!(c.header("content-type"), Some("application/json"));
        let ts: i64 = c
            .header("webhook-timestamp")
            .expect("ts")
            .parse()
            .expect("unix");
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 300);
        assert_eq!(j["sessionId"], id.as_str());
        assert_eq!(j["eventId"], wid);
        assert_eq!(j["event"]["id"], wid);
        assert_eq!(j["type"], j["event"]["type"]);
        assert_eq!(j["metadata"], json!({"owner": "acme", "pullNumber": 42}));
        assert_eq!(j["event"]["session"], id.as_str());
    }
    let by_path =
        |p: &str| -> Vec<Captured> { got.iter().filter(|c| c.path == p).cloned().collect() };
    let seqs = |cs: &[Captured]| -> Vec<i64> {
        let mut v: Vec<i64> = cs
            .iter()
            .map(|c| c.json()["event"]["seq"].as_i64().expect("seq"))
            .collect();
        v.sort_unstable();
        v
    };
    let inline = by_path("/inline");
    let progress_got = by_path("/progress");
    let plain_got = by_path("/plain");
    assert_eq!(seqs(&inline), [1, 4, 5, 6]);
    assert_eq!(seqs(&progress_got), [2, 4, 5]);
    assert_eq!(seqs(&plain_got), [4, 5, 6]);
    // Unsigned destination: no signature header at all.
    assert!(
        inline
            .iter()
            .all(|c| c.header("webhook-signature").is_none())
    );
    // include_raw:false strips event.body.raw (the first input and the steer carry one).
    for c in inline.iter().chain(&plain_got) {
        assert!(c.json()["event"]["body"].get("raw").is_none(), "{}", c.body);
    }
    // Signed ones verify with the official SDK.
    let mut items: Vec<(&Captured, &str)> = progress_got.iter().map(|c| (c, b64)).collect();
    items.extend(plain_got.iter().map(|c| (c, "testsecret")));
    // A wrong secret must not verify.
    items.push((&plain_got[0], "whsec_d3Jvbmc="));
    match sdk_verify(&items) {
        Some(results) => {
            let (last, ok) = results.split_last().expect("results");
            for (r, (c, _)) in ok.iter().zip(&items) {
                assert_eq!(r["ok"], true, "{r} for {}", c.body);
                assert_eq!(r["tampered"], true, "{r}");
                assert_eq!(r["eventId"], c.header("webhook-id").unwrap_or_default());
                assert_eq!(r["dedupeId"], c.header("webhook-id").unwrap_or_default());
                assert_eq!(
                    r["deliveryId"],
                    c.header("x-oc-delivery-id").unwrap_or_default()
                );
                assert_eq!(r["sessionId"], id.as_str());
            }
            assert_eq!(last["ok"], false, "{last}");
        }
        None => eprintln!("@opencomputer/sdk not installed: SDK verification skipped"),
    }
    // Delivery rows: filters by destination and status, and the wire shape.
    let pid = progress["id"].as_str().expect("id");
    let d = deliveries(&env, &id, &format!("?destination={pid}")).await;
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|x| x["destination"] == pid
        && x["attempts"] == 1
        && x["response_code"] == 204
        && x["error"].is_null()));
    assert_eq!(deliveries(&env, &id, "?status=failed").await.len(), 0);
    let page = deliveries(&env, &id, "?limit=4").await;
    assert_eq!(page.len(), 4);
    let rest = deliveries(
        &env,
        &id,
        &format!("?after={}", page[3]["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(rest.len(), 6);
    // Metrics.
    let (s, text, _) = Env::send(&env.admin, Env::request("GET", "/metrics", None, None)).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().expect("text").to_owned();
    assert!(
        text.contains("sealpod_api_server_webhook_attempts_total{status=\"delivered\"} 10"),
        "{text}"
    );
    assert!(text.contains("sealpod_api_server_webhook_outbox_depth{status=\"pending\"} 0"));
    assert!(
        text.contains("sealpod_api_server_webhook_rounds_total "),
        "{text}"
    );
    assert!(text.contains("sealpod_api_server_webhook_attempt_seconds_count 10"));
}

/// A session of tenant A with one destination at `url`; returns (session id, destination).
async fn session_with(env: &Env, name: &str, url: &str) -> (String, Value) {
    let agent = env.agent(name).await;
    let (id, _) = env.session(&agent, "hello").await;
    let dest = add_destination(
        env,
        &id,
        json!({"url": url, "secret": "whsec_c2VjcmV0LWtleS1ieXRlcw==", "types": ["user.message"]}),
    )
    .await;
    (id, dest)
}

async fn steer(env: &Env, id: &str, text: &str) {
    let (s, v) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/messages"),
            Some(&env.key_a),
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn a_receiver_that_recovers_gets_the_event_after_n_failures() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    env.state.start_webhooks(fast(true, 6));
    let (rx, addr) = Receiver::start().await;
    rx.fail_next.store(3, Ordering::SeqCst);
    let (id, _) = session_with(&env, "recover", &format!("http://{addr}/r")).await;
    steer(&env, &id, "ping").await;
    let d = settled(&env, &id, 1, "delivered").await;
    assert_eq!(d[0]["attempts"], 4, "{}", d[0]);
    assert_eq!(d[0]["response_code"], 204);
    let got = rx.got();
    assert_eq!(got.len(), 4);
    // The same webhook-id on every attempt: the event id.
    assert!(
        got.iter()
            .all(|c| c.header("webhook-id") == d[0]["event_id"].as_str())
    );
}

#[tokio::test]
async fn dead_letter_after_the_configured_attempts_then_redeliver_succeeds() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    env.state.start_webhooks(fast(true, 3));
    let (rx, addr) = Receiver::start().await;
    rx.fail_all.store(true, Ordering::SeqCst);
    let (id, _) = session_with(&env, "dead", &format!("http://{addr}/d")).await;
    steer(&env, &id, "ping").await;
    let d = settled(&env, &id, 1, "dead_letter").await;
    assert_eq!(d[0]["attempts"], 3, "{}", d[0]);
    assert_eq!(d[0]["response_code"], 500);
    assert_eq!(d[0]["error"], "HTTP 500");
    // It stays dead: no fourth attempt without a redelivery.
    rounds_pass(&[&env.state], 3).await;
    assert_eq!(rx.got().len(), 3);
    rx.fail_all.store(false, Ordering::SeqCst);
    let dlv = d[0]["id"].as_str().expect("id");
    let (s, v) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/deliveries/{dlv}/redeliver"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["id"], dlv);
    let d = settled(&env, &id, 1, "delivered").await;
    assert_eq!(d[0]["attempts"], 4);
    let got = rx.got();
    assert_eq!(got.len(), 4);
    let ids: std::collections::BTreeSet<_> = got
        .iter()
        .map(|c| c.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "same webhook-id across retries and redelivery"
    );
    // Redelivering a delivered one sends it again, still under the same webhook-id.
    let (s, _) = env
        .call(
            "POST",
            &format!("/v3/sessions/{id}/deliveries/{dlv}/redeliver"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    eventually("a fifth request", || async {
        (rx.got().len() == 5).then_some(())
    })
    .await;
    assert_eq!(
        rx.got()[4].header("webhook-id"),
        got[0].header("webhook-id")
    );
    // Another tenant sees none of it.
    let (s, _) = env
        .call(
            "GET",
            &format!("/v3/sessions/{id}/deliveries/{dlv}"),
            Some(&env.key_b),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_restart_mid_retry_loses_no_delivery() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    let mut slow = fast(true, 6);
    slow.schedule = vec![Duration::from_millis(1500)];
    let worker = env
        .state
        .start_webhooks(slow.clone())
        .expect("the worker starts");
    let (rx, addr) = Receiver::start().await;
    rx.fail_all.store(true, Ordering::SeqCst);
    let (id, _) = session_with(&env, "restart", &format!("http://{addr}/x")).await;
    steer(&env, &id, "ping").await;
    settled(&env, &id, 1, "failed").await;
    // Stop the first server (its worker ends with the shutdown flag) and start another on the
    // same store.
    env.shutdown.send(true).expect("shutdown");
    worker.await.expect("the first worker ends");
    let before = rx.got().len();
    assert_eq!(before, 1);
    rx.fail_all.store(false, Ordering::SeqCst);
    let url = std::env::var("SEALPOD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", env.dir.path().join("api.db").display()));
    let store = Arc::new(
        sealpod_api_server::store::Store::connect(&url, sealpod_api_server::store::hub::Hub::new())
            .await
            .expect("store"),
    );
    let (_tx, rxw) = tokio::sync::watch::channel(false);
    let second = AppState::start(store, env.kube.clone(), Default::default(), rxw)
        .await
        .expect("second server");
    second.start_webhooks(slow);
    let d = eventually("delivered by the second server", || async {
        let d = second
            .store()
            .list_deliveries(&id, &Default::default(), 10)
            .await
            .expect("list");
        (d.len() == 1 && d[0].status == DeliveryStatus::Delivered).then_some(d)
    })
    .await;
    assert_eq!(d[0].attempts, 2);
    assert_eq!(rx.got().len(), 2);
}

#[tokio::test]
async fn non_public_destinations_are_refused_at_create_and_at_delivery() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    // The opt-in switch is off.
    env.state.start_webhooks(fast(false, 2));
    let (rx, addr) = Receiver::start().await;
    let agent = env.agent("guard").await;
    let (id, _) = env.session(&agent, "hello").await;
    for url in [
        format!("http://{addr}/h"),
        format!("https://{addr}/h"),
        format!("https://localhost:{}/h", addr.port()),
        "https://[::1]/h".to_owned(),
        "https://10.0.0.7/h".to_owned(),
        "https://192.168.1.1/h".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[fe80::1]/h".to_owned(),
        "https://100.100.1.1/h".to_owned(),
    ] {
        let (s, v) = env
            .call(
                "POST",
                &format!("/v3/sessions/{id}/destinations"),
                Some(&env.key_a),
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("message")
                .starts_with("url:"),
            "{v}"
        );
    }
    // Inline at create, and a PATCH to a loopback name.
    let (s, v) = env
        .call(
            "POST",
            "/v3/sessions",
            Some(&env.key_a),
            Some(json!({"agent": agent, "input": "x", "webhook": "https://localhost/h"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = env
        .call(
            "POST",
            "/v3/sessions",
            Some(&env.key_a),
            Some(json!({"agent": agent, "input": "x",
                        "destinations": [{"url": "https://127.0.0.1/h"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = env
        .call(
            "POST",
            "/v3/sessions",
            Some(&env.key_a),
            Some(json!({"agent": agent, "input": "x",
                        "destinations": [{"url": "https://8.8.8.8/h", "secret": "s"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["param"], "secret");
    // At delivery: a row that bypassed the route (as if DNS changed after create) is never
    // dialled; the attempts fail on the guard and the receiver hears nothing.
    let dest = env
        .state
        .store()
        .create_destination(
            TENANT_A,
            &id,
            NewDestination {
                url: format!("http://localhost:{}/h", addr.port()),
                secret: None,
                level: Level::User,
                types: None,
                include_raw: false,
                enabled: true,
            },
        )
        .await
        .expect("store")
        .expect("session");
    steer(&env, &id, "ping").await;
    let d = settled(&env, &id, 1, "dead_letter").await;
    assert_eq!(d[0]["destination"], dest.id.as_str());
    assert_eq!(d[0]["attempts"], 2);
    assert!(d[0]["response_code"].is_null());
    assert!(
        d[0]["error"].as_str().expect("error").contains("https"),
        "{}",
        d[0]
    );
    assert!(rx.got().is_empty());
}

/// Even in local mode (`--webhooks-allow-insecure`, loopback admitted), the server's own
/// listeners and the `--webhooks-deny-addr` ones are never destinations: refused at create,
/// inline at session create, at update, and again at delivery.
#[tokio::test]
async fn the_platform_listeners_are_refused_even_in_local_mode() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    // Receivers standing in for the admin listener and for devcluster; a third is an app's.
    let (admin_rx, admin) = Receiver::start().await;
    let (cluster_rx, cluster) = Receiver::start().await;
    let (app_rx, app) = Receiver::start().await;
    let args = sealpod_api_server::config::Cli::try_parse_from([
        "sealpod-api-server".to_owned(),
        format!("--admin-listen={admin}"),
        format!("--webhooks-deny-addr=localhost:{}", cluster.port()),
        "--webhooks-allow-insecure".to_owned(),
        "--webhooks-retry-schedule=150ms".to_owned(),
        "--webhooks-max-attempts=2".to_owned(),
        "--webhooks-timeout=3s".to_owned(),
        "--webhooks-poll=40ms".to_owned(),
    ])
    .expect("flags")
    .serve;
    env.state
        .start_webhooks(args.webhook_config().expect("webhook config"));
    let agent = env.agent("listeners").await;
    let (id, _) = env.session(&agent, "hello").await;
    let refused_urls = [
        format!("http://{admin}/metrics"),
        format!("http://localhost:{}/metrics", admin.port()),
        format!("http://{cluster}/api"),
        format!("http://127.0.0.1:{}/api", cluster.port()),
    ];
    let refused = |s: StatusCode, v: &Value, param: &str| {
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["type"], "invalid", "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("message")
                .contains("platform's own listeners"),
            "{v}"
        );
    };
    for url in &refused_urls {
        let (s, v) = env
            .call(
                "POST",
                &format!("/v3/sessions/{id}/destinations"),
                Some(&env.key_a),
                Some(json!({"url": url})),
            )
            .await;
        refused(s, &v, "url");
        let (s, v) = env
            .call(
                "POST",
                "/v3/sessions",
                Some(&env.key_a),
                Some(json!({"agent": agent, "input": "x", "webhook": url})),
            )
            .await;
        refused(s, &v, "webhook");
        let (s, v) = env
            .call(
                "POST",
                "/v3/sessions",
                Some(&env.key_a),
                Some(json!({"agent": agent, "input": "x", "destinations": [{"url": url}]})),
            )
            .await;
        refused(s, &v, "url");
    }
    // An app's receiver on loopback is still admitted, and cannot be moved onto a listener.
    let dest = add_destination(&env, &id, json!({"url": format!("http://{app}/hook")})).await;
    let did = dest["id"].as_str().expect("id");
    let (s, v) = env
        .call(
            "PATCH",
            &format!("/v3/sessions/{id}/destinations/{did}"),
            Some(&env.key_a),
            Some(json!({"url": format!("http://{admin}/metrics")})),
        )
        .await;
    refused(s, &v, "url");
    // At delivery: a row that bypassed the route (as if DNS changed after create) is never
    // dialled; its attempts fail on the guard.
    for url in [
        format!("http://localhost:{}/metrics", admin.port()),
        format!("http://{cluster}/api"),
    ] {
        env.state
            .store()
            .create_destination(
                TENANT_A,
                &id,
                NewDestination {
                    url,
                    secret: None,
                    level: Level::User,
                    types: None,
                    include_raw: false,
                    enabled: true,
                },
            )
            .await
            .expect("store")
            .expect("session");
    }
    steer(&env, &id, "ping").await;
    let all = eventually(
        "the app delivered and the listeners dead-lettered",
        || async {
            let d = deliveries(&env, &id, "").await;
            let settled = d.len() == 3
                && d.iter()
                    .all(|x| x["status"] == "delivered" || x["status"] == "dead_letter");
            settled.then_some(d)
        },
    )
    .await;
    for d in &all {
        if d["destination"] == did {
            assert_eq!(d["status"], "delivered", "{d}");
        } else {
            assert_eq!(d["status"], "dead_letter", "{d}");
            assert!(d["response_code"].is_null(), "{d}");
            assert!(
                d["error"]
                    .as_str()
                    .expect("error")
                    .contains("platform's own listeners"),
                "{d}"
            );
        }
    }
    assert_eq!(app_rx.got().len(), 1);
    assert!(admin_rx.got().is_empty());
    assert!(cluster_rx.got().is_empty());
}

#[tokio::test]
async fn destinations_patch_disable_and_delete() {
    let _serial = SERIAL.lock().await;
    let env = Env::start().await;
    env.state.start_webhooks(fast(true, 2));
    let (rx, addr) = Receiver::start().await;
    let (id, dest) = session_with(&env, "patch", &format!("http://{addr}/p")).await;
    let did = dest["id"].as_str().expect("id");
    let path = format!("/v3/sessions/{id}/destinations/{did}");
    let (s, v) = env
        .call(
            "PATCH",
            &path,
            Some(&env.key_a),
            Some(json!({"enabled": false, "types": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["types"], Value::Null);
    assert_eq!(v["has_secret"], true);
    steer(&env, &id, "while disabled").await;
    let (s, _) = env
        .call(
            "PATCH",
            &path,
            Some(&env.key_a),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    steer(&env, &id, "enabled again").await;
    let d = settled(&env, &id, 1, "delivered").await;
    assert_eq!(d[0]["event_seq"], 3);
    assert_eq!(rx.got().len(), 1);
    let (s, v) = env.call("GET", &path, Some(&env.key_a), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = env.call("GET", &path, Some(&env.key_b), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = env.call("DELETE", &path, Some(&env.key_a), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = env.call("GET", &path, Some(&env.key_a), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Deliveries are enqueued in the append's transaction: none for the deleted destination.
    steer(&env, &id, "after delete").await;
    assert_eq!(deliveries(&env, &id, "").await.len(), 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (SEALPOD_TEST_POSTGRES_URL): scripts/test.d/41-api-webhooks.sh runs it"]
async fn two_replicas_on_postgres_deliver_each_event_once() {
    let _serial = SERIAL.lock().await;
    let url = std::env::var("SEALPOD_TEST_POSTGRES_URL").expect("SEALPOD_TEST_POSTGRES_URL");
    let env = Env::start().await;
    let config = Config {
        poll: Duration::from_millis(5),
        ..fast(true, 3)
    };
    env.state.start_webhooks(config.clone());
    let store = Arc::new(
        sealpod_api_server::store::Store::connect(&url, sealpod_api_server::store::hub::Hub::new())
            .await
            .expect("second store"),
    );
    let (_tx, rxw) = tokio::sync::watch::channel(false);
    let replica = AppState::start(store, env.kube.clone(), Default::default(), rxw)
        .await
        .expect("replica");
    replica.start_webhooks(config);
    let (rx, addr) = Receiver::start().await;
    let agent = env.agent("replicas").await;
    let (id, _) = env.session(&agent, "hello").await;
    add_destination(
        &env,
        &id,
        json!({"url": format!("http://{addr}/a"), "types": ["user.message"]}),
    )
    .await;
    add_destination(
        &env,
        &id,
        json!({"url": format!("http://{addr}/b"), "types": ["user.message"]}),
    )
    .await;
    for i in 0..20 {
        steer(&env, &id, &format!("m{i}")).await;
    }
    settled(&env, &id, 40, "delivered").await;
    // No late second delivery from either replica.
    rounds_pass(&[&env.state, &replica], 3).await;
    let got = rx.got();
    let mut keys: Vec<(String, String)> = got
        .iter()
        .map(|c| {
            (
                c.path.clone(),
                c.header("webhook-id").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(n, 40, "each event once per destination");
    assert_eq!(keys.len(), 40);
}

#[tokio::test]
async fn https_destinations_verify_the_server_certificate() {
    let _serial = SERIAL.lock().await;
    // A TLS receiver on loopback whose certificate no public root signed: the handshake runs
    // and the attempt fails on verification (it is never sent in the clear, never accepted).
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let seen = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    let env = Env::start().await;
    env.state.start_webhooks(fast(true, 2));
    let (id, _) = session_with(&env, "tls", &format!("https://localhost:{port}/h")).await;
    steer(&env, &id, "ping").await;
    let d = settled(&env, &id, 1, "dead_letter").await;
    assert!(handshakes.load(Ordering::SeqCst) >= 2);
    let error = d[0]["error"].as_str().expect("error");
    assert!(error.starts_with("tls:"), "{error}");
    assert!(d[0]["response_code"].is_null());
}
