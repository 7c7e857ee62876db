//! Scripted scenarios: what the fake model answers to a Messages request.
//!
//! A scenario is chosen by the latest `[[scenario:NAME(:ARG)*]]` marker in a user message, else
//! in the system prompt, else by the configured default. The step within a scenario is the number
//! of assistant messages after the last user message that carries text, so a tool chain advances
//! as the client feeds tool results back, and a new user message starts the script over.
//!
//! Scenarios (arguments in brackets, defaults after `=`):
//! - `answer`: one text answer quoting the last user text and the number of user texts so far.
//! - `tool_chain`: `write_file` → `read_file` → `edit_file` → `bash` → a final answer quoting
//!   the last tool result.
//! - `ask`: the `ask` tool, then an answer quoting the reply and the original request.
//! - `slow[:chunks=40[:delay_ms=100]]`: a text answer streamed in many delayed deltas.
//! - `slow_tool[:seconds=30]`: `bash sleep`, then an answer.
//! - `huge_usage[:input_tokens=1000000]`: three `bash` calls reporting huge usage, then an answer.
//! - `big_output[:lines=20000]`: `bash seq`, then an answer with the result's size.
//! - `tool_error`: `read_file` of a missing file, then an answer quoting the error.
//! - `bash:HEX`: `bash` running the command whose UTF-8 bytes are `HEX` (hex keeps any command
//!   inside the marker), then an answer quoting its output.
//! - `auth_error`: 401 `authentication_error` on every call.
//! - `storm[:failures=3[:status=529]]`: the first N calls of this conversation fail with 529
//!   `overloaded_error` (or 429 `rate_limit_error`), then `answer`.
//!
//! This module decides answers only; it must never touch the network or render the wire format.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde_json::{Value, json};

use super::wire::{Block, ErrorReply, Reply, ReplyUsage};

/// Tunables shared by every scenario.
#[derive(Debug, Clone)]
pub struct ScenarioDefaults {
    /// Scenario used when no marker is present.
    pub default_scenario: String,
    /// `retry-after` seconds sent with 429/529.
    pub retry_after_secs: u64,
    /// Largest text delta in characters.
    pub chunk_chars: usize,
}

impl Default for ScenarioDefaults {
    fn default() -> Self {
        ScenarioDefaults {
            default_scenario: "answer".into(),
            retry_after_secs: 1,
            chunk_chars: 12,
        }
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A message.
    Reply(Reply),
    /// An error.
    Error(ErrorReply),
}

/// The chosen scenario: name and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Scenario name.
    pub name: String,
    /// Arguments after the name.
    pub args: Vec<String>,
}

/// Finds the last `[[scenario:…]]` marker in `text`.
pub fn find_marker(text: &str) -> Option<Choice> {
    let start = text.rfind("[[scenario:")?;
    let rest = &text[start + "[[scenario:".len()..];
    let end = rest.find("]]")?;
    let mut parts = rest[..end].split(':').map(|s| s.trim().to_owned());
    let name = parts.next().filter(|n| !n.is_empty())?;
    Some(Choice {
        name,
        args: parts.collect(),
    })
}

