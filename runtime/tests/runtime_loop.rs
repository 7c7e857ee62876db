//! The runtime binary against the in-process fake runtime API and the fake model over TLS:
//! answers, tools, ask, limits, cancel, model errors, crash-restart and graceful shutdown. Run
//! with `SEALPOD_TEST_PROVIDER=openai`, the same tests drive the `codex` loop through the
//! Responses API.

mod support;

use sealpod_util::wait::until;
use std::time::Duration;

use sealpod_resources::common::Limits;
use sealpod_resources::runtime_api::{Event, Level};
use sealpod_tests::fake_model::AuthSeen;
use serde_json::Value;
use support::{ConnectProxy, Harness, PROMPT, WAIT, conversation, model_name, provider};

fn no_limits() -> Limits {
    Limits::default()
}

/// A sleep length unique to this test process (so a leftover of another run cannot match).
fn sleep_secs(test: u32) -> u32 {
    100_000 + (std::process::id() % 100_000) * 10 + test
}

/// True when a process whose command line contains `needle` is alive (zombies count as gone).
fn process_alive(needle: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|entry| {
        let path = entry.path();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("Z");
        cmdline.contains(needle) && state != "Z" && state != "X"
    })
}

async fn eventually_alive(needle: &str) -> bool {
    until("the process alive", Duration::from_secs(5), || async {
        process_alive(needle).then_some(())
    })
    .await
    .is_ok()
}

async fn eventually_gone(needle: &str) -> bool {
    until("the process gone", Duration::from_secs(5), || async {
        (!process_alive(needle)).then_some(())
    })
    .await
    .is_ok()
}

/// Waits until the model has been asked once (the stream is running).
async fn model_asked(h: &Harness) {
    until("a model request", Duration::from_secs(5), || async {
        (!h.model_requests().is_empty()).then_some(())
    })
    .await
    .expect("the model is asked");
}

#[tokio::test]
async fn a_plain_answer_completes_the_turn_with_its_result_event() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:answer]] hello there");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(
        h.types(),
        [
            "user.message",
            "turn.started",
            "sandbox.started",
            "agent.message",
            "turn.completed"
        ]
    );
    // The runtime's first claim reports its start, at level internal, with the turn.
    let started = h.api.state().of_type("sandbox.started")[0].clone();
    assert_eq!(started.level, Level::Internal);
    assert!(
        started.body["runtime_started_at"].is_string() && started.body["claimed_at"].is_string(),
        "{}",
        started.body
    );
    let answer = h.api.state().of_type("agent.message")[0].clone();
    assert_eq!(answer.level, Level::User);
    assert_eq!(
        answer.body["text"],
        "Answer to: hello there (1 user messages so far)"
    );
    assert_eq!(done["yield_reason"], "completed");
    assert_eq!(done["result_event_id"], answer.id.as_str());
    assert!(done["usage"]["input_tokens"].as_u64().expect("usage") > 0);
    assert_eq!(h.api.state().status, "idle");
    let requests = h.model_requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.auth, AuthSeen::RealKey);
    match provider().name {
        "openai" => {
            assert_eq!(r.path, "/v1/responses");
            assert_eq!(r.header("x-api-key"), None, "the key only in Authorization");
            assert_eq!(r.body["instructions"], PROMPT);
            assert_eq!(r.body["store"], false);
        }
        _ => {
            assert_eq!(r.path, "/v1/messages");
            assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(r.body["system"], PROMPT);
        }
    }
    assert_eq!(r.body["model"], model_name(), "provider prefix stripped");
    assert_eq!(r.body["stream"], true);
    let tools: Vec<&str> = r.body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        tools,
        ["bash", "read_file", "write_file", "edit_file", "ask"]
    );

    // A second message continues the same conversation.
    h.api.steer("and again");
    h.api.completed(2, WAIT).await;
    let second = h.api.state().of_type("agent.message")[1].body["text"].clone();
    assert_eq!(second, "Answer to: and again (2 user messages so far)");
    let convo = conversation(&h.model_requests()[1])["messages"].clone();
    assert_eq!(
        convo.as_array().expect("messages").len(),
        3,
        "user, assistant, user: {convo}"
    );
    h.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_tool_chain_writes_reads_edits_and_runs_bash_in_the_workspace() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:tool_chain]] do the chain");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    let s = h.api.state();
    let calls: Vec<String> = s
        .of_type("tool.call")
        .iter()
        .map(|e| e.body["tool"].as_str().expect("tool").to_owned())
        .collect();
    assert_eq!(calls, ["write_file", "read_file", "edit_file", "bash"]);
    assert!(
        s.of_type("tool.call")
            .iter()
            .all(|e| e.level == Level::Internal)
    );
    let execs = s.of_type("exec.completed");
    assert_eq!(execs.len(), 4);
    assert!(
        execs
            .iter()
            .all(|e| e.level == Level::Internal && e.body["exit_code"] == 0)
    );
    assert_eq!(execs[3].body["command"], "cat chain.txt && echo chain-ok");
    assert_eq!(execs[1].body["summary"], "alpha\n");
    let messages = s.of_type("agent.message");
    let narration: Vec<&Event> = messages
        .iter()
        .filter(|e| e.level == Level::Progress)
        .collect();
    assert_eq!(narration.len(), 2, "two narrations before tool calls");
    let finals: Vec<&Event> = messages.iter().filter(|e| e.level == Level::User).collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].body["text"], "Chain done: beta\nchain-ok");
    assert_eq!(done["result_event_id"], finals[0].id.as_str());
    drop(s);
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("chain.txt")).expect("file"),
        "beta\n"
    );
    assert_eq!(h.model_requests().len(), 5);
    h.assert_no_secret_leaked();
}

