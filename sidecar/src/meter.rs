//! Model usage metered from the responses of credential hosts, outside the sandbox: what the
//! session's token budget is held to ([`crate::gate`]) and what its audit records say.
//!
//! Two shapes are read, both as they stream by, never holding a body back:
//! - a Server-Sent Events stream (`text/event-stream`): each `data:` line naming `usage` is
//!   parsed, and its `usage` (or `message.usage`, Anthropic's `message_start`, or
//!   `response.usage`, OpenAI's `response.completed`) fields overwrite those seen before —
//!   Anthropic's `message_delta` counts are running totals;
//! - any other body (a JSON answer): the last `"usage":` object of the body. In JSON a quote
//!   inside a string is always escaped, so that key is structure, not text a model wrote; the
//!   provider writes the answer's own `usage` after its content. Only the body's tail is kept.
//!
//! Field names of Anthropic (`input_tokens`, `output_tokens`, `cache_creation_input_tokens`,
//! `cache_read_input_tokens`) and of OpenAI (the Responses API's `input_tokens`, `output_tokens`
//! and `input_tokens_details.cached_tokens`; Chat Completions' `prompt_tokens`,
//! `completion_tokens` and `prompt_tokens_details.cached_tokens`) are read. OpenAI counts cached
//! input inside its input count; it is metered apart, as Anthropic reports it. An error answer
//! carries no usage and meters nothing.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sealpod_resources::runtime_api::Usage;
use serde_json::Value;

/// The tail of a JSON body kept for its `usage` object.
const TAIL: usize = 64 * 1024;
/// The longest SSE line read; a longer one is skipped (it is content, not a usage report).
const MAX_LINE: usize = 1024 * 1024;

/// What a response's usage is delivered to once its body ends (or is dropped).
pub(crate) type UsageSink = Box<dyn FnOnce(Usage) + Send + Sync>;

/// A shared slot the audit record reads the usage from.
pub(crate) type UsageSlot = Arc<Mutex<Option<Usage>>>;

/// The usage scanner of one response body.
#[derive(Debug)]
pub(crate) struct Scan {
    sse: bool,
    /// SSE: the current line; otherwise: the body's tail.
    buffer: Vec<u8>,
    /// SSE: the current line is longer than [`MAX_LINE`] and is being skipped.
    skipping: bool,
    fields: Fields,
}

#[derive(Debug, Default, Clone, Copy)]
struct Fields {
    input: Option<u64>,
    output: Option<u64>,
    cache_creation: Option<u64>,
    cache_read: Option<u64>,
}

impl Fields {
    /// Overwrites with every count `usage` names.
    fn merge(&mut self, usage: &Value) {
        let count = |names: &[&str]| names.iter().find_map(|n| usage.get(*n)?.as_u64());
        if let Some(n) = count(&["input_tokens", "prompt_tokens"]) {
            self.input = Some(n);
        }
        if let Some(n) = count(&["output_tokens", "completion_tokens"]) {
            self.output = Some(n);
        }
        if let Some(n) = count(&["cache_creation_input_tokens"]) {
            self.cache_creation = Some(n);
        }
        if let Some(n) = count(&["cache_read_input_tokens"]) {
            self.cache_read = Some(n);
        }
        let cached = ["input_tokens_details", "prompt_tokens_details"]
            .iter()
            .find_map(|d| usage.get(*d)?.get("cached_tokens")?.as_u64());
        if let Some(n) = cached {
            self.cache_read = Some(n);
            self.input = self.input.map(|i| i.saturating_sub(n));
        }
    }

    fn usage(self) -> Option<Usage> {
        let any = self.input.is_some()
            || self.output.is_some()
            || self.cache_creation.is_some()
            || self.cache_read.is_some();
        any.then(|| Usage {
            input_tokens: self.input.unwrap_or(0),
            output_tokens: self.output.unwrap_or(0),
            cache_creation_input_tokens: self.cache_creation.unwrap_or(0),
            cache_read_input_tokens: self.cache_read.unwrap_or(0),
        })
    }
}

