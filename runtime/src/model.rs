//! The Anthropic Messages API client: one streaming call (`stream: true`), parsed incrementally
//! from server-sent events into the assistant message, and the classification of failures into
//! auth (never retried), retriable (429/529/5xx/connection, with `retry-after`) and fatal.
//!
//! The key sent is whatever `ANTHROPIC_API_KEY` holds (in a sandbox, the sealed token that the
//! sidecar swaps). It is only ever written into the `x-api-key` header, never logged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use sealpod_resources::runtime_api::Usage;
use serde_json::{Value, json};
use tokio_rustls::rustls::ClientConfig;

use crate::config::ModelSettings;
use crate::net::{self, Endpoint};

/// The `anthropic-version` header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

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
    /// Model name (without a `provider/` prefix).
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

/// The model API client.
#[derive(Debug, Clone)]
pub struct ModelClient {
    base: Endpoint,
    proxy: Option<Endpoint>,
    key: sealpod_resources::secret::Secret,
    tls: Arc<ClientConfig>,
}

impl ModelClient {
    /// A client from the model settings and trust store.
    pub fn new(settings: &ModelSettings, tls: Arc<ClientConfig>) -> ModelClient {
        let proxy = settings
            .proxy
            .clone()
            .filter(|_| !settings.base.bypasses_proxy(&settings.no_proxy));
        ModelClient {
            base: settings.base.clone(),
            proxy,
            key: settings.api_key.clone(),
            tls,
        }
    }

    /// One streaming call.
    pub async fn stream(&self, request: ModelRequest<'_>) -> Result<AssistantMessage, ModelError> {
        let body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": request.messages,
            "tools": request.tools,
            "stream": true,
        });
        let http_request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/v1/messages", self.base.prefix))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ModelError::Fatal {
                status: 0,
                message: e.to_string(),
            })?;
        let response = net::send(&self.base, self.proxy.as_ref(), &self.tls, http_request)
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
            let envelope: Value = serde_json::from_slice(&body).unwrap_or_default();
            let message = envelope["error"]["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            return Err(classify(status, message, retry_after));
        }
        let mut body = response.into_body();
        let mut parser = SseParser::default();
        let mut message = StreamAccumulator::default();
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
                if let Some(done) = message.apply(&event)? {
                    return Ok(done);
                }
            }
        }
        Err(ModelError::Retriable {
            status: Some(200),
            message: "stream ended before message_stop".into(),
            retry_after: None,
        })
    }
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

/// Builds the assistant message from stream events.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    blocks: Vec<Value>,
    partial_json: Vec<String>,
    stop_reason: Option<String>,
    usage: Usage,
}

fn merge_usage(usage: &mut Usage, v: &Value) {
    let set = |field: &mut u64, key: &str| {
        if let Some(n) = v[key].as_u64() {
            *field = n;
        }
    };
    set(&mut usage.input_tokens, "input_tokens");
    set(&mut usage.output_tokens, "output_tokens");
    set(
        &mut usage.cache_creation_input_tokens,
        "cache_creation_input_tokens",
    );
    set(
        &mut usage.cache_read_input_tokens,
        "cache_read_input_tokens",
    );
}

impl StreamAccumulator {
    /// Applies one event; returns the message at `message_stop`.
    pub fn apply(&mut self, event: &SseEvent) -> Result<Option<AssistantMessage>, ModelError> {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return Ok(None);
        };
        let kind = data["type"].as_str().unwrap_or(event.event.as_str());
        match kind {
            "message_start" => merge_usage(&mut self.usage, &data["message"]["usage"]),
            "content_block_start" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                while self.blocks.len() <= index {
                    self.blocks.push(Value::Null);
                    self.partial_json.push(String::new());
                }
                self.blocks[index] = data["content_block"].clone();
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                let delta = &data["delta"];
                match (delta["type"].as_str(), self.blocks.get_mut(index)) {
                    (Some("text_delta"), Some(block)) => {
                        let text = format!(
                            "{}{}",
                            block["text"].as_str().unwrap_or_default(),
                            delta["text"].as_str().unwrap_or_default()
                        );
                        block["text"] = Value::String(text);
                    }
                    (Some("input_json_delta"), Some(_)) => {
                        self.partial_json[index]
                            .push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap_or(0) as usize;
                if let Some(block) = self.blocks.get_mut(index)
                    && block["type"] == "tool_use"
                {
                    let partial = self.partial_json[index].trim();
                    block["input"] = if partial.is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(partial).map_err(|e| ModelError::Retriable {
                            status: Some(200),
                            message: format!("tool input did not parse: {e}"),
                            retry_after: None,
                        })?
                    };
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_owned());
                }
                merge_usage(&mut self.usage, &data["usage"]);
            }
            "message_stop" => {
                let content = std::mem::take(&mut self.blocks)
                    .into_iter()
                    .filter(|b| b["type"] == "text" || b["type"] == "tool_use")
                    .collect();
                return Ok(Some(AssistantMessage {
                    content,
                    stop_reason: self.stop_reason.take().unwrap_or_else(|| "end_turn".into()),
                    usage: self.usage,
                }));
            }
            "error" => {
                let kind = data["error"]["type"].as_str().unwrap_or_default();
                let message = data["error"]["message"]
                    .as_str()
                    .unwrap_or("stream error")
                    .to_owned();
                return Err(match kind {
                    "authentication_error" => ModelError::Auth {
                        status: 401,
                        message,
                    },
                    "permission_error" => ModelError::Auth {
                        status: 403,
                        message,
                    },
                    "invalid_request_error" => ModelError::Fatal {
                        status: 400,
                        message,
                    },
                    _ => ModelError::Retriable {
                        status: None,
                        message,
                        retry_after: None,
                    },
                });
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_reassemble_into_a_message() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\r\n\r\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"bash\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\":\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"ls\\\"}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let mut parser = SseParser::default();
        let mut acc = StreamAccumulator::default();
        let mut done = None;
        for chunk in stream.as_bytes().chunks(7) {
            for event in parser.push(chunk) {
                if let Some(m) = acc.apply(&event).expect("no error") {
                    done = Some(m);
                }
            }
        }
        let message = done.expect("message_stop seen");
        assert_eq!(message.stop_reason, "tool_use");
        assert_eq!(
            message.content[0],
            json!({"type": "text", "text": "Hi there"})
        );
        assert_eq!(message.content[1]["input"], json!({"command": "ls"}));
        assert_eq!(
            (message.usage.input_tokens, message.usage.output_tokens),
            (7, 9)
        );
    }

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

    #[test]
    fn a_stream_error_event_is_retriable_when_overloaded() {
        let mut acc = StreamAccumulator::default();
        let event = SseEvent {
            event: "error".into(),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        };
        assert!(matches!(
            acc.apply(&event),
            Err(ModelError::Retriable { .. })
        ));
    }
}
