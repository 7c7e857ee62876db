//! The sandbox pod's lifecycle as a pure decision. From the desired state, what the pod is doing,
//! the lock's verdict, the restart bookkeeping and the conditions already reported, [`plan`]
//! returns the steps to take, the conditions to set, the restart bookkeeping to keep and when to
//! look again. [`super::pod`] observes and carries it out; nothing here calls the cluster.

use std::time::{Duration, Instant};

use sealpod_resources::conditions::{
    Condition, ConditionStatus, DEGRADED, EGRESS_LOCKED, HIBERNATED, READY, reasons,
};
use sealpod_resources::session::DesiredState;

use super::super::SAFETY_REQUEUE;
use super::super::lifecycle::{LockState, LossCause, PodHealth, Restart};

/// What the controller sees of one Session's sandbox.
pub(super) struct Observed<'a> {
    /// What the Session asks for.
    pub desired: DesiredState,
    /// What the pod is doing.
    pub health: PodHealth,
    /// The lock's self-test.
    pub lock: LockState,
    /// Losses counted so far (none while the pod runs well).
    pub restart: Option<Restart>,
    /// Status names a pod this controller created.
    pub had_pod: bool,
    /// The conditions already reported.
    pub conditions: &'a [Condition],
    /// The delay before the `n`th replacement.
    pub backoff: &'a dyn Fn(u32) -> Duration,
    /// Now.
    pub now: Instant,
}

/// An action on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Delete the sandbox pod.
    DeletePod,
    /// Create (apply) the sandbox pod; once created, the restart bookkeeping notes it.
    CreatePod,
}

/// What status's `podName` becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PodName {
    /// Unchanged.
    Keep,
    /// The sandbox pod's name.
    Set,
    /// None.
    Clear,
}

/// When to reconcile again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Requeue {
    /// On the next change only.
    OnChange,
    /// After this long (or on a change).
    After(Duration),
}

/// One condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Set {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Carried out in order.
    pub steps: Vec<Step>,
    /// Set in order (a later one of the same type wins).
    pub conditions: Vec<Set>,
    pub pod_name: PodName,
    /// The restart bookkeeping to keep (None: forgotten).
    pub restart: Option<Restart>,
    pub requeue: Requeue,
}

impl Plan {
    fn set(
        &mut self,
        type_: &'static str,
        status: ConditionStatus,
        reason: &'static str,
        message: &str,
    ) {
        self.conditions.push(Set {
            type_,
            status,
            reason,
            message: message.to_owned(),
        });
    }
}

/// Decides what to do with the sandbox pod.
pub(super) fn plan(o: &Observed<'_>) -> Plan {
    let mut p = Plan {
        steps: Vec::new(),
        conditions: Vec::new(),
        pod_name: PodName::Keep,
        restart: o.restart,
        requeue: Requeue::After(SAFETY_REQUEUE),
    };
    if let Some((reason, message)) = match o.desired {
        DesiredState::Hibernated => Some((
            reasons::IDLE_TIMEOUT,
            "hibernated: pod deleted, workspace kept",
        )),
        DesiredState::Archived => {
            Some((reasons::ARCHIVED, "archived: pod deleted, workspace kept"))
        }
        DesiredState::Running => None,
    } {
        if o.health != PodHealth::Absent {
            p.steps.push(Step::DeletePod);
        }
        p.restart = None;
        p.set(READY, ConditionStatus::False, reason, message);
        p.set(HIBERNATED, ConditionStatus::True, reason, message);
        p.set(
            EGRESS_LOCKED,
            ConditionStatus::Unknown,
            reasons::LOCK_PENDING,
            "no sandbox pod",
        );
        p.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
        p.pod_name = PodName::Clear;
        p.requeue = Requeue::OnChange;
        return p;
    }
    p.set(HIBERNATED, ConditionStatus::False, reasons::AWAKE, "");
    match &o.health {
        PodHealth::Absent => absent(o, &mut p),
        PodHealth::Terminating => {
            p.set(
                READY,
                ConditionStatus::False,
                reasons::POD_PENDING,
                "sandbox pod terminating",
            );
            p.requeue = Requeue::After(Duration::from_secs(2));
        }
        PodHealth::Lost { cause, message } => lost(o, cause, message, &mut p),
        PodHealth::Pending | PodHealth::Running { .. } => {
            p.pod_name = PodName::Set;
            if o.lock == LockState::Verified {
                p.set(
                    EGRESS_LOCKED,
                    ConditionStatus::True,
                    reasons::LOCK_VERIFIED,
                    "lock --verify passed",
                );
            } else {
                p.set(
                    EGRESS_LOCKED,
                    ConditionStatus::Unknown,
                    reasons::LOCK_PENDING,
                    "",
                );
            }
            if o.health == (PodHealth::Running { ready: true }) && o.lock == LockState::Verified {
                p.set(READY, ConditionStatus::True, reasons::POD_RUNNING, "");
                p.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
                p.restart = None;
            } else {
                p.set(
                    READY,
                    ConditionStatus::False,
                    reasons::POD_PENDING,
                    "sandbox pod starting",
                );
            }
        }
    }
    p
}

