//! One turn: from the claimed inputs through model calls and tool runs to `complete`, with the
//! limits (`tokens` before each model call, `turn_seconds` as a deadline that kills the running
//! tool, `turns` from the claim's number), cancel, model error handling and crash resume.
//!
//! Every event carries a client id derived from the turn id and the step index
//! (`{turn}:{step}:{what}[:{i}]`), never from the attempt, so a re-run re-appends nothing new.
//! The journal is written before each side effect's event is appended (see `transcript`). This
//! module must never put a key or token into an event or a log line.

use std::future::Future;
use std::time::Duration;

use sealpod_resources::runtime_api::{
    AppendedEvent, ClaimedTurn, CompleteTurnRequest, Level, NewEvent, SessionInfo, TurnError,
    YieldReason,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::ApiError;
use crate::model::{AssistantMessage, ModelError, ModelRequest};
use crate::skills;
use crate::tools::{self, SUMMARY_LIMIT, head_tail, summarize_args};
use crate::transcript::{self, Finished, Journal, Step, ToolRecord};
use crate::{Runtime, RuntimeError};

/// Why a turn was interrupted from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Cancelled through the API.
    Cancel,
    /// `turn_seconds` elapsed.
    Deadline,
    /// The runtime is shutting down (SIGTERM): leave the turn for the next attempt.
    Shutdown,
}

/// How `run_turn` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    /// The turn was completed on the API server.
    Completed(YieldReason),
    /// Shutdown: the turn is journaled and will be re-run by the next attempt.
    ShutDown,
}

/// How many times a transient runtime API failure is retried before giving up.
const API_RETRIES: u32 = 8;

/// 0.5 s before the first retry, doubling up to 32 s.
fn backoff(attempt: u32) -> Duration {
    sealpod_util::backoff::exponential(
        Duration::from_millis(500),
        Duration::from_secs(32),
        attempt.saturating_add(1),
    )
}

