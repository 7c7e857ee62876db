//! The OpenAI Responses API wire format as the fake model speaks it (`POST /v1/responses`):
//! a request's input items read into the Messages shape the scenarios decide on, a scripted
//! [`Reply`] rendered as the Responses event stream (`response.created`, `response.in_progress`,
//! `response.output_item.*`, `response.content_part.*`, `response.output_text.*`,
//! `response.function_call_arguments.*`, then `response.completed`, or `response.incomplete` when
//! cut at `max_output_tokens`) or as one response object, and OpenAI's error envelope.
//!
//! It owns only translation and rendering; it must never decide what to answer (that is
//! `scenario`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};

use super::wire::{
    Block, ErrorReply, Reply, ReplyUsage, chunks, insert_request_id, json_answer, streamed_answer,
};

/// A request's input items in the Messages shape (`system`, alternating `messages` of content
/// blocks), which the scenarios read: `message` items become text blocks, `function_call` a
/// `tool_use` and `function_call_output` a `tool_result`; consecutive items of one role merge
/// into one message.
pub fn as_messages(request: &Value) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    let mut push = |role: &str, block: Value| match messages.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(blocks) = last["content"].as_array_mut() {
                blocks.push(block);
            }
        }
        _ => messages.push(json!({"role": role, "content": [block]})),
    };
    let items = match &request["input"] {
        Value::String(s) => vec![json!({"role": "user", "content": s})],
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    };
    for item in items {
        match item["type"].as_str().unwrap_or("message") {
            "message" => {
                let role = if item["role"] == "assistant" {
                    "assistant"
                } else {
                    "user"
                };
                match &item["content"] {
                    Value::String(s) => push(role, json!({"type": "text", "text": s})),
                    Value::Array(parts) => {
                        for part in parts {
                            if let Some(text) = part["text"].as_str() {
                                push(role, json!({"type": "text", "text": text}));
                            }
                        }
                    }
                    _ => {}
                }
            }
            "function_call" => {
                let input = item["arguments"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_else(|| json!({}));
                push(
                    "assistant",
                    json!({"type": "tool_use", "id": item["call_id"], "name": item["name"], "input": input}),
                );
            }
            "function_call_output" => push(
                "user",
                json!({"type": "tool_result", "tool_use_id": item["call_id"], "content": item["output"]}),
            ),
            _ => {}
        }
    }
    json!({"system": request["instructions"], "messages": messages})
}

/// Checks the fields the real API requires.
pub fn validate(body: &Value) -> Result<(), ErrorReply> {
    if !body["model"].is_string() {
        return Err(ErrorReply::invalid_request(
            "Missing required parameter: 'model'.",
        ));
    }
    if !(body["input"].is_string() || body["input"].is_array()) {
        return Err(ErrorReply::invalid_request(
            "Missing required parameter: 'input'.",
        ));
    }
    Ok(())
}

/// The error answer as OpenAI writes it: its status (an overload is 503 where Anthropic says
/// 529), `{"error": {"message", "type", "param", "code"}}` and `x-request-id`.
pub fn error_response(error: ErrorReply, request_id: &str) -> Response<Body> {
    let (status, kind, code, message) = match error.kind {
        "authentication_error" => (
            401,
            "invalid_request_error",
            json!("invalid_api_key"),
            "Incorrect API key provided.".to_owned(),
        ),
        "rate_limit_error" => (429, "requests", json!("rate_limit_exceeded"), error.message),
        "overloaded_error" => (
            503,
            "server_error",
            Value::Null,
            "The server is overloaded. Please try again later.".to_owned(),
        ),
        "not_found_error" => (
            404,
            "invalid_request_error",
            json!("unknown_url"),
            error.message,
        ),
        _ => (
            error.status,
            "invalid_request_error",
            Value::Null,
            error.message,
        ),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    insert_request_id(headers, REQUEST_ID, request_id);
    if let Some(secs) = error.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// OpenAI's request id header.
const REQUEST_ID: &str = "x-request-id";

fn usage_json(usage: ReplyUsage) -> Value {
    // OpenAI counts cached input inside `input_tokens`.
    let input = usage.input_tokens + usage.cache_read_input_tokens;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + usage.output_tokens,
    })
}

/// The ids of one reply's output items.
fn item_id(id: &str, index: usize, block: &Block) -> String {
    let prefix = match block {
        Block::Text(_) => "msg",
        Block::ToolUse { .. } => "fc",
    };
    format!("{prefix}_{}_{index}", id.trim_start_matches("resp_"))
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// An output item whole (`status: completed`) or as it opens (`in_progress`, no content yet).
fn output_item(id: &str, index: usize, block: &Block, whole: bool) -> Value {
    let status = if whole { "completed" } else { "in_progress" };
    let item_id = item_id(id, index, block);
    match block {
        Block::Text(text) => json!({
            "id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": if whole { json!([text_part(text)]) } else { json!([]) },
        }),
        Block::ToolUse {
            id: call_id,
            name,
            input,
        } => json!({
            "id": item_id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": if whole { input.to_string() } else { String::new() },
        }),
    }
}

/// Whether the reply was cut at `max_output_tokens`.
fn cut_short(reply: &Reply) -> bool {
    reply.stop_reason == "max_tokens"
}

/// The response object; `whole` false gives it as `response.created` shows it.
pub fn response_json(reply: &Reply, id: &str, model: &str, request: &Value, whole: bool) -> Value {
    let (status, incomplete) = match (whole, cut_short(reply)) {
        (false, _) => ("in_progress", Value::Null),
        (true, false) => ("completed", Value::Null),
        (true, true) => ("incomplete", json!({"reason": "max_output_tokens"})),
    };
    let output: Vec<Value> = if whole {
        reply
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| output_item(id, i, b, true))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": request["instructions"],
        "max_output_tokens": request["max_output_tokens"],
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": request["store"].as_bool().unwrap_or(true),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": request["tools"].as_array().cloned().unwrap_or_default(),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": if whole { usage_json(reply.usage) } else { Value::Null },
        "user": null,
        "metadata": {},
    })
}