/// No pod: create one, unless a lost one's backoff has not run out.
fn absent(o: &Observed<'_>, p: &mut Plan) {
    let waiting = match o.restart {
        Some(mut r) => {
            r.lost(o.now);
            Some(r)
        }
        // A pod we created is gone without our seeing it fail: deleted.
        None if o.had_pod => Some(Restart::first(o.now)),
        None => None,
    };
    p.restart = waiting;
    if let Some(r) = waiting {
        let backoff = (o.backoff)(r.failures);
        let left = r.wait(backoff, o.now);
        if !left.is_zero() {
            // The reconcile that saw the pod fail already said why (`Evicted`, `LockFailed`, …);
            // the one its deletion triggers must not replace that with a vaguer message.
            let in_a_row = format!("({} in a row)", r.failures);
            let explained = o.conditions.iter().any(|c| {
                c.type_ == DEGRADED
                    && c.status == ConditionStatus::True
                    && c.message.contains(&in_a_row)
            });
            if !explained {
                let message = format!(
                    "sandbox pod lost {in_a_row}; recreating after a {}ms backoff",
                    backoff.as_millis()
                );
                p.set(READY, ConditionStatus::False, reasons::POD_FAILED, &message);
                p.set(
                    DEGRADED,
                    ConditionStatus::True,
                    reasons::POD_FAILED,
                    &message,
                );
            }
            p.requeue = Requeue::After(left);
            return;
        }
    }
    p.steps.push(Step::CreatePod);
    p.pod_name = PodName::Set;
    p.set(
        READY,
        ConditionStatus::False,
        reasons::POD_PENDING,
        "sandbox pod created",
    );
    p.set(
        EGRESS_LOCKED,
        ConditionStatus::Unknown,
        reasons::LOCK_PENDING,
        "",
    );
    if waiting.is_none() {
        p.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
    }
}

