//! The Anthropic Messages API wire format as the fake model speaks it: a scripted [`Reply`]
//! rendered either as a server-sent event stream (`message_start`, `content_block_*`, `ping`,
//! `message_delta`, `message_stop`) or as one JSON message, and the error envelope.
//!
//! It owns only rendering; it must never decide what to answer (that is `scenario`).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};

/// One content block of a scripted assistant message.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Plain text.
    Text(String),
    /// A tool call.
    ToolUse {
        /// `toolu_…`
        id: String,
        /// Tool name.
        name: String,
        /// Tool input (a JSON object).
        input: Value,
    },
}

/// Token usage reported by a reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyUsage {
    /// `input_tokens`
    pub input_tokens: u64,
    /// `output_tokens`
    pub output_tokens: u64,
    /// `cache_creation_input_tokens`
    pub cache_creation_input_tokens: u64,
    /// `cache_read_input_tokens`
    pub cache_read_input_tokens: u64,
}

impl ReplyUsage {
    fn to_json(self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        })
    }
}

/// A scripted assistant message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The content blocks, in order.
    pub blocks: Vec<Block>,
    /// `end_turn` or `tool_use`.
    pub stop_reason: &'static str,
    /// Reported usage.
    pub usage: ReplyUsage,
    /// Largest text delta, in characters.
    pub chunk_chars: usize,
    /// Pause before each delta frame (a slow stream).
    pub delay: Duration,
}

/// A scripted error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// HTTP status (401, 429, 529, …).
    pub status: u16,
    /// Anthropic error type (`authentication_error`, `rate_limit_error`, `overloaded_error`).
    pub kind: &'static str,
    /// Message.
    pub message: String,
    /// `retry-after` header in seconds, when set.
    pub retry_after: Option<u64>,
}

impl ErrorReply {
    /// 401 `authentication_error`.
    pub fn unauthorized() -> ErrorReply {
        ErrorReply {
            status: 401,
            kind: "authentication_error",
            message: "invalid x-api-key".into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: &str) -> ErrorReply {
        ErrorReply {
            status: 400,
            kind: "invalid_request_error",
            message: message.into(),
            retry_after: None,
        }
    }

    /// The error envelope as JSON.
    pub fn body(&self) -> Value {
        json!({"type": "error", "error": {"type": self.kind, "message": self.message}})
    }

    /// Renders the HTTP answer.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::new(Body::from(self.body().to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        insert_request_id(headers, REQUEST_ID, request_id);
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == "overloaded_error" || self.kind == "rate_limit_error" {
            // The real API marks its retriable errors this way; the SDKs read it.
            headers.insert("x-should-retry", HeaderValue::from_static("true"));
        }
        response
    }
}

/// Anthropic's request id header.
const REQUEST_ID: &str = "request-id";

/// Sets the request id under `name` (`request-id` for Anthropic, `x-request-id` for OpenAI).
pub(super) fn insert_request_id(
    headers: &mut axum::http::HeaderMap,
    name: &'static str,
    request_id: &str,
) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(name, value);
    }
}

/// A whole JSON answer, its request id under `id_header`.
pub(super) fn json_answer(
    body: &Value,
    id_header: &'static str,
    request_id: &str,
) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    insert_request_id(headers, id_header, request_id);
    response
}

/// A streamed answer: `frames` are sent one by one, honouring their pauses; its request id
/// under `id_header`.
pub(super) fn streamed_answer(
    frames: Vec<(Duration, Bytes)>,
    id_header: &'static str,
    request_id: &str,
) -> Response<Body> {
    let stream = futures::stream::unfold(frames.into_iter(), |mut rest| async move {
        let (pause, bytes) = rest.next()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<Bytes, Infallible>(bytes), rest))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    insert_request_id(headers, id_header, request_id);
    response
}

fn block_json_final(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

/// The whole message as the non-streaming answer.
pub fn message_json(reply: &Reply, id: &str, model: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks.iter().map(block_json_final).collect::<Vec<_>>(),
        "stop_reason": reply.stop_reason,
        "stop_sequence": null,
        "usage": reply.usage.to_json(),
    })
}

