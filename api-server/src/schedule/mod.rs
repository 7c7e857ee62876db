//! Schedules: cron for agents. A `Schedule` object (created through `/v3/agents/{id}/schedules`
//! or with `kubectl`) names an agent, a cron expression read in a time zone, and an input; at each
//! time the expression names, one session of the agent starts with that input.
//!
//! - **Exactly once per time.** Every replica looks at every schedule each second ([`Ticker`]);
//!   a due time is claimed by inserting its run (`store::schedules`), unique per (schedule, time),
//!   so one replica enacts it. Enacting starts the session with a `key` naming the run, so a run
//!   whose replica stopped midway is enacted again without a second session.
//! - **No burst after downtime.** A schedule fires for the latest time it missed, once, never for
//!   each missed time; a paused schedule fires for no time it was paused over.
//! - **Overlap.** With `overlap: skip`, a fire while the session of the schedule's last enacted
//!   run is still queued or running a turn starts nothing (`skipped`).
//! - **Failures.** A fire that cannot start its session is `failed` (with the error's type and
//!   message); after `AUTO_PAUSE_AFTER_FAILURES` (5) failed cron fires in a row the schedule pauses
//!   itself (`auto_paused`) until its owner pauses or resumes it.
//! - **Test fires** (`…/fire`) enact at once in any state, skip the overlap check, and neither
//!   advance the cron nor count toward the failure count.

pub mod cron;
mod fire;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;
use sealpod_resources::Schedule;
use sealpod_resources::ids::{IdKind, object_name_to_id};
use sealpod_resources::schedule::{ScheduleSpec, ScheduleState, ScheduleStatus};

use crate::store::{FireState, RunRow};
use crate::wire;

pub(crate) use fire::fire_now;
pub use fire::{Ticker, watch};

/// A schedule's cron expression and time zone, parsed.
#[derive(Debug, Clone)]
pub struct Plan {
    cron: cron::Cron,
    tz: TimeZone,
}

/// Why a schedule's spec cannot fire: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// `cron` or `tz` (the `/v3` field names).
    pub param: &'static str,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

impl Plan {
    /// Parses a cron expression and an IANA time zone name (None: UTC).
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Plan, PlanError> {
        let cron = cron::Cron::parse(expr).map_err(|e| PlanError {
            param: "cron",
            message: e.to_string(),
        })?;
        let tz = cron::time_zone(tz).map_err(|e| PlanError {
            param: "tz",
            message: e.to_string(),
        })?;
        Ok(Plan { cron, tz })
    }

    /// The plan of a Schedule's spec.
    pub fn of(spec: &ScheduleSpec) -> Result<Plan, PlanError> {
        Plan::parse(&spec.cron, spec.time_zone.as_deref())
    }

    /// The first time after `after` (Unix seconds).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let after = Timestamp::from_second(after).ok()?;
        self.cron.next_after(&self.tz, after).map(|t| t.as_second())
    }

    /// The latest time in `(since, at]` (Unix seconds).
    pub fn latest_between(&self, since: i64, at: i64) -> Option<i64> {
        let since = Timestamp::from_second(since).ok()?;
        let at = Timestamp::from_second(at).ok()?;
        self.cron
            .latest_between(&self.tz, since, at)
            .map(|t| t.as_second())
    }
}

/// The API id of a Schedule object (`sch-x` → `sch_x`); None for an object whose name is not
/// `sch-` and 1–40 of `[a-z0-9]` (such an object never fires).
pub fn schedule_id(schedule: &Schedule) -> Option<String> {
    object_name_to_id(&schedule.name_any())
        .ok()
        .filter(|id| id.starts_with(IdKind::Schedule.prefix()))
}

/// RFC 3339 (UTC, seconds) of a Unix time.
pub(crate) fn rfc3339(unix: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A schedule's status at `now`: its state, the next time its cron names, and what its fires
/// came to. A spec that cannot fire says why in `last_error`.
pub fn status_of(schedule: &Schedule, fire: &FireState, now: i64) -> ScheduleStatus {
    let state = if schedule.spec.paused {
        ScheduleState::Paused
    } else if fire.auto_paused {
        ScheduleState::AutoPaused
    } else {
        ScheduleState::Active
    };
    let (next, plan_error) = match Plan::of(&schedule.spec) {
        Ok(plan) => (plan.next_after(now).and_then(rfc3339), None),
        Err(e) => (None, Some(e.to_string())),
    };
    ScheduleStatus {
        state: Some(state),
        next_fire_at: next,
        last_fired_at: fire.last_fired_at.clone(),
        consecutive_failures: u32::try_from(fire.consecutive_failures).unwrap_or(u32::MAX),
        last_error: plan_error.or_else(|| fire.last_error.clone()),
    }
}

/// The `/v3` form of a schedule.
pub(crate) fn schedule_to_wire(
    schedule: &Schedule,
    agent_id: &str,
    fire: &FireState,
    now: i64,
) -> wire::Schedule {
    let status = status_of(schedule, fire, now);
    let created = crate::translate::created_at(schedule).unwrap_or_default();
    wire::Schedule {
        id: schedule_id(schedule).unwrap_or_default(),
        agent_id: agent_id.to_owned(),
        name: schedule.spec.name.clone(),
        cron: schedule.spec.cron.clone(),
        tz: schedule.spec.time_zone.clone(),
        input: schedule.spec.input.clone(),
        overlap: schedule.spec.overlap.as_str(),
        state: status.state.unwrap_or_default().as_str(),
        next_fire_at: status.next_fire_at,
        last_fired_at: status.last_fired_at,
        consecutive_failures: status.consecutive_failures,
        last_error: status.last_error,
        updated_at: schedule
            .annotations()
            .get(crate::translate::UPDATED_AT_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| created.clone()),
        created_at: created,
    }
}

/// The `/v3` form of a run.
pub(crate) fn run_to_wire(run: &RunRow) -> wire::ScheduleRun {
    wire::ScheduleRun {
        id: run.id.clone(),
        schedule_id: run.schedule.clone(),
        scheduled_for: run.scheduled.and_then(rfc3339),
        fired_at: run.fired_at.clone(),
        outcome: run.outcome.as_str(),
        session_id: run.session_id.clone(),
        error: run.error.clone(),
    }
}
