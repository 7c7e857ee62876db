//! Firing schedules: the per-second pass over every schedule of the served namespaces
//! ([`Ticker`], fed by [`watch`]), a test fire ([`fire_now`]), and enacting a claimed run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use kube::runtime::watcher;
use kube::{Api, ResourceExt as _};
use sealpod_resources::Schedule;
use sealpod_resources::ids::object_name_to_id;
use sealpod_resources::runtime_api::Actor;
use sealpod_resources::schedule::Overlap;
use sealpod_resources::session::Phase;
use serde_json::json;

use super::{Plan, schedule_id, status_of};
use crate::AppState;
use crate::auth::sha256_hex;
use crate::dto::CreateSession;
use crate::error::{ApiError, ApiResult};
use crate::input::json_value;
use crate::session_input::input_to_body;
use crate::start::{Start, start_session};
use crate::store::{FireState, Outcome, RunRow, StoreResult};

/// How long a run may stay pending before any replica enacts it again (its replica stopped).
const STALE_RUN_SECONDS: i64 = 30;

/// One replica's view of the schedules between passes: for each, the time it has fired up to
/// (loaded from the store on first sight), and the generation whose status it last wrote.
#[derive(Debug, Default)]
pub struct Ticker {
    fired_up_to: HashMap<String, i64>,
    status_written: HashMap<String, Option<i64>>,
}

