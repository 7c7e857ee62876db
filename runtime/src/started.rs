//! The start of the sandbox, as its runtime saw it: one `sandbox.started` event (level
//! `internal`) per runtime process, appended to the first turn it claims, with the moments a
//! slow start is read from — the operator created the pod (`SEALPOD_POD_CREATED_AT`, from the
//! pod's `sealpod.dev/created-at` annotation), the proxy was ready (it writes the per-pod CA at
//! `SSL_CERT_FILE` once it serves, after the egress lock was verified), this process started,
//! and it claimed the turn. In a warm pool pod the runtime starts long before its session: its
//! start is then the moment it read the session's identity, its pod's creation predates the
//! session. Each is RFC 3339 with milliseconds; one the runtime cannot know is
//! absent. `turn.started` and the session's `created_at` hold the rest.

use std::path::Path;
use std::time::SystemTime;

use sealpod_resources::runtime_api::{ClaimedTurn, Level, NewEvent};
use serde_json::{Map, Value};

/// The moments known when the runtime starts.
#[derive(Debug, Clone, Default)]
pub struct StartPhases {
    pod_created_at: Option<String>,
    proxy_ready_at: Option<String>,
    runtime_started_at: String,
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_millisecond(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u16::try_from(d.subsec_millis()).unwrap_or(0)),
        )
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl StartPhases {
    /// Now, with the pod's creation stamp and the per-pod CA file (`ca_file`) if present.
    pub fn now(pod_created_at: Option<String>, ca_file: Option<&Path>) -> Self {
        Self {
            pod_created_at,
            proxy_ready_at: ca_file
                .and_then(|f| std::fs::metadata(f).ok())
                .and_then(|m| m.modified().ok())
                .map(rfc3339),
            runtime_started_at: rfc3339(SystemTime::now()),
        }
    }

    /// The event for the first turn this process claimed (its client id is unique per attempt,
    /// so each start of the sandbox is recorded once).
    pub fn event(&self, turn: &ClaimedTurn) -> NewEvent {
        let mut body = Map::new();
        let mut put = |key: &str, value: Option<&String>| {
            if let Some(v) = value {
                body.insert(key.to_owned(), Value::from(v.as_str()));
            }
        };
        put("pod_created_at", self.pod_created_at.as_ref());
        put("proxy_ready_at", self.proxy_ready_at.as_ref());
        put("runtime_started_at", Some(&self.runtime_started_at));
        put("claimed_at", Some(&rfc3339(SystemTime::now())));
        NewEvent {
            client_id: format!("{}:sandbox:{}", turn.turn_id, turn.attempt),
            type_: "sandbox.started".to_owned(),
            level: Level::Internal,
            body: Value::Object(body),
            turn_id: Some(turn.turn_id.clone()),
            refs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_names_each_known_moment_once_per_attempt() {
        let dir = std::env::temp_dir().join(format!("started-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "x").expect("ca");
        let phases = StartPhases::now(Some("2026-12-05T10:00:00.123Z".into()), Some(&ca));
        let turn = ClaimedTurn {
            turn_id: "trn_a".into(),
            attempt: 2,
            number: 1,
            input_from_seq: 1,
            input_to_seq: 1,
            inputs: Vec::new(),
        };
        let e = phases.event(&turn);
        assert_eq!(
            (e.type_.as_str(), e.level),
            ("sandbox.started", Level::Internal)
        );
        assert_eq!(e.client_id, "trn_a:sandbox:2");
        assert_eq!(e.body["pod_created_at"], "2026-12-05T10:00:00.123Z");
        for key in ["proxy_ready_at", "runtime_started_at", "claimed_at"] {
            let at = e.body[key].as_str().expect(key);
            assert!(
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{key}: {at}"
            );
        }
        let unknown = StartPhases::now(None, Some(&dir.join("missing.pem"))).event(&turn);
        assert!(unknown.body.get("pod_created_at").is_none());
        assert!(unknown.body.get("proxy_ready_at").is_none());
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
