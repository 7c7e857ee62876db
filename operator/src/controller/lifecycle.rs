//! Pure reading of a sandbox pod's state: is it there, starting, running, lost; did the lock's
//! self-test pass. The session controller turns these into conditions and actions.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use sealpod_resources::conditions::reasons;

use crate::build::{CONTAINER_LOCK, CONTAINER_RUNTIME};

/// What the sandbox pod is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodHealth {
    /// There is no pod.
    Absent,
    /// Being deleted.
    Terminating,
    /// Created, not running yet.
    Pending,
    /// Running; `ready` when the runtime container is ready.
    Running {
        /// The runtime container reports ready.
        ready: bool,
    },
    /// Failed, evicted, or ended: it must be replaced.
    Lost {
        /// Why.
        cause: LossCause,
        /// Detail from the pod's status.
        message: String,
    },
}

/// Why a sandbox pod was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LossCause {
    /// The egress lock could not be programmed or did not verify.
    LockFailed,
    /// The pod failed or ended: its status reason (`Evicted`, …), else its phase.
    Pod(String),
}

impl LossCause {
    /// The word reported in conditions' messages.
    pub(crate) fn reason(&self) -> &str {
        match self {
            LossCause::LockFailed => reasons::LOCK_FAILED,
            LossCause::Pod(reason) => reason,
        }
    }
}

/// The lock init container's verification result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockState {
    /// Not run or not finished.
    Pending,
    /// `lock --verify` exited 0.
    Verified,
    /// `lock --verify` found egress open (exit 3).
    NotLocked,
    /// Programming or verifying failed (another non-zero exit code).
    Failed(i32),
}

/// The lock's verification result, from the lock init container's terminated state.
pub(crate) fn lock_state(pod: &Pod) -> LockState {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == CONTAINER_LOCK));
    let terminated = status
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| {
            status
                .and_then(|c| c.last_state.as_ref())
                .and_then(|s| s.terminated.as_ref())
        });
    match terminated.map(|t| t.exit_code) {
        None => LockState::Pending,
        Some(0) => LockState::Verified,
        Some(3) => LockState::NotLocked,
        Some(code) => LockState::Failed(code),
    }
}

/// The pod's health.
pub(crate) fn pod_health(pod: Option<&Pod>) -> PodHealth {
    let Some(pod) = pod else {
        return PodHealth::Absent;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return PodHealth::Terminating;
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    match lock_state(pod) {
        LockState::NotLocked => {
            return PodHealth::Lost {
                cause: LossCause::LockFailed,
                message: "the lock's self-test found egress not locked".into(),
            };
        }
        LockState::Failed(code) => {
            return PodHealth::Lost {
                cause: LossCause::LockFailed,
                message: format!("the lock init container exited with code {code}"),
            };
        }
        _ => {}
    }
    match phase {
        "Failed" | "Succeeded" | "Unknown" => PodHealth::Lost {
            cause: LossCause::Pod(
                status
                    .and_then(|s| s.reason.clone())
                    .unwrap_or_else(|| phase.to_owned()),
            ),
            message: status.and_then(|s| s.message.clone()).unwrap_or_default(),
        },
        "Running" => {
            let ready = status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|all| all.iter().find(|c| c.name == CONTAINER_RUNTIME))
                .is_some_and(|c| c.ready);
            PodHealth::Running { ready }
        }
        _ => PodHealth::Pending,
    }
}

/// Restart bookkeeping of one session's sandbox pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restart {
    /// Losses in a row.
    pub(crate) failures: u32,
    /// When the last loss was seen.
    pub(crate) at: Instant,
    /// Whether the replacement has been created since.
    pub(crate) recreated: bool,
}

impl Restart {
    /// A first loss, now.
    pub(crate) fn first(now: Instant) -> Restart {
        Restart {
            failures: 1,
            at: now,
            recreated: false,
        }
    }

    /// Records a loss: counted once per created pod.
    pub(crate) fn lost(&mut self, now: Instant) {
        if self.recreated {
            self.failures += 1;
            self.at = now;
            self.recreated = false;
        }
    }

    /// Time left before the replacement may be created.
    pub(crate) fn wait(&self, backoff: Duration, now: Instant) -> Duration {
        backoff.saturating_sub(now.saturating_duration_since(self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        let mut v = json!({"metadata": {"name": "p"}});
        v["status"] = status;
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn pod_states_are_read_from_status() {
        assert_eq!(pod_health(None), PodHealth::Absent);
        assert_eq!(pod_health(Some(&pod(json!({})))), PodHealth::Pending);
        let running = pod(json!({
            "phase": "Running",
            "initContainerStatuses": [{"name": "lock", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"terminated": {"exitCode": 0}}}],
            "containerStatuses": [{"name": "runtime", "ready": true, "restartCount": 0, "image": "i", "imageID": ""}]
        }));
        assert_eq!(
            pod_health(Some(&running)),
            PodHealth::Running { ready: true }
        );
        assert_eq!(lock_state(&running), LockState::Verified);
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low memory"}));
        assert_eq!(
            pod_health(Some(&evicted)),
            PodHealth::Lost {
                cause: LossCause::Pod("Evicted".into()),
                message: "low memory".into()
            }
        );
        let not_locked = pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "lock", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"terminated": {"exitCode": 3}}}]
        }));
        assert_eq!(lock_state(&not_locked), LockState::NotLocked);
        assert!(matches!(
            pod_health(Some(&not_locked)),
            PodHealth::Lost {
                cause: LossCause::LockFailed,
                ..
            }
        ));
        let failed_lock = pod(json!({
            "initContainerStatuses": [{"name": "lock", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"terminated": {"exitCode": 1}}}]
        }));
        assert_eq!(lock_state(&failed_lock), LockState::Failed(1));
    }

    #[test]
    fn restarts_count_once_per_created_pod() {
        let t0 = Instant::now();
        let mut r = Restart::first(t0);
        r.lost(t0);
        assert_eq!(r.failures, 1, "the same loss seen twice counts once");
        assert_eq!(r.wait(Duration::from_secs(5), t0), Duration::from_secs(5));
        assert_eq!(
            r.wait(Duration::from_secs(5), t0 + Duration::from_secs(7)),
            Duration::ZERO
        );
        r.recreated = true;
        r.lost(t0 + Duration::from_secs(8));
        assert_eq!(r.failures, 2);
        assert!(!r.recreated);
    }
}
