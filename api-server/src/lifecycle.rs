//! Background work on sessions: mirroring the conversational state (`phase`, `head`,
//! `lastTurn`) into each `Session`'s status (debounced, server-side apply under the API server's
//! field manager), and hibernating sessions idle longer than their agent's
//! `sandbox.idleTimeoutSeconds` (`spec.desiredState: Hibernated`; new input sets `Running`).
//!
//! The store stays the source of truth: a failed mirror is retried on the next change and never
//! blocks an API answer.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use sealpod_resources::ids::id_to_object_name;
use sealpod_resources::session::{DesiredState, LastTurn, Phase, SessionStatus};
use tokio::sync::Notify;

use crate::AppState;
use crate::wire::TurnSummary;

/// Sessions whose status must be mirrored.
#[derive(Debug, Default)]
pub struct StatusSync {
    dirty: Mutex<HashSet<(String, String)>>,
    wake: Notify,
}

impl StatusSync {
    /// Marks a session (namespace, id) for mirroring.
    pub fn mark(&self, namespace: &str, session: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((namespace.to_owned(), session.to_owned()));
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<(String, String)> {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect()
    }
}

/// The API server's part of a Session's status (the operator's fields stay unset, so a
/// server-side apply of it never touches them).
pub fn status_patch(phase: Phase, head: i64, last_turn: Option<&TurnSummary>) -> SessionStatus {
    SessionStatus {
        phase: Some(phase),
        head: Some(head),
        last_turn: last_turn.map(|t| LastTurn {
            id: t.id.clone(),
            state: t.state.as_str().to_owned(),
            yield_reason: t.yield_reason.clone(),
            result_event_id: t.result_event_id.clone(),
        }),
        ..SessionStatus::default()
    }
}

/// Mirrors dirty sessions' status, debounced. Runs until shutdown.
pub async fn run_status_sync(state: AppState) {
    let mut shutdown = state.shutdown();
    loop {
        tokio::select! {
            () = state.sync().wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (ns, id) in state.sync().take() {
            let Ok(Some(row)) = state.store().get_session(&ns, &id).await else {
                continue;
            };
            let Ok(name) = id_to_object_name(&id) else {
                continue;
            };
            let patch = status_patch(row.status, row.head, row.last_turn.as_ref());
            if let Err(e) = state
                .cluster()
                .apply_session_status(&ns, &name, &patch)
                .await
            {
                tracing::warn!(error = %e, session = %id, "cannot mirror session status");
            }
        }
    }
}

/// Hibernates idle sessions. Runs until shutdown.
pub async fn run_idle_sweep(state: AppState, every: Duration) {
    let mut shutdown = state.shutdown();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let Ok(idle) = state.store().idle_sessions().await else {
            continue;
        };
        for (ns, id) in idle {
            let Ok(name) = id_to_object_name(&id) else {
                continue;
            };
            match state
                .cluster()
                .set_desired_state(&ns, &name, DesiredState::Hibernated)
                .await
            {
                Ok(()) => {
                    if let Err(e) = state.store().mark_hibernated(&id).await {
                        tracing::warn!(error = %e, session = %id, "cannot record hibernation");
                    }
                }
                Err(e) => tracing::warn!(error = %e, session = %id, "cannot hibernate session"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TurnState;
    use serde_json::json;

    #[test]
    fn status_patch_uses_the_crd_names() {
        let last = TurnSummary {
            id: "trn_a".into(),
            state: TurnState::Ok,
            yield_reason: Some("completed".into()),
            result_event_id: Some("evt_b".into()),
        };
        let patch = status_patch(Phase::Idle, 7, Some(&last));
        assert_eq!(
            serde_json::to_value(patch).expect("status"),
            json!({"phase": "idle", "head": 7, "lastTurn": {"id": "trn_a", "state": "ok",
                "yieldReason": "completed", "resultEventId": "evt_b"}})
        );
        assert_eq!(
            serde_json::to_value(status_patch(Phase::Queued, 1, None)).expect("status"),
            json!({"phase": "queued", "head": 1})
        );
    }
}
