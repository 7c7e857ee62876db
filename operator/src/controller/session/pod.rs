//! Driving the sandbox pod: observe it (`super::super::lifecycle` reads its state), decide with
//! [`super::plan`], and carry the decision out.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use sealpod_resources::{Session, labels};

use super::super::Context;
use super::super::lifecycle::{LockState, Restart, lock_state, pod_health};
use super::apply_child;
use super::plan::{Observed, PodName, Requeue, Step, plan};
use super::status::Draft;
use crate::build::{self, SessionPlan};
use crate::error::{Error, is_status};

async fn delete_pod(pods: &Api<Pod>, name: &str) -> Result<(), Error> {
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        // Already gone is success.
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::kube("delete pod")(e)),
    }
}

/// Observes the sandbox pod, decides with [`plan`], and carries the decision out: the restart
/// bookkeeping first, then the steps, then the conditions.
pub(super) async fn lifecycle(
    ctx: &Context,
    session: &Session,
    session_plan: &SessionPlan,
    draft: &mut Draft,
) -> Result<Action, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &session_plan.namespace);
    let pod_name = session_plan.pod.clone();
    let pod = pods
        .get_opt(&pod_name)
        .await
        .map_err(Error::kube("get pod"))?;
    let uid = session_plan.uid.clone();
    let restart = ctx
        .restarts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&uid)
        .copied();
    let backoff = |n| ctx.config.restart_backoff(n);
    let decided = plan(&Observed {
        desired: session.spec.desired_state,
        health: pod_health(pod.as_ref()),
        lock: pod.as_ref().map_or(LockState::Pending, lock_state),
        restart,
        had_pod: draft.pod_name.is_some(),
        conditions: &draft.conds.list,
        backoff: &backoff,
        now: Instant::now(),
    });
    remember(ctx, &uid, decided.restart);
    for step in &decided.steps {
        match step {
            Step::DeletePod => delete_pod(&pods, &pod_name).await?,
            Step::CreatePod => {
                let mut created = build::sandbox_pod(session_plan, &ctx.settings);
                // Stamped here, not in the (pure) build: the runtime reports its start phases
                // from it.
                created.metadata.annotations.get_or_insert_default().insert(
                    labels::POD_CREATED_AT_ANNOTATION.to_owned(),
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                );
                apply_child(ctx, &session_plan.namespace, &created, "create pod").await?;
                if let Some(r) = decided.restart {
                    remember(
                        ctx,
                        &uid,
                        Some(Restart {
                            recreated: true,
                            ..r
                        }),
                    );
                }
            }
        }
    }
    for set in decided.conditions {
        draft.set(
            set.type_.as_str(),
            set.status,
            set.reason.as_str(),
            set.message,
        );
    }
    match decided.pod_name {
        PodName::Keep => {}
        PodName::Set => draft.pod_name = Some(pod_name),
        PodName::Clear => draft.pod_name = None,
    }
    Ok(match decided.requeue {
        Requeue::OnChange => Action::await_change(),
        Requeue::After(after) => Action::requeue(after),
    })
}

/// Keeps (or forgets) a session's restart bookkeeping.
fn remember(ctx: &Context, uid: &str, restart: Option<Restart>) {
    let mut restarts = ctx.restarts.lock().unwrap_or_else(|e| e.into_inner());
    match restart {
        Some(r) => {
            restarts.insert(uid.to_owned(), r);
        }
        None => {
            restarts.remove(uid);
        }
    }
}
