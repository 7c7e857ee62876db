//! Session limits held outside the sandbox, against a sandbox that ignores them: a shell loop
//! (curl) calls the model directly through the real sidecar proxy with the session's sealed
//! token, past the runtime. The proxy asks this API server's egress gate (over a real runtime-API
//! listener) before every swap and meters the fake model's usage (Anthropic's and OpenAI's wire
//! formats, streamed and not), so the spend stops at `limits.tokens`, nothing is swapped outside a turn or
//! past its `turn_seconds`, and a turn past `limits.turns` never reaches the runtime. Runs on
//! SQLite, and on PostgreSQL with `SEALPOD_TEST_POSTGRES_URL`.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{Env, TENANT_A};
use sealpod_resources::runtime_token::Scope;
use sealpod_resources::secret::SealedToken;
use sealpod_sidecar::resolve::SystemNet;
use sealpod_sidecar::running::Running;
use sealpod_tests::fake_model::{AuthSeen, FakeModel, FakeModelConfig, TlsSettings};
use serde_json::{Value, json};

const REAL_KEY: &str = "sk-ant-api03-REAL-key-held-outside-the-sandbox-0077";
const MODEL_HOST: &str = "api.model.test";
/// Each call of the `huge_usage:1000` scenario reports 1000 input and 12 output tokens.
const PER_CALL: u64 = 1012;

/// The model API a hostile loop calls with the sealed token.
#[derive(Debug, Clone, Copy)]
enum ModelApi {
    /// Anthropic's Messages API, the token in `x-api-key`.
    Messages,
    /// OpenAI's Responses API, the token in `Authorization: Bearer`.
    Responses,
}

impl ModelApi {
    /// The loop's variables: the key header's start (the token follows), one more header, the
    /// path, and the body around its `stream` value.
    fn call_env(self) -> [(&'static str, &'static str); 5] {
        match self {
            ModelApi::Messages => [
                ("KEY_HEADER", "x-api-key: "),
                ("OTHER_HEADER", "anthropic-version: 2023-06-01"),
                ("URL_PATH", "/v1/messages"),
                (
                    "BODY_HEAD",
                    r#"{"model":"claude-x","max_tokens":64,"stream":"#,
                ),
                (
                    "BODY_TAIL",
                    r#","messages":[{"role":"user","content":"[[scenario:huge_usage:1000]] spend"}]}"#,
                ),
            ],
            ModelApi::Responses => [
                ("KEY_HEADER", "authorization: Bearer "),
                (
                    "OTHER_HEADER",
                    "accept: application/json, text/event-stream",
                ),
                ("URL_PATH", "/v1/responses"),
                (
                    "BODY_HEAD",
                    r#"{"model":"gpt-x","max_output_tokens":64,"stream":"#,
                ),
                (
                    "BODY_TAIL",
                    r#","input":"[[scenario:huge_usage:1000]] spend"}"#,
                ),
            ],
        }
    }
}

/// A session's pod, as far as limits go: the fake model, a runtime-API listener over this API
/// server, and the sidecar proxy configured as the operator configures it.
struct Pod {
    model: FakeModel,
    dir: tempfile::TempDir,
    sealed: SealedToken,
    config: std::path::PathBuf,
    proxy: Option<Running>,
    _runtime_api: tokio::task::JoinHandle<()>,
}

impl Pod {
    async fn start(env: &Env, session: &str) -> Pod {
        let model = FakeModel::start(FakeModelConfig {
            tls: Some(TlsSettings {
                host_names: vec![MODEL_HOST.into()],
                cert_out: None,
            }),
            ..FakeModelConfig::plain(REAL_KEY)
        })
        .await
        .expect("fake model");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let runtime_api = listener.local_addr().expect("addr");
        let router = env.runtime.clone();
        let serving = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        std::fs::write(path.join("credential"), REAL_KEY).expect("key");
        std::fs::write(
            path.join("events-token"),
            env.runtime_token(TENANT_A, session, Scope::Proxy),
        )
        .expect("token");
        std::fs::write(path.join("model-ca.pem"), model.cert_pem().expect("pem")).expect("ca");
        let sealed = SealedToken::generate();
        let yaml = format!(
            "listen: 127.0.0.1:0\n\
             admin_listen: 127.0.0.1:0\n\
             ca_cert_out: pod-ca.pem\n\
             allow_cidrs: [127.0.0.1/32]\n\
             credentials:\n  - sealed: {sealed}\n    value_file: credential\n    hosts: [{MODEL_HOST}]\n    headers:\n      - name: x-api-key\n      - name: authorization\n        scheme: Bearer\n\
             events:\n  url: http://{runtime_api}/runtime/v1/egress-events\n  token_file: events-token\n  gate_url: http://{runtime_api}/runtime/v1/egress-gate\n\
             resolve:\n  \"{MODEL_HOST}:443\": [\"{model}\"]\n\
             extra_roots: [model-ca.pem]\n",
            sealed = sealed.expose(),
            model = model.addr(),
        );
        let config = path.join("proxy.yaml");
        std::fs::write(&config, yaml).expect("config");
        let mut pod = Pod {
            model,
            dir,
            sealed,
            config,
            proxy: None,
            _runtime_api: serving,
        };
        pod.restart_proxy().await;
        pod
    }

