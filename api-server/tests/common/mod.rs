//! Test harness: a cluster with sealpod's CRDs (devcluster, or the real control plane with
//! `SEALPOD_TEST_CONTROL_PLANE=kubernetes`), two tenants with org keys, the sealing public
//! key published (the private set kept here to open sealed values), a SQLite store in a temp
//! dir (or PostgreSQL when `SEALPOD_TEST_POSTGRES_URL` is set), and the three routers.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use sealpod_api_server::kube::Cluster;
use sealpod_api_server::store::Store;
use sealpod_api_server::store::hub::Hub;
use sealpod_api_server::{AppState, Settings, admin_app, app, runtime_app};
use sealpod_resources::labels::{SEALING_KEYS_ENTRY, SEALING_PUBLIC_CONFIGMAP};
use sealpod_resources::runtime_token::Scope;
use sealpod_resources::sealing::KeySet;
use sealpod_testkit::TestCluster;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt as _;

pub const SYSTEM: &str = "sealpod-system";
pub const TENANT_A: &str = "tenant-a";
pub const TENANT_B: &str = "tenant-b";

pub struct Env {
    pub cluster: TestCluster,
    pub kube: Cluster,
    pub state: AppState,
    pub app: Router,
    pub runtime: Router,
    pub admin: Router,
    pub key_a: String,
    pub key_b: String,
    pub keys: KeySet,
    pub shutdown: watch::Sender<bool>,
    pub dir: tempfile::TempDir,
}

pub struct Options {
    pub sealing: bool,
    pub managed: Option<String>,
    pub ping: Duration,
    pub watch_namespaces: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sealing: true,
            managed: None,
            ping: Duration::from_secs(15),
            watch_namespaces: Vec::new(),
        }
    }
}