#[tokio::test]
async fn ask_waits_for_input_and_the_reply_continues_with_context() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:ask]] paint the fence");
    let first = h.api.completed(1, WAIT).await;
    assert_eq!(first["yield_reason"], "needs_input");
    let question = h.api.state().of_type("agent.message")[0].clone();
    assert_eq!(
        (question.level, question.body["text"].as_str()),
        (Level::User, Some("Which colour should I use?"))
    );
    assert_eq!(first["result_event_id"], question.id.as_str());
    assert_eq!(h.api.state().status, "awaiting_input");

    h.api.steer("blue");
    let second = h.api.completed(2, WAIT).await;
    assert_eq!(second["yield_reason"], "completed");
    let answer = h.api.state().of_type("agent.message")[1].clone();
    assert_eq!(answer.body["text"], "Using blue for: paint the fence");
    // The reply went back as the ask's tool result, after the whole earlier conversation.
    let messages = conversation(&h.model_requests()[1])["messages"].clone();
    let last = &messages[messages.as_array().expect("array").len() - 1];
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["content"], "blue");
    assert_eq!(messages[1]["content"][0]["name"], "ask");
    h.assert_no_secret_leaked();
}

#[tokio::test]
async fn the_token_budget_stops_before_the_next_model_call() {
    let mut h = Harness::new(Limits {
        tokens: Some(1000),
        ..Limits::default()
    })
    .await;
    h.start();
    h.api.steer("[[scenario:huge_usage:5000]] spend");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "budget_exceeded");
    assert_eq!(done["usage"]["input_tokens"], 5000);
    assert_eq!(
        h.model_requests().len(),
        1,
        "no call after the budget tripped"
    );
    // The next turn is refused before any call: the session's committed usage is over budget.
    h.api.steer("more");
    let next = h.api.completed(2, WAIT).await;
    assert_eq!(next["yield_reason"], "budget_exceeded");
    assert_eq!(h.model_requests().len(), 1);
}