    /// Starts the proxy again (a sidecar restart: nothing it metered is kept in the process).
    async fn restart_proxy(&mut self) {
        self.proxy = None;
        let validated = sealpod_sidecar::config::load(&self.config).expect("valid config");
        let net = Arc::new(SystemNet::new(validated.resolve.clone()));
        self.proxy = Some(
            sealpod_sidecar::running::start(&validated, net)
                .await
                .expect("proxy starts"),
        );
    }

    /// The sandbox program on Anthropic's API (see [`Pod::hostile_loop_on`]).
    async fn hostile_loop(&self, calls: u32) -> Vec<(u16, String)> {
        self.hostile_loop_on(ModelApi::Messages, calls).await
    }

    /// The sandbox program: `calls` model calls to `api` in a loop through the proxy with the
    /// sealed token, alternating streamed and whole answers. One `status deny-reason` line per
    /// call.
    async fn hostile_loop_on(&self, api: ModelApi, calls: u32) -> Vec<(u16, String)> {
        let proxy = self.proxy.as_ref().expect("proxy").listen;
        let script = r#"
            i=0
            while [ "$i" -lt "$CALLS" ]; do
              if [ $((i % 2)) -eq 0 ]; then stream=true; else stream=false; fi
              curl -sS -o /dev/null -w '%{http_code} %header{x-sealpod-deny-reason}\n' \
                --proxy "$PROXY" --cacert "$CA" \
                -H "$KEY_HEADER$SEALED" -H "$OTHER_HEADER" \
                -H 'content-type: application/json' \
                -d "$BODY_HEAD$stream$BODY_TAIL" \
                "https://$HOST$URL_PATH" || echo "000 curl-failed"
              i=$((i + 1))
            done
        "#;
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("CALLS", calls.to_string())
            .env("PROXY", format!("http://{proxy}"))
            .env("CA", self.dir.path().join("pod-ca.pem"))
            .env("SEALED", self.sealed.expose())
            .env("HOST", MODEL_HOST)
            .envs(api.call_env())
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .kill_on_drop(true)
            .output()
            .await
            .expect("sh runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(|line| {
                let (code, reason) = line.split_once(' ').unwrap_or((line, ""));
                (code.parse().expect("status"), reason.trim().to_owned())
            })
            .collect()
    }

    /// Model calls that reached the model, each with the real key.
    fn spent_calls(&self) -> usize {
        let calls = self.model.model_requests();
        assert!(
            calls.iter().all(|r| r.auth == AuthSeen::RealKey),
            "every relayed call carried the swapped key"
        );
        calls.len()
    }
}