pub async fn publish_sealing_key(client: &kube::Client, keys: &KeySet) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), SYSTEM);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(SEALING_PUBLIC_CONFIGMAP.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            SEALING_KEYS_ENTRY.to_owned(),
            serde_json::to_string(&keys.public_keys()).expect("json"),
        )])),
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &cm)
        .await
        .expect("sealing configmap");
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Env {
        let cluster = TestCluster::start(&[SYSTEM, TENANT_A, TENANT_B]).await;
        let client = cluster.client();
        let keys = KeySet::generate();
        if opts.sealing {
            publish_sealing_key(&client, &keys).await;
        }
        let kube = Cluster::new(client, SYSTEM);
        let (key_a, hash_a) = sealpod_api_server::auth::new_org_key();
        let (key_b, hash_b) = sealpod_api_server::auth::new_org_key();
        kube.store_api_key_hash(TENANT_A, &hash_a)
            .await
            .expect("key a");
        kube.store_api_key_hash(TENANT_B, &hash_b)
            .await
            .expect("key b");
        let dir = tempfile::tempdir().expect("tempdir");
        let url = std::env::var("SEALPOD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("api.db").display()));
        let store = Arc::new(Store::connect(&url, Hub::new()).await.expect("store"));
        let (shutdown, rx) = watch::channel(false);
        let settings = Settings {
            managed_credential: opts.managed,
            sse_ping: opts.ping,
            watch_namespaces: opts.watch_namespaces,
            ..Settings::default()
        };
        let state = AppState::start(store, kube.clone(), settings, rx)
            .await
            .expect("state");
        assert!(
            state.wait_ready(Duration::from_secs(10)).await,
            "org keys loaded"
        );
        org_keys_loaded(
            &state,
            [(TENANT_A, key_a.expose()), (TENANT_B, key_b.expose())],
        )
        .await;
        Env {
            app: app(state.clone()),
            runtime: runtime_app(state.clone()),
            admin: admin_app(state.clone()),
            cluster,
            kube,
            state,
            key_a: key_a.expose().to_owned(),
            key_b: key_b.expose().to_owned(),
            keys,
            shutdown,
            dir,
        }
    }

    /// Stops this API server (its background tasks end) and starts another over the same store
    /// and cluster, serving `watch_namespaces`: a restart.
    pub async fn restart(&mut self, watch_namespaces: Vec<String>) {
        let _ = self.shutdown.send(true);
        let url = std::env::var("SEALPOD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| format!("sqlite://{}", self.dir.path().join("api.db").display()));
        let store = Arc::new(Store::connect(&url, Hub::new()).await.expect("store"));
        let (shutdown, rx) = watch::channel(false);
        let settings = Settings {
            watch_namespaces,
            ..self.state.settings().clone()
        };
        let state = AppState::start(store, self.kube.clone(), settings, rx)
            .await
            .expect("state");
        assert!(
            state.wait_ready(Duration::from_secs(10)).await,
            "org keys loaded"
        );
        org_keys_loaded(&state, [(TENANT_A, &self.key_a), (TENANT_B, &self.key_b)]).await;
        self.app = app(state.clone());
        self.runtime = runtime_app(state.clone());
        self.admin = admin_app(state.clone());
        self.state = state;
        self.shutdown = shutdown;
    }

    pub async fn send(
        router: &Router,
        req: Request<Body>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let res = router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value, headers)
    }

    pub fn request(
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            b = b.header("authorization", format!("Bearer {a}"));
        }
        match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .expect("request"),
            None => b.body(Body::empty()).expect("request"),
        }
    }

    /// Calls the public API.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, v, _) =
            Self::send(&self.app, Self::request(method, path, auth, body.as_ref())).await;
        (s, v)
    }

    /// The `data` of a `/v3` list answer for tenant A (which must be 200).
    pub async fn data(&self, path: &str) -> Vec<Value> {
        let (s, page) = self.call("GET", path, Some(&self.key_a), None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {page}");
        page["data"].as_array().expect("data").clone()
    }

    /// Calls the runtime API.
    pub async fn rt(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let path = format!("/runtime/v1{path}");
        let (s, v, _) = Self::send(
            &self.runtime,
            Self::request(method, &path, Some(token), body.as_ref()),
        )
        .await;
        (s, v)
    }

    /// A token of the session that names no Session object (as tokens minted before the uid
    /// was part of them): it reaches whichever object holds the name.
    pub fn runtime_token(&self, ns: &str, session_id: &str, scope: Scope) -> String {
        self.runtime_token_of(ns, session_id, scope, "")
    }

    /// A token of the Session object whose uid is `object_uid`, as the operator mints them.
    pub fn runtime_token_of(
        &self,
        ns: &str,
        session_id: &str,
        scope: Scope,
        object_uid: &str,
    ) -> String {
        let name = sealpod_resources::ids::id_to_object_name(session_id).expect("id");
        self.state
            .runtime_key()
            .mint(scope, ns, &name, object_uid)
            .expose()
            .to_owned()
    }

    /// A credential and an agent using it, in tenant A; returns the agent id.
    pub async fn agent(&self, name: &str) -> String {
        let (s, cred) = self
            .call(
                "POST",
                "/v3/credentials",
                Some(&self.key_a),
                Some(serde_json::json!({"key": "sk-ant-test-0000", "name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{cred}");
        let (s, agent) = self
            .call(
                "POST",
                "/v3/agents",
                Some(&self.key_a),
                Some(serde_json::json!({"name": name, "prompt": "p", "model": "anthropic/claude-x", "credential": cred["id"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{agent}");
        agent["id"].as_str().expect("id").to_owned()
    }

    /// A session of tenant A; returns (session id, client token).
    pub async fn session(&self, agent: &str, input: &str) -> (String, String) {
        let (s, v) = self
            .call(
                "POST",
                "/v3/sessions",
                Some(&self.key_a),
                Some(serde_json::json!({"agent": agent, "input": input})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["session"]["id"].as_str().expect("id").to_owned(),
            v["client_token"].as_str().expect("token").to_owned(),
        )
    }

    /// Runs one turn through the runtime API; returns (turn id, result event id).
    pub async fn run_turn(&self, session: &str, answer: &str) -> (String, String) {
        let token = self.runtime_token(TENANT_A, session, Scope::Runtime);
        let (s, turn) = self
            .rt(
                &token,
                "POST",
                "/claim",
                Some(serde_json::json!({"wait_seconds": 0})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{turn}");
        let turn_id = turn["turn_id"].as_str().expect("turn").to_owned();
        let (s, appended) = self
            .rt(
                &token,
                "POST",
                "/events",
                Some(serde_json::json!({"events": [
                    {"client_id": format!("{turn_id}-tool"), "type": "tool.call", "level": "internal", "body": {"tool": "shell"}, "turn_id": turn_id},
                    {"client_id": format!("{turn_id}-answer"), "type": "agent.message", "level": "user", "body": {"text": answer}, "turn_id": turn_id},
                ]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{appended}");
        let result = appended["events"][1]["id"].as_str().expect("id").to_owned();
        let (s, done) = self
            .rt(
                &token,
                "POST",
                &format!("/turns/{turn_id}/complete"),
                Some(serde_json::json!({"yield_reason": "completed", "result_event_id": result, "usage": {"input_tokens": 3}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{done}");
        (turn_id, result)
    }
}

/// Waits until the API server authenticates the org key of each namespace it serves.
async fn org_keys_loaded(state: &AppState, keys: [(&str, &str); 2]) {
    let served = &state.settings().watch_namespaces;
    for (namespace, key) in keys {
        if !served.is_empty() && !served.iter().any(|s| s == namespace) {
            continue;
        }
        sealpod_testkit::eventually("an org key to authenticate", || async {
            state.org_keys().namespace_of(key).map(|_| ())
        })
        .await;
    }
}
