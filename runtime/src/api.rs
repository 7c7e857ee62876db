//! Client of the API server's runtime API (`docs/runtime-api.md`), using the shared wire types
//! of `sealpod_resources::runtime_api`.
//!
//! It owns transport and status mapping only; retry policy belongs to the caller. The runtime
//! token is sent as a bearer header and never logged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use sealpod_resources::runtime_api::{
    AppendRequest, AppendResponse, AppendedEvent, ClaimRequest, ClaimedTurn, CompleteTurnRequest,
    NewEvent, PREFIX, SessionInfo, Signal,
};
use sealpod_resources::secret::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::net::{self, Endpoint, Trust};

/// A failed runtime API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached or the exchange broke.
    #[error("runtime API unreachable: {0}")]
    Transport(String),
    /// The server answered an error.
    #[error("runtime API answered {status}: {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Error code from the envelope.
        code: String,
        /// Message from the envelope.
        message: String,
    },
    /// `409 turn_canceled`: the turn was cancelled.
    #[error("the turn was canceled")]
    TurnCanceled,
    /// The answer did not parse.
    #[error("runtime API answer did not parse: {0}")]
    Decode(String),
}

impl ApiError {
    /// True when a retry may succeed (transport failures and 5xx/429).
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429,
            ApiError::TurnCanceled | ApiError::Decode(_) => false,
        }
    }
}

/// The runtime API client.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    base: Endpoint,
    token: Secret,
    trust: Arc<Trust>,
    proxy: Option<Endpoint>,
}

impl RuntimeApi {
    /// A client for `base` authenticated by `token`. With `proxy`, calls go through it (in a
    /// sandbox the egress lock lets the runtime reach nothing but the proxy, and the proxy's
    /// allowlist carries the runtime API's host).
    pub fn new(
        base: Endpoint,
        token: Secret,
        trust: Arc<Trust>,
        proxy: Option<Endpoint>,
    ) -> RuntimeApi {
        RuntimeApi {
            base,
            token,
            trust,
            proxy,
        }
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ApiError> {
        let bytes = match body {
            Some(b) => {
                Bytes::from(serde_json::to_vec(b).map_err(|e| ApiError::Decode(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{PREFIX}{path}", self.base.prefix))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let response = net::send(&self.base, self.proxy.as_ref(), &self.trust, request)
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?
            .to_bytes();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if !status.is_success() {
            let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = envelope["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if status == StatusCode::CONFLICT
                && (code == "turn_canceled" || envelope["error"]["type"] == "turn_canceled")
            {
                return Err(ApiError::TurnCanceled);
            }
            return Err(ApiError::Status {
                status: status.as_u16(),
                code,
                message: envelope["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// `GET /session`.
    pub async fn session(&self) -> Result<SessionInfo, ApiError> {
        self.call::<(), SessionInfo>(Method::GET, "/session", None)
            .await?
            .ok_or_else(|| ApiError::Decode("empty session answer".into()))
    }

    /// `POST /claim`: the next turn, or `None` when nothing arrived within `wait_seconds`.
    pub async fn claim(&self, wait_seconds: u32) -> Result<Option<ClaimedTurn>, ApiError> {
        self.call(Method::POST, "/claim", Some(&ClaimRequest { wait_seconds }))
            .await
    }

    /// `POST /events`: appends `events` atomically (idempotent per `client_id`).
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendedEvent>, ApiError> {
        let answer: AppendResponse = self
            .call(Method::POST, "/events", Some(&AppendRequest { events }))
            .await?
            .ok_or_else(|| ApiError::Decode("empty append answer".into()))?;
        Ok(answer.events)
    }

    /// `POST /turns/{id}/complete`.
    pub async fn complete(
        &self,
        turn_id: &str,
        request: &CompleteTurnRequest,
    ) -> Result<(), ApiError> {
        self.call::<_, serde_json::Value>(
            Method::POST,
            &format!("/turns/{turn_id}/complete"),
            Some(request),
        )
        .await
        .map(|_| ())
    }

    /// `GET /turns/{id}/signal?wait_seconds=N`.
    pub async fn signal(&self, turn_id: &str, wait: Duration) -> Result<Signal, ApiError> {
        Ok(self
            .call::<(), Signal>(
                Method::GET,
                &format!("/turns/{turn_id}/signal?wait_seconds={}", wait.as_secs()),
                None,
            )
            .await?
            .unwrap_or_default())
    }
}
