//! Status conditions in the shape of `metav1.Condition`, their types and stable reasons.
//!
//! Condition types are PascalCase with positive polarity. Reasons are stable identifiers that
//! dashboards and alerts may match on: renaming one is a breaking change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `Ready`: the object is doing what its spec asks.
pub const READY: &str = "Ready";
/// `CredentialsBound`: a session's credential opened and its proxy Secret is written.
pub const CREDENTIALS_BOUND: &str = "CredentialsBound";
/// `EgressLocked`: the sandbox's lock verified that only the proxy can leave the pod.
pub const EGRESS_LOCKED: &str = "EgressLocked";
/// `Hibernated`: the session's pod is deleted while its workspace is kept.
pub const HIBERNATED: &str = "Hibernated";
/// `Degraded`: something is wrong; the reason says what.
pub const DEGRADED: &str = "Degraded";
/// `WarmPoolReady` (Agents with a warm pool): every pod the pool should hold is ready.
pub const WARM_POOL_READY: &str = "WarmPoolReady";

/// Stable condition reasons.
pub mod reasons {
    /// The spec is invalid; nothing happens until it changes.
    pub const INVALID: &str = "Invalid";
    /// Everything is in order.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// The sandbox pod is being created or started.
    pub const POD_PENDING: &str = "PodPending";
    /// The sandbox pod is running.
    pub const POD_RUNNING: &str = "PodRunning";
    /// The sandbox pod failed or was evicted and is recreated after a backoff.
    pub const POD_FAILED: &str = "PodFailed";
    /// The credential the session resolved to cannot be found.
    pub const CREDENTIAL_NOT_FOUND: &str = "CredentialNotFound";
    /// The credential's sealed value does not open with the operator's keys.
    pub const CREDENTIAL_UNREADABLE: &str = "CredentialUnreadable";
    /// The credential is bound and its proxy Secret written.
    pub const CREDENTIAL_BOUND: &str = "CredentialBound";
    /// The lock's self-test passed.
    pub const LOCK_VERIFIED: &str = "LockVerified";
    /// The lock's self-test has not run yet.
    pub const LOCK_PENDING: &str = "LockPending";
    /// The lock's self-test failed.
    pub const LOCK_FAILED: &str = "LockFailed";
    /// The session was idle past its timeout.
    pub const IDLE_TIMEOUT: &str = "IdleTimeout";
    /// The session is archived.
    pub const ARCHIVED: &str = "Archived";
    /// The session is running, not hibernated.
    pub const AWAKE: &str = "Awake";
    /// A warm pool holds fewer ready pods than its size (the message says how many).
    pub const POOL_FILLING: &str = "PoolFilling";
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// A status condition, as `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A stable, PascalCase reason.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// A human-readable message (never a secret).
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A new condition with `last_transition_time` set by the caller.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        now: &str,
        observed_generation: Option<i64>,
    ) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
            last_transition_time: now.to_owned(),
            observed_generation,
        }
    }
}

/// Sets `next` in `conditions`, keeping the old `last_transition_time` when the status did not
/// change (so a repeated reconcile writes nothing new). Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut next: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == next.type_) {
        Some(existing) => {
            if existing.status == next.status {
                next.last_transition_time = existing.last_transition_time.clone();
            }
            let changed = *existing != next;
            *existing = next;
            changed
        }
        None => {
            conditions.push(next);
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of the given type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = Vec::new();
        let first = Condition::new(
            READY,
            ConditionStatus::False,
            "PodPending",
            "",
            "t1",
            Some(1),
        );
        assert!(set_condition(&mut conditions, first.clone()));
        assert!(!set_condition(&mut conditions, first));
        let again = Condition::new(
            READY,
            ConditionStatus::False,
            "PodPending",
            "",
            "t2",
            Some(1),
        );
        assert!(!set_condition(&mut conditions, again));
        assert_eq!(conditions[0].last_transition_time, "t1");
        let flipped = Condition::new(
            READY,
            ConditionStatus::True,
            "PodRunning",
            "",
            "t3",
            Some(1),
        );
        assert!(set_condition(&mut conditions, flipped));
        assert_eq!(conditions[0].last_transition_time, "t3");
        assert!(is_true(&conditions, READY));
        assert!(!is_true(&conditions, DEGRADED));
    }
}
