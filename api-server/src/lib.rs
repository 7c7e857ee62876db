//! The sealpod API server: the `/v3` REST and SSE API over the custom resources, the durable
//! event log, client tokens, credentials (sealed on arrival), the runtime API and the web
//! [`console`].
//!
//! [`app`] is the public router as a value (`/v3` and the console; driven by tests with
//! `oneshot`), [`runtime_app`] the runtime API's, [`admin_app`] the admin endpoints'; [`serve`]
//! wires them to sockets. It holds only the sealing public key; it must never return or log a
//! key or token.
//!
//! Public are the app builders, [`serve`], the [`store`], the [`wire`] types and what the
//! binary and the integration tests drive (adoption, org keys, configuration, the console, the
//! cluster client, the background sweeps, webhook settings); request handling (`routes`,
//! `input`, `dto`, `translate`, `sse`, `runtime_api`) is private to the crate.

pub mod adopt;
pub mod auth;
pub mod config;
pub mod console;
mod cors;
mod dto;
mod error;
mod input;
pub mod kube;
pub mod lifecycle;
mod limits;
mod metrics;
mod revisions;
mod routes;
mod runtime_api;
pub mod schedule;
mod session_input;
mod skills;
mod sse;
mod start;
pub mod store;
mod translate;
pub mod webhooks;
pub mod wire;

use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sealpod_resources::runtime_token::{
    CLIENT_TOKEN_KEY_SECRET, TOKEN_KEY_ENTRY, TOKEN_KEY_SECRET, TokenKey, generate_client_token_key,
};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::auth::{ClientTokenKey, OrgKeys};
use crate::config::ServeArgs;
use crate::kube::Cluster;
use crate::lifecycle::StatusSync;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::hub::Hub;

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The platform credential's name, when "managed" is available.
    pub managed_credential: Option<String>,
    /// SSE keep-alive interval.
    pub sse_ping: Duration,
    /// Tenant namespaces served (empty: every namespace but the system namespace).
    pub watch_namespaces: Vec<String>,
    /// Lifetime of a console sign-in.
    pub console_session: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            managed_credential: None,
            sse_ping: Duration::from_secs(15),
            watch_namespaces: Vec::new(),
            console_session: Duration::from_secs(config::DEFAULT_CONSOLE_SESSION_SECONDS),
        }
    }
}

/// Shared state of every handler.
#[derive(Debug)]
pub struct Inner {
    store: Arc<Store>,
    cluster: Cluster,
    org_keys: Arc<OrgKeys>,
    client_key: ClientTokenKey,
    runtime_key: TokenKey,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
    metrics: Metrics,
    sync: StatusSync,
    webhooks: webhooks::Webhooks,
}

/// Cheap handle on [`Inner`].
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Kubernetes.
    #[error(transparent)]
    Kube(#[from] kube::KubeError),
    /// A stored key is unusable.
    #[error("{0}")]
    Key(&'static str),
}

impl AppState {
    /// Connects everything a server needs: reads or creates the token keys in the system
    /// namespace and starts the org key watch and the background loops.
    pub async fn start(
        store: Arc<Store>,
        cluster: Cluster,
        settings: Settings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<AppState, StartError> {
        let runtime_key = cluster
            .system_key(TOKEN_KEY_SECRET, TOKEN_KEY_ENTRY, || {
                TokenKey::generate().expose().to_vec()
            })
            .await?;
        let runtime_key = TokenKey::from_bytes(&runtime_key)
            .ok_or(StartError::Key("runtime token key is too short"))?;
        let client_key = cluster
            .system_key(
                CLIENT_TOKEN_KEY_SECRET,
                TOKEN_KEY_ENTRY,
                generate_client_token_key,
            )
            .await?;
        if client_key.len() < 32 {
            return Err(StartError::Key("client token key is too short"));
        }
        let org_keys = Arc::new(OrgKeys::default());
        let state = AppState(Arc::new(Inner {
            store,
            cluster: cluster.clone(),
            org_keys: org_keys.clone(),
            client_key: ClientTokenKey::new(client_key),
            runtime_key,
            settings,
            shutdown,
            metrics: Metrics::default(),
            sync: StatusSync::default(),
            webhooks: webhooks::Webhooks::default(),
        }));
        let namespaces = state.settings().watch_namespaces.clone();
        tokio::spawn(async move { org_keys.run(cluster, namespaces).await });
        tokio::spawn(lifecycle::run_status_sync(state.clone()));
        tokio::spawn(limits::run_deadline_sweep(state.clone()));
        tokio::spawn(adopt::run(state.clone()));
        if state.store().backend() == store::Backend::Postgres {
            tokio::spawn(store::postgres::listen(state.store().clone()));
        }
        Ok(state)
    }

    /// Waits until the org key cache is loaded (or the timeout passes).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.0.org_keys.ready() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.0.store
    }
    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.0.cluster
    }
    /// The org key cache.
    pub fn org_keys(&self) -> &OrgKeys {
        &self.0.org_keys
    }
    /// The client token key.
    pub fn client_key(&self) -> &ClientTokenKey {
        &self.0.client_key
    }
    /// The runtime token key.
    pub fn runtime_key(&self) -> &TokenKey {
        &self.0.runtime_key
    }
    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    /// A receiver of the shutdown flag.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }
    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    /// The status mirror.
    pub fn sync(&self) -> &StatusSync {
        &self.0.sync
    }
    /// Webhook settings and metrics.
    pub fn webhooks(&self) -> &webhooks::Webhooks {
        &self.0.webhooks
    }

    /// Sets the webhook settings and starts the delivery worker (until shutdown). Call once;
    /// a second call changes nothing and starts nothing. Returns the worker's task (it ends after
    /// the shutdown flag is set), or `None` when the worker was started before.
    pub fn start_webhooks(&self, config: webhooks::Config) -> Option<tokio::task::JoinHandle<()>> {
        self.0
            .webhooks
            .configure(config)
            .then(|| tokio::spawn(webhooks::worker::run(self.clone())))
    }
}

