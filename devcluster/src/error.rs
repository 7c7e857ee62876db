//! Errors: `ApiError` is the one way a request fails, rendered as a Kubernetes `Status` with the
//! matching HTTP code and `reason`; `Error` is what the library API returns. Never put object
//! contents (secret data) into a message, only kinds, names and field paths.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// The `details` of a Status about one object; an empty group is left out, as kube-apiserver
/// leaves it out for the core group.
fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut details = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

/// One field cause of a 422 `Invalid`: the field path, kube-apiserver's `reason`, and the message
/// (`<kind of error>: <detail>`, as kube-apiserver writes it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl FieldError {
    /// A cause whose reason its message's leading words name, as kube-apiserver's error types
    /// print (`Required value`, `Forbidden`, `Unsupported value`, …; otherwise `Invalid value`).
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        let message = message.into();
        let reason = [
            ("Required value", "FieldValueRequired"),
            ("Forbidden", "FieldValueForbidden"),
            ("Unsupported value", "FieldValueNotSupported"),
            ("Duplicate value", "FieldValueDuplicate"),
            ("Too long", "FieldValueTooLong"),
            ("Too many", "FieldValueTooMany"),
        ]
        .iter()
        .find(|(words, _)| message.starts_with(words))
        .map_or("FieldValueInvalid", |(_, reason)| reason);
        FieldError {
            field: field.into(),
            reason,
            message,
        }
    }

    /// A value of the wrong type (its message reads `Invalid value`, like any invalid value).
    pub(crate) fn type_invalid(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueTypeInvalid",
            message: message.into(),
        }
    }
}

/// A failed API request, rendered as a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let what = qualified(group, plural);
        Self::new(404, "NotFound", format!("{what} \"{name}\" not found"))
            .with_details(details(name, group, plural))
    }

    /// No such resource; the message names no path, as kube-apiserver's does not.
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let what = qualified(group, plural);
        Self::new(
            409,
            "AlreadyExists",
            format!("{what} \"{name}\" already exists"),
        )
        .with_details(details(name, group, plural))
    }

    pub(crate) fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let what = qualified(group, plural);
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .with_details(details(name, group, plural))
    }

    /// A server-side apply conflict: `conflicts` is a list of (manager, field path).
    pub(crate) fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f})
            })
            .collect();
        let message = if lines.len() == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!(
                "Apply failed with {} conflicts: {}",
                lines.len(),
                lines.join("\n")
            )
        };
        Self::new(409, "Conflict", message).with_details(json!({"causes": causes}))
    }

    /// 422 Invalid, with its field causes.
    pub(crate) fn invalid(kind: &str, group: &str, name: &str, causes: &[FieldError]) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let parts: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if parts.len() == 1 {
            format!("{what} \"{name}\" is invalid: {}", parts[0])
        } else {
            format!("{what} \"{name}\" is invalid: [{}]", parts.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = details(name, group, kind);
        details["causes"] = Value::Array(causes);
        Self::new(422, "Invalid", message).with_details(details)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// A request body in a format the server does not read (kube-apiserver's wording).
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    }

    /// A patch of a type the resource does not take (kube-apiserver's wording).
    pub(crate) fn unsupported_patch_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml",
        )
    }

    /// A PATCH whose content type is no patch type at all (kube-apiserver's wording).
    pub(crate) fn unknown_patch_type() -> Self {
        Self::new(415, "UnsupportedMediaType", "415: Unsupported Media Type")
    }

    pub(crate) fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `Status` object of this error.
    pub(crate) fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// Errors of the library API (start-up, kubeconfig, CRD installation, state file).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or serving the listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing a file (kubeconfig, state file, token file) failed.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file had the wrong format.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Generating the certificate authority or the server certificate failed.
    #[error("generating TLS material: {0}")]
    Tls(String),
    /// Building a kube client failed.
    #[error("building a client: {0}")]
    Client(String),
    /// The server refused a request made through the library API.
    #[error("request refused: {0}")]
    Api(String),
    /// A wait (for a CRD to be served) ran out of time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e.to_string())
    }
}
