//! SSE/REST benchmark S1–S5 of PERFORMANCE.md §5.3: sealpod-api-server (release binary, SQLite,
//! over an in-process devcluster) against the naive axum + broadcast server
//! (`benches/naive_sse.rs`), in the same run, reporting ratios. Not a test: it measures.
//!
//! ```text
//! cargo build --release -p sealpod-api-server --bin sealpod-api-server --example naive-sse --example sse-bench
//! target/release/examples/sse-bench --clients 10000 --s3a-seconds 60
//! ```
//!
//! Clients run in this process on the same cores as the servers. CPU is the server process's
//! utime+stime from /proc (clock ticks of 10 ms); memory is VmRSS. Bounded: every phase has a
//! deadline and the servers are stopped by PID at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rand::Rng as _;
use sealpod_resources::runtime_token::{Scope, TokenKey};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

const NS: &str = "bench";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of a process, in clock ticks.
#[derive(Clone, Copy)]
struct CpuTicks {
    user: u64,
    system: u64,
}

impl CpuTicks {
    /// The time spent since `earlier`: (all of it, the system's (kernel's) part).
    fn since(self, earlier: CpuTicks) -> (u64, u64) {
        let system = self.system - earlier.system;
        (self.user - earlier.user + system, system)
    }
}

fn proc_cpu_ticks(pid: u32) -> CpuTicks {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    CpuTicks {
        user: field(11),
        system: field(12),
    }
}

