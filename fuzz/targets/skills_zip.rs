//! The skill bundle `.zip` a client uploads (`api-server/src/skills/`): arbitrary bytes read as
//! a zip and checked as a bundle.
//!
//! Invariants: no panic; an accepted bundle keeps every documented limit (file count, per-file
//! and total size), every path is relative, inside a skill folder, free of `.`/`..`/empty
//! segments, backslashes and control characters, and unique, every skill folder has a
//! `SKILL.md`, and every mode is read-only (`0o444`) or read-execute (`0o555`); a refusal's
//! message stays short (it names at most one entry, cut to 100 characters).
//!
//! Opt-in (`scripts/fuzz --target skills_zip`): it builds the API server.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use sealpod_api_server::fuzzing::skills_zip;
use sealpod_resources::revision::{
    MAX_SKILL_BUNDLE_BYTES, MAX_SKILL_FILE_BYTES, MAX_SKILL_FILES, MAX_SKILL_PATH_LEN,
};

fuzz_target!(|data: &[u8]| {
    match skills_zip(data) {
        Ok(files) => {
            assert!(!files.is_empty() && files.len() <= MAX_SKILL_FILES);
            let total: u64 = files.iter().map(|f| f.2).sum();
            assert!(total <= MAX_SKILL_BUNDLE_BYTES);
            let paths: BTreeSet<&str> = files.iter().map(|f| f.0.as_str()).collect();
            assert_eq!(paths.len(), files.len(), "a path twice");
            for (path, mode, size) in &files {
                assert!(*size <= MAX_SKILL_FILE_BYTES);
                assert!(*mode == 0o444 || *mode == 0o555, "mode {mode:o}");
                assert!(path.len() <= MAX_SKILL_PATH_LEN);
                assert!(!path.starts_with('/') && !path.contains('\\'), "{path:?}");
                assert!(!path.chars().any(char::is_control), "{path:?}");
                let segments: Vec<&str> = path.split('/').collect();
                assert!(segments.len() >= 2, "{path:?}");
                assert!(
                    segments.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."),
                    "{path:?}"
                );
                assert!(
                    paths.contains(format!("{}/SKILL.md", segments[0]).as_str()),
                    "{path:?} without its SKILL.md"
                );
            }
        }
        Err(message) => assert!(message.len() < 1024, "{message}"),
    }
});
