//! Test harness: the fake runtime API, the fake model (TLS) and the `sealpod-runtime` binary run
//! as a child process with a clean environment.

// Each test binary uses a different subset of the helpers, and `pub` here only means "shared
// between the support modules" (an integration test crate has no public API).
#![allow(dead_code, unreachable_pub)]

pub mod fake_api;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealpod_resources::common::Limits;
use sealpod_resources::provider::Provider;
use sealpod_tests::fake_model::{FakeModel, FakeModelConfig, RecordedRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub use fake_api::FakeApi;

pub const MODEL_KEY: &str = "sk-ant-test-runtime-key-0123456789";

/// The provider the suite runs against: `SEALPOD_TEST_PROVIDER` (`anthropic`, the default, or
/// `openai`); the same tests then drive the `claude` or the `codex` loop.
pub fn provider() -> &'static Provider {
    let name = std::env::var("SEALPOD_TEST_PROVIDER").unwrap_or_else(|_| "anthropic".into());
    sealpod_resources::provider::named(&name).expect("SEALPOD_TEST_PROVIDER names a provider")
}

/// The model the fake session pins (`provider/name`).
pub fn pinned_model() -> String {
    format!("{}/{}", provider().name, model_name())
}

/// The model name the model API is sent (the pinned model without its provider).
pub fn model_name() -> &'static str {
    match provider().name {
        "openai" => "gpt-test-1",
        _ => "claude-test-1",
    }
}

/// A recorded model call in the Messages shape (`system`, `messages` of content blocks),
/// whichever API it was made to.
pub fn conversation(request: &RecordedRequest) -> serde_json::Value {
    if request.path.starts_with("/v1/responses") {
        sealpod_tests::fake_model::openai::as_messages(&request.body)
    } else {
        request.body.clone()
    }
}
pub const RUNTIME_TOKEN: &str = "sprt_test-runtime-token.abcdef";
pub const PROMPT: &str = "You are a careful test agent.";
pub const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Harness {
    pub api: FakeApi,
    pub model: FakeModel,
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub extra_env: Vec<(String, String)>,
    runs: u32,
}

impl Harness {
    pub async fn new(limits: Limits) -> Harness {
        let mut config = FakeModelConfig::tls(MODEL_KEY);
        config.scenarios.chunk_chars = 7;
        Harness::with_model(limits, config).await
    }

    /// A harness whose fake model is configured by `config` (TLS required).
    pub async fn with_model(limits: Limits, config: FakeModelConfig) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
        let model = FakeModel::start(config).await.expect("fake model");
        std::fs::write(dir.path().join("ca.pem"), model.cert_pem().expect("pem")).expect("ca");
        std::fs::write(dir.path().join("token"), RUNTIME_TOKEN).expect("token");
        let api = FakeApi::start(RUNTIME_TOKEN, limits, PROMPT).await;
        Harness {
            api,
            model,
            dir,
            child: None,
            extra_env: Vec::new(),
            runs: 0,
        }
    }

    /// Restarts the fake model on the same address with a new self-signed certificate and
    /// rewrites `SSL_CERT_FILE` with it: what a restarted proxy sidecar does to a sandbox (a
    /// new per-pod CA, written over the old one).
    pub async fn restart_model_with_new_certificate(&mut self) {
        let addr = self.model.addr();
        let mut config = FakeModelConfig::tls(MODEL_KEY);
        config.scenarios.chunk_chars = 7;
        let elsewhere = FakeModel::start(config.clone()).await.expect("fake model");
        drop(std::mem::replace(&mut self.model, elsewhere));
        config.listen = addr;
        // The old listener closes once its task sees the shutdown.
        self.model = sealpod_util::wait::until("the old address to be free", WAIT, || async {
            FakeModel::start(config.clone()).await.ok()
        })
        .await
        .expect("fake model on its old address");
        std::fs::write(
            self.dir.path().join("ca.pem"),
            self.model.cert_pem().expect("pem"),
        )
        .expect("ca");
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            ("SEALPOD_RUNTIME_API_URL".into(), self.api.url()),
            ("SEALPOD_SESSION_ID".into(), fake_api::SESSION.into()),
            (
                "SEALPOD_RUNTIME_TOKEN_FILE".into(),
                self.dir.path().join("token").display().to_string(),
            ),
            (
                "SEALPOD_WORKSPACE".into(),
                self.workspace().display().to_string(),
            ),
            (provider().key_env.into(), MODEL_KEY.into()),
            (provider().base_url_env.into(), self.model.base_url().into()),
            (
                "SSL_CERT_FILE".into(),
                self.dir.path().join("ca.pem").display().to_string(),
            ),
            ("SEALPOD_ALLOW_DIRECT_EGRESS".into(), "true".into()),
            ("SEALPOD_CLAIM_WAIT_SECONDS".into(), "5".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        for (k, v) in &self.extra_env {
            env.retain(|(name, _)| name != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// Starts the runtime binary (stderr to `runtime-N.log` in the temp dir).
    pub fn start(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("runtime-{}.log", self.runs)))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sealpod-runtime"))
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn runtime");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).expect("running")
    }

    pub async fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.pid();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut child = self.child.take().expect("child");
        tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("runtime exits")
            .expect("wait")
    }

    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("runtime-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.model.model_requests()
    }

    /// Event types of the log, in order.
    pub fn types(&self) -> Vec<String> {
        self.api
            .state()
            .events
            .iter()
            .map(|e| e.type_.clone())
            .collect()
    }

    /// Every file under the workspace, with its bytes.
    pub fn workspace_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.workspace(), &mut out);
        out
    }

    /// The environment of the running runtime process, as `NAME=value` strings.
    pub fn process_environ(&self) -> Vec<String> {
        let raw = std::fs::read(format!("/proc/{}/environ", self.pid())).expect("environ");
        raw.split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Checks that neither the model key nor the runtime token leaked into logs or events.
    pub fn assert_no_secret_leaked(&self) {
        let logs = self.logs();
        let events = serde_json::to_string(&self.api.state().events).expect("json");
        for secret in [MODEL_KEY, RUNTIME_TOKEN] {
            assert!(!logs.contains(secret), "secret in runtime logs");
            assert!(!events.contains(secret), "secret in events");
        }
    }
}

/// A minimal HTTP CONNECT proxy on loopback that records the targets it tunnelled to.
#[derive(Debug, Clone)]
pub struct ConnectProxy {
    pub addr: std::net::SocketAddr,
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    pub async fn start() -> ConnectProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let Ok(b) = client.read_u8().await else {
                            return;
                        };
                        head.push(b);
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let target = text
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock().expect("lock").push(target.clone());
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        ConnectProxy { addr, targets }
    }
}
