//! The API server's `/v3` request bodies (`api-server/src/dto.rs`, `input.rs`,
//! `session_input.rs`): arbitrary bytes decoded as every route decodes its body, and the agent,
//! session and schedule bodies checked as their routes check them before any lookup (a schedule's
//! cron expression and time zone also searched for times); the same bytes as a webhook URL
//! through the outbound guard's static check (`webhooks::guard::parse`).
//!
//! Invariants: no panic; a decoding error (message and `param`) never repeats a run of more than
//! 24 key characters (`[A-Za-z0-9_+/=-]`) of the input, the rule of `input.rs` ("an error never
//! repeats the caller's value"); no error at all repeats the body's `key`; a URL the guard passes
//! is https (or http when insecure is allowed), has a host, and carries no user or password.
//!
//! Opt-in (`scripts/fuzz --target api_bodies`): the API server adds a third to a cold build.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpod_api_server::fuzzing::{
    ApiError, create_agent, create_schedule, create_session, decode,
};
use sealpod_api_server::webhooks::guard;

const LONGEST_ECHO: usize = 24;

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_+/=-".contains(&b)
}

fn check_text(input: &[u8], text: &str) {
    for run in input.split(|&b| !is_key_char(b)) {
        if run.len() > LONGEST_ECHO {
            let piece = std::str::from_utf8(&run[..=LONGEST_ECHO]).expect("ASCII");
            assert!(
                !text.contains(piece),
                "an input value in an error: {text:?}"
            );
        }
    }
}

/// Decoding errors (`invalid_json`) follow `input.rs`'s rule: no value of the input comes back.
/// Every error, validation included, leaves out the body's `key` (a provider key, write-only).
fn check(input: &[u8], key: Option<&str>, result: Result<(), ApiError>) {
    let Err(e) = result else { return };
    let message = e.to_string();
    if let Some(key) = key {
        assert!(!message.contains(key), "the key in an error: {message:?}");
    }
    if let ApiError::InvalidJson { param, .. } = &e {
        check_text(input, &message);
        if let Some(param) = param {
            check_text(input, param);
        }
    }
}

fn check_url(raw: &str) {
    for insecure in [false, true] {
        let Ok(url) = guard::parse(raw, insecure) else {
            continue;
        };
        let schemes: &[&str] = if insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        assert!(schemes.contains(&url.scheme()), "{raw:?}");
        assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{raw:?}");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{raw:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let body: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let key = body
        .as_ref()
        .and_then(|b| b.get("key")?.as_str())
        .filter(|k| k.len() >= 8);
    check(data, key, create_agent(data));
    check(data, key, create_session(data));
    check(data, key, create_schedule(data));
    for result in decode(data) {
        check(data, key, result);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_url(text);
    }
});
