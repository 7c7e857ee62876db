//! The sidecar's configuration loader (`sealpod_sidecar::config::parse`): arbitrary YAML text.
//!
//! Invariants: no panic; an error never repeats a secret-shaped value of the input: no sealed
//! token (`sp_sealed_` and what follows it), and no run of more than 24 key characters
//! (`[A-Za-z0-9_+/=-]`, what a pasted API key is made of) taken from the input. The messages'
//! own words are never that long, so any such run in a message came from the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpod_resources::secret::SEALED_TOKEN_PREFIX;
use sealpod_sidecar::config::{LoadError, parse};

const LONGEST_ECHO: usize = 24;

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_+/=-".contains(&b)
}

/// The maximal runs of key characters in `text` longer than [`LONGEST_ECHO`].
fn long_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii() || !is_key_char(c as u8))
        .filter(|run| run.len() > LONGEST_ECHO)
}

fn check_message(input: &str, message: &str) {
    let mut rest = message;
    while let Some(at) = rest.find(SEALED_TOKEN_PREFIX) {
        let after = &rest[at + SEALED_TOKEN_PREFIX.len()..];
        assert!(
            !after.starts_with(|c: char| c.is_ascii_alphanumeric()),
            "a sealed token in an error: {message:?}"
        );
        rest = after;
    }
    for run in long_runs(input) {
        // Any long part of the run, not only the whole of it, is an echo.
        let piece = &run[..=LONGEST_ECHO];
        assert!(
            !message.contains(piece) && !message.contains(&run[run.len() - LONGEST_ECHO - 1..]),
            "an input value in an error: {message:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(e) = parse(text) else {
        return;
    };
    check_message(text, &e.to_string());
    match &e {
        LoadError::Shape { key, message } => {
            check_message(text, key);
            check_message(text, message);
        }
        LoadError::Invalid(e) => {
            check_message(text, &e.key);
            check_message(text, &e.message);
        }
        LoadError::Yaml(message) => check_message(text, message),
        LoadError::Read { .. } => unreachable!("parse reads no file"),
    }
});