impl Scan {
    /// A scanner for a body of the given `Content-Type`.
    pub(crate) fn new(content_type: Option<&str>) -> Self {
        let sse = content_type.is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        });
        Self {
            sse,
            buffer: Vec::new(),
            skipping: false,
            fields: Fields::default(),
        }
    }

    /// Reads the next piece of the body.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        if !self.sse {
            self.buffer.extend_from_slice(data);
            if self.buffer.len() > 2 * TAIL {
                self.buffer.drain(..self.buffer.len() - TAIL);
            }
            return;
        }
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            if !self.skipping && self.buffer.len() + end <= MAX_LINE {
                self.buffer.extend_from_slice(&data[..end]);
                let line = std::mem::take(&mut self.buffer);
                self.sse_line(&line);
            }
            self.buffer.clear();
            self.skipping = false;
            data = &data[end + 1..];
        }
        if !self.skipping {
            self.buffer.extend_from_slice(data);
            if self.buffer.len() > MAX_LINE {
                self.buffer.clear();
                self.skipping = true;
            }
        }
    }

    /// Bytes held between pieces (the current SSE line, or the JSON tail) and their bound: what
    /// keeps a scanner's memory independent of the body's size.
    #[cfg(fuzzing)]
    pub(crate) fn held(&self) -> (usize, usize) {
        let bound = if self.sse { MAX_LINE } else { 2 * TAIL };
        (self.buffer.len(), bound)
    }

    fn sse_line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if find(data, b"\"usage\"").is_none() {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        for usage in [
            event.get("usage"),
            event.pointer("/message/usage"),
            event.pointer("/response/usage"),
        ]
        .into_iter()
        .flatten()
        {
            self.fields.merge(usage);
        }
    }

    /// The usage the body reported, once it has ended.
    pub(crate) fn finish(mut self) -> Option<Usage> {
        if self.sse {
            if !self.skipping {
                let line = std::mem::take(&mut self.buffer);
                self.sse_line(&line);
            }
        } else if let Some(usage) = last_usage_object(&self.buffer) {
            self.fields.merge(&usage);
        }
        self.fields.usage()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The object after the last `"usage":` key of a JSON text (or its tail).
fn last_usage_object(text: &[u8]) -> Option<Value> {
    const KEY: &[u8] = b"\"usage\"";
    let mut end = text.len();
    while let Some(at) = text[..end].windows(KEY.len()).rposition(|w| w == KEY) {
        let rest = &text[at + KEY.len()..];
        let value = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .filter(|&i| rest[i] == b':')
            .map(|i| &rest[i + 1..]);
        if let Some(value) = value
            && let Some(Ok(v)) = serde_json::Deserializer::from_slice(value)
                .into_iter::<Value>()
                .next()
            && v.is_object()
        {
            return Some(v);
        }
        end = at;
    }
    None
}

/// A response body whose usage is metered as it streams by and delivered to its sink when it
/// ends, fails or is dropped (a client that hangs up mid-answer has still spent the tokens).
pub(crate) struct Metering<B> {
    inner: B,
    scan: Option<Scan>,
    sink: Option<UsageSink>,
}

impl<B> std::fmt::Debug for Metering<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering").finish_non_exhaustive()
    }
}

impl<B> Metering<B> {
    /// Meters `inner`, a body of the given `Content-Type`.
    pub(crate) fn new(inner: B, content_type: Option<&str>, sink: UsageSink) -> Self {
        Self {
            inner,
            scan: Some(Scan::new(content_type)),
            sink: Some(sink),
        }
    }

    fn deliver(&mut self) {
        if let (Some(scan), Some(sink)) = (self.scan.take(), self.sink.take())
            && let Some(usage) = scan.finish()
        {
            sink(usage);
        }
    }
}

impl<B> Drop for Metering<B> {
    fn drop(&mut self) {
        self.deliver();
    }
}