/// A lost pod: delete it and count the loss; the replacement waits for the backoff.
fn lost(o: &Observed<'_>, cause: &LossCause, message: &str, p: &mut Plan) {
    let why = match cause {
        LossCause::LockFailed => {
            p.set(
                EGRESS_LOCKED,
                ConditionStatus::False,
                reasons::LOCK_FAILED,
                message,
            );
            reasons::LOCK_FAILED
        }
        LossCause::Pod(_) => reasons::POD_FAILED,
    };
    p.steps.push(Step::DeletePod);
    let r = match o.restart {
        Some(mut r) => {
            r.lost(o.now);
            r
        }
        None => Restart::first(o.now),
    };
    p.restart = Some(r);
    let backoff = (o.backoff)(r.failures);
    let text = format!(
        "sandbox pod lost: {}{}{message} ({} in a row); recreating after a {}ms backoff",
        cause.reason(),
        if message.is_empty() { "" } else { ": " },
        r.failures,
        backoff.as_millis()
    );
    p.set(READY, ConditionStatus::False, why, &text);
    p.set(DEGRADED, ConditionStatus::True, why, &text);
    p.pod_name = PodName::Clear;
    p.requeue = Requeue::After(r.wait(backoff, o.now));
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn doubling(n: u32) -> Duration {
        sealpod_util::backoff::exponential(SECOND, Duration::from_secs(30), n)
    }

    fn observed(desired: DesiredState, health: PodHealth, lock: LockState) -> Observed<'static> {
        Observed {
            desired,
            health,
            lock,
            restart: None,
            had_pod: false,
            conditions: &[],
            backoff: &doubling,
            now: Instant::now(),
        }
    }

    /// The final (type → status, reason) of every condition the plan sets.
    fn outcome(
        p: &Plan,
    ) -> std::collections::BTreeMap<&'static str, (ConditionStatus, &'static str)> {
        p.conditions
            .iter()
            .map(|s| (s.type_, (s.status, s.reason)))
            .collect()
    }

    /// desired, pod, lock → steps, READY (status, reason), EGRESS_LOCKED, podName, requeue.
    type Row = (
        DesiredState,
        PodHealth,
        LockState,
        Vec<Step>,
        (ConditionStatus, &'static str),
        ConditionStatus,
        PodName,
        Requeue,
    );

    #[test]
    fn the_lifecycle_table() {
        use ConditionStatus::{False, True, Unknown};
        use DesiredState::{Archived, Hibernated, Running};
        let lost = |cause| PodHealth::Lost {
            cause,
            message: "it ended".into(),
        };
        let rows: Vec<Row> = vec![
            (
                Running,
                PodHealth::Absent,
                LockState::Pending,
                vec![Step::CreatePod],
                (False, reasons::POD_PENDING),
                Unknown,
                PodName::Set,
                Requeue::After(SAFETY_REQUEUE),
            ),
            (
                Running,
                PodHealth::Pending,
                LockState::Pending,
                vec![],
                (False, reasons::POD_PENDING),
                Unknown,
                PodName::Set,
                Requeue::After(SAFETY_REQUEUE),
            ),
            (
                Running,
                PodHealth::Running { ready: true },
                LockState::Pending,
                vec![],
                (False, reasons::POD_PENDING),
                Unknown,
                PodName::Set,
                Requeue::After(SAFETY_REQUEUE),
            ),
            (
                Running,
                PodHealth::Running { ready: false },
                LockState::Verified,
                vec![],
                (False, reasons::POD_PENDING),
                True,
                PodName::Set,
                Requeue::After(SAFETY_REQUEUE),
            ),
            (
                Running,
                PodHealth::Running { ready: true },
                LockState::Verified,
                vec![],
                (True, reasons::POD_RUNNING),
                True,
                PodName::Set,
                Requeue::After(SAFETY_REQUEUE),
            ),
            (
                Running,
                PodHealth::Terminating,
                LockState::Verified,
                vec![],
                (False, reasons::POD_PENDING),
                Unknown,
                PodName::Keep,
                Requeue::After(2 * SECOND),
            ),
            (
                Running,
                lost(LossCause::Pod("Evicted".into())),
                LockState::Verified,
                vec![Step::DeletePod],
                (False, reasons::POD_FAILED),
                Unknown,
                PodName::Clear,
                Requeue::After(SECOND),
            ),
            (
                Running,
                lost(LossCause::LockFailed),
                LockState::NotLocked,
                vec![Step::DeletePod],
                (False, reasons::LOCK_FAILED),
                False,
                PodName::Clear,
                Requeue::After(SECOND),
            ),
            (
                Hibernated,
                PodHealth::Running { ready: true },
                LockState::Verified,
                vec![Step::DeletePod],
                (False, reasons::IDLE_TIMEOUT),
                Unknown,
                PodName::Clear,
                Requeue::OnChange,
            ),
            (
                Hibernated,
                PodHealth::Absent,
                LockState::Pending,
                vec![],
                (False, reasons::IDLE_TIMEOUT),
                Unknown,
                PodName::Clear,
                Requeue::OnChange,
            ),
            (
                Archived,
                PodHealth::Pending,
                LockState::Pending,
                vec![Step::DeletePod],
                (False, reasons::ARCHIVED),
                Unknown,
                PodName::Clear,
                Requeue::OnChange,
            ),
        ];
        for (desired, health, lock, steps, ready, locked, pod_name, requeue) in rows {
            let row = format!("{desired:?} {health:?} {lock:?}");
            let p = plan(&observed(desired, health, lock));
            let got = outcome(&p);
            assert_eq!(p.steps, steps, "{row}");
            assert_eq!(got[READY], ready, "{row}");
            // A pod that is there but not yet verified leaves EGRESS_LOCKED as it was reported.
            assert_eq!(
                got.get(EGRESS_LOCKED).map_or(Unknown, |c| c.0),
                locked,
                "{row}"
            );
            assert_eq!(p.pod_name, pod_name, "{row}");
            assert_eq!(p.requeue, requeue, "{row}");
            let asleep = desired != Running;
            assert_eq!(
                got[HIBERNATED].0,
                if asleep { True } else { False },
                "{row}"
            );
        }
    }

    #[test]
    fn losses_are_counted_once_per_created_pod_and_back_off() {
        let now = Instant::now();
        let evicted = PodHealth::Lost {
            cause: LossCause::Pod("Evicted".into()),
            message: String::new(),
        };
        // First loss: counted, pod deleted, a 1 s backoff.
        let mut o = observed(DesiredState::Running, evicted.clone(), LockState::Verified);
        o.now = now;
        let first = plan(&o);
        let r = first.restart.expect("counted");
        assert_eq!(r.failures, 1);
        assert_eq!(first.requeue, Requeue::After(SECOND));
        // The pod is gone but the backoff has not run out: wait, keeping the explanation.
        let explained = vec![Condition {
            type_: DEGRADED.into(),
            status: ConditionStatus::True,
            reason: reasons::POD_FAILED.into(),
            message: "sandbox pod lost: Evicted (1 in a row); recreating after a 1000ms backoff"
                .into(),
            last_transition_time: String::new(),
            observed_generation: None,
        }];
        let mut o = observed(DesiredState::Running, PodHealth::Absent, LockState::Pending);
        o.restart = Some(r);
        o.conditions = &explained;
        o.now = now + SECOND / 2;
        let waiting = plan(&o);
        assert!(waiting.steps.is_empty());
        assert_eq!(waiting.requeue, Requeue::After(SECOND / 2));
        assert!(
            !outcome(&waiting).contains_key(DEGRADED),
            "the explanation stays"
        );
        // After the backoff: recreated, the loss count kept.
        o.now = now + SECOND;
        let recreate = plan(&o);
        assert_eq!(recreate.steps, vec![Step::CreatePod]);
        assert_eq!(recreate.restart.expect("kept").failures, 1);
        // The replacement is lost too: the second loss doubles the backoff.
        let mut created = recreate.restart.expect("kept");
        created.recreated = true;
        let mut o = observed(DesiredState::Running, evicted, LockState::Verified);
        o.restart = Some(created);
        o.now = now + 3 * SECOND;
        let second = plan(&o);
        assert_eq!(second.restart.expect("counted").failures, 2);
        assert_eq!(second.requeue, Requeue::After(2 * SECOND));
        // Running well forgets the losses.
        let mut o = observed(
            DesiredState::Running,
            PodHealth::Running { ready: true },
            LockState::Verified,
        );
        o.restart = second.restart;
        assert_eq!(plan(&o).restart, None);
    }

    #[test]
    fn a_pod_deleted_behind_our_back_is_replaced_after_a_backoff() {
        let mut o = observed(DesiredState::Running, PodHealth::Absent, LockState::Pending);
        o.had_pod = true;
        let p = plan(&o);
        assert!(p.steps.is_empty());
        assert_eq!(p.requeue, Requeue::After(SECOND));
        assert_eq!(
            outcome(&p)[DEGRADED],
            (ConditionStatus::True, reasons::POD_FAILED)
        );
    }
}