/// The public API's middleware: CORS (preflights answered first, as before any route), then the
/// request context. The console is same-origin only: it gets the request context alone.
async fn public_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/console") {
        return request_context(State(state), req, next).await;
    }
    if let Some(answer) = cors::preflight(req.method(), req.headers()) {
        return answer;
    }
    let origin = cors::origin(req.headers());
    let mut response = request_context(State(state), req, next).await;
    cors::decorate(origin, &mut response);
    response
}

/// Every request's context: an id (in the error envelope, the `x-request-id` header and every log
/// line of the request), one log line when it ends, and the response-status metric.
async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // 80 random bits in 20 hex digits.
    let id = format!("req_{:020x}", rand::random::<u128>() >> 48);
    let method = req.method().clone();
    // The path only (never the query: it may carry `?token=`).
    let path = req.uri().path().to_owned();
    // Fields as `&str`, not `%` (Display): the log formatter takes a string as it is, where a
    // Display value is first formatted into a new one.
    let span = tracing::info_span!(
        "request",
        request_id = id.as_str(),
        method = method.as_str(),
        path = path.as_str()
    );
    let started = std::time::Instant::now();
    let mut response = error::REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span))
        .await;
    let status = response.status().as_u16();
    state.metrics().response(status);
    tracing::info!(
        request_id = id.as_str(),
        method = method.as_str(),
        path = path.as_str(),
        status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    response
}

/// The public router: `/v3` and the console.
pub fn app(state: AppState) -> Router {
    // The console's API calls are handed to a `/v3` router of their own (`console::forward`).
    let console_v3 = routes::router()
        .fallback(|| async { error::ApiError::NotFound("route") })
        .with_state(state.clone());
    Router::new()
        .merge(routes::router())
        .merge(console::router(console_v3))
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            public_request,
        ))
        .with_state(state)
}

/// The runtime API router.
pub fn runtime_app(state: AppState) -> Router {
    Router::new()
        .nest(
            sealpod_resources::runtime_api::PREFIX,
            runtime_api::router(),
        )
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// The admin router: `/healthz`, `/readyz`, `/metrics`.
pub fn admin_app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.org_keys().ready() && s.store().ping().await {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                let depth = s.store().outbox_depth().await.unwrap_or_default();
                let mut text = s.metrics().render(s.store().hub().live_tails());
                text.push('\n');
                text.push_str(&s.webhooks().render(&depth));
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
            }),
        )
        .with_state(state)
}

/// A kube client from an explicit kubeconfig file or the usual resolution.
pub async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
) -> Result<::kube::Client, Box<dyn std::error::Error + Send + Sync>> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = ::kube::config::Kubeconfig::read_from(path)?;
            ::kube::Config::from_custom_kubeconfig(
                kc,
                &::kube::config::KubeConfigOptions::default(),
            )
            .await?
        }
        None => ::kube::Config::infer().await?,
    };
    Ok(::kube::Client::try_from(config)?)
}

