//! A faithful fake of the model APIs for tests: Anthropic's Messages API (`POST /v1/messages`)
//! and OpenAI's Responses API (`POST /v1/responses`, see [`openai`]) over TLS (a self-signed
//! certificate for configurable host names, its PEM written to a file for clients to trust) or
//! plain HTTP, streaming SSE and non-streaming JSON, scripted scenarios (see [`scenario`]; the
//! same scripts answer both APIs) and each API's error bodies.
//!
//! It accepts only the real key it is configured with (`x-api-key` or `Authorization: Bearer` on
//! the Messages API, only `Authorization: Bearer` on the Responses API, as the real ones) and
//! records every request it receives: the handle's [`FakeModel::requests`] and the admin
//! endpoint `GET /_fake/requests` (`DELETE` clears) expose them. Recorded header values of the
//! key slots are redacted; what was presented is classified in [`AuthSeen`], so a test can
//! assert that the real key arrived without the key ever being printed.
//!
//! It must never listen beyond the address it is given (tests give loopback).

pub mod openai;
pub mod scenario;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use sealpod_resources::secret::{REDACTED, Secret, is_sealed_token};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use scenario::{Outcome, ScenarioDefaults};
use wire::ErrorReply;

/// TLS settings of the fake model.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Host names (and IP literals) the self-signed certificate is valid for.
    pub host_names: Vec<String>,
    /// Where to write the certificate PEM, if anywhere.
    pub cert_out: Option<PathBuf>,
}

/// Configuration of a fake model server.
#[derive(Debug, Clone)]
pub struct FakeModelConfig {
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
    /// The only key accepted.
    pub api_key: Secret,
    /// Scenario defaults (default scenario, `retry-after`, chunk size).
    pub scenarios: ScenarioDefaults,
}

impl FakeModelConfig {
    /// Plain HTTP on an ephemeral loopback port with the `answer` default.
    pub fn plain(api_key: &str) -> FakeModelConfig {
        FakeModelConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            api_key: Secret::new(api_key),
            scenarios: ScenarioDefaults::default(),
        }
    }

    /// TLS for `localhost` and `127.0.0.1` on an ephemeral loopback port.
    pub fn tls(api_key: &str) -> FakeModelConfig {
        FakeModelConfig {
            tls: Some(TlsSettings {
                host_names: vec!["localhost".into(), "127.0.0.1".into()],
                cert_out: None,
            }),
            ..FakeModelConfig::plain(api_key)
        }
    }
}

/// The scenario settings a config file may carry (JSON).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScenarioFile {
    /// Scenario used when a request has no marker.
    pub default_scenario: Option<String>,
    /// `retry-after` seconds on 429/529.
    pub retry_after_secs: Option<u64>,
    /// Largest text delta in characters.
    pub chunk_chars: Option<usize>,
}

impl ScenarioFile {
    /// Applies the file's settings over `defaults`.
    pub fn apply(&self, defaults: &mut ScenarioDefaults) {
        if let Some(s) = &self.default_scenario {
            defaults.default_scenario.clone_from(s);
        }
        if let Some(s) = self.retry_after_secs {
            defaults.retry_after_secs = s;
        }
        if let Some(c) = self.chunk_chars {
            defaults.chunk_chars = c;
        }
    }
}

/// What a request presented as its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSeen {
    /// The configured real key.
    RealKey,
    /// A sealed token (`sp_sealed_…`): the proxy did not swap it.
    SealedToken,
    /// Some other value.
    Other,
    /// No key.
    Missing,
}

/// One request as the fake model received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1-based order of arrival.
    pub seq: u64,
    /// Milliseconds since the server started.
    pub at_ms: u64,
    /// Unix time of arrival in milliseconds, comparable with the other clocks of the machine
    /// (the session-latency benchmark measures against it).
    pub received_unix_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order; the key slots' values are redacted.
    pub headers: Vec<(String, String)>,
    /// What was presented as the key.
    pub auth: AuthSeen,
    /// True when the real key appeared anywhere but the key slot (a leak to report).
    pub real_key_elsewhere: bool,
    /// The body as JSON (`null` if it was not JSON).
    pub body: Value,
    /// The scenario chosen (empty when refused before choosing).
    pub scenario: String,
    /// The status answered.
    pub status: u16,
}

