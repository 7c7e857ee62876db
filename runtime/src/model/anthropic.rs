//! Anthropic's Messages API (`POST /v1/messages`, `stream: true`): the conversation is already
//! in its shape; the key goes in `x-api-key`.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use sealpod_resources::runtime_api::Usage;
use serde_json::{Value, json};

use super::{AssistantMessage, ModelError, ModelRequest, SseEvent, StreamReader, Wire, tool_input};
use crate::net::Endpoint;

/// The `anthropic-version` header value.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Messages API.
pub(super) struct Messages;

impl Wire for Messages {
    fn request(
        &self,
        base: &Endpoint,
        key: &str,
        model: &str,
        request: &ModelRequest<'_>,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let body = json!({
            "model": model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": request.messages,
            "tools": request.tools,
            "stream": true,
        });
        Request::builder()
            .method(Method::POST)
            .uri(format!("{}/v1/messages", base.prefix))
            .header("x-api-key", key)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::from(body.to_string())))
    }

    fn reader(&self) -> Box<dyn StreamReader + Send> {
        Box::<StreamAccumulator>::default()
    }
}

/// Builds the assistant message from stream events.
#[derive(Debug, Default)]
struct StreamAccumulator {
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

impl StreamReader for StreamAccumulator {
    /// Applies one event; returns the message at `message_stop`.
    fn apply(&mut self, event: &SseEvent) -> Result<Option<AssistantMessage>, ModelError> {
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
                    block["input"] = tool_input(&self.partial_json[index])?;
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
    use crate::model::SseParser;

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