/// Serves the three listeners until SIGINT/SIGTERM, then ends SSE streams and drains.
pub async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Fails fast on a bad webhook option, before connecting or binding anything.
    let mut webhook_config = args.webhook_config()?;
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let cluster = Cluster::new(client, args.system_namespace.clone());
    let store = Store::connect(&args.database_url, Hub::new())
        .await?
        .with_event_body_limit(args.event_body_limit);
    let store = Arc::new(store);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let settings = Settings {
        managed_credential: args.managed_credential.clone(),
        sse_ping: Duration::from_secs(args.sse_ping_seconds.max(1)),
        watch_namespaces: args.watch_namespaces.clone(),
        console_session: Duration::from_secs(args.console_session_seconds),
    };
    let state = AppState::start(store, cluster, settings, shutdown_rx).await?;
    tokio::spawn(schedule::watch(state.clone()));
    tokio::spawn(lifecycle::run_idle_sweep(
        state.clone(),
        Duration::from_secs(args.idle_sweep_seconds.max(1)),
    ));
    let public = tokio::net::TcpListener::bind(args.listen).await?;
    let runtime = tokio::net::TcpListener::bind(args.runtime_listen).await?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen).await?;
    // The addresses bound (a port given as 0 is only known now) are never webhook destinations.
    webhook_config.deny.extend([
        public.local_addr()?,
        runtime.local_addr()?,
        admin.local_addr()?,
    ]);
    state.start_webhooks(webhook_config);
    tracing::info!(
        public = %public.local_addr()?, runtime = %runtime.local_addr()?,
        admin = %admin.local_addr()?, "listening"
    );
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let rx = state.shutdown();
    // `into_make_service`: each connection shares the router. Served as a `Router`, axum 0.8
    // copies every route of it for each connection (tens of KiB, most of an idle SSE stream's
    // memory).
    let servers = futures::future::try_join3(
        axum::serve(public, app(state.clone()).into_make_service())
            .with_graceful_shutdown(wait(rx.clone()))
            .into_future(),
        axum::serve(runtime, runtime_app(state.clone()).into_make_service())
            .with_graceful_shutdown(wait(rx.clone()))
            .into_future(),
        axum::serve(admin, admin_app(state.clone()).into_make_service())
            .with_graceful_shutdown(wait(rx.clone()))
            .into_future(),
    );
    let signal = async {
        sealpod_util::shutdown::signal().await;
        tracing::info!("shutting down: ending streams");
        let _ = shutdown_tx.send(true);
        Ok::<(), std::io::Error>(())
    };
    let (served, signalled) = tokio::join!(servers, signal);
    signalled?;
    served?;
    Ok(())
}

/// `api-key create`: stores a new org key's hash in `namespace` and returns the key (printed
/// once by the binary).
pub async fn create_api_key(
    kubeconfig: Option<&std::path::Path>,
    namespace: &str,
) -> Result<sealpod_resources::secret::Secret, Box<dyn std::error::Error + Send + Sync>> {
    let client = kube_client(kubeconfig).await?;
    let cluster = Cluster::new(client, "");
    let (key, hash) = auth::new_org_key();
    cluster.store_api_key_hash(namespace, &hash).await?;
    Ok(key)
}

/// The `/v3` request bodies for the fuzz target in `fuzz/` (built with `--cfg fuzzing` only), each
/// decoded, and checked as far as its route checks it before any lookup: a normal build has no
/// such module. Not an API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use crate::dto::{
        CreateAgent, CreateCredential, CreateSchedule, CreateSession, MintToken, RotateCredential,
        SetDefault, Steer, UpdateAgent, UpdateSchedule,
    };
    pub use crate::error::ApiError;
    use crate::input::{json_body, json_value};

    /// `POST /v3/agents`: `CreateAgent::validate`.
    pub fn create_agent(body: &[u8]) -> Result<(), ApiError> {
        json_body::<CreateAgent>(body)?.validate().map(drop)
    }
    /// `POST /v3/sessions`: `CreateSession::validate`, then the input's shape.
    pub fn create_session(body: &[u8]) -> Result<(), ApiError> {
        let session = json_value::<CreateSession>(json_body(body)?)?.validate()?;
        crate::session_input::input_to_body(&session.input, "input").map(drop)
    }
    /// `POST /v3/agents/{id}/schedules`: the cron expression and time zone parsed, and the next
    /// and latest times searched around a fixed instant.
    pub fn create_schedule(body: &[u8]) -> Result<(), ApiError> {
        let schedule = json_body::<CreateSchedule>(body)?;
        let cron = schedule.cron.unwrap_or_default();
        let plan = crate::schedule::Plan::parse(&cron, schedule.tz.as_deref())
            .map_err(|e| ApiError::invalid(e.param, e.message))?;
        const AT: i64 = 1_800_000_000;
        let _ = (plan.next_after(AT), plan.latest_between(AT - 86_400, AT));
        Ok(())
    }
    /// `PUT /v3/agents/{id}/skills`: a `.zip` read and checked as a skill bundle; its files'
    /// paths, modes and sizes.
    pub fn skills_zip(bytes: &[u8]) -> Result<Vec<(String, u32, u64)>, String> {
        let bundle = crate::skills::Bundle::from_zip(bytes)?;
        Ok(bundle
            .summary("agt-fuzz")
            .files
            .into_iter()
            .map(|f| (f.path, f.mode, f.size))
            .collect())
    }
    /// The bodies whose routes check them inline, against stored objects: decoded only.
    pub fn decode(body: &[u8]) -> [Result<(), ApiError>; 8] {
        [
            json_body::<UpdateAgent>(body).map(drop),
            json_body::<CreateSchedule>(body).map(drop),
            json_body::<UpdateSchedule>(body).map(drop),
            json_body::<CreateCredential>(body).map(drop),
            json_body::<RotateCredential>(body).map(drop),
            json_body::<SetDefault>(body).map(drop),
            json_body::<MintToken>(body).map(drop),
            json_body(body).and_then(json_value::<Steer>).map(drop),
        ]
    }
}
