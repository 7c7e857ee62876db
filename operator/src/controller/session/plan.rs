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
    pub(super) desired: DesiredState,
    /// What the pod is doing.
    pub(super) health: PodHealth,
    /// The lock's self-test.
    pub(super) lock: LockState,
    /// Losses counted so far (none while the pod runs well).
    pub(super) restart: Option<Restart>,
    /// Status names a pod this controller created.
    pub(super) had_pod: bool,
    /// The conditions already reported.
    pub(super) conditions: &'a [Condition],
    /// The delay before the `n`th replacement.
    pub(super) backoff: &'a dyn Fn(u32) -> Duration,
    /// Now.
    pub(super) now: Instant,
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

/// A condition the lifecycle reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ConditionType {
    Ready,
    Hibernated,
    EgressLocked,
    Degraded,
}

impl ConditionType {
    /// The condition's type in status.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => READY,
            ConditionType::Hibernated => HIBERNATED,
            ConditionType::EgressLocked => EGRESS_LOCKED,
            ConditionType::Degraded => DEGRADED,
        }
    }
}

/// Why a condition is what it is: the lifecycle's share of [`reasons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    AsExpected,
    Awake,
    IdleTimeout,
    Archived,
    PodPending,
    PodRunning,
    PodFailed,
    LockPending,
    LockVerified,
    LockFailed,
}

impl Reason {
    /// The reason in status and in the Event.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Reason::AsExpected => reasons::AS_EXPECTED,
            Reason::Awake => reasons::AWAKE,
            Reason::IdleTimeout => reasons::IDLE_TIMEOUT,
            Reason::Archived => reasons::ARCHIVED,
            Reason::PodPending => reasons::POD_PENDING,
            Reason::PodRunning => reasons::POD_RUNNING,
            Reason::PodFailed => reasons::POD_FAILED,
            Reason::LockPending => reasons::LOCK_PENDING,
            Reason::LockVerified => reasons::LOCK_VERIFIED,
            Reason::LockFailed => reasons::LOCK_FAILED,
        }
    }
}

/// One condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Set {
    pub(super) type_: ConditionType,
    pub(super) status: ConditionStatus,
    pub(super) reason: Reason,
    pub(super) message: String,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Carried out in order.
    pub(super) steps: Vec<Step>,
    /// Set in order (a later one of the same type wins).
    pub(super) conditions: Vec<Set>,
    pub(super) pod_name: PodName,
    /// The restart bookkeeping to keep (None: forgotten).
    pub(super) restart: Option<Restart>,
    pub(super) requeue: Requeue,
}

impl Plan {
    fn set(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: Reason,
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
    use ConditionStatus::{False, True, Unknown};
    use ConditionType::{Degraded, EgressLocked, Hibernated, Ready};
    let mut p = Plan {
        steps: Vec::new(),
        conditions: Vec::new(),
        pod_name: PodName::Keep,
        restart: o.restart,
        requeue: Requeue::After(SAFETY_REQUEUE),
    };
    if let Some((reason, message)) = match o.desired {
        DesiredState::Hibernated => Some((
            Reason::IdleTimeout,
            "hibernated: pod deleted, workspace kept",
        )),
        DesiredState::Archived => Some((Reason::Archived, "archived: pod deleted, workspace kept")),
        DesiredState::Running => None,
    } {
        if o.health != PodHealth::Absent {
            p.steps.push(Step::DeletePod);
        }
        p.restart = None;
        p.set(Ready, False, reason, message);
        p.set(Hibernated, True, reason, message);
        p.set(EgressLocked, Unknown, Reason::LockPending, "no sandbox pod");
        p.set(Degraded, False, Reason::AsExpected, "");
        p.pod_name = PodName::Clear;
        p.requeue = Requeue::OnChange;
        return p;
    }
    p.set(Hibernated, False, Reason::Awake, "");
    match &o.health {
        PodHealth::Absent => absent(o, &mut p),
        PodHealth::Terminating => {
            p.set(Ready, False, Reason::PodPending, "sandbox pod terminating");
            p.requeue = Requeue::After(Duration::from_secs(2));
        }
        PodHealth::Lost { cause, message } => lost(o, cause, message, &mut p),
        PodHealth::Pending | PodHealth::Running { .. } => {
            p.pod_name = PodName::Set;
            if o.lock == LockState::Verified {
                p.set(
                    EgressLocked,
                    True,
                    Reason::LockVerified,
                    "lock --verify passed",
                );
            } else {
                p.set(EgressLocked, Unknown, Reason::LockPending, "");
            }
            if o.health == (PodHealth::Running { ready: true }) && o.lock == LockState::Verified {
                p.set(Ready, True, Reason::PodRunning, "");
                p.set(Degraded, False, Reason::AsExpected, "");
                p.restart = None;
            } else {
                p.set(Ready, False, Reason::PodPending, "sandbox pod starting");
            }
        }
    }
    p
}

/// No pod: create one, unless a lost one's backoff has not run out.
fn absent(o: &Observed<'_>, p: &mut Plan) {
    use ConditionStatus::{False, True, Unknown};
    use ConditionType::{Degraded, EgressLocked, Ready};
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
            let explained = o
                .conditions
                .iter()
                .any(|c| c.type_ == DEGRADED && c.status == True && c.message.contains(&in_a_row));
            if !explained {
                let message = format!(
                    "sandbox pod lost {in_a_row}; recreating after a {}ms backoff",
                    backoff.as_millis()
                );
                p.set(Ready, False, Reason::PodFailed, &message);
                p.set(Degraded, True, Reason::PodFailed, &message);
            }
            p.requeue = Requeue::After(left);
            return;
        }
    }
    p.steps.push(Step::CreatePod);
    p.pod_name = PodName::Set;
    p.set(Ready, False, Reason::PodPending, "sandbox pod created");
    p.set(EgressLocked, Unknown, Reason::LockPending, "");
    if waiting.is_none() {
        p.set(Degraded, False, Reason::AsExpected, "");
    }
}