/// Renders the non-streaming answer.
pub fn json_response(reply: &Reply, id: &str, model: &str, request_id: &str) -> Response<Body> {
    json_answer(&message_json(reply, id, model), REQUEST_ID, request_id)
}

fn frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Splits `text` into pieces of at most `max` characters (none for an empty text).
pub(super) fn chunks(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    chars
        .chunks(max.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// The SSE frames of a streamed reply, each with the pause to take before sending it.
pub fn sse_frames(reply: &Reply, id: &str, model: &str) -> Vec<(Duration, Bytes)> {
    let no_wait = Duration::ZERO;
    let mut frames = Vec::new();
    let start_usage = ReplyUsage {
        output_tokens: 1,
        ..reply.usage
    };
    frames.push((
        no_wait,
        frame(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": start_usage.to_json(),
            }}),
        ),
    ));
    for (index, block) in reply.blocks.iter().enumerate() {
        let start = match block {
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        };
        frames.push((
            no_wait,
            frame(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": start}),
            ),
        ));
        if index == 0 {
            frames.push((no_wait, frame("ping", &json!({"type": "ping"}))));
        }
        let deltas: Vec<Value> = match block {
            Block::Text(text) => chunks(text, reply.chunk_chars)
                .into_iter()
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect(),
            Block::ToolUse { input, .. } => {
                // The real API opens a tool_use block with an empty partial_json.
                let mut pieces = vec![String::new()];
                pieces.extend(chunks(&input.to_string(), reply.chunk_chars));
                pieces
                    .into_iter()
                    .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
                    .collect()
            }
        };
        for delta in deltas {
            frames.push((
                reply.delay,
                frame(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ),
            ));
        }
        frames.push((
            no_wait,
            frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ),
        ));
    }
    frames.push((
        no_wait,
        frame(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": reply.usage.output_tokens}}),
        ),
    ));
    frames.push((
        no_wait,
        frame("message_stop", &json!({"type": "message_stop"})),
    ));
    frames
}

/// Renders the streaming answer: frames are sent one by one, honouring their pauses.
pub fn sse_response(reply: &Reply, id: &str, model: &str, request_id: &str) -> Response<Body> {
    streamed_answer(sse_frames(reply, id, model), REQUEST_ID, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Reply {
        Reply {
            blocks: vec![
                Block::Text("Hello there".into()),
                Block::ToolUse {
                    id: "toolu_1".into(),
                    name: "bash".into(),
                    input: json!({"command": "ls"}),
                },
            ],
            stop_reason: "tool_use",
            usage: ReplyUsage {
                input_tokens: 10,
                output_tokens: 5,
                ..ReplyUsage::default()
            },
            chunk_chars: 4,
            delay: Duration::ZERO,
        }
    }

    #[test]
    fn stream_has_the_anthropic_event_order_and_reassembles() {
        let frames = sse_frames(&reply(), "msg_1", "m");
        let events: Vec<Value> = frames
            .iter()
            .map(|(_, b)| {
                let text = std::str::from_utf8(b).expect("utf8");
                let data = text
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data line");
                serde_json::from_str(data).expect("json")
            })
            .collect();
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["type"].as_str().expect("type"))
            .collect();
        assert_eq!(types.first(), Some(&"message_start"));
        assert_eq!(types[1..3], ["content_block_start", "ping"]);
        assert_eq!(types[types.len() - 2..], ["message_delta", "message_stop"]);
        let text: String = events
            .iter()
            .filter(|e| e["delta"]["type"] == "text_delta")
            .map(|e| e["delta"]["text"].as_str().expect("text"))
            .collect();
        assert_eq!(text, "Hello there");
        let json_text: String = events
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().expect("partial"))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json_text).expect("json"),
            json!({"command": "ls"})
        );
        assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn json_message_has_every_field() {
        let v = message_json(&reply(), "msg_1", "m");
        assert_eq!(v["content"][1]["input"]["command"], "ls");
        assert_eq!(v["usage"]["input_tokens"], 10);
        assert_eq!(v["stop_sequence"], Value::Null);
    }
}