#[tokio::test]
async fn the_turn_deadline_kills_the_running_tool() {
    let mut h = Harness::new(Limits {
        turn_seconds: Some(2),
        ..Limits::default()
    })
    .await;
    h.start();
    h.api
        .steer(&format!("[[scenario:slow_tool:{}]] wait", sleep_secs(1)));
    h.api
        .wait_for("the slow tool to start", WAIT, |s| {
            !s.of_type("tool.call").is_empty()
        })
        .await;
    assert!(
        eventually_alive(&format!("sleep {}", sleep_secs(1))).await,
        "the tool runs"
    );
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "deadline_exceeded");
    assert!(
        eventually_gone(&format!("sleep {}", sleep_secs(1))).await,
        "the tool was killed"
    );
    assert!(h.api.state().of_type("exec.completed").is_empty());
    assert_eq!(h.api.state().status, "idle");
    // The interrupted tool call gets an error result, so the conversation stays valid.
    h.api.steer("[[scenario:answer]] next");
    h.api.completed(2, WAIT).await;
    let messages = conversation(&h.model_requests()[1])["messages"].clone();
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(
        messages[2]["content"][0]["content"],
        "the turn ended before this tool finished"
    );
}

#[tokio::test]
async fn the_turns_limit_yields_max_turns_without_a_model_call() {
    let mut h = Harness::new(Limits {
        turns: Some(1),
        ..Limits::default()
    })
    .await;
    h.start();
    h.api.steer("first");
    assert_eq!(h.api.completed(1, WAIT).await["yield_reason"], "completed");
    h.api.steer("second");
    assert_eq!(h.api.completed(2, WAIT).await["yield_reason"], "max_turns");
    assert_eq!(h.model_requests().len(), 1);
}

#[tokio::test]
async fn cancel_mid_stream_aborts_the_model_call() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:slow:200:100]] talk slowly");
    h.api
        .wait_for("the turn to start", WAIT, |s| {
            !s.of_type("turn.started").is_empty()
        })
        .await;
    model_asked(&h).await;
    assert_eq!(h.model_requests().len(), 1, "the stream is running");
    h.api.cancel();
    let done = h.api.completed(1, Duration::from_secs(10)).await;
    assert_eq!(done["yield_reason"], "canceled");
    assert!(
        h.api.state().of_type("agent.message").is_empty(),
        "no partial answer"
    );
}

#[tokio::test]
async fn cancel_mid_tool_kills_it() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api
        .steer(&format!("[[scenario:slow_tool:{}]] wait", sleep_secs(2)));
    h.api
        .wait_for("the slow tool to start", WAIT, |s| {
            !s.of_type("tool.call").is_empty()
        })
        .await;
    h.api.cancel();
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "canceled");
    assert!(
        eventually_gone(&format!("sleep {}", sleep_secs(2))).await,
        "the tool was killed"
    );
    assert_eq!(h.model_requests().len(), 1);
}

#[tokio::test]
async fn a_401_fails_the_turn_at_once_with_an_error_model_event() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:auth_error]] hi");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "error");
    let errors = h.api.state().of_type("error.model");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].level, Level::User);
    assert_eq!(errors[0].body["code"], "model_auth");
    assert_eq!(errors[0].body["retriable"], false);
    assert_eq!(h.model_requests().len(), 1, "no retry");
    assert_eq!(
        h.api.state().turns[0]
            .completed
            .as_ref()
            .and_then(|c| c.error.as_ref())
            .map(|e| e.code.as_str()),
        Some("model_auth")
    );
    assert_eq!(h.api.state().status, "failed");
    h.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_529_storm_is_retried_honouring_retry_after() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:storm:2:529]] hi");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    let requests = h.model_requests();
    // OpenAI answers an overload with 503 where Anthropic says 529.
    let overloaded = if provider().name == "openai" {
        503
    } else {
        529
    };
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [overloaded, overloaded, 200]
    );
    for pair in requests.windows(2) {
        // retry-after is 1 s: the runtime must not come back sooner.
        assert!(
            pair[1].at_ms - pair[0].at_ms >= 950,
            "retry-after honoured: {} ms",
            pair[1].at_ms - pair[0].at_ms
        );
    }
}

