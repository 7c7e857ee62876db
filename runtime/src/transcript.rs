//! The transcript: the conversation and the journal of the running turn, kept in the workspace
//! volume (`<workspace>/.sealpod/transcript.json`, replaced atomically) so a restarted runtime
//! resumes where the last one stopped.
//!
//! The journal records each step's model answer before its tools run and each tool result before
//! its event is appended; a re-run replays journaled steps (same events, same client ids) instead
//! of calling the model or re-running tools. Tool output is kept whole here; events carry only a
//! summary. The event log on the API server stays the truth of what was shown to users.

use std::path::{Path, PathBuf};

use sealpod_resources::runtime_api::{Event, TurnError, Usage, YieldReason};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tools::{MODEL_RESULT_LIMIT, head_tail};

/// One tool result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// The `tool_use` id it answers.
    pub tool_use_id: String,
    /// The whole output.
    pub content: String,
    /// True when the tool failed.
    pub is_error: bool,
    /// Exit code.
    pub exit_code: i32,
}

/// One model answer and the results of the tools it called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The assistant message's content blocks.
    pub content: Vec<Value>,
    /// `end_turn`, `tool_use`, ….
    pub stop_reason: String,
    /// Usage of the call.
    pub usage: Usage,
    /// Results, in the order of the `tool_use` blocks (may be shorter while running).
    pub results: Vec<ToolRecord>,
}

impl Step {
    /// The `tool_use` blocks.
    pub fn tool_uses(&self) -> Vec<&Value> {
        self.content
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .collect()
    }
}

/// How a turn ended (journaled before `complete` is called, so a restart re-completes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Why.
    pub yield_reason: YieldReason,
    /// The result event.
    pub result_event_id: Option<String>,
    /// Set for `error`.
    pub error: Option<TurnError>,
}

/// The running (or finishing) turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// `trn_…`
    pub turn_id: String,
    /// The user content this turn starts with (inputs, or the answer to a pending `ask`).
    pub opening: Vec<Value>,
    /// Steps so far.
    pub steps: Vec<Step>,
    /// Set once the turn's outcome is decided.
    pub finished: Option<Finished>,
}

impl Journal {
    /// Usage summed over the journaled steps.
    pub fn usage(&self) -> Usage {
        self.steps
            .iter()
            .fold(Usage::default(), |acc, s| acc.add(&s.usage))
    }

    /// The `ask` call that ended this turn, if it did.
    pub fn pending_ask(&self) -> Option<String> {
        if self.finished.as_ref()?.yield_reason != YieldReason::NeedsInput {
            return None;
        }
        self.steps.last()?.tool_uses().into_iter().find_map(|b| {
            (b["name"] == "ask").then(|| b["id"].as_str().unwrap_or_default().to_owned())
        })
    }

    /// The messages of this turn: the opening, then each step's answer and its tool results.
    /// Results missing because the turn was interrupted are filled with an error result; an
    /// `ask` left pending gets its result from the next turn's input.
    pub fn messages(&self) -> Vec<Value> {
        let pending_ask = self.pending_ask();
        let mut out = vec![json!({"role": "user", "content": self.opening})];
        for step in &self.steps {
            if step.content.is_empty() {
                continue;
            }
            out.push(json!({"role": "assistant", "content": step.content}));
            let mut results = Vec::new();
            for (i, tool_use) in step.tool_uses().into_iter().enumerate() {
                let id = tool_use["id"].as_str().unwrap_or_default();
                if pending_ask.as_deref() == Some(id) {
                    continue;
                }
                let result = match step.results.get(i) {
                    Some(r) => json!({"type": "tool_result", "tool_use_id": id,
                        "content": head_tail(&r.content, MODEL_RESULT_LIMIT), "is_error": r.is_error}),
                    None => json!({"type": "tool_result", "tool_use_id": id,
                        "content": "the turn ended before this tool finished", "is_error": true}),
                };
                results.push(result);
            }
            if !results.is_empty() {
                out.push(json!({"role": "user", "content": results}));
            }
        }
        out
    }
}

/// The whole transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The conversation of completed turns (Anthropic `messages`).
    pub messages: Vec<Value>,
    /// The `tool_use` id of an `ask` awaiting its answer.
    pub pending_ask: Option<String>,
    /// The running turn.
    pub current: Option<Journal>,
    /// Every completed turn's journal, with whole tool outputs (`messages` holds the capped copy
    /// the model is sent).
    #[serde(default)]
    pub history: Vec<Journal>,
}

