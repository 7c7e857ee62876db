//! Real-socket SSE tests over devcluster: replay then live tail with `id:`/`data:` LF framing and
//! no `event:` line, resume by `Last-Event-ID` (max with `after`), `?token=` auth, level and
//! type filters, keep-alive pings, the close after an archived session is replayed, and the
//! clean end of every stream at shutdown.

mod common;

use std::future::IntoFuture as _;
use std::time::Duration;

use common::{Env, Options, TENANT_A};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Served {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(env: &Env) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = env.app.clone();
    let mut rx = env.state.shutdown();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|v| *v).await;
            })
            .await
            .expect("serve");
    });
    Served { addr, task }
}

/// A raw SSE client: sends the request, then yields parsed frames.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    head_done: bool,
    pub status: u16,
    pub raw: String,
}

impl Client {
    async fn open(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut c = Client {
            stream,
            buf: Vec::new(),
            head_done: false,
            status: 0,
            raw: String::new(),
        };
        c.read_head().await;
        c
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn read_head(&mut self) {
        while !self.head_done {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                assert!(
                    head.to_ascii_lowercase()
                        .contains("transfer-encoding: chunked")
                        || self.status != 200,
                    "{head}"
                );
                self.raw.push_str(&head);
                self.buf.drain(..pos + 4);
                self.head_done = true;
                return;
            }
            if !self.fill().await {
                panic!("no response head");
            }
        }
    }