/// Removes every marker from `text`.
pub fn strip_markers(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("[[scenario:") {
        out.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// The text blocks of a message, joined (a string content counts as one block).
pub fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn has_text(message: &Value) -> bool {
    match &message["content"] {
        Value::String(s) => !s.is_empty(),
        Value::Array(blocks) => blocks.iter().any(|b| b["type"] == "text"),
        _ => false,
    }
}

/// The joined content of the tool results in `message`.
pub fn tool_result_text(message: &Value) -> String {
    let Value::Array(blocks) = &message["content"] else {
        return String::new();
    };
    blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| match &b["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn system_text(request: &Value) -> String {
    match &request["system"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn messages(request: &Value) -> &[Value] {
    request["messages"].as_array().map_or(&[], Vec::as_slice)
}

/// Chooses the scenario of a request.
pub fn choose(request: &Value, default: &str) -> Choice {
    messages(request)
        .iter()
        .rev()
        .filter(|m| m["role"] == "user")
        .find_map(|m| find_marker(&message_text(m)))
        .or_else(|| find_marker(&system_text(request)))
        .unwrap_or_else(|| Choice {
            name: default.to_owned(),
            args: Vec::new(),
        })
}

/// Number of assistant messages after the last user message that carries text.
pub fn step(request: &Value) -> usize {
    let all = messages(request);
    let from = all
        .iter()
        .rposition(|m| m["role"] == "user" && has_text(m))
        .map_or(0, |i| i + 1);
    all[from..]
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count()
}

/// A key identifying the conversation (its system prompt and first message), for per-conversation
/// counters such as the storm's.
pub fn conversation_key(request: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    system_text(request).hash(&mut hasher);
    messages(request)
        .first()
        .map(message_text)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

fn arg<T: std::str::FromStr>(choice: &Choice, index: usize, default: T) -> T {
    choice
        .args
        .get(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Decodes lowercase or uppercase hex into UTF-8 text.
fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

struct Script<'a> {
    request: &'a Value,
    defaults: &'a ScenarioDefaults,
    step: usize,
    key: u64,
}

impl Script<'_> {
    fn usage(&self) -> ReplyUsage {
        let input = self.request.to_string().len() as u64 / 4;
        ReplyUsage {
            input_tokens: input.max(1),
            output_tokens: 12,
            ..ReplyUsage::default()
        }
    }

    fn text(&self, text: impl Into<String>) -> Outcome {
        Outcome::Reply(Reply {
            blocks: vec![Block::Text(text.into())],
            stop_reason: "end_turn",
            usage: self.usage(),
            chunk_chars: self.defaults.chunk_chars,
            delay: Duration::ZERO,
        })
    }

    fn tool(&self, narration: Option<&str>, name: &str, input: Value) -> Outcome {
        let mut blocks = Vec::new();
        if let Some(n) = narration {
            blocks.push(Block::Text(n.to_owned()));
        }
        blocks.push(Block::ToolUse {
            id: format!("toolu_{:016x}{:04}", self.key, self.step),
            name: name.to_owned(),
            input,
        });
        Outcome::Reply(Reply {
            blocks,
            stop_reason: "tool_use",
            usage: self.usage(),
            chunk_chars: self.defaults.chunk_chars,
            delay: Duration::ZERO,
        })
    }

    fn last_tool_result(&self) -> String {
        messages(self.request)
            .last()
            .map(tool_result_text)
            .unwrap_or_default()
    }

    fn user_texts(&self) -> Vec<String> {
        messages(self.request)
            .iter()
            .filter(|m| m["role"] == "user" && has_text(m))
            .map(|m| strip_markers(&message_text(m)))
            .collect()
    }

    fn answer(&self) -> Outcome {
        let texts = self.user_texts();
        let last = texts.last().cloned().unwrap_or_default();
        self.text(format!(
            "Answer to: {last} ({} user messages so far)",
            texts.len()
        ))
    }
}

/// Decides the answer to `request`. `storms` holds the failures served so far per conversation.
pub fn decide(
    request: &Value,
    defaults: &ScenarioDefaults,
    storms: &mut HashMap<u64, u32>,
) -> Outcome {
    let choice = choose(request, &defaults.default_scenario);
    let script = Script {
        request,
        defaults,
        step: step(request),
        key: conversation_key(request),
    };
    match choice.name.as_str() {
        "tool_chain" => match script.step {
            0 => script.tool(
                Some("I will write the file first."),
                "write_file",
                json!({"path": "chain.txt", "content": "alpha\n"}),
            ),
            1 => script.tool(None, "read_file", json!({"path": "chain.txt"})),
            2 => script.tool(
                None,
                "edit_file",
                json!({"path": "chain.txt", "old_str": "alpha", "new_str": "beta"}),
            ),
            3 => script.tool(
                Some("Checking the result."),
                "bash",
                json!({"command": "cat chain.txt && echo chain-ok"}),
            ),
            _ => script.text(format!("Chain done: {}", script.last_tool_result().trim())),
        },
        "ask" => match script.step {
            0 => script.tool(
                None,
                "ask",
                json!({"question": "Which colour should I use?"}),
            ),
            _ => {
                let original = script.user_texts().first().cloned().unwrap_or_default();
                script.text(format!(
                    "Using {} for: {original}",
                    script.last_tool_result().trim()
                ))
            }
        },
        "slow" => {
            let chunks: usize = arg(&choice, 0, 40);
            let delay_ms: u64 = arg(&choice, 1, 100);
            let text: String = (0..chunks).map(|i| format!("w{i:03} ")).collect();
            Outcome::Reply(Reply {
                blocks: vec![Block::Text(text)],
                stop_reason: "end_turn",
                usage: script.usage(),
                chunk_chars: 5,
                delay: Duration::from_millis(delay_ms),
            })
        }
        "slow_tool" => match script.step {
            0 => {
                let seconds: u64 = arg(&choice, 0, 30);
                script.tool(
                    None,
                    "bash",
                    json!({"command": format!("sleep {seconds}; echo slept")}),
                )
            }
            _ => script.text("The slow tool finished."),
        },
        "huge_usage" => {
            let input_tokens: u64 = arg(&choice, 0, 1_000_000);
            let mut outcome = if script.step < 3 {
                script.tool(None, "bash", json!({"command": "echo step"}))
            } else {
                script.text("Done with huge usage.")
            };
            if let Outcome::Reply(reply) = &mut outcome {
                reply.usage.input_tokens = input_tokens;
            }
            outcome
        }
        "big_output" => match script.step {
            0 => {
                let lines: u64 = arg(&choice, 0, 20_000);
                script.tool(None, "bash", json!({"command": format!("seq 1 {lines}")}))
            }
            _ => script.text(format!(
                "The output had {} bytes.",
                script.last_tool_result().len()
            )),
        },
        "bash" => match script.step {
            0 => {
                let command = choice
                    .args
                    .first()
                    .and_then(|h| unhex(h))
                    .unwrap_or_default();
                script.tool(None, "bash", json!({"command": command}))
            }
            _ => script.text(format!(
                "The command said: {}",
                script.last_tool_result().trim()
            )),
        },
        "tool_error" => match script.step {
            0 => script.tool(None, "read_file", json!({"path": "missing.txt"})),
            _ => script.text(format!("The tool said: {}", script.last_tool_result())),
        },
        "auth_error" => Outcome::Error(ErrorReply::unauthorized()),
        "storm" => {
            let failures: u32 = arg(&choice, 0, 3);
            let status: u16 = arg(&choice, 1, 529);
            let served = storms.entry(script.key).or_insert(0);
            if *served < failures {
                *served += 1;
                let (kind, message) = if status == 429 {
                    (
                        "rate_limit_error",
                        "Number of requests has exceeded your rate limit",
                    )
                } else {
                    ("overloaded_error", "Overloaded")
                };
                Outcome::Error(ErrorReply {
                    status,
                    kind,
                    message: message.into(),
                    retry_after: Some(defaults.retry_after_secs),
                })
            } else {
                script.answer()
            }
        }
        _ => script.answer(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    fn assistant_tool() -> Value {
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]})
    }

    fn tool_result(text: &str) -> Value {
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": text}]})
    }

    #[test]
    fn markers_parse_and_strip() {
        assert_eq!(
            find_marker("go [[scenario:slow:3:50]] now"),
            Some(Choice {
                name: "slow".into(),
                args: vec!["3".into(), "50".into()]
            })
        );
        assert_eq!(find_marker("nothing here"), None);
        assert_eq!(strip_markers("a [[scenario:x]] b"), "a  b");
    }

    #[test]
    fn the_latest_user_marker_wins_over_the_system_prompt() {
        let req =
            json!({"system": "[[scenario:ask]]", "messages": [user("[[scenario:tool_chain]] hi")]});
        assert_eq!(choose(&req, "answer").name, "tool_chain");
        let req = json!({"system": "[[scenario:ask]]", "messages": [user("hi")]});
        assert_eq!(choose(&req, "answer").name, "ask");
        let req = json!({"messages": [user("hi")]});
        assert_eq!(choose(&req, "answer").name, "answer");
    }

    #[test]
    fn steps_count_assistant_messages_since_the_last_user_text() {
        let req = json!({"messages": [user("a"), assistant_tool(), tool_result("r"), assistant_tool(), tool_result("r2")]});
        assert_eq!(step(&req), 2);
        let req = json!({"messages": [user("a"), assistant_tool(), tool_result("r"), user("b")]});
        assert_eq!(step(&req), 0);
    }

    #[test]
    fn bash_runs_the_hex_encoded_command() {
        let cmd = "echo a:b]] c";
        let hex: String = cmd.bytes().map(|b| format!("{b:02x}")).collect();
        let req = json!({"messages": [user(&format!("[[scenario:bash:{hex}]] go"))]});
        let Outcome::Reply(reply) = decide(&req, &ScenarioDefaults::default(), &mut HashMap::new())
        else {
            panic!("a reply");
        };
        let Some(Block::ToolUse { input, .. }) = reply.blocks.last() else {
            panic!("a tool use: {:?}", reply.blocks);
        };
        assert_eq!(input["command"], cmd);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn tool_chain_walks_its_script() {
        let defaults = ScenarioDefaults::default();
        let mut storms = HashMap::new();
        let mut convo = vec![user("[[scenario:tool_chain]] go")];
        let mut names = Vec::new();
        loop {
            let req = json!({"messages": convo});
            match decide(&req, &defaults, &mut storms) {
                Outcome::Reply(r) if r.stop_reason == "tool_use" => {
                    let name = r
                        .blocks
                        .iter()
                        .find_map(|b| match b {
                            Block::ToolUse { name, .. } => Some(name.clone()),
                            Block::Text(_) => None,
                        })
                        .expect("tool");
                    names.push(name);
                    convo.push(assistant_tool());
                    convo.push(tool_result("beta\nchain-ok"));
                }
                Outcome::Reply(r) => {
                    assert_eq!(
                        r.blocks,
                        vec![Block::Text("Chain done: beta\nchain-ok".into())]
                    );
                    break;
                }
                Outcome::Error(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(names, ["write_file", "read_file", "edit_file", "bash"]);
    }

    #[test]
    fn a_storm_fails_n_times_per_conversation_then_answers() {
        let defaults = ScenarioDefaults::default();
        let mut storms = HashMap::new();
        let req = json!({"messages": [user("[[scenario:storm:2:429]] x")]});
        for _ in 0..2 {
            match decide(&req, &defaults, &mut storms) {
                Outcome::Error(e) => {
                    assert_eq!((e.status, e.kind), (429, "rate_limit_error"));
                    assert_eq!(e.retry_after, Some(1));
                }
                Outcome::Reply(_) => panic!("expected an error"),
            }
        }
        assert!(matches!(
            decide(&req, &defaults, &mut storms),
            Outcome::Reply(_)
        ));
        let other = json!({"messages": [user("[[scenario:storm:2:429]] y")]});
        assert!(matches!(
            decide(&other, &defaults, &mut storms),
            Outcome::Error(_)
        ));
    }
}