/// Renders the non-streaming answer.
pub fn json_response(
    reply: &Reply,
    id: &str,
    model: &str,
    request: &Value,
    request_id: &str,
) -> Response<Body> {
    json_answer(
        &response_json(reply, id, model, request, true),
        REQUEST_ID,
        request_id,
    )
}

/// The SSE frames of a streamed reply, each with the pause to take before sending it.
pub fn sse_frames(reply: &Reply, id: &str, model: &str, request: &Value) -> Vec<(Duration, Bytes)> {
    let mut frames = Vec::new();
    let mut sequence = 0u64;
    let mut push = |pause: Duration, mut data: Value| {
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        let event = data["type"].as_str().unwrap_or_default().to_owned();
        frames.push((
            pause,
            Bytes::from(format!("event: {event}\ndata: {data}\n\n")),
        ));
    };
    let no_wait = Duration::ZERO;
    let opening = response_json(reply, id, model, request, false);
    push(
        no_wait,
        json!({"type": "response.created", "response": opening}),
    );
    push(
        no_wait,
        json!({"type": "response.in_progress", "response": opening}),
    );
    for (index, block) in reply.blocks.iter().enumerate() {
        let item_id = item_id(id, index, block);
        push(
            no_wait,
            json!({"type": "response.output_item.added", "output_index": index,
                "item": output_item(id, index, block, false)}),
        );
        match block {
            Block::Text(text) => {
                push(
                    no_wait,
                    json!({"type": "response.content_part.added", "item_id": item_id,
                        "output_index": index, "content_index": 0, "part": text_part("")}),
                );
                for piece in chunks(text, reply.chunk_chars) {
                    push(
                        reply.delay,
                        json!({"type": "response.output_text.delta", "item_id": item_id,
                            "output_index": index, "content_index": 0, "delta": piece,
                            "logprobs": []}),
                    );
                }
                push(
                    no_wait,
                    json!({"type": "response.output_text.done", "item_id": item_id,
                        "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                push(
                    no_wait,
                    json!({"type": "response.content_part.done", "item_id": item_id,
                        "output_index": index, "content_index": 0, "part": text_part(text)}),
                );
            }
            Block::ToolUse { input, .. } => {
                let arguments = input.to_string();
                for piece in chunks(&arguments, reply.chunk_chars) {
                    push(
                        reply.delay,
                        json!({"type": "response.function_call_arguments.delta",
                            "item_id": item_id, "output_index": index, "delta": piece}),
                    );
                }
                push(
                    no_wait,
                    json!({"type": "response.function_call_arguments.done", "item_id": item_id,
                        "output_index": index, "arguments": arguments}),
                );
            }
        }
        push(
            no_wait,
            json!({"type": "response.output_item.done", "output_index": index,
                "item": output_item(id, index, block, true)}),
        );
    }
    let terminal = if cut_short(reply) {
        "response.incomplete"
    } else {
        "response.completed"
    };
    push(
        no_wait,
        json!({"type": terminal, "response": response_json(reply, id, model, request, true)}),
    );
    frames
}

/// Renders the streaming answer: frames are sent one by one, honouring their pauses.
pub fn sse_response(
    reply: &Reply,
    id: &str,
    model: &str,
    request: &Value,
    request_id: &str,
) -> Response<Body> {
    streamed_answer(
        sse_frames(reply, id, model, request),
        REQUEST_ID,
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_read_as_alternating_messages() {
        let request = json!({"instructions": "sys", "input": [
            {"role": "user", "content": "go"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Doing."}]},
            {"type": "function_call", "call_id": "c1", "name": "bash", "arguments": "{\"command\":\"ls\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
        ]});
        assert_eq!(
            as_messages(&request),
            json!({"system": "sys", "messages": [
                {"role": "user", "content": [{"type": "text", "text": "go"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Doing."},
                    {"type": "tool_use", "id": "c1", "name": "bash", "input": {"command": "ls"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "a.txt"}]},
            ]})
        );
    }

    #[test]
    fn the_stream_numbers_its_events_and_ends_with_the_whole_response() {
        let reply = Reply {
            blocks: vec![
                Block::Text("Hello there".into()),
                Block::ToolUse {
                    id: "call_1".into(),
                    name: "bash".into(),
                    input: json!({"command": "ls"}),
                },
            ],
            stop_reason: "tool_use",
            usage: ReplyUsage {
                input_tokens: 10,
                output_tokens: 4,
                ..ReplyUsage::default()
            },
            chunk_chars: 4,
            delay: Duration::ZERO,
        };
        let frames = sse_frames(&reply, "resp_1", "gpt-test", &json!({"input": "x"}));
        let events: Vec<Value> = frames
            .iter()
            .map(|(_, b)| {
                let text = std::str::from_utf8(b).expect("utf-8");
                let data = text
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data");
                serde_json::from_str(data).expect("json")
            })
            .collect();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(i));
        }
        assert_eq!(events[0]["type"], "response.created");
        let deltas: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .filter_map(|e| e["delta"].as_str())
            .collect();
        assert_eq!(deltas, "Hello there");
        let last = events.last().expect("events");
        assert_eq!(last["type"], "response.completed");
        assert_eq!(
            last["response"]["output"][1]["arguments"],
            "{\"command\":\"ls\"}"
        );
        assert_eq!(last["response"]["usage"]["total_tokens"], 14);
    }
}