fn proc_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// One request on a fresh connection; returns (status, JSON body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    if let Some(a) = auth {
        req.push_str(&format!("authorization: Bearer {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

struct Shared {
    epoch: Instant,
    connected: AtomicUsize,
    deliveries: AtomicU64,
    lost: AtomicU64,
    dup: AtomicU64,
    max_latency_by_seq: Vec<AtomicU64>,
    latencies: Mutex<Vec<u64>>,
    record_all: std::sync::atomic::AtomicBool,
    last_seq: Vec<AtomicI64>,
    first_replay_ns: Vec<AtomicU64>,
}

impl Shared {
    fn new(clients: usize) -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            connected: AtomicUsize::new(0),
            deliveries: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            dup: AtomicU64::new(0),
            max_latency_by_seq: (0..200_000).map(|_| AtomicU64::new(0)).collect(),
            latencies: Mutex::new(Vec::new()),
            record_all: std::sync::atomic::AtomicBool::new(false),
            last_seq: (0..clients).map(|_| AtomicI64::new(0)).collect(),
            first_replay_ns: (0..clients).map(|_| AtomicU64::new(0)).collect(),
        })
    }
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// One SSE client: counts deliveries, checks seq continuity, records latency from the send time
/// carried in `body.text`.
async fn sse_client(
    addr: SocketAddr,
    path: String,
    auth: Option<String>,
    last_event_id: i64,
    idx: usize,
    shared: Arc<Shared>,
    opened_at: u64,
) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("authorization: Bearer {a}\r\n"));
    }
    if last_event_id > 0 {
        req.push_str(&format!("last-event-id: {last_event_id}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let mut reader = BufReader::with_capacity(2048, s);
    let mut line = String::new();
    let mut last = last_event_id;
    let mut counted = false;
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(id) = line.strip_prefix("id: ") {
            let seq: i64 = id.trim().parse().unwrap_or(0);
            if seq <= last {
                shared.dup.fetch_add(1, Ordering::Relaxed);
            } else if seq > last + 1 {
                shared
                    .lost
                    .fetch_add((seq - last - 1) as u64, Ordering::Relaxed);
            }
            if seq > last_event_id && shared.first_replay_ns[idx].load(Ordering::Relaxed) == 0 {
                shared.first_replay_ns[idx].store(
                    shared.now().saturating_sub(opened_at).max(1),
                    Ordering::Relaxed,
                );
            }
            last = last.max(seq);
            shared.last_seq[idx].store(last, Ordering::Relaxed);
            if !counted {
                counted = true;
                shared.connected.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(pos) = line.find("\"text\":\"") {
            let digits: String = line[pos + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(sent) = digits.parse::<u64>() {
                let lat = shared.now().saturating_sub(sent);
                shared.deliveries.fetch_add(1, Ordering::Relaxed);
                if let Some(slot) = shared.max_latency_by_seq.get(last as usize) {
                    slot.fetch_max(lat, Ordering::Relaxed);
                }
                if shared.record_all.load(Ordering::Relaxed) {
                    shared.latencies.lock().expect("lock").push(lat);
                }
            }
        }
    }
}

/// What differs between the two servers.
struct Target {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    auth: Option<String>,
    runtime: Option<SocketAddr>,
    token_key: Option<TokenKey>,
}

impl Target {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn events_path(&self, session: &str) -> String {
        match self.runtime {
            Some(_) => format!("/v3/sessions/{session}/events?stream=sse"),
            None => format!("/events/{session}"),
        }
    }
    async fn append(&self, session: &str, sent_ns: u64) {
        let text = sent_ns.to_string();
        match (self.runtime, &self.token_key) {
            (Some(rt), Some(key)) => {
                let token = key.mint(Scope::Runtime, NS, &session.replace('_', "-"), "");
                let id = format!("b{}", rand::rng().random::<u64>());
                let body = json!({"events": [{"client_id": id, "type": "agent.message", "level": "user", "body": {"text": text}}]});
                let (s, v) = http(
                    rt,
                    "POST",
                    "/runtime/v1/events",
                    Some(token.expose()),
                    Some(&body),
                )
                .await;
                assert_eq!(s, 200, "{v}");
            }
            _ => {
                let (s, _) = http(
                    self.addr,
                    "POST",
                    &format!("/append/{session}"),
                    None,
                    Some(&json!({"text": text})),
                )
                .await;
                assert_eq!(s, 200);
            }
        }
    }
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            eprintln!("  (timed out waiting for {what})");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// [`wait_until`] `count()` reaches `want`; a timeout also says how far it got.
async fn wait_count(what: &str, secs: u64, want: u64, count: impl Fn() -> u64) {
    if !wait_until(what, secs, || count() >= want).await {
        eprintln!("  ({} of {want})", count());
    }
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize] as f64 / 1e6
}

fn open_clients(
    t: &Target,
    sessions: &[String],
    n: usize,
    shared: &Arc<Shared>,
    resume: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let session = &sessions[i % sessions.len()];
            let last = if resume {
                shared.last_seq[i].load(Ordering::Relaxed)
            } else {
                0
            };
            tokio::spawn(sse_client(
                t.addr,
                t.events_path(session),
                t.auth.clone(),
                last,
                i,
                shared.clone(),
                shared.now(),
            ))
        })
        .collect()
}

async fn run_target(
    t: &Target,
    sessions: &[String],
    broadcast_session: &str,
    n: usize,
    s3a_secs: u64,
) -> BTreeMap<&'static str, f64> {
    let mut r = BTreeMap::new();
    let pid = t.pid();
    println!("== {} (pid {pid})", t.name);
    // S1: idle capacity.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = proc_rss_kib(pid);
    let shared = Shared::new(n);
    let clients = open_clients(t, sessions, n, &shared, false);
    wait_count("all clients replayed", 120, n as u64, || {
        shared.connected.load(Ordering::Relaxed) as u64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss1 = proc_rss_kib(pid);
    r.insert(
        "S1 KiB per idle stream",
        (rss1.saturating_sub(rss0)) as f64 / n as f64,
    );
    // S3a: appends at 200/s spread over the sessions, open loop.
    shared.record_all.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let mut appended = 0u64;
    while start.elapsed() < Duration::from_secs(s3a_secs) {
        let session = &sessions[rand::rng().random_range(0..sessions.len())];
        t.append(session, shared.now()).await;
        appended += 1;
        let next = start + Duration::from_millis(5 * appended);
        tokio::time::sleep_until(next.into()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut lats = std::mem::take(&mut *shared.latencies.lock().expect("lock"));
    r.insert("S3a p50 ms", pct(&mut lats, 0.5));
    r.insert("S3a p99 ms", pct(&mut lats, 0.99));
    for c in clients {
        c.abort();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // S2 + S3b: every client on one session; 20 appends 200 ms apart.
    let shared = Shared::new(n);
    let one = vec![broadcast_session.to_owned()];
    let clients = open_clients(t, &one, n, &shared, false);
    wait_count("broadcast clients", 120, n as u64, || {
        shared.connected.load(Ordering::Relaxed) as u64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = proc_cpu_ticks(pid);
    let base_seq = shared.last_seq[0].load(Ordering::Relaxed);
    for _ in 0..20 {
        t.append(broadcast_session, shared.now()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want = 20 * n as u64;
    wait_count("broadcast deliveries", 60, want, || {
        shared.deliveries.load(Ordering::Relaxed)
    })
    .await;
    let cpu1 = proc_cpu_ticks(pid);
    let delivered = shared.deliveries.load(Ordering::Relaxed);
    let per_delivery = |ticks: u64| ticks as f64 * 10_000.0 / delivered.max(1) as f64;
    let (all, system) = cpu1.since(cpu0);
    r.insert("S2 CPU us per delivery", per_delivery(all));
    r.insert("S2 of which system (kernel) us", per_delivery(system));
    let mut last_delivery: Vec<u64> = (1..=20)
        .map(|i| shared.max_latency_by_seq[(base_seq + i) as usize].load(Ordering::Relaxed))
        .collect();
    r.insert(
        "S3b ms to last delivery (median)",
        pct(&mut last_delivery, 0.5),
    );

    // S4: drop everyone, append 100, resume with Last-Event-ID.
    for c in clients {
        c.abort();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..100 {
        t.append(broadcast_session, shared.now()).await;
    }
    let target_seq = base_seq + 120;
    shared.dup.store(0, Ordering::Relaxed);
    shared.lost.store(0, Ordering::Relaxed);
    for f in &shared.first_replay_ns {
        f.store(0, Ordering::Relaxed);
    }
    let cpu0 = proc_cpu_ticks(pid);
    let t0 = Instant::now();
    let clients = open_clients(t, &one, n, &shared, true);
    wait_until("resume", 120, || {
        shared
            .last_seq
            .iter()
            .all(|s| s.load(Ordering::Relaxed) >= target_seq)
    })
    .await;
    let caught_up = t0.elapsed();
    let cpu1 = proc_cpu_ticks(pid);
    let mut firsts: Vec<u64> = shared
        .first_replay_ns
        .iter()
        .map(|f| f.load(Ordering::Relaxed))
        .collect();
    r.insert("S4 lost", shared.lost.load(Ordering::Relaxed) as f64);
    r.insert("S4 duplicated", shared.dup.load(Ordering::Relaxed) as f64);
    r.insert(
        "S4 ms until all caught up",
        caught_up.as_secs_f64() * 1000.0,
    );
    r.insert(
        "S4 CPU us per resume (100 events)",
        cpu1.since(cpu0).0 as f64 * 10_000.0 / n as f64,
    );
    r.insert("S4 p99 ms to first replayed event", pct(&mut firsts, 0.99));
    for c in clients {
        c.abort();
    }
    r
}

/// Closed-loop keep-alive GETs from 16 workers for `secs`; returns requests per second.
async fn rps(addr: SocketAddr, path: &str, auth: Option<&str>, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let done = done.clone();
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{}\r\n",
            auth.map(|a| format!("authorization: Bearer {a}\r\n"))
                .unwrap_or_default()
        );
        tasks.push(tokio::spawn(async move {
            let Ok(s) = TcpStream::connect(addr).await else {
                return;
            };
            let mut s = BufReader::new(s);
            let mut line = String::new();
            while Instant::now() < deadline {
                if s.get_mut().write_all(req.as_bytes()).await.is_err() {
                    return;
                }
                let mut len = 0usize;
                loop {
                    line.clear();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                if s.read_exact(&mut body).await.is_err() {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::main]
async fn main() {
    let n = arg("--clients", 2000) as usize;
    let s3a = arg("--s3a-seconds", 10);
    let rest_secs = arg("--rest-seconds", 5);
    let bin = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf();
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "clients {n}, S3a {s3a} s, REST {rest_secs} s; uptime: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // The cluster, a tenant with an org key, the sealing key, one agent.
    let cluster = devcluster::DevCluster::start(devcluster::Config::default())
        .await
        .expect("devcluster");
    let crds: Vec<_> = sealpod_resources::crds::all()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    cluster.install_crds(&crds).await.expect("crds");
    let client = cluster.client();
    for ns in ["sealpod-system", NS] {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let _ = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await;
    }
    let keys = sealpod_resources::sealing::KeySet::generate();
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("sealpod-sealing-public".into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                "keys.json".to_owned(),
                serde_json::to_string(&keys.public_keys()).expect("json"),
            )]
            .into(),
        ),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), "sealpod-system")
        .create(&PostParams::default(), &cm)
        .await
        .expect("cm");
    let kc = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kc).expect("kubeconfig");
    let (org_key, hash) = sealpod_api_server::auth::new_org_key();
    sealpod_api_server::kube::Cluster::new(client.clone(), "sealpod-system")
        .store_api_key_hash(NS, &hash)
        .await
        .expect("key");

    let (public, runtime, admin) = (free_addr(), free_addr(), free_addr());
    let ours = Command::new(bin.join("sealpod-api-server"))
        .args([
            "--listen",
            &public.to_string(),
            "--runtime-listen",
            &runtime.to_string(),
            "--admin-listen",
            &admin.to_string(),
        ])
        .args([
            "--database-url",
            &format!("sqlite://{}", dir.path().join("api.db").display()),
        ])
        .arg("--kubeconfig")
        .arg(&kc)
        .env("SEALPOD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("sealpod-api-server (build it with --release first)");
    let naive_addr = free_addr();
    let naive = Command::new(bin.join("examples/naive-sse"))
        .arg(naive_addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("naive-sse");
    let ready = wait_until("readyz", 60, || std::net::TcpStream::connect(admin).is_ok()).await;
    assert!(ready);
    for _ in 0..300 {
        if http(admin, "GET", "/readyz", None, None).await.0 == 200
            && http(public, "GET", "/v3/agents", Some(org_key.expose()), None)
                .await
                .0
                == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secret = Api::<Secret>::namespaced(client.clone(), "sealpod-system")
        .get("sealpod-runtime-token-key")
        .await
        .expect("token key");
    let token_key = TokenKey::from_bytes(&secret.data.expect("data")["key"].0).expect("key");
    let auth = Some(org_key.expose().to_owned());
    let (_, cred) = http(
        public,
        "POST",
        "/v3/credentials",
        auth.as_deref(),
        Some(&json!({"key": "sk-ant-bench"})),
    )
    .await;
    let (_, agent) = http(public, "POST", "/v3/agents", auth.as_deref(), Some(&json!({"name": "bench", "prompt": "p", "model": "anthropic/claude-x", "credential": cred["id"]}))).await;
    let n_sessions = (n / 2).max(1);
    println!("creating {n_sessions} sessions …");
    let mut sessions = Vec::with_capacity(n_sessions);
    for _ in 0..=n_sessions {
        let (s, v) = http(
            public,
            "POST",
            "/v3/sessions",
            auth.as_deref(),
            Some(&json!({"agent": agent["id"], "input": "1"})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        sessions.push(v["session"]["id"].as_str().expect("id").to_owned());
    }
    let broadcast = sessions.pop().expect("one more");

    let ours_t = Target {
        name: "sealpod-api-server",
        child: ours,
        addr: public,
        auth: auth.clone(),
        runtime: Some(runtime),
        token_key: Some(token_key),
    };
    let naive_t = Target {
        name: "naive axum+broadcast",
        child: naive,
        addr: naive_addr,
        auth: None,
        runtime: None,
        token_key: None,
    };
    // The naive server needs one event per session so clients can confirm their connection.
    for s in sessions.iter().chain(std::iter::once(&broadcast)) {
        naive_t.append(s, 1).await;
    }
    let a = run_target(&ours_t, &sessions, &broadcast, n, s3a).await;
    let b = run_target(&naive_t, &sessions, &broadcast, n, s3a).await;
    println!(
        "\n{:<40} {:>14} {:>14} {:>8}",
        "metric", "sealpod", "naive", "ratio"
    );
    for (k, v) in &a {
        let w = b.get(k).copied().unwrap_or(f64::NAN);
        println!("{k:<40} {v:>14.2} {w:>14.2} {:>8.2}", v / w);
    }

    // S5: REST against health in the same binary, without and with idle streams.
    let session_path = format!("/v3/sessions/{}", sessions[0]);
    // Alternating one-second slices, so that a change in the machine's load (other tenants of a
    // shared host) falls on both sides of the ratio alike.
    let (mut get, mut health) = (0.0, 0.0);
    for _ in 0..rest_secs {
        get += rps(public, &session_path, auth.as_deref(), 1).await / rest_secs as f64;
        health += rps(admin, "/healthz", None, 1).await / rest_secs as f64;
    }
    let shared = Shared::new(n);
    let idle = open_clients(&ours_t, &sessions, n, &shared, false);
    wait_count("idle streams for S5", 120, n as u64, || {
        shared.connected.load(Ordering::Relaxed) as u64
    })
    .await;
    let get_idle = rps(public, &session_path, auth.as_deref(), rest_secs).await;
    for c in idle {
        c.abort();
    }
    println!(
        "\nS5 GET /v3/sessions/{{id}} {get:.0} rps, /healthz {health:.0} rps, ratio {:.2}",
        get / health
    );
    println!(
        "S5 with {n} idle SSE streams: {get_idle:.0} rps, ratio to none {:.2}",
        get_idle / get
    );
    println!(
        "uptime at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    for mut t in [ours_t, naive_t] {
        let _ = t.child.kill();
        let _ = t.child.wait();
    }
    cluster.shutdown().await;
}
