//! Driving the sandbox pod: create, replace a lost pod with backoff, hibernate, wake and
//! archive, and the conditions that follow the pod's state (`super::super::lifecycle` reads it).

use super::*;

async fn delete_pod(pods: &Api<Pod>, name: &str) -> Result<(), Error> {
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        // Already gone is success.
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::kube("delete pod")(e)),
    }
}

pub(super) async fn lifecycle(
    ctx: &Context,
    session: &Session,
    plan: &SessionPlan,
    draft: &mut Draft,
) -> Result<Action, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &plan.namespace);
    let pod_name = build::pod_name(&plan.name);
    let pod = pods
        .get_opt(&pod_name)
        .await
        .map_err(Error::kube("get pod"))?;
    let uid = plan.uid.clone();
    let asleep = |draft: &mut Draft, reason: &str, message: &str| {
        draft.set(READY, ConditionStatus::False, reason, message);
        draft.set(HIBERNATED, ConditionStatus::True, reason, message);
        draft.set(
            EGRESS_LOCKED,
            ConditionStatus::Unknown,
            reasons::LOCK_PENDING,
            "no sandbox pod",
        );
        draft.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
        draft.pod_name = None;
    };
    match session.spec.desired_state {
        DesiredState::Hibernated | DesiredState::Archived => {
            if pod.is_some() {
                delete_pod(&pods, &pod_name).await?;
            }
            ctx.restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
            if session.spec.desired_state == DesiredState::Hibernated {
                asleep(
                    draft,
                    reasons::IDLE_TIMEOUT,
                    "hibernated: pod deleted, workspace kept",
                );
            } else {
                asleep(
                    draft,
                    reasons::ARCHIVED,
                    "archived: pod deleted, workspace kept",
                );
            }
            return Ok(Action::await_change());
        }
        DesiredState::Running => {}
    }
    draft.set(HIBERNATED, ConditionStatus::False, reasons::AWAKE, "");
    let now = Instant::now();
    match pod_health(pod.as_ref()) {
        PodHealth::Absent => {
            let wait = {
                let mut restarts = ctx.restarts.lock().unwrap_or_else(|e| e.into_inner());
                match restarts.get_mut(&uid) {
                    Some(r) => {
                        r.lost(now);
                        Some(*r)
                    }
                    // A pod we created is gone without our seeing it fail: deleted.
                    None if draft.pod_name.is_some() => {
                        let r = Restart::first(now);
                        restarts.insert(uid.clone(), r);
                        Some(r)
                    }
                    None => None,
                }
            };
            if let Some(r) = wait {
                let backoff = ctx.config.restart_backoff(r.failures);
                let left = r.wait(backoff, now);
                if !left.is_zero() {
                    // The reconcile that saw the pod fail already said why (`Evicted`,
                    // `LockFailed`, …); the one its deletion triggers must not replace that
                    // with a vaguer message for the same loss.
                    let in_a_row = format!("({} in a row)", r.failures);
                    let explained = draft.conds.list.iter().any(|c| {
                        c.type_ == DEGRADED
                            && c.status == ConditionStatus::True
                            && c.message.contains(&in_a_row)
                    });
                    if !explained {
                        let message = format!(
                            "sandbox pod lost {in_a_row}; recreating after a {}ms backoff",
                            backoff.as_millis()
                        );
                        draft.set(READY, ConditionStatus::False, reasons::POD_FAILED, &message);
                        draft.set(
                            DEGRADED,
                            ConditionStatus::True,
                            reasons::POD_FAILED,
                            &message,
                        );
                    }
                    return Ok(Action::requeue(left));
                }
            }
            let created = build::sandbox_pod(plan, &ctx.settings);
            apply_child(ctx, &plan.namespace, &created, "create pod").await?;
            if let Some(r) = ctx
                .restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&uid)
            {
                r.recreated = true;
            }
            draft.pod_name = Some(pod_name);
            draft.set(
                READY,
                ConditionStatus::False,
                reasons::POD_PENDING,
                "sandbox pod created",
            );
            draft.set(
                EGRESS_LOCKED,
                ConditionStatus::Unknown,
                reasons::LOCK_PENDING,
                "",
            );
            if wait.is_none() {
                draft.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
            }
            Ok(Action::requeue(SAFETY_REQUEUE))
        }
        PodHealth::Terminating => {
            draft.set(
                READY,
                ConditionStatus::False,
                reasons::POD_PENDING,
                "sandbox pod terminating",
            );
            Ok(Action::requeue(Duration::from_secs(2)))
        }
        PodHealth::Lost { reason, message } => {
            if reason == "LockFailed" {
                draft.set(
                    EGRESS_LOCKED,
                    ConditionStatus::False,
                    reasons::LOCK_FAILED,
                    &message,
                );
            }
            delete_pod(&pods, &pod_name).await?;
            let r = {
                let mut restarts = ctx.restarts.lock().unwrap_or_else(|e| e.into_inner());
                let r = restarts
                    .entry(uid.clone())
                    .and_modify(|r| r.lost(now))
                    .or_insert_with(|| Restart::first(now));
                *r
            };
            let backoff = ctx.config.restart_backoff(r.failures);
            let text = format!(
                "sandbox pod lost: {reason}{}{message} ({} in a row); recreating after a {}ms backoff",
                if message.is_empty() { "" } else { ": " },
                r.failures,
                backoff.as_millis()
            );
            let why = if reason == "LockFailed" {
                reasons::LOCK_FAILED
            } else {
                reasons::POD_FAILED
            };
            draft.set(READY, ConditionStatus::False, why, &text);
            draft.set(DEGRADED, ConditionStatus::True, why, &text);
            draft.pod_name = None;
            Ok(Action::requeue(r.wait(backoff, now)))
        }
        PodHealth::Pending | PodHealth::Running { .. } => {
            let health = pod_health(pod.as_ref());
            let lock = pod.as_ref().map_or(LockState::Pending, lock_state);
            draft.pod_name = Some(pod_name);
            match lock {
                LockState::Verified => draft.set(
                    EGRESS_LOCKED,
                    ConditionStatus::True,
                    reasons::LOCK_VERIFIED,
                    "lock --verify passed",
                ),
                _ => draft.set(
                    EGRESS_LOCKED,
                    ConditionStatus::Unknown,
                    reasons::LOCK_PENDING,
                    "",
                ),
            }
            if health == (PodHealth::Running { ready: true }) && lock == LockState::Verified {
                draft.set(READY, ConditionStatus::True, reasons::POD_RUNNING, "");
                draft.set(DEGRADED, ConditionStatus::False, reasons::AS_EXPECTED, "");
                ctx.restarts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&uid);
            } else {
                draft.set(
                    READY,
                    ConditionStatus::False,
                    reasons::POD_PENDING,
                    "sandbox pod starting",
                );
            }
            Ok(Action::requeue(SAFETY_REQUEUE))
        }
    }
}
