//! Session limits held outside the sandbox, where code the model wrote cannot reach them:
//!
//! - the egress gate the session's sidecar asks before it swaps a sealed token for the real key:
//!   open only while a turn is running, within its `limits.turn_seconds`, and while the model
//!   tokens the sidecar metered stay below `limits.tokens`;
//! - the turn count: a turn past `limits.turns` is ended (`max_turns`) as it is claimed, before
//!   the runtime sees it;
//! - the deadline sweep: a running turn past its `turn_seconds` (plus [`DEADLINE_GRACE`], which
//!   leaves the runtime time to end it itself, with its usage) is ended `deadline_exceeded`.

use std::time::Duration;

use sealpod_resources::runtime_api::{
    ClaimedTurn, CompleteTurnRequest, EgressGate, GateClosed, Usage, YieldReason,
};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
use crate::wire::TurnState;

/// How long past a turn's deadline the sweep waits before ending the turn itself. The gate
/// closes at the deadline; the grace only decides who writes `turn.completed`.
pub(crate) const DEADLINE_GRACE: Duration = Duration::from_secs(10);

/// How often the deadline sweep looks for overdue turns.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Records what the sidecar reports having metered and answers whether it may swap now.
pub(crate) async fn gate(
    state: &AppState,
    namespace: &str,
    session: &str,
    reported_tokens: u64,
) -> ApiResult<EgressGate> {
    let row = state
        .store()
        .get_session(namespace, session)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    let metered_tokens = state.store().meter(session, reported_tokens).await?;
    let mut gate = EgressGate {
        closed: None,
        metered_tokens,
        tokens_limit: row.limits.tokens,
        turn_ms_left: None,
    };
    let running = match &row.last_turn {
        Some(last) if last.state == TurnState::Running => {
            state.store().get_turn(session, &last.id).await?
        }
        _ => None,
    };
    gate.closed = if row
        .limits
        .tokens
        .is_some_and(|limit| metered_tokens >= limit)
    {
        Some(GateClosed::BudgetExceeded)
    } else if let Some(turn) = running {
        match turn.deadline_ms {
            Some(deadline) => {
                let left = deadline - chrono::Utc::now().timestamp_millis();
                gate.turn_ms_left = u64::try_from(left).ok().filter(|ms| *ms > 0);
                gate.turn_ms_left
                    .is_none()
                    .then_some(GateClosed::DeadlineExceeded)
            }
            None => None,
        }
    } else {
        Some(GateClosed::NoTurn)
    };
    Ok(gate)
}

/// Ends a just-claimed turn that `limits.turns` does not allow; `true` when it did.
pub(crate) async fn end_if_past_max_turns(
    state: &AppState,
    namespace: &str,
    session: &str,
    turn: &ClaimedTurn,
) -> StoreResult<bool> {
    let Some(row) = state.store().get_session(namespace, session).await? else {
        return Ok(false);
    };
    if row.limits.turns.is_none_or(|max| turn.number <= max) {
        return Ok(false);
    }
    end_turn(
        state,
        namespace,
        session,
        &turn.turn_id,
        YieldReason::MaxTurns,
    )
    .await?;
    Ok(true)
}

async fn end_turn(
    state: &AppState,
    namespace: &str,
    session: &str,
    turn: &str,
    reason: YieldReason,
) -> StoreResult<()> {
    let request = CompleteTurnRequest {
        yield_reason: reason,
        result_event_id: None,
        usage: Usage::default(),
        error: None,
    };
    state
        .store()
        .complete_turn(namespace, session, turn, &request)
        .await?;
    state.sync().mark(namespace, session);
    Ok(())
}

/// Ends running turns past their deadline and its grace. Runs until shutdown.
pub(crate) async fn run_deadline_sweep(state: AppState) {
    let mut shutdown = state.shutdown();
    let grace = i64::try_from(DEADLINE_GRACE.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let now = chrono::Utc::now().timestamp_millis();
        let overdue = match state.store().overdue_turns(now - grace).await {
            Ok(overdue) => overdue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for overdue turns");
                continue;
            }
        };
        for (namespace, session, turn) in overdue {
            tracing::info!(%session, %turn, "turn past limits.turn_seconds; ending it");
            if let Err(e) = end_turn(
                &state,
                &namespace,
                &session,
                &turn,
                YieldReason::DeadlineExceeded,
            )
            .await
            {
                tracing::warn!(error = %e, %session, %turn, "cannot end an overdue turn");
            }
        }
    }
}