async fn wait_stop(rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(stop) = *rx.borrow() {
            return stop;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Runs `fut` unless a stop or the deadline comes first.
async fn guarded<T>(
    fut: impl Future<Output = T>,
    stop: &mut watch::Receiver<Option<Stop>>,
    deadline: Option<Instant>,
) -> Result<T, Stop> {
    let deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        s = wait_stop(stop) => Err(s),
        () = deadline => Err(Stop::Deadline),
        v = fut => Ok(v),
    }
}

fn event(turn_id: &str, client_id: String, type_: &str, level: Level, body: Value) -> NewEvent {
    NewEvent {
        client_id,
        type_: type_.into(),
        level,
        body,
        turn_id: Some(turn_id.into()),
        refs: None,
    }
}

fn text_of(content: &[Value]) -> String {
    content
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// An append or complete that failed for good, or a cancel learned from the append.
enum AppendFail {
    Canceled,
    Api(ApiError),
}

impl Runtime {
    /// Retries a runtime API call while its failure is transient.
    async fn with_api_retries<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.is_transient() && attempt < API_RETRIES => {
                    tracing::warn!(error = %e, what, attempt, "runtime API call failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn append_one(&self, new: NewEvent) -> Result<AppendedEvent, AppendFail> {
        let appended = self
            .with_api_retries("append", || self.api.append(vec![new.clone()]))
            .await
            .map_err(|e| match e {
                ApiError::TurnCanceled => AppendFail::Canceled,
                other => AppendFail::Api(other),
            })?;
        appended
            .into_iter()
            .next()
            .ok_or_else(|| AppendFail::Api(ApiError::Decode("empty append answer".into())))
    }

    fn save(&self) -> Result<(), RuntimeError> {
        transcript::save(&self.workspace, &self.transcript).map_err(RuntimeError::Transcript)
    }

    fn journal(&mut self) -> &mut Journal {
        // Every caller runs after `run_turn` installed the journal.
        self.transcript
            .current
            .as_mut()
            .expect("journal installed at turn start")
    }

    /// Runs one claimed turn to its end (or to shutdown).
    pub async fn run_turn(
        &mut self,
        claimed: ClaimedTurn,
        mut stop: watch::Receiver<Option<Stop>>,
    ) -> Result<TurnEnd, RuntimeError> {
        let turn_id = claimed.turn_id.clone();
        tracing::info!(
            turn_id,
            attempt = claimed.attempt,
            number = claimed.number,
            "turn claimed"
        );
        if self
            .transcript
            .current
            .as_ref()
            .is_some_and(|j| j.turn_id != turn_id)
        {
            // A turn decided (and acknowledged) before a restart: fold it in.
            self.transcript.commit();
            self.save()?;
        }
        if let Some(finished) = self
            .transcript
            .current
            .as_ref()
            .and_then(|j| j.finished.clone())
        {
            return self.complete(&turn_id, finished).await;
        }
        let info = self
            .with_api_retries("session", || self.api.session())
            .await
            .map_err(RuntimeError::Api)?;
        if self.transcript.current.is_none() {
            let pending = self.transcript.pending_ask.take();
            self.transcript.current = Some(Journal {
                turn_id: turn_id.clone(),
                opening: transcript::opening(&claimed.inputs, pending.as_deref()),
                steps: Vec::new(),
                finished: None,
            });
            self.save()?;
        }
        if info.limits.turns.is_some_and(|max| claimed.number > max) {
            return self
                .finish(&turn_id, YieldReason::MaxTurns, None, None)
                .await;
        }
        let deadline = info
            .limits
            .turn_seconds
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        match self.steps(&turn_id, &info, &mut stop, deadline).await {
            Ok(end) => Ok(end),
            Err(AppendFail::Canceled) => {
                self.finish(&turn_id, YieldReason::Canceled, None, None)
                    .await
            }
            Err(AppendFail::Api(e)) => Err(RuntimeError::Api(e)),
        }
    }

    async fn stopped(&mut self, turn_id: &str, stop: Stop) -> Result<TurnEnd, AppendFail> {
        let reason = match stop {
            Stop::Cancel => YieldReason::Canceled,
            Stop::Deadline => YieldReason::DeadlineExceeded,
            Stop::Shutdown => {
                tracing::info!(turn_id, "shutting down mid-turn; the turn will be re-run");
                return Ok(TurnEnd::ShutDown);
            }
        };
        self.finish(turn_id, reason, None, None)
            .await
            .map_err(|e| match e {
                RuntimeError::Api(e) => AppendFail::Api(e),
                other => AppendFail::Api(ApiError::Transport(other.to_string())),
            })
    }

    async fn steps(
        &mut self,
        turn_id: &str,
        info: &SessionInfo,
        stop: &mut watch::Receiver<Option<Stop>>,
        deadline: Option<Instant>,
    ) -> Result<TurnEnd, AppendFail> {
        let mut index = 0;
        loop {
            if index >= self.journal().steps.len() {
                let used = info.usage.total() + self.journal().usage().total();
                if info.limits.tokens.is_some_and(|limit| used >= limit) {
                    return self
                        .finish_or_fail(turn_id, YieldReason::BudgetExceeded, None, None)
                        .await;
                }
                let conversation = self.transcript.conversation();
                let called = guarded(self.call_model(info, &conversation), stop, deadline).await;
                let message = match called {
                    Err(s) => return self.stopped(turn_id, s).await,
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => return self.model_failed(turn_id, index, &e).await,
                };
                self.journal().steps.push(Step {
                    content: message.content,
                    stop_reason: message.stop_reason,
                    usage: message.usage,
                    results: Vec::new(),
                });
                self.save()
                    .map_err(|e| AppendFail::Api(ApiError::Transport(e.to_string())))?;
            }
            let step = self.journal().steps[index].clone();
            let tool_uses: Vec<Value> = step.tool_uses().into_iter().cloned().collect();
            let text = text_of(&step.content);
            if tool_uses.is_empty() {
                let answer = self
                    .append_one(event(
                        turn_id,
                        format!("{turn_id}:{index}:answer"),
                        "agent.message",
                        Level::User,
                        json!({"text": text}),
                    ))
                    .await?;
                return self
                    .finish_or_fail(turn_id, YieldReason::Completed, Some(answer.id), None)
                    .await;
            }
            if !text.is_empty() {
                self.append_one(event(
                    turn_id,
                    format!("{turn_id}:{index}:narration"),
                    "agent.message",
                    Level::Progress,
                    json!({"text": text}),
                ))
                .await?;
            }
            let mut ask = None;
            for (i, tool_use) in tool_uses.iter().enumerate() {
                let name = tool_use["name"].as_str().unwrap_or_default().to_owned();
                let id = tool_use["id"].as_str().unwrap_or_default().to_owned();
                let input = &tool_use["input"];
                if name == "ask" {
                    ask.get_or_insert_with(|| {
                        input["question"].as_str().unwrap_or_default().to_owned()
                    });
                    continue;
                }
                let args_summary = summarize_args(&name, input);
                self.append_one(event(
                    turn_id,
                    format!("{turn_id}:{index}:call:{i}"),
                    "tool.call",
                    Level::Internal,
                    json!({"tool": name, "args_summary": args_summary}),
                ))
                .await?;
                let done = step.results.iter().find(|r| r.tool_use_id == id).cloned();
                let record = match done {
                    Some(r) => r,
                    None => {
                        let ran = guarded(
                            tools::run(&name, input, &self.workspace, self.tunables.bash_timeout),
                            stop,
                            deadline,
                        )
                        .await;
                        let output = match ran {
                            Err(s) => return self.stopped(turn_id, s).await,
                            Ok(o) => o,
                        };
                        let record = ToolRecord {
                            tool_use_id: id.clone(),
                            content: output.content,
                            is_error: output.is_error,
                            exit_code: output.exit_code,
                        };
                        self.journal().steps[index].results.push(record.clone());
                        self.save()
                            .map_err(|e| AppendFail::Api(ApiError::Transport(e.to_string())))?;
                        record
                    }
                };
                let command = if name == "bash" {
                    args_summary
                } else {
                    format!("{name} {args_summary}")
                };
                self.append_one(event(
                    turn_id,
                    format!("{turn_id}:{index}:done:{i}"),
                    "exec.completed",
                    Level::Internal,
                    json!({"command": command, "exit_code": record.exit_code,
                        "summary": head_tail(&record.content, SUMMARY_LIMIT),
                        "bytes": record.content.len()}),
                ))
                .await?;
            }
            if let Some(question) = ask {
                let asked = self
                    .append_one(event(
                        turn_id,
                        format!("{turn_id}:{index}:ask"),
                        "agent.message",
                        Level::User,
                        json!({"text": question}),
                    ))
                    .await?;
                return self
                    .finish_or_fail(turn_id, YieldReason::NeedsInput, Some(asked.id), None)
                    .await;
            }
            index += 1;
        }
    }

    async fn model_failed(
        &mut self,
        turn_id: &str,
        index: usize,
        error: &ModelError,
    ) -> Result<TurnEnd, AppendFail> {
        let (code, retriable) = match error {
            ModelError::Auth { .. } => ("model_auth", false),
            ModelError::Retriable { .. } => ("model_unavailable", true),
            ModelError::Fatal { .. } => ("model_request", false),
        };
        let message = error.to_string();
        tracing::error!(turn_id, code, error = %message, "model call failed");
        self.append_one(event(
            turn_id,
            format!("{turn_id}:{index}:error"),
            "error.model",
            Level::User,
            json!({"code": code, "message": message, "retriable": retriable}),
        ))
        .await?;
        let error = TurnError {
            code: code.into(),
            message,
        };
        self.finish_or_fail(turn_id, YieldReason::Error, None, Some(error))
            .await
    }

    async fn finish_or_fail(
        &mut self,
        turn_id: &str,
        reason: YieldReason,
        result_event_id: Option<String>,
        error: Option<TurnError>,
    ) -> Result<TurnEnd, AppendFail> {
        self.finish(turn_id, reason, result_event_id, error)
            .await
            .map_err(|e| match e {
                RuntimeError::Api(e) => AppendFail::Api(e),
                other => AppendFail::Api(ApiError::Transport(other.to_string())),
            })
    }

    /// Journals the outcome, then completes the turn.
    async fn finish(
        &mut self,
        turn_id: &str,
        yield_reason: YieldReason,
        result_event_id: Option<String>,
        error: Option<TurnError>,
    ) -> Result<TurnEnd, RuntimeError> {
        let finished = Finished {
            yield_reason,
            result_event_id,
            error,
        };
        self.journal().finished = Some(finished.clone());
        self.save()?;
        self.complete(turn_id, finished).await
    }

    async fn complete(
        &mut self,
        turn_id: &str,
        finished: Finished,
    ) -> Result<TurnEnd, RuntimeError> {
        let request = CompleteTurnRequest {
            yield_reason: finished.yield_reason,
            result_event_id: finished.result_event_id,
            usage: self.journal().usage(),
            error: finished.error,
        };
        let result = self
            .with_api_retries("complete", || self.api.complete(turn_id, &request))
            .await;
        // Fold the turn in even when complete failed for good: re-running it would not help.
        self.transcript.commit();
        self.save()?;
        result.map_err(RuntimeError::Api)?;
        tracing::info!(
            turn_id,
            yield_reason = finished.yield_reason.as_str(),
            "turn completed"
        );
        Ok(TurnEnd::Completed(finished.yield_reason))
    }

    /// One model call with bounded retries of retriable failures, honouring `retry-after`.
    async fn call_model(
        &self,
        info: &SessionInfo,
        conversation: &[Value],
    ) -> Result<AssistantMessage, ModelError> {
        let tools = tools::definitions();
        let system = skills::system_prompt(&info.prompt, self.skills.as_deref());
        let request = ModelRequest {
            model: &info.model,
            system: &system,
            messages: conversation,
            tools: &tools,
            max_tokens: self.tunables.model_max_tokens,
        };
        let mut attempt = 0;
        loop {
            match self.model.stream(request).await {
                Err(ModelError::Retriable {
                    status,
                    message,
                    retry_after,
                }) if attempt < self.tunables.model_max_retries => {
                    let wait = retry_after
                        .unwrap_or_else(|| backoff(attempt))
                        .min(self.tunables.max_backoff);
                    tracing::warn!(?status, error = %message, attempt, wait_ms = wait.as_millis() as u64,
                        "model call failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