impl Ticker {
    /// One pass at `now` (Unix seconds) over `schedules`: claims and enacts each time due, and
    /// enacts again runs left pending by a replica that stopped. Errors are logged; the next pass
    /// tries again.
    pub async fn tick(&mut self, state: &AppState, schedules: &[Schedule], now: i64) {
        let by_id: BTreeMap<String, &Schedule> = schedules
            .iter()
            .filter_map(|s| schedule_id(s).map(|id| (id, s)))
            .collect();
        // What this replica remembers of deleted schedules goes with them.
        self.fired_up_to.retain(|id, _| by_id.contains_key(id));
        self.status_written.retain(|id, _| by_id.contains_key(id));
        for (id, schedule) in &by_id {
            if let Err(e) = self.visit(state, id, schedule, now).await {
                tracing::warn!(schedule = %id, error = %e, "schedule pass failed");
            }
        }
        match state.store().stale_runs(now - STALE_RUN_SECONDS).await {
            Ok(runs) => {
                for run in runs {
                    if let Some(schedule) = by_id.get(&run.schedule) {
                        enact(state, schedule, run, chrono_now(now)).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read pending schedule runs"),
        }
    }

    async fn visit(
        &mut self,
        state: &AppState,
        id: &str,
        schedule: &Schedule,
        now: i64,
    ) -> StoreResult<()> {
        let mut fire = FireStateOnce {
            state,
            id,
            read: None,
        };
        if self.status_written.get(id) != Some(&schedule.metadata.generation) {
            // A new or changed spec: its status (next fire, or why it cannot fire) is shown.
            write_status(state, schedule, fire.get().await?, now).await;
            self.status_written
                .insert(id.to_owned(), schedule.metadata.generation);
        }
        if schedule.spec.paused {
            // A paused schedule catches up on nothing when it is resumed.
            self.fired_up_to.insert(id.to_owned(), now);
            return Ok(());
        }
        let Ok(plan) = Plan::of(&schedule.spec) else {
            return Ok(());
        };
        let since = match self.fired_up_to.get(id) {
            Some(since) => *since,
            None => {
                let created = schedule
                    .creation_timestamp()
                    .map_or(now, |t| t.0.as_second());
                let last = fire.get().await?.last_scheduled;
                let since = last.map_or(created, |l| l.max(created));
                self.fired_up_to.insert(id.to_owned(), since);
                since
            }
        };
        // Only the latest time missed fires: no burst after downtime.
        let Some(due) = plan.latest_between(since, now) else {
            return Ok(());
        };
        self.fired_up_to.insert(id.to_owned(), due);
        if fire.get().await?.auto_paused {
            return Ok(());
        }
        let namespace = schedule.namespace().unwrap_or_default();
        let Some(run) = state
            .store()
            .claim_run(id, &namespace, Some(due), chrono_now(now))
            .await?
        else {
            // Another replica claimed this time.
            return Ok(());
        };
        enact(state, schedule, run, chrono_now(now)).await;
        Ok(())
    }
}

/// A schedule's fire state, read from the store at most once per visit.
struct FireStateOnce<'a> {
    state: &'a AppState,
    id: &'a str,
    read: Option<FireState>,
}

impl FireStateOnce<'_> {
    async fn get(&mut self) -> StoreResult<&FireState> {
        if self.read.is_none() {
            self.read = Some(self.state.store().fire_state(self.id).await?);
        }
        Ok(self.read.get_or_insert_with(FireState::default))
    }
}

fn chrono_now(unix: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

/// A test fire: claims a run with no scheduled time and enacts it at once, whatever the
/// schedule's state, without the overlap check.
pub(crate) async fn fire_now(state: &AppState, schedule: &Schedule) -> ApiResult<RunRow> {
    let id = schedule_id(schedule).ok_or(ApiError::NotFound("schedule"))?;
    let namespace = schedule.namespace().unwrap_or_default();
    let now = chrono::Utc::now();
    let run = state
        .store()
        .claim_run(&id, &namespace, None, now)
        .await?
        .ok_or_else(|| ApiError::internal("a test fire found its run taken"))?;
    Ok(enact(state, schedule, run, now).await)
}

/// Enacts a claimed run and records what it came to; returns the run as recorded.
async fn enact(
    state: &AppState,
    schedule: &Schedule,
    run: RunRow,
    now: chrono::DateTime<chrono::Utc>,
) -> RunRow {
    let (outcome, session, error) = match decide(state, schedule, &run).await {
        Ok(Some(session)) => (Outcome::Enacted, Some(session), None),
        Ok(None) => (Outcome::Skipped, None, None),
        Err(e) => (Outcome::Failed, None, Some(run_error(&e))),
    };
    let recorded = RunRow {
        outcome,
        session_id: session.clone(),
        error: error.clone(),
        ..run.clone()
    };
    match state
        .store()
        .finish_run(&run, outcome, session.as_deref(), error.as_deref())
        .await
    {
        Ok(true) => state.metrics().schedule_run(outcome),
        // Another replica recorded it first.
        Ok(false) => {}
        Err(e) => tracing::warn!(run = %run.id, error = %e, "cannot record a schedule run"),
    }
    if let Ok(fire) = state.store().fire_state(&run.schedule).await {
        write_status(state, schedule, &fire, now.timestamp()).await;
    }
    tracing::info!(
        schedule = %run.schedule, run = %run.id, outcome = outcome.as_str(),
        session = session.as_deref().unwrap_or(""), "schedule fired"
    );
    recorded
}

/// Starts the run's session (Some(id)), or skips it (None) when the overlap policy says so.
async fn decide(state: &AppState, schedule: &Schedule, run: &RunRow) -> ApiResult<Option<String>> {
    let namespace = schedule.namespace().unwrap_or_default();
    if run.scheduled.is_some()
        && schedule.spec.overlap == Overlap::Skip
        && still_running(state, &namespace, &run.schedule).await?
    {
        return Ok(None);
    }
    let agent =
        object_name_to_id(&schedule.spec.agent_ref).map_err(|_| ApiError::NotFound("agent"))?;
    // The key names the run: enacting it again finds the session it started.
    let request = json!({
        "agent": agent,
        "input": schedule.spec.input,
        "key": format!("schedule:{}:{}", run.schedule, run.id),
        "metadata": {"schedule_id": run.schedule, "schedule_run_id": run.id},
    });
    let fingerprint = sha256_hex(&request.to_string());
    let session = json_value::<CreateSession>(request)?.validate()?;
    let (body, refs, _) = input_to_body(&session.input, "input")?;
    let (_, row) = start_session(
        state,
        Start {
            namespace,
            session,
            input: (body, refs),
            fingerprint,
            idempotency: None,
            actor: Actor {
                id: "schedule".to_owned(),
                type_: "system".to_owned(),
                display: Some(schedule.spec.name.clone()),
            },
            destinations: Vec::new(),
        },
    )
    .await?;
    Ok(Some(row.id))
}

/// True when the session of the schedule's last enacted run is queued or running a turn.
async fn still_running(state: &AppState, namespace: &str, schedule: &str) -> ApiResult<bool> {
    let Some(session) = state.store().last_enacted_session(schedule).await? else {
        return Ok(false);
    };
    Ok(state
        .store()
        .get_session(namespace, &session)
        .await?
        .is_some_and(|row| matches!(row.status, Phase::Queued | Phase::Running)))
}

/// What a failed run records: the error's type and message (an internal error's detail is
/// logged, never recorded).
fn run_error(e: &ApiError) -> String {
    match e {
        ApiError::Internal(detail) => {
            tracing::error!(error = %detail, "a schedule fire failed");
            "internal: internal error".to_owned()
        }
        other => format!("{}: {other}", other.kind()),
    }
}

/// Writes a schedule's status (best effort: the next change writes it again).
async fn write_status(state: &AppState, schedule: &Schedule, fire: &FireState, now: i64) {
    let status = status_of(schedule, fire, now);
    let ns = schedule.namespace().unwrap_or_default();
    if let Err(e) = state
        .cluster()
        .apply_schedule_status(&ns, &schedule.name_any(), &status)
        .await
    {
        tracing::warn!(schedule = %schedule.name_any(), error = %e, "cannot write schedule status");
    }
}

/// The Schedules of the served namespaces, by namespace and name.
type Objects = Arc<Mutex<BTreeMap<(String, String), Schedule>>>;

/// Keeps every Schedule of the served namespaces (never the system namespace) and passes over
/// them each second until shutdown. A deleted schedule's state and runs are forgotten.
pub async fn watch(state: AppState) {
    let objects = Objects::default();
    tokio::spawn(keep(state.clone(), objects.clone()));
    let mut ticker = Ticker::default();
    let mut shutdown = state.shutdown();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let schedules: Vec<Schedule> = objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        ticker
            .tick(&state, &schedules, chrono::Utc::now().timestamp())
            .await;
    }
}

/// Keeps `objects` current from one watch per served namespace (or one over the cluster).
async fn keep(state: AppState, objects: Objects) {
    let namespaces = state.settings().watch_namespaces.clone();
    let system = state.cluster().system_namespace().to_owned();
    let client = state.cluster().client().clone();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let streams = scopes.iter().enumerate().map(|(i, scope)| {
        let api: Api<Schedule> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        watcher(api, watcher::Config::default())
            .map(move |e| (i, e))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut listing: Vec<BTreeMap<(String, String), Schedule>> =
        vec![BTreeMap::new(); scopes.len()];
    let key = |s: &Schedule| (s.namespace().unwrap_or_default(), s.name_any());
    while let Some((i, event)) = events.next().await {
        let served = |s: &Schedule| s.namespace().as_deref() != Some(system.as_str());
        match event {
            Ok(watcher::Event::Init) => listing[i].clear(),
            Ok(watcher::Event::InitApply(s)) => {
                if served(&s) {
                    listing[i].insert(key(&s), s);
                }
            }
            Ok(watcher::Event::InitDone) => {
                // The fresh list replaces what this scope held.
                let mut map = objects.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|(ns, _), _| scopes[i].as_ref().is_some_and(|scope| scope != ns));
                map.extend(std::mem::take(&mut listing[i]));
            }
            Ok(watcher::Event::Apply(s)) => {
                if served(&s) {
                    let mut map = objects.lock().unwrap_or_else(|p| p.into_inner());
                    map.insert(key(&s), s);
                }
            }
            Ok(watcher::Event::Delete(s)) => {
                objects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key(&s));
                if let Some(id) = schedule_id(&s)
                    && let Err(e) = state.store().forget_schedule(&id).await
                {
                    tracing::warn!(schedule = %id, error = %e, "cannot forget a schedule");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "schedule watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
