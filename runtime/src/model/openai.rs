//! OpenAI's Responses API (`POST /v1/responses`, `stream: true`, `store: false`): the
//! conversation is translated into input items on the way out (`text` → `message`, `tool_use` →
//! `function_call`, `tool_result` → `function_call_output`) and the answer's output items back
//! into content blocks; the key goes in `Authorization: Bearer`.
//!
//! The message is read from the stream's terminal event (`response.completed`, or
//! `response.incomplete` when `max_output_tokens` cut it short), whose `output` holds every item
//! whole; the items of `response.output_item.done` stand in when that `output` is empty.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use sealpod_resources::runtime_api::Usage;
use serde_json::{Value, json};

use super::{AssistantMessage, ModelError, ModelRequest, SseEvent, StreamReader, Wire, tool_input};
use crate::net::Endpoint;

/// The Responses API.
pub(super) struct Responses;

impl Wire for Responses {
    fn request(
        &self,
        base: &Endpoint,
        key: &str,
        model: &str,
        request: &ModelRequest<'_>,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let body = json!({
            "model": model,
            "instructions": request.system,
            "input": input_items(request.messages),
            "tools": function_tools(request.tools),
            "max_output_tokens": request.max_tokens,
            "store": false,
            "stream": true,
        });
        Request::builder()
            .method(Method::POST)
            .uri(format!("{}/v1/responses", base.prefix))
            .header(http::header::AUTHORIZATION, format!("Bearer {key}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::from(body.to_string())))
    }

    fn reader(&self) -> Box<dyn StreamReader + Send> {
        Box::<ResponseReader>::default()
    }
}

/// The text of a `tool_result`'s content (a string, or text parts).
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The conversation (content blocks) as Responses input items, in order.
fn input_items(messages: &[Value]) -> Vec<Value> {
    let mut items = Vec::new();
    for message in messages {
        let role = message["role"].as_str().unwrap_or("user");
        let text_part = if role == "assistant" {
            "output_text"
        } else {
            "input_text"
        };
        let blocks = match &message["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(blocks) => blocks.clone(),
            _ => Vec::new(),
        };
        for block in blocks {
            match block["type"].as_str() {
                Some("text") => items.push(json!({
                    "type": "message",
                    "role": role,
                    "content": [{"type": text_part, "text": block["text"]}],
                })),
                Some("tool_use") => items.push(json!({
                    "type": "function_call",
                    "call_id": block["id"],
                    "name": block["name"],
                    "arguments": block["input"].to_string(),
                })),
                Some("tool_result") => items.push(json!({
                    "type": "function_call_output",
                    "call_id": block["tool_use_id"],
                    "output": result_text(&block["content"]),
                })),
                _ => {}
            }
        }
    }
    items
}