impl RecordedRequest {
    /// The value of a header (first occurrence), case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why the fake model could not start.
#[derive(Debug, thiserror::Error)]
pub enum FakeModelError {
    /// Binding the listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating the certificate failed.
    #[error("generating the certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// Building the TLS configuration failed.
    #[error("configuring TLS: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    /// Writing the certificate file failed.
    #[error("writing the certificate to {path}: {source}")]
    WriteCert {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Inner {
    api_key: Secret,
    scenarios: ScenarioDefaults,
    started: Instant,
    log: Mutex<Vec<RecordedRequest>>,
    storms: Mutex<HashMap<u64, u32>>,
    next_seq: AtomicU64,
}

impl Inner {
    fn log(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A poisoned lock only means a test panicked mid-push; the data is still usable.
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake model. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeModel {
    addr: SocketAddr,
    base_url: String,
    cert_pem: Option<String>,
    inner: Arc<Inner>,
    _shutdown: oneshot::Sender<()>,
}

impl FakeModel {
    /// Starts the server on the current tokio runtime.
    pub async fn start(config: FakeModelConfig) -> Result<FakeModel, FakeModelError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| FakeModelError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FakeModelError::Bind {
                addr: config.listen,
                source,
            })?;
        let inner = Arc::new(Inner {
            api_key: config.api_key,
            scenarios: config.scenarios,
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            storms: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(0),
        });
        let (acceptor, cert_pem, base_url) = match &config.tls {
            Some(tls) => {
                let certified = rcgen::generate_simple_self_signed(tls.host_names.clone())?;
                let pem = certified.cert.pem();
                if let Some(path) = &tls.cert_out {
                    std::fs::write(path, &pem).map_err(|source| FakeModelError::WriteCert {
                        path: path.clone(),
                        source,
                    })?;
                }
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    certified.signing_key.serialize_der(),
                ));
                let cert = CertificateDer::from(certified.cert.der().to_vec());
                let mut server = ServerConfig::builder()
                    .with_no_client_auth()
                    .with_single_cert(vec![cert], key)?;
                server.alpn_protocols = vec![b"http/1.1".to_vec()];
                let host = tls
                    .host_names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "localhost".into());
                (
                    Some(TlsAcceptor::from(Arc::new(server))),
                    Some(pem),
                    format!("https://{host}:{}", addr.port()),
                )
            }
            None => (None, None, format!("http://{addr}")),
        };
        let (tx, rx) = oneshot::channel();
        tokio::spawn(serve(listener, acceptor, router(inner.clone()), rx));
        Ok(FakeModel {
            addr,
            base_url,
            cert_pem,
            inner,
            _shutdown: tx,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://HOST:PORT` (first host name) or `http://ADDR`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The self-signed certificate, when serving TLS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.log().clone()
    }

    /// Only the model calls (`POST /v1/messages` and `POST /v1/responses`).
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| Api::of(&r.path).is_some())
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.inner.log().clear();
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/_fake/requests", get(list_requests).delete(clear_requests))
        .fallback(messages)
        .with_state(inner)
}

async fn list_requests(State(inner): State<Arc<Inner>>) -> Json<Vec<RecordedRequest>> {
    Json(inner.log().clone())
}

async fn clear_requests(State(inner): State<Arc<Inner>>) -> StatusCode {
    inner.log().clear();
    StatusCode::NO_CONTENT
}

const KEY_SLOTS: [&str; 2] = ["x-api-key", "authorization"];

/// The model API a request path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Anthropic's `/v1/messages`.
    Messages,
    /// OpenAI's `/v1/responses`.
    Responses,
}

impl Api {
    fn of(path: &str) -> Option<Api> {
        match path.split('?').next() {
            Some("/v1/messages") => Some(Api::Messages),
            Some("/v1/responses") => Some(Api::Responses),
            _ => None,
        }
    }
}

