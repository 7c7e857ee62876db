//! A Session's status as the pipeline builds it up ([`Draft`]) and the one place it is written
//! (server-side apply on `/status`, then an Event per condition transition). It must never put a
//! credential value or token into a message.

use kube::runtime::controller::Action;
use sealpod_resources::Session;
use sealpod_resources::conditions::{CREDENTIALS_BOUND, ConditionStatus, DEGRADED, READY, reasons};
use serde_json::json;

use super::super::{Conditions, Context, CredentialProblem, apply_status, publish_transitions};
use crate::build::BoundCredential;
use crate::error::Error;

/// What status says, built up as the pipeline runs.
pub(super) struct Draft {
    pub(super) conds: Conditions,
    pub(super) pod_name: Option<String>,
}

impl Draft {
    /// Starts from what the Session's status says now.
    pub(super) fn of(session: &Session) -> Draft {
        let status = session.status.clone().unwrap_or_default();
        Draft {
            conds: Conditions::from(&status.conditions, session.metadata.generation),
            pod_name: status.pod_name,
        }
    }

    pub(super) fn set(
        &mut self,
        t: &str,
        s: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.conds.set(t, s, reason, message);
    }

    /// A spec problem: nothing runs until it changes.
    pub(super) fn blocked(&mut self, reason: &str, message: &str) {
        self.set(READY, ConditionStatus::False, reason, message);
        self.set(DEGRADED, ConditionStatus::True, reason, message);
    }

    /// The pinned agent configuration does not validate.
    pub(super) fn invalid(&mut self, message: &str) {
        self.blocked(reasons::INVALID, message);
        self.set(
            CREDENTIALS_BOUND,
            ConditionStatus::Unknown,
            reasons::INVALID,
            "",
        );
    }

    /// The credential cannot be bound.
    pub(super) fn unbound(&mut self, problem: CredentialProblem) {
        let (reason, message) = problem.reason_and_message();
        self.set(
            CREDENTIALS_BOUND,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
        self.blocked(reason, &message);
    }

    /// The credential is bound into the applied children.
    pub(super) fn bound(&mut self, credential: &BoundCredential) {
        self.set(
            CREDENTIALS_BOUND,
            ConditionStatus::True,
            reasons::CREDENTIAL_BOUND,
            format!(
                "credential `{}` version {}",
                credential.name, credential.version
            ),
        );
    }
}

/// Writes `draft` as the Session's status (when it differs from what is there) and returns
/// `then`, the reconcile's answer.
pub(super) async fn report(
    ctx: &Context,
    session: &Session,
    draft: Draft,
    then: Action,
) -> Result<Action, Error> {
    let old = session.status.clone().unwrap_or_default();
    let generation = session.metadata.generation;
    if draft.conds.list == old.conditions
        && draft.pod_name == old.pod_name
        && generation == old.observed_generation
    {
        return Ok(then);
    }
    let mut status = json!({
        "observedGeneration": generation,
        "conditions": draft.conds.list,
    });
    if let Some(p) = &draft.pod_name {
        status["podName"] = json!(p);
    }
    apply_status(ctx, session, status).await?;
    publish_transitions(ctx, session, &old.conditions, &draft.conds.list).await;
    Ok(then)
}