/// Tool definitions (`name`, `description`, `input_schema`) as Responses function tools.
fn function_tools(tools: &Value) -> Vec<Value> {
    tools
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| {
                    json!({
                        "type": "function",
                        "name": t["name"],
                        "description": t["description"],
                        "parameters": t["input_schema"],
                        "strict": false,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the assistant message from Responses stream events.
#[derive(Debug, Default)]
struct ResponseReader {
    /// Items of `response.output_item.done`, by output index.
    done: Vec<(u64, Value)>,
}

/// Output items as content blocks: message text parts as `text`, function calls as `tool_use`;
/// reasoning and other items carry nothing the conversation keeps.
fn content_blocks(items: &[Value]) -> Result<Vec<Value>, ModelError> {
    let mut blocks = Vec::new();
    for item in items {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    let text = match part["type"].as_str() {
                        Some("output_text") => part["text"].as_str(),
                        Some("refusal") => part["refusal"].as_str(),
                        _ => None,
                    };
                    if let Some(text) = text {
                        blocks.push(json!({"type": "text", "text": text}));
                    }
                }
            }
            Some("function_call") => {
                blocks.push(json!({
                    "type": "tool_use",
                    "id": item["call_id"],
                    "name": item["name"],
                    "input": tool_input(item["arguments"].as_str().unwrap_or_default())?,
                }));
            }
            _ => {}
        }
    }
    Ok(blocks)
}

/// The Responses `usage` in the runtime's terms: cached input tokens are counted apart from the
/// rest of the input, as Anthropic counts cache reads.
fn usage(v: &Value) -> Usage {
    let count = |pointer: &str| v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("/input_tokens_details/cached_tokens");
    Usage {
        input_tokens: count("/input_tokens").saturating_sub(cached),
        output_tokens: count("/output_tokens"),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
    }
}

/// An error of the stream (`error`, `response.failed`) by its code.
fn stream_error(code: &str, message: String) -> ModelError {
    match code {
        "invalid_api_key" | "authentication_error" => ModelError::Auth {
            status: 401,
            message,
        },
        "invalid_request_error" | "invalid_prompt" | "context_length_exceeded" => {
            ModelError::Fatal {
                status: 400,
                message,
            }
        }
        _ => ModelError::Retriable {
            status: None,
            message,
            retry_after: None,
        },
    }
}

impl StreamReader for ResponseReader {
    fn apply(&mut self, event: &SseEvent) -> Result<Option<AssistantMessage>, ModelError> {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return Ok(None);
        };
        let kind = data["type"].as_str().unwrap_or(event.event.as_str());
        match kind {
            "response.output_item.done" => {
                let index = data["output_index"].as_u64().unwrap_or(0);
                self.done.push((index, data["item"].clone()));
            }
            "response.completed" | "response.incomplete" => {
                let response = &data["response"];
                let mut items = response["output"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    self.done.sort_by_key(|(index, _)| *index);
                    items = self.done.drain(..).map(|(_, item)| item).collect();
                }
                let content = content_blocks(&items)?;
                let cut_short = response["incomplete_details"]["reason"] == "max_output_tokens";
                let stop_reason = if content.iter().any(|b| b["type"] == "tool_use") {
                    "tool_use"
                } else if cut_short {
                    "max_tokens"
                } else {
                    "end_turn"
                };
                return Ok(Some(AssistantMessage {
                    content,
                    stop_reason: stop_reason.to_owned(),
                    usage: usage(&response["usage"]),
                }));
            }
            "response.failed" => {
                let error = &data["response"]["error"];
                let message = error["message"].as_str().unwrap_or("response failed");
                return Err(stream_error(
                    error["code"].as_str().unwrap_or_default(),
                    message.to_owned(),
                ));
            }
            "error" => {
                let message = data["message"].as_str().unwrap_or("stream error");
                return Err(stream_error(
                    data["code"].as_str().unwrap_or_default(),
                    message.to_owned(),
                ));
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
    fn the_conversation_becomes_input_items_in_order() {
        let messages = [
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
            json!({"role": "assistant", "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "call_1", "name": "bash", "input": {"command": "ls"}}]}),
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt", "is_error": false},
                {"type": "text", "text": "and then?"}]}),
        ];
        let items = input_items(&messages);
        assert_eq!(
            items,
            [
                json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}),
                json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]}),
                json!({"type": "function_call", "call_id": "call_1", "name": "bash", "arguments": "{\"command\":\"ls\"}"}),
                json!({"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}),
                json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and then?"}]}),
            ]
        );
        let tools = function_tools(
            &json!([{"name": "bash", "description": "d", "input_schema": {"type": "object"}}]),
        );
        assert_eq!(
            tools,
            [
                json!({"type": "function", "name": "bash", "description": "d", "parameters": {"type": "object"}, "strict": false})
            ]
        );
    }

    fn read(stream: &str) -> Result<Option<AssistantMessage>, ModelError> {
        let mut parser = SseParser::default();
        let mut reader = ResponseReader::default();
        for chunk in stream.as_bytes().chunks(11) {
            for event in parser.push(chunk) {
                if let Some(done) = reader.apply(&event)? {
                    return Ok(Some(done));
                }
            }
        }
        Ok(None)
    }

    #[test]
    fn a_completed_response_becomes_text_and_tool_use_with_usage() {
        let stream = concat!(
            "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"status\":\"completed\",\"output\":[",
            "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi there\",\"annotations\":[]}]},",
            "{\"type\":\"function_call\",\"call_id\":\"call_9\",\"name\":\"bash\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}],",
            "\"usage\":{\"input_tokens\":50,\"input_tokens_details\":{\"cached_tokens\":20},\"output_tokens\":9,\"total_tokens\":59}}}\n\n",
        );
        let message = read(stream).expect("no error").expect("complete");
        assert_eq!(message.stop_reason, "tool_use");
        assert_eq!(
            message.content[0],
            json!({"type": "text", "text": "Hi there"})
        );
        assert_eq!(
            message.content[1],
            json!({"type": "tool_use", "id": "call_9", "name": "bash", "input": {"command": "ls"}})
        );
        assert_eq!(
            (
                message.usage.input_tokens,
                message.usage.cache_read_input_tokens,
                message.usage.output_tokens
            ),
            (30, 20, 9)
        );
    }

    #[test]
    fn done_items_stand_in_and_a_cut_answer_says_max_tokens() {
        let stream = concat!(
            "data: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"par\"}]}}\n\n",
            "data: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"output\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        );
        let message = read(stream).expect("no error").expect("complete");
        assert_eq!(message.stop_reason, "max_tokens");
        assert_eq!(message.content, [json!({"type": "text", "text": "par"})]);
    }

    #[test]
    fn stream_errors_classify_by_code() {
        let failed = "data: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n";
        assert!(matches!(read(failed), Err(ModelError::Retriable { .. })));
        let refused =
            "data: {\"type\":\"error\",\"code\":\"invalid_api_key\",\"message\":\"bad key\"}\n\n";
        assert!(matches!(read(refused), Err(ModelError::Auth { .. })));
        let bad = "data: {\"type\":\"error\",\"code\":\"context_length_exceeded\",\"message\":\"too long\"}\n\n";
        assert!(matches!(read(bad), Err(ModelError::Fatal { .. })));
    }
}