#[tokio::test]
async fn an_endless_storm_ends_in_an_error_after_bounded_retries() {
    let mut h = Harness::new(no_limits()).await;
    h.extra_env
        .push(("SEALPOD_MODEL_MAX_RETRIES".into(), "2".into()));
    h.start();
    h.api.steer("[[scenario:storm:100:429]] hi");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "error");
    assert_eq!(h.model_requests().len(), 3, "1 call + 2 retries");
    let errors = h.api.state().of_type("error.model");
    assert_eq!(errors[0].body["code"], "model_unavailable");
    assert_eq!(errors[0].body["retriable"], true);
}

#[tokio::test]
async fn a_failing_tool_is_a_tool_result_not_a_failed_turn() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:tool_error]] read it");
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    let exec = h.api.state().of_type("exec.completed")[0].clone();
    assert_eq!(exec.body["exit_code"], 1);
    let answer = h.api.state().of_type("agent.message")[0].body["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(
        answer.starts_with("The tool said: cannot read missing.txt"),
        "{answer}"
    );
}

#[tokio::test]
async fn large_output_is_summarised_in_the_event_and_kept_whole_in_the_transcript() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:big_output:50000]] print");
    h.api.completed(1, WAIT).await;
    let exec = h.api.state().of_type("exec.completed")[0].clone();
    let full: String = (1..=50000).map(|i| format!("{i}\n")).collect();
    assert_eq!(exec.body["bytes"], full.len());
    let summary = exec.body["summary"].as_str().expect("summary");
    assert!(
        summary.len() < 3000
            && summary.starts_with("1\n2\n")
            && summary.ends_with("49999\n50000\n")
    );
    let transcript = std::fs::read_to_string(h.workspace().join(".sealpod/transcript.json"))
        .expect("transcript");
    let transcript: Value = serde_json::from_str(&transcript).expect("json");
    // The whole output is kept in the transcript's conversation (the model got a capped copy).
    let kept = transcript.to_string();
    assert!(kept.contains("49999\\n50000\\n") && kept.contains("\\n25000\\n"));
}

#[tokio::test]
async fn sigkill_mid_turn_and_restart_appends_nothing_twice() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:slow_tool:3]] crash me");
    h.api
        .wait_for("the tool to start", WAIT, |s| {
            !s.of_type("tool.call").is_empty()
        })
        .await;
    let status = h.signal_and_wait("KILL").await;
    assert!(!status.success());
    assert!(h.api.state().of_type("turn.completed").is_empty());
    h.start();
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    let s = h.api.state();
    let started: Vec<u64> = s
        .of_type("turn.started")
        .iter()
        .map(|e| e.body["attempt"].as_u64().expect("attempt"))
        .collect();
    assert_eq!(started, [1, 2], "the turn was re-run as attempt 2");
    assert_eq!(
        s.of_type("tool.call").len(),
        1,
        "the re-sent tool.call was deduplicated"
    );
    assert!(s.replayed_appends >= 1);
    assert_eq!(s.of_type("exec.completed").len(), 1);
    assert_eq!(s.of_type("agent.message").len(), 1);
    // The step's model answer was journaled: attempt 2 did not ask the model for it again.
    drop(s);
    assert_eq!(h.model_requests().len(), 2);
    let ids: Vec<String> = h.api.state().events.iter().map(|e| e.id.clone()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
    h.assert_no_secret_leaked();
}

#[tokio::test]
async fn sigterm_leaves_the_turn_for_the_next_attempt_and_exits_cleanly() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api
        .steer(&format!("[[scenario:slow_tool:{}]] go", sleep_secs(3)));
    h.api
        .wait_for("the tool to start", WAIT, |s| {
            !s.of_type("tool.call").is_empty()
        })
        .await;
    let status = h.signal_and_wait("TERM").await;
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(eventually_gone(&format!("sleep {}", sleep_secs(3))).await);
    assert!(h.api.state().of_type("turn.completed").is_empty());
    h.start();
    // The restarted attempt re-runs the unfinished tool (short-circuited by a cancel here).
    h.api
        .wait_for("attempt 2", WAIT, |s| s.of_type("turn.started").len() == 2)
        .await;
    h.api.cancel();
    assert_eq!(h.api.completed(1, WAIT).await["yield_reason"], "canceled");
    assert_eq!(h.model_requests().len(), 1);
}

