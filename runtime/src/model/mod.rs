//! The model API client: one streaming call per model step, parsed incrementally from
//! server-sent events into the assistant message, and the classification of failures into auth
//! (never retried), retriable (429/529/5xx/connection, with `retry-after`) and fatal.
//!
//! The conversation is kept in one shape whichever provider runs it (Anthropic's content blocks:
//! `text`, `tool_use`, `tool_result`); each provider's module ([`anthropic`], [`openai`])
//! implements [`Wire`]: how a call is written and how its stream is read back into that shape.
//! The key sent is whatever the provider's key variable holds (in a sandbox, the sealed token that
//! the sidecar swaps); only the provider's module writes it, into its header, and it is never
//! logged.

mod anthropic;
mod openai;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use sealpod_resources::runtime_api::Usage;
use serde_json::Value;

use crate::config::{ModelSettings, ProviderAccess};
use crate::net::{self, Endpoint, Trust};

/// A model call that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// 401/403: the key was refused. Never retried.
    #[error("model API refused the credentials ({status}): {message}")]
    Auth {
        /// HTTP status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// 429/529/5xx, a broken stream or connection: may succeed later.
    #[error("model API unavailable ({}): {message}", status.map_or_else(|| "no answer".to_owned(), |s| s.to_string()))]
    Retriable {
        /// HTTP status, when one was received.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// The server's `retry-after`, when given.
        retry_after: Option<Duration>,
    },
    /// Any other refusal (a bad request): retrying would not help.
    #[error("model API rejected the request ({status}): {message}")]
    Fatal {
        /// HTTP status.
        status: u16,
        /// The API's message.
        message: String,
    },
}

/// A complete assistant message.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantMessage {
    /// Content blocks in request form (`text`, `tool_use`).
    pub content: Vec<Value>,
    /// `end_turn`, `tool_use`, `max_tokens`, ….
    pub stop_reason: String,
    /// Usage reported by the stream.
    pub usage: Usage,
}

/// What one call sends.
#[derive(Debug, Clone, Copy)]
pub struct ModelRequest<'a> {
    /// `provider/model`, as the session pinned it.
    pub model: &'a str,
    /// System prompt.
    pub system: &'a str,
    /// The conversation.
    pub messages: &'a [Value],
    /// Tool definitions.
    pub tools: &'a Value,
    /// `max_tokens`.
    pub max_tokens: u32,
}

/// One provider's wire format.
trait Wire: Sync {
    /// The HTTP request of one streaming call (`model` without its `provider/` prefix).
    fn request(
        &self,
        base: &Endpoint,
        key: &str,
        model: &str,
        request: &ModelRequest<'_>,
    ) -> Result<Request<Full<Bytes>>, http::Error>;

    /// A fresh reader of one call's event stream.
    fn reader(&self) -> Box<dyn StreamReader + Send>;
}

/// Reads one call's server-sent events into the assistant message.
trait StreamReader {
    /// Applies one event; returns the message once the stream says it is complete.
    fn apply(&mut self, event: &SseEvent) -> Result<Option<AssistantMessage>, ModelError>;
}

/// The wire format of a provider of the table, by name.
fn wire(provider: &str) -> Option<&'static dyn Wire> {
    match provider {
        "anthropic" => Some(&anthropic::Messages),
        "openai" => Some(&openai::Responses),
        _ => None,
    }
}

/// The model API client.
#[derive(Debug, Clone)]
pub struct ModelClient {
    providers: Vec<ProviderAccess>,
    proxy: Option<Endpoint>,
    no_proxy: Vec<String>,
    trust: Arc<Trust>,
}

impl ModelClient {
    /// A client from the model settings and trust store.
    pub fn new(settings: &ModelSettings, trust: Arc<Trust>) -> ModelClient {
        ModelClient {
            providers: settings.providers.clone(),
            proxy: settings.proxy.clone(),
            no_proxy: settings.no_proxy.clone(),
            trust,
        }
    }

    /// One streaming call to the API of the model's provider.
    pub async fn stream(&self, request: ModelRequest<'_>) -> Result<AssistantMessage, ModelError> {
        let fatal = |message: String| ModelError::Fatal { status: 0, message };
        let (provider, model) = request
            .model
            .split_once('/')
            .ok_or_else(|| fatal(format!("model `{}` names no provider", request.model)))?;
        let access = self
            .providers
            .iter()
            .find(|a| a.provider.name == provider)
            .ok_or_else(|| {
                let hint = sealpod_resources::provider::named(provider)
                    .map_or_else(String::new, |p| format!(" ({} is not set)", p.key_env));
                fatal(format!("no key for provider `{provider}`{hint}"))
            })?;
        let wire = wire(provider).ok_or_else(|| fatal(format!("unknown provider `{provider}`")))?;
        let http_request = wire
            .request(&access.base, access.api_key.expose(), model, &request)
            .map_err(|e| fatal(e.to_string()))?;
        let proxy = self
            .proxy
            .as_ref()
            .filter(|_| !access.base.bypasses_proxy(&self.no_proxy));
        let response = net::send(&access.base, proxy, &self.trust, http_request)
            .await
            .map_err(|e| ModelError::Retriable {
                status: None,
                message: e.to_string(),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            let retry_after = retry_after(response.headers());
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            // Both providers answer errors as `{"error": {"message": …}}`.
            let envelope: Value = serde_json::from_slice(&body).unwrap_or_default();
            let message = envelope["error"]["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            return Err(classify(status, message, retry_after));
        }
        let mut body = response.into_body();
        let mut parser = SseParser::default();
        let mut reader = wire.reader();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ModelError::Retriable {
                status: Some(200),
                message: format!("stream broke: {e}"),
                retry_after: None,
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for event in parser.push(&data) {
                if let Some(done) = reader.apply(&event)? {
                    return Ok(done);
                }
            }
        }
        Err(ModelError::Retriable {
            status: Some(200),
            message: "stream ended before the message was complete".into(),
            retry_after: None,
        })
    }
}

/// A tool call's input from the JSON text the stream carried (`{}` when empty). Text that does
/// not parse is a broken stream: retried.
fn tool_input(text: &str) -> Result<Value, ModelError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(text).map_err(|e| ModelError::Retriable {
        status: Some(200),
        message: format!("tool input did not parse: {e}"),
        retry_after: None,
    })
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// Maps an error status to its class.
pub fn classify(status: u16, message: String, retry_after: Option<Duration>) -> ModelError {
    match status {
        401 | 403 => ModelError::Auth { status, message },
        408 | 409 | 429 | 500..=599 => ModelError::Retriable {
            status: Some(status),
            message,
            retry_after,
        },
        _ => ModelError::Fatal { status, message },
    }
}

/// Splits a byte stream into SSE events (`event`, `data`).
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: String,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (empty when absent).
    pub event: String,
    /// The joined `data:` lines.
    pub data: String,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer
            .push_str(&String::from_utf8_lossy(bytes).replace("\r\n", "\n"));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = SseEvent {
                event: String::new(),
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event.event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if !event.data.is_empty() || !event.event.is_empty() {
                events.push(event);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        assert!(matches!(
            classify(401, "x".into(), None),
            ModelError::Auth { .. }
        ));
        assert!(matches!(
            classify(403, "x".into(), None),
            ModelError::Auth { .. }
        ));
        for s in [429, 500, 529] {
            assert!(matches!(
                classify(s, "x".into(), None),
                ModelError::Retriable { .. }
            ));
        }
        assert!(matches!(
            classify(400, "x".into(), None),
            ModelError::Fatal { .. }
        ));
    }
}
