//! The one error type of the public and runtime APIs, and the one place errors become responses:
//! `{"error":{"type","code","message","param"?,"request_id"}}` with the status of API.md §7/§14.
//!
//! Internal detail (store, Kubernetes, sealing errors) is logged here with the request id and
//! never returned: the body says only "internal error". Never put a secret in a message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::wire::{ErrorEnvelope, ErrorObject};

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, or `req_unknown` outside a request.
pub(crate) fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "req_unknown".to_owned())
}

/// Everything a handler can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid`: a field is missing or wrong.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The offending field.
        param: Option<String>,
    },
    /// 400 `invalid_json`: the body is not the JSON the route takes. The message names the field
    /// and the expected type, never the value sent (`input::json_body`).
    #[error("{message}")]
    InvalidJson {
        /// What is wrong.
        message: String,
        /// The offending field, when known.
        param: Option<String>,
    },
    /// 401 `unauthorized`: no, unknown, expired or forged credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `forbidden`: a valid credential without the needed scope.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 `not_found` (also for another tenant's objects).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 with a specific type (`conflict`, `idempotency_conflict`, `session_archived`, …).
    #[error("{message}")]
    Conflict {
        /// The error type.
        kind: &'static str,
        /// What conflicts.
        message: String,
    },
    /// 422 with a specific type (`no_credential`, `managed_unavailable`).
    #[error("{message}")]
    Unprocessable {
        /// The error type.
        kind: &'static str,
        /// Why.
        message: String,
    },
    /// 503 with a specific type (`sealing_unavailable`, `not_ready`).
    #[error("{message}")]
    Unavailable {
        /// The error type.
        kind: &'static str,
        /// Why.
        message: String,
    },
    /// 500 `internal`: detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 `invalid` naming the field.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// A 400 `invalid_json`, naming the field when known.
    pub fn invalid_json(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidJson {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// A 409 of the given type.
    pub fn conflict(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            kind,
            message: message.into(),
        }
    }

    /// A 422 of the given type.
    pub fn unprocessable(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            kind,
            message: message.into(),
        }
    }

    /// A 500 whose detail is only logged.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(detail.to_string())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } | ApiError::InvalidJson { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable type (also sent as `code`).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid",
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { kind, .. }
            | ApiError::Unprocessable { kind, .. }
            | ApiError::Unavailable { kind, .. } => kind,
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// A store that cannot be reached (its connection lost, a restart, a full pool) is a
    /// `503 store_unavailable` with `Retry-After`, for the client to retry; the detail is logged.
    /// Every other store error is `500 internal`.
    fn from(e: crate::store::StoreError) -> ApiError {
        if !e.is_unreachable() {
            return ApiError::internal(e);
        }
        tracing::warn!(request_id = %current_request_id(), error = %e, "the store is unreachable");
        ApiError::Unavailable {
            kind: "store_unavailable",
            message: "the store cannot be reached now; retry".to_owned(),
        }
    }
}

impl From<crate::kube::KubeError> for ApiError {
    fn from(e: crate::kube::KubeError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(request_id = %request_id, error = %detail, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let param = match &self {
            ApiError::Invalid { param, .. } | ApiError::InvalidJson { param, .. } => param.clone(),
            _ => None,
        };
        let envelope = ErrorEnvelope {
            error: ErrorObject {
                type_: self.kind(),
                code: self.kind(),
                message,
                request_id,
                param,
            },
        };
        let mut response = (status, axum::Json(envelope)).into_response();
        if matches!(self, ApiError::Unavailable { .. }) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn errors_render_the_envelope_with_the_request_id() {
        let response = REQUEST_ID
            .scope("req_test".to_owned(), async {
                ApiError::invalid("ttl", "ttl must be 60-86400").into_response()
            })
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            value,
            json!({"error": {"type": "invalid", "code": "invalid", "message": "ttl must be 60-86400",
                "param": "ttl", "request_id": "req_test"}})
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_503_to_retry_and_other_store_errors_are_internal() {
        let failed = |source| {
            ApiError::from(crate::store::StoreError::Db {
                op: "append",
                source,
            })
        };
        let lost = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let response = failed(sqlx::Error::Io(lost)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["error"]["type"], "store_unavailable");
        assert!(!value.to_string().contains("append"), "no detail: {value}");

        assert_eq!(
            failed(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            failed(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn internal_detail_is_not_returned() {
        let response = ApiError::internal("db password is hunter2").into_response();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let text = String::from_utf8(body.to_vec()).expect("utf8");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("\"internal\""));
    }
}