/// Appends `message` to `messages`, merging it into the last one when both have the same role
/// (the API wants alternating roles).
pub fn push_merged(messages: &mut Vec<Value>, message: Value) {
    if let Some(last) = messages.last_mut()
        && last["role"] == message["role"]
        && let (Some(a), Some(b)) = (
            last["content"].as_array_mut(),
            message["content"].as_array(),
        )
    {
        a.extend(b.iter().cloned());
        return;
    }
    messages.push(message);
}

/// The opening user content of a turn taking `inputs`: a `tool_result` answering a pending
/// `ask`, or one text block per input.
pub fn opening(inputs: &[Event], pending_ask: Option<&str>) -> Vec<Value> {
    let texts: Vec<String> = inputs
        .iter()
        .map(|e| e.body["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    match pending_ask {
        Some(id) => {
            vec![json!({"type": "tool_result", "tool_use_id": id, "content": texts.join("\n\n")})]
        }
        None => texts
            .into_iter()
            .map(|t| json!({"type": "text", "text": t}))
            .collect(),
    }
}

impl Transcript {
    /// The conversation to send: committed messages plus the running turn's.
    pub fn conversation(&self) -> Vec<Value> {
        let mut out = self.messages.clone();
        if let Some(j) = &self.current {
            for m in j.messages() {
                push_merged(&mut out, m);
            }
        }
        out
    }

    /// Folds the current turn into the conversation.
    pub fn commit(&mut self) {
        if let Some(j) = self.current.take() {
            self.pending_ask = j.pending_ask();
            for m in j.messages() {
                push_merged(&mut self.messages, m);
            }
            self.history.push(j);
        }
    }
}

/// Where the transcript lives in a workspace.
pub fn path(workspace: &Path) -> PathBuf {
    workspace.join(".sealpod").join("transcript.json")
}

/// Reads the transcript (empty when absent).
pub fn load(workspace: &Path) -> std::io::Result<Transcript> {
    match std::fs::read(path(workspace)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Transcript::default()),
        Err(e) => Err(e),
    }
}

/// Writes the transcript durably: a temporary file, fsync, rename.
pub fn save(workspace: &Path, transcript: &Transcript) -> std::io::Result<()> {
    use std::io::Write as _;
    let target = path(workspace);
    let dir = target.parent().unwrap_or(workspace);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("transcript.json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(transcript).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(content: Vec<Value>, results: Vec<ToolRecord>) -> Step {
        Step {
            content,
            stop_reason: "tool_use".into(),
            usage: Usage {
                input_tokens: 5,
                ..Usage::default()
            },
            results,
        }
    }

    #[test]
    fn an_interrupted_turn_still_yields_a_valid_conversation() {
        let mut t = Transcript {
            current: Some(Journal {
                turn_id: "trn_1".into(),
                opening: vec![json!({"type": "text", "text": "hi"})],
                steps: vec![step(
                    vec![json!({"type": "tool_use", "id": "t1", "name": "bash", "input": {}})],
                    vec![],
                )],
                finished: None,
            }),
            ..Transcript::default()
        };
        t.commit();
        assert_eq!(t.messages.len(), 3);
        assert_eq!(t.messages[2]["content"][0]["is_error"], true);
        // The next turn's opening merges into the trailing user message.
        push_merged(
            &mut t.messages,
            json!({"role": "user", "content": [{"type": "text", "text": "again"}]}),
        );
        assert_eq!(t.messages.len(), 3);
        assert_eq!(t.messages[2]["content"][1]["text"], "again");
    }

    #[test]
    fn an_ask_stays_pending_and_the_reply_answers_it() {
        let mut t = Transcript {
            current: Some(Journal {
                turn_id: "trn_1".into(),
                opening: vec![json!({"type": "text", "text": "paint"})],
                steps: vec![step(
                    vec![
                        json!({"type": "tool_use", "id": "ask1", "name": "ask", "input": {"question": "?"}}),
                    ],
                    vec![],
                )],
                finished: Some(Finished {
                    yield_reason: YieldReason::NeedsInput,
                    result_event_id: None,
                    error: None,
                }),
            }),
            ..Transcript::default()
        };
        assert_eq!(t.current.as_ref().expect("j").usage().input_tokens, 5);
        t.commit();
        assert_eq!(t.pending_ask.as_deref(), Some("ask1"));
        assert_eq!(t.messages.len(), 2);
        let dir = tempfile::tempdir().expect("tempdir");
        save(dir.path(), &t).expect("save");
        assert_eq!(load(dir.path()).expect("load"), t);
    }
}