impl<B> Body for Metering<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(scan)) = (frame.data_ref(), this.scan.as_mut()) {
                    scan.feed(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.deliver(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(content_type: Option<&str>, body: &[u8], piece: usize) -> Option<Usage> {
        let mut s = Scan::new(content_type);
        for chunk in body.chunks(piece.max(1)) {
            s.feed(chunk);
        }
        s.finish()
    }

    const STREAM: &str = "event: message_start\n\
        data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1000,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\n\
        event: content_block_delta\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a \\\"usage\\\": {\\\"input_tokens\\\": 0}\"}}\n\n\
        event: message_delta\n\
        data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\n\
        event: message_stop\n\
        data: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn a_stream_is_metered_across_any_chunking() {
        let want = Usage {
            input_tokens: 1000,
            output_tokens: 12,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 7,
        };
        for piece in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                scan(
                    Some("text/event-stream; charset=utf-8"),
                    STREAM.as_bytes(),
                    piece
                ),
                Some(want),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_json_answer_is_metered_by_its_own_usage_not_by_content() {
        let body =
            br#"{"id":"m","content":[{"type":"tool_use","input":{"usage":{"input_tokens":0}}},
            {"type":"text","text":"\"usage\": {\"output_tokens\": 0}"}],
            "usage" : {"input_tokens":40,"output_tokens":2,"cache_creation_input_tokens":3}}"#;
        for piece in [1, 5, 4096] {
            assert_eq!(
                scan(Some("application/json"), body, piece),
                Some(Usage {
                    input_tokens: 40,
                    output_tokens: 2,
                    cache_creation_input_tokens: 3,
                    cache_read_input_tokens: 0,
                })
            );
        }
    }

    #[test]
    fn openai_usage_is_read_with_cached_input_apart() {
        let stream = "event: response.created\n\
            data: {\"type\":\"response.created\",\"response\":{\"output\":[],\"usage\":null}}\n\n\
            event: response.completed\n\
            data: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"\\\"usage\\\": 0\"}]}],\
            \"usage\":{\"input_tokens\":120,\"input_tokens_details\":{\"cached_tokens\":100},\"output_tokens\":8,\"total_tokens\":128}}}\n\n";
        let want = Usage {
            input_tokens: 20,
            output_tokens: 8,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 100,
        };
        for piece in [1, 9, 4096] {
            assert_eq!(
                scan(Some("text/event-stream"), stream.as_bytes(), piece),
                Some(want)
            );
        }
        let body = br#"{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":120,
            "input_tokens_details":{"cached_tokens":100},"output_tokens":8,"total_tokens":128},"user":null}"#;
        assert_eq!(scan(Some("application/json"), body, 7), Some(want));
        let chat = br#"{"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":5,
            "prompt_tokens_details":{"cached_tokens":30}}}"#;
        assert_eq!(
            scan(None, chat, 4096).map(|u| (u.input_tokens, u.cache_read_input_tokens)),
            Some((20, 30))
        );
    }

    #[test]
    fn a_huge_answer_keeps_only_its_tail() {
        let mut body = br#"{"content":[{"type":"text","text":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
        body.extend_from_slice(br#""}],"usage":{"prompt_tokens":5,"completion_tokens":6}}"#);
        let mut s = Scan::new(None);
        for chunk in body.chunks(8192) {
            s.feed(chunk);
            assert!(s.buffer.len() <= 2 * TAIL + 8192);
        }
        let usage = s.finish().expect("usage");
        assert_eq!((usage.input_tokens, usage.output_tokens), (5, 6));
    }

    #[test]
    fn errors_and_overlong_lines_meter_nothing_wrongly() {
        let error = br#"{"type":"error","error":{"type":"authentication_error","message":"bad"}}"#;
        assert_eq!(scan(Some("application/json"), error, 7), None);
        let mut stream = b"data: {\"usage\":{\"input_tokens\":9}".to_vec();
        stream.extend(std::iter::repeat_n(b' ', MAX_LINE + 10));
        stream.extend_from_slice(b"}\ndata: {\"usage\":{\"output_tokens\":3}}\n");
        let usage = scan(Some("text/event-stream"), &stream, 65536).expect("usage");
        assert_eq!((usage.input_tokens, usage.output_tokens), (0, 3));
    }
}