#[tokio::test]
async fn the_model_is_reached_through_https_proxy_with_connect() {
    let proxy = ConnectProxy::start().await;
    let mut h = Harness::new(no_limits()).await;
    h.extra_env
        .push(("HTTPS_PROXY".into(), format!("http://{}", proxy.addr)));
    h.extra_env
        .push(("SEALPOD_ALLOW_DIRECT_EGRESS".into(), String::new()));
    h.extra_env.push(("NO_PROXY".into(), "127.0.0.1".into()));
    h.start();
    h.api.steer("hello via proxy");
    assert_eq!(h.api.completed(1, WAIT).await["yield_reason"], "completed");
    let port = h.model.addr().port();
    assert_eq!(
        *proxy.targets.lock().expect("lock"),
        [format!("localhost:{port}")],
        "only the model went through the proxy"
    );
}

#[tokio::test]
async fn a_new_proxy_ca_is_trusted_without_a_restart() {
    // A proxy sidecar that restarts mints a new CA and rewrites SSL_CERT_FILE; the running
    // runtime must trust what the new CA signs from then on (here: the model's new certificate).
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:answer]] before");
    h.api.completed(1, WAIT).await;
    h.restart_model_with_new_certificate().await;
    h.api.steer("[[scenario:answer]] after");
    let done = h.api.completed(2, WAIT).await;
    assert_eq!(done["yield_reason"], "completed", "{}", h.logs());
    assert_eq!(
        h.model_requests().len(),
        1,
        "the new model answered at once"
    );
}

#[tokio::test]
async fn missing_configuration_is_refused_with_every_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpod-runtime"))
        .env_clear()
        .env(
            "ANTHROPIC_API_KEY",
            "sp_sealed_0123456789abcdef0123456789abcdef",
        )
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "SEALPOD_RUNTIME_API_URL",
        "SEALPOD_SESSION_ID",
        "SEALPOD_RUNTIME_TOKEN_FILE",
        "HTTPS_PROXY",
    ] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert!(
        !stderr.contains("ANTHROPIC_API_KEY") && !stderr.contains("sp_sealed_"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigkill_mid_stream_re_asks_the_model_and_answers_once() {
    let mut h = Harness::new(no_limits()).await;
    h.start();
    h.api.steer("[[scenario:slow:30:100]] stream then crash");
    model_asked(&h).await;
    assert_eq!(h.model_requests().len(), 1, "the stream is running");
    assert!(!h.signal_and_wait("KILL").await.success());
    h.start();
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    // The interrupted step was not journaled, so attempt 2 asked the model again.
    assert_eq!(h.model_requests().len(), 2);
    let s = h.api.state();
    assert_eq!(s.of_type("agent.message").len(), 1);
    assert_eq!(s.of_type("turn.started").len(), 2);
    assert_eq!(
        done["result_event_id"],
        s.of_type("agent.message")[0].id.as_str()
    );
}

#[tokio::test]
async fn a_turn_decided_before_a_crash_is_completed_again_without_rerunning() {
    let mut h = Harness::new(no_limits()).await;
    h.api.state().fail_completes = 1000;
    h.start();
    h.api.steer("[[scenario:answer]] decided");
    h.api
        .wait_for("the answer", WAIT, |s| {
            !s.of_type("agent.message").is_empty()
        })
        .await;
    // Kill the runtime while it retries `complete` (refused once, asked again).
    h.api
        .wait_for("complete retried", WAIT, |s| s.refused_completes >= 2)
        .await;
    assert!(!h.signal_and_wait("KILL").await.success());
    h.api.state().fail_completes = 0;
    h.start();
    let done = h.api.completed(1, WAIT).await;
    assert_eq!(done["yield_reason"], "completed");
    let s = h.api.state();
    assert_eq!(s.of_type("agent.message").len(), 1);
    assert_eq!(
        done["result_event_id"],
        s.of_type("agent.message")[0].id.as_str()
    );
    drop(s);
    assert_eq!(
        h.model_requests().len(),
        1,
        "the journaled outcome was re-completed, not re-run"
    );
}