fn classify(headers: &HeaderMap, key: &Secret, api: Option<Api>) -> AuthSeen {
    let bearer = || {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    };
    let x_api_key = || {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let presented = match api {
        Some(Api::Responses) => bearer(),
        _ => x_api_key().or_else(bearer),
    };
    match presented {
        None => AuthSeen::Missing,
        Some(v) if key.constant_time_eq(&v) => AuthSeen::RealKey,
        Some(v) if is_sealed_token(&v) => AuthSeen::SealedToken,
        Some(_) => AuthSeen::Other,
    }
}

fn validate(body: &Value) -> Result<(), ErrorReply> {
    if !body["model"].is_string() {
        return Err(ErrorReply::invalid_request("model: Field required"));
    }
    if !body["max_tokens"].is_u64() {
        return Err(ErrorReply::invalid_request("max_tokens: Field required"));
    }
    if !body["messages"].is_array() {
        return Err(ErrorReply::invalid_request("messages: Field required"));
    }
    Ok(())
}

async fn messages(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let received_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let api = Api::of(uri.path()).filter(|_| method == Method::POST);
    let auth = classify(&headers, &inner.api_key, api);
    let real = inner.api_key.expose();
    let raw_body = String::from_utf8_lossy(&body);
    let mut real_key_elsewhere = !real.is_empty() && raw_body.contains(real);
    let mut recorded_headers = Vec::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if KEY_SLOTS.contains(&name.as_str()) {
            recorded_headers.push((name.to_string(), REDACTED.to_owned()));
        } else {
            real_key_elsewhere |= !real.is_empty() && value.contains(real);
            recorded_headers.push((name.to_string(), value.replace(real, REDACTED)));
        }
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut scenario = String::new();
    let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("req_fake_{seq:06}");
    let response = match api {
        None => ErrorReply {
            status: 404,
            kind: "not_found_error",
            message: "Not found".into(),
            retry_after: None,
        }
        .into_response(&request_id),
        Some(api) => {
            let answer = if auth != AuthSeen::RealKey {
                Err(ErrorReply::unauthorized())
            } else {
                match api {
                    Api::Messages => validate(&json).map(|()| json.clone()),
                    Api::Responses => openai::validate(&json).map(|()| openai::as_messages(&json)),
                }
                .map(|conversation| {
                    scenario =
                        scenario::choose(&conversation, &inner.scenarios.default_scenario).name;
                    let mut storms = inner
                        .storms
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    scenario::decide(&conversation, &inner.scenarios, &mut storms)
                })
            };
            let outcome = answer.unwrap_or_else(Outcome::Error);
            let model = json["model"].as_str().unwrap_or_default();
            let stream = json["stream"] == Value::Bool(true);
            match (api, outcome) {
                (Api::Messages, Outcome::Error(e)) => e.into_response(&request_id),
                (Api::Messages, Outcome::Reply(reply)) => {
                    let id = format!("msg_fake{seq:06}");
                    if stream {
                        wire::sse_response(&reply, &id, model, &request_id)
                    } else {
                        wire::json_response(&reply, &id, model, &request_id)
                    }
                }
                (Api::Responses, Outcome::Error(e)) => openai::error_response(e, &request_id),
                (Api::Responses, Outcome::Reply(reply)) => {
                    let id = format!("resp_fake{seq:06}");
                    if stream {
                        openai::sse_response(&reply, &id, model, &json, &request_id)
                    } else {
                        openai::json_response(&reply, &id, model, &json, &request_id)
                    }
                }
            }
        }
    };
    let record = RecordedRequest {
        seq,
        at_ms: inner.started.elapsed().as_millis() as u64,
        received_unix_ms,
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: recorded_headers,
        auth,
        real_key_elsewhere,
        body: if real.is_empty() {
            json
        } else {
            redact_value(json, real)
        },
        scenario,
        status: response.status().as_u16(),
    };
    inner.log().push(record);
    response
}

fn redact_value(value: Value, real: &str) -> Value {
    match value {
        Value::String(s) if s.contains(real) => Value::String(s.replace(real, REDACTED)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| redact_value(v, real)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, redact_value(v, real)))
                .collect(),
        ),
        other => other,
    }
}