/// A lost pod: delete it and count the loss; the replacement waits for the backoff.
fn lost(o: &Observed<'_>, cause: &LossCause, message: &str, p: &mut Plan) {
    use ConditionStatus::{False, True};
    use ConditionType::{Degraded, EgressLocked, Ready};
    let why = match cause {
        LossCause::LockFailed => {
            p.set(EgressLocked, False, Reason::LockFailed, message);
            Reason::LockFailed
        }
        LossCause::Pod(_) => Reason::PodFailed,
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
    p.set(Ready, False, why, &text);
    p.set(Degraded, True, why, &text);
    p.pod_name = PodName::Clear;
    p.requeue = Requeue::After(r.wait(backoff, o.now));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
    fn outcome(p: &Plan) -> BTreeMap<ConditionType, (ConditionStatus, Reason)> {
        p.conditions
            .iter()
            .map(|s| (s.type_, (s.status, s.reason)))
            .collect()
    }

    /// One row: what is seen → what the plan does.
    struct Row {
        name: &'static str,
        desired: DesiredState,
        health: PodHealth,
        lock: LockState,
        steps: Vec<Step>,
        /// `Ready`'s status and reason.
        ready: (ConditionStatus, Reason),
        /// `EgressLocked`'s status (Unknown when the plan leaves it as it was).
        locked: ConditionStatus,
        /// `Degraded`'s status (None when the plan leaves it as it was).
        degraded: Option<ConditionStatus>,
        pod_name: PodName,
        requeue: Requeue,
    }

    #[test]
    fn the_lifecycle_table() {
        use ConditionStatus::{False, True, Unknown};
        use DesiredState::{Archived, Hibernated, Running};
        let lost = |cause| PodHealth::Lost {
            cause,
            message: "it ended".into(),
        };
        let rows = vec![
            Row {
                name: "new session: the pod is created",
                desired: Running,
                health: PodHealth::Absent,
                lock: LockState::Pending,
                steps: vec![Step::CreatePod],
                ready: (False, Reason::PodPending),
                locked: Unknown,
                degraded: Some(False),
                pod_name: PodName::Set,
                requeue: Requeue::After(SAFETY_REQUEUE),
            },
            Row {
                name: "pod pending",
                desired: Running,
                health: PodHealth::Pending,
                lock: LockState::Pending,
                steps: vec![],
                ready: (False, Reason::PodPending),
                locked: Unknown,
                degraded: None,
                pod_name: PodName::Set,
                requeue: Requeue::After(SAFETY_REQUEUE),
            },
            Row {
                name: "running and ready, lock not verified yet",
                desired: Running,
                health: PodHealth::Running { ready: true },
                lock: LockState::Pending,
                steps: vec![],
                ready: (False, Reason::PodPending),
                locked: Unknown,
                degraded: None,
                pod_name: PodName::Set,
                requeue: Requeue::After(SAFETY_REQUEUE),
            },
            Row {
                name: "lock verified, runtime not ready",
                desired: Running,
                health: PodHealth::Running { ready: false },
                lock: LockState::Verified,
                steps: vec![],
                ready: (False, Reason::PodPending),
                locked: True,
                degraded: None,
                pod_name: PodName::Set,
                requeue: Requeue::After(SAFETY_REQUEUE),
            },
            Row {
                name: "running, ready, lock verified",
                desired: Running,
                health: PodHealth::Running { ready: true },
                lock: LockState::Verified,
                steps: vec![],
                ready: (True, Reason::PodRunning),
                locked: True,
                degraded: Some(False),
                pod_name: PodName::Set,
                requeue: Requeue::After(SAFETY_REQUEUE),
            },
            Row {
                name: "pod terminating: look again soon",
                desired: Running,
                health: PodHealth::Terminating,
                lock: LockState::Verified,
                steps: vec![],
                ready: (False, Reason::PodPending),
                locked: Unknown,
                degraded: None,
                pod_name: PodName::Keep,
                requeue: Requeue::After(2 * SECOND),
            },
            Row {
                name: "evicted: deleted, replaced after the first backoff",
                desired: Running,
                health: lost(LossCause::Pod("Evicted".into())),
                lock: LockState::Verified,
                steps: vec![Step::DeletePod],
                ready: (False, Reason::PodFailed),
                locked: Unknown,
                degraded: Some(True),
                pod_name: PodName::Clear,
                requeue: Requeue::After(SECOND),
            },
            Row {
                name: "lock found egress open: deleted, replaced after the first backoff",
                desired: Running,
                health: lost(LossCause::LockFailed),
                lock: LockState::NotLocked,
                steps: vec![Step::DeletePod],
                ready: (False, Reason::LockFailed),
                locked: False,
                degraded: Some(True),
                pod_name: PodName::Clear,
                requeue: Requeue::After(SECOND),
            },
            Row {
                name: "lock failed to program: deleted, replaced after the first backoff",
                desired: Running,
                health: lost(LossCause::LockFailed),
                lock: LockState::Failed(1),
                steps: vec![Step::DeletePod],
                ready: (False, Reason::LockFailed),
                locked: False,
                degraded: Some(True),
                pod_name: PodName::Clear,
                requeue: Requeue::After(SECOND),
            },
            Row {
                name: "hibernate: the running pod is deleted",
                desired: Hibernated,
                health: PodHealth::Running { ready: true },
                lock: LockState::Verified,
                steps: vec![Step::DeletePod],
                ready: (False, Reason::IdleTimeout),
                locked: Unknown,
                degraded: Some(False),
                pod_name: PodName::Clear,
                requeue: Requeue::OnChange,
            },
            Row {
                name: "hibernated: no pod, nothing to do",
                desired: Hibernated,
                health: PodHealth::Absent,
                lock: LockState::Pending,
                steps: vec![],
                ready: (False, Reason::IdleTimeout),
                locked: Unknown,
                degraded: Some(False),
                pod_name: PodName::Clear,
                requeue: Requeue::OnChange,
            },
            Row {
                name: "archive: the pending pod is deleted",
                desired: Archived,
                health: PodHealth::Pending,
                lock: LockState::Pending,
                steps: vec![Step::DeletePod],
                ready: (False, Reason::Archived),
                locked: Unknown,
                degraded: Some(False),
                pod_name: PodName::Clear,
                requeue: Requeue::OnChange,
            },
        ];
        for row in rows {
            let name = row.name;
            let desired = row.desired;
            let p = plan(&observed(desired, row.health, row.lock));
            let got = outcome(&p);
            assert_eq!(p.steps, row.steps, "{name}");
            assert_eq!(got[&ConditionType::Ready], row.ready, "{name}");
            assert_eq!(
                got.get(&ConditionType::EgressLocked)
                    .map_or(Unknown, |c| c.0),
                row.locked,
                "{name}"
            );
            assert_eq!(
                got.get(&ConditionType::Degraded).map(|c| c.0),
                row.degraded,
                "{name}"
            );
            assert_eq!(p.pod_name, row.pod_name, "{name}");
            assert_eq!(p.requeue, row.requeue, "{name}");
            let asleep = desired != Running;
            assert_eq!(
                got[&ConditionType::Hibernated],
                if asleep {
                    (
                        True,
                        if desired == Archived {
                            Reason::Archived
                        } else {
                            Reason::IdleTimeout
                        },
                    )
                } else {
                    (False, Reason::Awake)
                },
                "{name}"
            );
        }
    }

    #[test]
    fn waking_a_hibernated_session_creates_its_pod_and_clears_the_hibernation() {
        // What hibernation reported; waking starts from it.
        let slept = plan(&observed(
            DesiredState::Hibernated,
            PodHealth::Absent,
            LockState::Pending,
        ));
        assert_eq!(slept.restart, None, "hibernating forgets the losses");
        let woken = plan(&observed(
            DesiredState::Running,
            PodHealth::Absent,
            LockState::Pending,
        ));
        assert_eq!(woken.steps, vec![Step::CreatePod]);
        assert_eq!(woken.pod_name, PodName::Set);
        let got = outcome(&woken);
        assert_eq!(
            got[&ConditionType::Hibernated],
            (ConditionStatus::False, Reason::Awake)
        );
        assert_eq!(
            got[&ConditionType::Ready],
            (ConditionStatus::False, Reason::PodPending)
        );
        assert_eq!(
            got[&ConditionType::Degraded],
            (ConditionStatus::False, Reason::AsExpected)
        );
    }

    #[test]
    fn a_lost_pods_message_names_the_cause_and_the_backoff() {
        let p = plan(&observed(
            DesiredState::Running,
            PodHealth::Lost {
                cause: LossCause::LockFailed,
                message: "the lock's self-test found egress not locked".into(),
            },
            LockState::NotLocked,
        ));
        let degraded = p
            .conditions
            .iter()
            .rfind(|c| c.type_ == ConditionType::Degraded)
            .expect("degraded is set");
        assert_eq!(
            degraded.message,
            "sandbox pod lost: LockFailed: the lock's self-test found egress not locked \
             (1 in a row); recreating after a 1000ms backoff"
        );
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
            !outcome(&waiting).contains_key(&ConditionType::Degraded),
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
            outcome(&p)[&ConditionType::Degraded],
            (ConditionStatus::True, Reason::PodFailed)
        );
    }
}
