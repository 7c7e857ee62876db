//! The operator's error type: each variant names the failed operation, and its
//! [`Error::label`] is the metric label and Event reason.
//!
//! Messages never carry a credential value, a sealed token or a runtime token.

use std::time::Duration;

/// Why a reconcile or a start-up step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{op} failed: {source}")]
    Kube {
        /// What was being done (e.g. `apply pod`).
        op: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Stored key material is unusable.
    #[error("sealing keys: {0}")]
    Keys(#[from] KeysError),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Revoking a deleted session's runtime tokens failed (retried until the revoke timeout).
    #[error("revoking runtime tokens: {0}")]
    Revoke(#[from] RevokeError),
    /// A child object could not be built (its proxy configuration does not serialize).
    #[error("building {what}: {source}")]
    Build {
        /// The object.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_saphyr::SerializeError,
    },
    /// The finalizer helper failed around a reconcile (adding or removing the finalizer).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Another writer kept changing an object this one had to change (retried later).
    #[error("{0}: changed concurrently")]
    Conflict(&'static str),
    /// Serving `/healthz`, `/readyz` and `/metrics` failed.
    #[error("health and metrics listener: {0}")]
    Listener(#[source] std::io::Error),
}

/// What is wrong with stored key material (messages name Secrets and entries, never a key).
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A key Secret lacks its entry.
    #[error("{secret} has no `{entry}`")]
    MissingEntry {
        /// The Secret.
        secret: String,
        /// The entry.
        entry: &'static str,
    },
    /// A key Secret's entry is not a usable key.
    #[error("{secret} has no usable `{entry}`")]
    Unusable {
        /// The Secret.
        secret: &'static str,
        /// The entry.
        entry: &'static str,
    },
    /// The key set is not UTF-8 text.
    #[error("key set is not UTF-8")]
    NotUtf8,
    /// The key set, or a sealed value's key id, does not parse.
    #[error(transparent)]
    Sealing(#[from] sealpod_resources::sealing::SealingError),
    /// The public keys do not serialize.
    #[error("public keys do not serialize: {0}")]
    PublicKeys(#[source] serde_json::Error),
    /// Another replica created the key set, which then could not be read.
    #[error("sealing keys vanished after a conflict")]
    Vanished,
}

/// Why the API server did not revoke a session's runtime tokens.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The request could not be built (a malformed runtime API URL).
    #[error("building the request to {url}: {source}")]
    Request {
        /// The revoke URL.
        url: String,
        /// The error.
        #[source]
        source: http::Error,
    },
    /// No answer in time.
    #[error("{url} did not answer within {secs} s")]
    Timeout {
        /// The revoke URL.
        url: String,
        /// The bound.
        secs: u64,
    },
    /// The connection or the exchange failed.
    #[error("{url}: {source}")]
    Send {
        /// The revoke URL.
        url: String,
        /// The error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The API server refused.
    #[error("{url} answered {code}")]
    Status {
        /// The revoke URL.
        url: String,
        /// The HTTP status.
        code: u16,
    },
}

impl Error {
    /// Wraps a kube error with the operation it failed.
    pub fn kube(op: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { op, source }
    }

    /// Stable label of the variant: metric label value and Event reason.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubeError",
            Error::Keys(_) => "KeysError",
            Error::Config(_) => "ConfigError",
            Error::Revoke(_) => "RevokeError",
            Error::Build { .. } => "BuildError",
            Error::Finalizer(_) => "FinalizerError",
            Error::Listener(_) => "ListenerError",
            Error::Conflict(_) => "ConflictError",
        }
    }

    /// How long to wait before retrying. A bad spec is never an `Error` (it is reported in
    /// status and waits for a change), so every error here is transient.
    pub fn retry_after(&self, attempt: u32) -> Duration {
        crate::config::backoff(Duration::from_millis(500), Duration::from_secs(60), attempt)
    }
}

/// True when a kube error is an API answer with this HTTP code.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