async fn limited_session(env: &Env, limits: Value) -> String {
    let agent = env.agent("limited").await;
    let (s, v) = env
        .call(
            "POST",
            "/v3/sessions",
            Some(&env.key_a),
            Some(json!({"agent": agent, "input": "go", "limits": limits})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["session"]["id"].as_str().expect("id").to_owned()
}

async fn claim(env: &Env, session: &str) -> (StatusCode, Value) {
    let token = env.runtime_token(TENANT_A, session, Scope::Runtime);
    env.rt(&token, "POST", "/claim", Some(json!({"wait_seconds": 0})))
        .await
}

async fn internal_events(env: &Env, session: &str, kind: &str) -> Vec<Value> {
    env.data(&format!(
        "/v3/sessions/{session}/events?level=internal&limit=500"
    ))
    .await
    .into_iter()
    .filter(|e| e["type"] == kind)
    .collect()
}

async fn turn(env: &Env, session: &str, number: u64) -> Option<Value> {
    env.data(&format!("/v3/sessions/{session}/turns"))
        .await
        .into_iter()
        .find(|t| t["number"] == number)
}

/// The budget held: the first `spent` calls answered, every later one refused with
/// `budget_exceeded`, exactly `spent` calls reached the model; returns the audit records of the
/// relayed calls, each with the usage the proxy metered (1000 in, 12 out).
async fn assert_budget_held(
    env: &Env,
    session: &str,
    pod: &Pod,
    answers: &[(u16, String)],
    spent: usize,
) -> Vec<Value> {
    assert_eq!(
        answers[..spent],
        vec![(200, String::new()); spent],
        "{answers:?}"
    );
    assert!(
        answers[spent..]
            .iter()
            .all(|a| *a == (429, "budget_exceeded".to_owned())),
        "{answers:?}"
    );
    assert_eq!(pod.spent_calls(), spent);
    let records = sealpod_testkit::eventually("the audit records", || async {
        let records = internal_events(env, session, "egress.request").await;
        let swapped: Vec<Value> = records
            .into_iter()
            .filter(|r| r["body"]["swapped"] == true)
            .collect();
        (swapped.len() == spent).then_some(swapped)
    })
    .await;
    for r in &records {
        assert_eq!(r["body"]["usage"]["input_tokens"], 1000, "{r}");
        assert_eq!(r["body"]["usage"]["output_tokens"], 12, "{r}");
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_loop_spends_no_more_than_the_token_budget() {
    let env = Env::start().await;
    let session = limited_session(&env, json!({"tokens": 2500})).await;
    let mut pod = Pod::start(&env, &session).await;

    // Before the runtime claims a turn, the key is not usable at all.
    assert_eq!(pod.hostile_loop(1).await, vec![(403, "no_turn".to_owned())]);
    assert_eq!(pod.spent_calls(), 0);

    let (s, claimed) = claim(&env, &session).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    let answers = pod.hostile_loop(8).await;
    // 1012, 2024, then 3036 >= 2500: the fourth call and every one after it are refused.
    let spent = 2500_u64.div_ceil(PER_CALL) as usize;
    assert_eq!(spent, 3);
    // The audit has each relayed call with the usage the proxy metered, and the refusals.
    let records = assert_budget_held(&env, &session, &pod, &answers, spent).await;
    for r in &records {
        assert_eq!(r["body"]["status"], 200, "{r}");
    }
    sealpod_testkit::eventually("the refusals as egress.denied", || async {
        let denied = internal_events(&env, &session, "egress.denied").await;
        (denied
            .iter()
            .filter(|e| e["body"]["reason"] == "budget_exceeded")
            .count()
            == answers.len() - spent)
            .then_some(())
    })
    .await;

    // The server holds what was metered, so a restarted sidecar starts from it.
    sealpod_testkit::eventually("the metered total reported", || async {
        let total = env.state.store().meter(&session, 0).await.expect("meter");
        (total == PER_CALL * spent as u64).then_some(())
    })
    .await;
    pod.restart_proxy().await;
    assert_eq!(
        pod.hostile_loop(2).await,
        vec![(429, "budget_exceeded".to_owned()); 2]
    );
    assert_eq!(pod.spent_calls(), spent, "nothing more reached the model");
}

#[tokio::test]
async fn openai_usage_is_held_to_the_same_budget() {
    let env = Env::start().await;
    let session = limited_session(&env, json!({"tokens": 2500})).await;
    let pod = Pod::start(&env, &session).await;
    let (s, claimed) = claim(&env, &session).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    let answers = pod.hostile_loop_on(ModelApi::Responses, 6).await;
    let spent = 2500_u64.div_ceil(PER_CALL) as usize;
    assert_budget_held(&env, &session, &pod, &answers, spent).await;
    assert!(
        pod.model
            .model_requests()
            .iter()
            .all(|r| r.path == "/v1/responses" && r.header("x-api-key").is_none()),
        "every call went to the Responses API with the key in Authorization"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_past_its_seconds_stops_swapping_and_is_ended_from_outside() {
    let env = Env::start().await;
    let session = limited_session(&env, json!({"turn_seconds": 1})).await;
    let pod = Pod::start(&env, &session).await;
    let (s, claimed) = claim(&env, &session).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    let turn_id = claimed["turn_id"].as_str().expect("turn").to_owned();

    // The runtime never ends the turn; the gate closes at the deadline all the same.
    sealpod_testkit::eventually("the deadline to close the gate", || async {
        let answers = pod.hostile_loop(1).await;
        (answers == vec![(403, "deadline_exceeded".to_owned())]).then_some(())
    })
    .await;
    let ended = sealpod_testkit::eventually("the server to end the turn", || async {
        turn(&env, &session, 1)
            .await
            .filter(|t| t["state"] != "running")
    })
    .await;
    assert_eq!(ended["id"], turn_id.as_str());
    assert_eq!(ended["yield_reason"], "deadline_exceeded", "{ended}");
    assert_eq!(pod.hostile_loop(1).await, vec![(403, "no_turn".to_owned())]);

    // A runtime that completes the turn late changes nothing.
    let token = env.runtime_token(TENANT_A, &session, Scope::Runtime);
    let (s, done) = env
        .rt(
            &token,
            "POST",
            &format!("/turns/{turn_id}/complete"),
            Some(json!({"yield_reason": "completed"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["yield_reason"], "deadline_exceeded", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_past_the_turn_limit_never_reaches_the_runtime() {
    let env = Env::start().await;
    let session = limited_session(&env, json!({"turns": 1})).await;
    let (first, _) = env.run_turn(&session, "one").await;
    let (s, v) = env
        .call(
            "POST",
            &format!("/v3/sessions/{session}/messages"),
            Some(&env.key_a),
            Some(json!({"text": "two"})),
        )
        .await;
    assert!(s.is_success(), "{v}");

    let (s, claimed) = claim(&env, &session).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{claimed}");
    let second = turn(&env, &session, 2).await.expect("turn 2");
    assert_eq!(second["state"], "ok", "{second}");
    assert_eq!(second["yield_reason"], "max_turns", "{second}");
    assert_ne!(second["id"], first.as_str());
    let (s, v) = env
        .call(
            "GET",
            &format!("/v3/sessions/{session}"),
            Some(&env.key_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "idle", "{v}");
}