    /// Decodes complete chunks into the SSE text; false at the end of the body.
    fn dechunk(&mut self, out: &mut String) -> Option<bool> {
        let pos = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&self.buf[..pos]).trim(), 16).ok()?;
        if self.buf.len() < pos + 2 + size + 2 {
            return None;
        }
        out.push_str(&String::from_utf8_lossy(&self.buf[pos + 2..pos + 2 + size]));
        self.buf.drain(..pos + 2 + size + 2);
        Some(size != 0)
    }

    /// The next frame (text between blank lines), or None when the stream ends.
    async fn frame(&mut self, text: &mut String) -> Option<String> {
        loop {
            if let Some(end) = text.find("\n\n") {
                let frame = text[..end].to_owned();
                text.drain(..end + 2);
                return Some(frame);
            }
            match self.dechunk(text) {
                Some(true) => continue,
                Some(false) => return None,
                None => {
                    if !self.fill().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads frames until `n` events arrived (pings are counted separately).
    async fn events(&mut self, text: &mut String, n: usize) -> (Vec<(i64, Value)>, usize) {
        let mut out = Vec::new();
        let mut pings = 0;
        while out.len() < n {
            let Some(frame) = self.frame(text).await else {
                break;
            };
            if frame == ": ping" {
                pings += 1;
                continue;
            }
            assert!(!frame.contains('\r'), "LF framing only");
            assert!(!frame.contains("event:"), "no event: line");
            let mut lines = frame.lines();
            let id: i64 = lines
                .next()
                .and_then(|l| l.strip_prefix("id: "))
                .and_then(|s| s.parse().ok())
                .expect("id line");
            let data: Value = lines
                .next()
                .and_then(|l| l.strip_prefix("data: "))
                .map(|d| serde_json::from_str(d).expect("json"))
                .expect("data line");
            assert_eq!(data["seq"], json!(id));
            out.push((id, data));
        }
        (out, pings)
    }
}

#[tokio::test]
async fn replay_tail_resume_and_filters() {
    let env = Env::start().await;
    let served = serve(&env).await;
    let agent = env.agent("sse").await;
    let (id, token) = env.session(&agent, "hello").await;
    let auth = format!("Bearer {}", env.key_a);
    let mut client = Client::open(
        served.addr,
        &format!("/v3/sessions/{id}/events?stream=sse"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(client.status, 200);
    assert!(
        client
            .raw
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        client.raw
    );
    let mut text = String::new();
    let (first, _) = client.events(&mut text, 1).await;
    assert_eq!(first[0].0, 1);
    assert_eq!(first[0].1["type"], "user.message");
    env.run_turn(&id, "live").await;
    let (live, _) = client.events(&mut text, 4).await;
    assert_eq!(live.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3, 4, 5]);
    assert_eq!(live[3].1["type"], "turn.completed");

    // Resume with Last-Event-ID and ?token= (as EventSource does); the cursor is max(after, LEID).
    let mut resumed = Client::open(
        served.addr,
        &format!("/v3/sessions/{id}/events?stream=sse&after=0&token={token}"),
        &[("last-event-id", "3")],
    )
    .await;
    assert_eq!(resumed.status, 200);
    let mut t2 = String::new();
    let (r, _) = resumed.events(&mut t2, 2).await;
    assert_eq!(r.iter().map(|e| e.0).collect::<Vec<_>>(), [4, 5]);

    // Accept: text/event-stream selects SSE too; level and type filter.
    let mut filtered = Client::open(
        served.addr,
        &format!("/v3/sessions/{id}/events?level=user&type=agent.*"),
        &[("authorization", &auth), ("accept", "text/event-stream")],
    )
    .await;
    let mut t3 = String::new();
    env.call(
        "POST",
        &format!("/v3/sessions/{id}/messages"),
        Some(&env.key_a),
        Some(json!({"text": "more"})),
    )
    .await;
    env.run_turn(&id, "again").await;
    let (f, _) = filtered.events(&mut t3, 2).await;
    assert!(
        f.iter()
            .all(|(_, e)| e["type"] == "agent.message" && e["level"] == "user"),
        "{f:?}"
    );
    assert_eq!(f.len(), 2);

    // Errors before streaming are JSON.
    let mut denied = Client::open(
        served.addr,
        &format!("/v3/sessions/{id}/events?stream=sse"),
        &[],
    )
    .await;
    assert_eq!(denied.status, 401);
    let _ = denied.fill().await;

    // The first client saw every event in order with no gap or duplicate.
    let (rest, _) = client.events(&mut text, 5).await;
    let all: Vec<i64> = first
        .iter()
        .chain(&live)
        .chain(&rest)
        .map(|e| e.0)
        .collect();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());

    // Archive: streams close once replayed to the head.
    env.call(
        "POST",
        &format!("/v3/sessions/{id}/archive"),
        Some(&env.key_a),
        None,
    )
    .await;
    assert!(
        client.frame(&mut text).await.is_none(),
        "closed after archive"
    );
    let mut late = Client::open(
        served.addr,
        &format!("/v3/sessions/{id}/events?stream=sse"),
        &[("authorization", &auth)],
    )
    .await;
    let mut t4 = String::new();
    let (replayed, _) = late.events(&mut t4, 100).await;
    assert_eq!(replayed.len(), 10);
    assert!(late.frame(&mut t4).await.is_none());
    let _ = env.shutdown.send(true);
    served.task.await.expect("server ended");
}

#[tokio::test]
async fn the_stream_of_a_retired_session_ends() {
    let env = Env::start_with(Options {
        ping: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let served = serve(&env).await;
    let agent = env.agent("retired").await;
    let (id, token) = env.session(&agent, "hello").await;
    let store = env.state.store();
    let uid = store
        .get_session(TENANT_A, &id)
        .await
        .expect("read")
        .and_then(|row| row.object_uid)
        .expect("the create recorded its object");
    let mut client = Client::open(
        served.addr,
        &format!("/v3/sessions/{id}/events?stream=sse&token={token}"),
        &[],
    )
    .await;
    let mut text = String::new();
    let (first, _) = client.events(&mut text, 1).await;
    assert_eq!(first[0].0, 1);
    // Its object replaced by another of the same name: the row moves away.
    let retired = store
        .retire_session(TENANT_A, &id, &uid)
        .await
        .expect("retire")
        .expect("retired now");
    assert_eq!(retired, sealpod_api_server::store::retired_id(&id, &uid));
    let mut ended = false;
    for _ in 0..50 {
        match client.frame(&mut text).await {
            None => {
                ended = true;
                break;
            }
            Some(f) => assert_eq!(f, ": ping"),
        }
    }
    assert!(ended, "the stream of the retired session ended");
    assert!(
        store
            .retire_session(TENANT_A, &id, &uid)
            .await
            .expect("retire")
            .is_none(),
        "retired once"
    );
    let _ = env.shutdown.send(true);
    let _ = served.task.await;
}

#[tokio::test]
async fn pings_when_quiet_and_streams_end_at_shutdown() {
    let env = Env::start_with(Options {
        ping: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let served = serve(&env).await;
    let agent = env.agent("ping").await;
    let (id, token) = env.session(&agent, "hello").await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(
            Client::open(
                served.addr,
                &format!("/v3/sessions/{id}/events?stream=sse&token={token}"),
                &[],
            )
            .await,
        );
    }
    let mut texts = vec![String::new(); clients.len()];
    for (c, t) in clients.iter_mut().zip(texts.iter_mut()) {
        let (e, _) = c.events(t, 1).await;
        assert_eq!(e[0].0, 1);
        let frame = c.frame(t).await.expect("a ping");
        assert_eq!(frame, ": ping");
    }
    let _ = env.shutdown.send(true);
    for (c, t) in clients.iter_mut().zip(texts.iter_mut()) {
        // Drain pings until the body ends.
        let mut ended = false;
        for _ in 0..50 {
            match c.frame(t).await {
                None => {
                    ended = true;
                    break;
                }
                Some(f) => assert_eq!(f, ": ping"),
            }
        }
        assert!(ended, "stream ended at shutdown");
    }
    tokio::time::timeout(Duration::from_secs(10), served.task)
        .await
        .expect("graceful")
        .expect("join");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (SEALPOD_TEST_POSTGRES_URL): scripts/test.d/40-api-conformance.sh runs it"]
async fn replicas_on_postgres_fan_out_each_others_appends() {
    // Two API servers (separate hubs) on one PostgreSQL database: a stream served by the second
    // sees appends made through the first, woken by LISTEN/NOTIFY.
    let url = std::env::var("SEALPOD_TEST_POSTGRES_URL").expect("SEALPOD_TEST_POSTGRES_URL");
    let env = Env::start().await;
    let store = std::sync::Arc::new(
        sealpod_api_server::store::Store::connect(&url, sealpod_api_server::store::hub::Hub::new())
            .await
            .expect("second store"),
    );
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let replica = sealpod_api_server::AppState::start(
        store,
        env.kube.clone(),
        sealpod_api_server::Settings::default(),
        rx,
    )
    .await
    .expect("replica");
    assert!(replica.wait_ready(Duration::from_secs(10)).await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(axum::serve(listener, sealpod_api_server::app(replica)).into_future());
    let agent = env.agent("replicas").await;
    let (id, token) = env.session(&agent, "hello").await;
    let mut client = Client::open(
        addr,
        &format!("/v3/sessions/{id}/events?stream=sse&token={token}"),
        &[],
    )
    .await;
    assert_eq!(client.status, 200);
    let mut text = String::new();
    let (first, _) = client.events(&mut text, 1).await;
    assert_eq!(first[0].0, 1);
    // Appends through the first replica (its runtime API and its public API).
    env.run_turn(&id, "from replica one").await;
    env.call(
        "POST",
        &format!("/v3/sessions/{id}/messages"),
        Some(&env.key_a),
        Some(json!({"text": "steer"})),
    )
    .await;
    let (rest, _) = client.events(&mut text, 5).await;
    assert_eq!(
        rest.iter().map(|e| e.0).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert_eq!(rest[4].1["type"], "user.message");
}
